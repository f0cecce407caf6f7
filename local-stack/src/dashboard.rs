//! The dashboard's static files (`dashboard/` in the repository), compiled into the binary
//! so `cargo run` serves them from anywhere. The same files deploy as a static site next to
//! the API in AWS (see the README), where `config.js` names the API and WebSocket URLs.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// `(path, content type, body)` of a JavaScript file of `dashboard/`, served at `/<file>`.
macro_rules! script {
    ($file:literal) => {
        (
            concat!("/", $file),
            "text/javascript; charset=utf-8",
            include_str!(concat!("../../dashboard/", $file)),
        )
    };
}

/// `(path, content type, body)` of every file. A test below fails when a file of
/// `dashboard/` is missing here.
const FILES: [(&str, &str, &str); 15] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../dashboard/index.html"),
    ),
    // The page's ES modules (app.js is the entry), then auth.js, a classic script.
    script!("api.js"),
    script!("app.js"),
    script!("charts.js"),
    script!("detail.js"),
    script!("format.js"),
    script!("lists.js"),
    script!("live.js"),
    script!("notifications.js"),
    script!("overview.js"),
    script!("state.js"),
    script!("auth.js"),
    script!("vendor/chart.umd.min.js"),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../../dashboard/style.css"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use tower::ServiceExt;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboard");

    /// Every file under `dir`, as a path relative to `DIR`.
    fn files_under(dir: &Path, out: &mut Vec<String>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path();
            if path.is_dir() {
                files_under(&path, out);
            } else if let Ok(relative) = path.strip_prefix(DIR) {
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }

    /// A new file in `dashboard/` that the page loads must be added to `FILES` too, or the
    /// local stack answers 404 for it while the S3 copy (which syncs the whole directory)
    /// works: each such file is served with its own content and type.
    #[tokio::test]
    async fn every_file_of_the_dashboard_is_served_with_its_content_type() {
        let mut files = Vec::new();
        files_under(Path::new(DIR), &mut files);
        let mut served = 0;
        for file in &files {
            let content_type = match file.rsplit_once('.').map(|(_, ext)| ext) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                // The vendored library's README and licence: shipped, not loaded by the page.
                Some("md") => continue,
                _ => panic!("dashboard/{file}: no content type known; add one here and serve it"),
            };
            let path = if file == "index.html" {
                "/".to_owned()
            } else {
                format!("/{file}")
            };
            let request = http::Request::get(&path)
                .body(axum::body::Body::empty())
                .unwrap_or_else(|e| panic!("building GET {path}: {e}"));
            let response = routes::<()>()
                .oneshot(request)
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            assert_eq!(
                response.status(),
                http::StatusCode::OK,
                "GET {path}: dashboard/{file} is not in FILES"
            );
            assert_eq!(
                response.headers().get(header::CONTENT_TYPE),
                Some(&header::HeaderValue::from_static(content_type)),
                "GET {path}: the content type"
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap_or_else(|e| panic!("reading GET {path}: {e}"));
            let on_disk = std::fs::read(format!("{DIR}/{file}"))
                .unwrap_or_else(|e| panic!("reading dashboard/{file}: {e}"));
            assert!(body == on_disk, "GET {path} is not dashboard/{file}");
            served += 1;
        }
        assert_eq!(
            served,
            FILES.len() - 1,
            "every entry of FILES but config.js is a file of dashboard/: {files:?}"
        );
    }

    /// Without a preload a module is fetched only once the module importing it has been
    /// parsed, one round trip per level of imports, which delays the first API requests:
    /// index.html preloads every module app.js imports, directly or not.
    #[test]
    fn index_html_preloads_every_module() {
        let index = std::fs::read_to_string(format!("{DIR}/index.html"))
            .unwrap_or_else(|e| panic!("reading dashboard/index.html: {e}"));
        let mut files = Vec::new();
        files_under(Path::new(DIR), &mut files);
        let mut modules = 0;
        for file in files.iter().filter(|f| f.ends_with(".js")) {
            let text = std::fs::read_to_string(format!("{DIR}/{file}"))
                .unwrap_or_else(|e| panic!("reading dashboard/{file}: {e}"));
            let is_module = text
                .lines()
                .any(|l| l.starts_with("import ") || l.starts_with("export "));
            if !is_module {
                continue;
            }
            modules += 1;
            let tag = if file == "app.js" {
                r#"<script type="module" src="app.js"></script>"#.to_owned()
            } else {
                format!(r#"<link rel="modulepreload" href="{file}">"#)
            };
            assert!(index.contains(&tag), "dashboard/index.html lacks {tag}");
        }
        assert!(modules > 1, "no ES modules found in dashboard/: {files:?}");
    }
}
