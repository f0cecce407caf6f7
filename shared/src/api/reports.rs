//! `GET /api/health/reports`: the tenant's weekly or monthly report.

use super::Reply;
use http::{Response, StatusCode};

use super::{json_response, query_param, ApiError};
use crate::domain::report::{build, PeriodKind};
use crate::render::report::{html, markdown};
use crate::AppState;

/// The report over the last week (default) or month, against the period before, as JSON
/// (default), Markdown or an HTML page.
pub async fn get(state: &AppState, tenant: &str, query: Option<&str>) -> Reply {
    let bad = |m: &str| ApiError::bad_request("invalid_parameter", m.to_owned());
    let kind = match query_param(query, "period") {
        None => PeriodKind::Week,
        Some(p) => PeriodKind::parse(&p).ok_or_else(|| bad("period: must be week or month"))?,
    };
    let format = query_param(query, "format").unwrap_or_else(|| "json".to_owned());
    let content_type = match format.as_str() {
        "json" => None,
        "markdown" => Some("text/markdown; charset=utf-8"),
        "html" => Some("text/html; charset=utf-8"),
        _ => return Err(bad("format: must be json, markdown or html")),
    };
    let now = state.clock.now_ms();
    let report = build(&state.store.report_inputs(tenant, kind, now).await?);
    let Some(content_type) = content_type else {
        return Ok(json_response(StatusCode::OK, &report));
    };
    let text = if format == "html" {
        html(&report)
    } else {
        markdown(&report)
    };
    let mut response = Response::new(text);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    Ok(response)
}
