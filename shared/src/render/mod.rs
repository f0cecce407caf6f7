//! Rendering for people: HTML and Markdown made from domain values, used by reports
//! (`GET /api/health/reports`) and notifications alike. Above the domain, below the
//! services and the API.

pub mod report;

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
