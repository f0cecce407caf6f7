//! The dashboard's static files (`dashboard/` in the repository), compiled into the binary
//! so `cargo run` serves them from anywhere. The same files deploy as a static site next to
//! the API in AWS (see the README), where `config.js` names the API and WebSocket URLs.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// `(path, content type, body)` of every file.
const FILES: [(&str, &str, &str); 6] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../dashboard/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/app.js"),
    ),
    (
        "/auth.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/auth.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../../dashboard/style.css"),
    ),
    (
        "/vendor/chart.umd.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/vendor/chart.umd.min.js"),
    ),
    // Served by the API's own origin, so the defaults (same origin, `/ws`) are right.
    (
        "/config.js",
        "text/javascript; charset=utf-8",
        "window.HEALTH_CONFIG = {};\n",
    ),
];

/// The dashboard's routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    let mut router = axum::Router::new();
    for (path, content_type, body) in FILES {
        router = router.route(path, get(move || async move { file(content_type, body) }));
    }
    router
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Always revalidated, so a rebuilt stack never serves a stale page.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
