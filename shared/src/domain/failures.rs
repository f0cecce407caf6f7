//! Failed executions and integration calls, kept one by one with the error text they
//! carried: the "recent failures" of a drill-down page and the rows of an executions
//! export. Successes are only counted (a stored item per execution would double the
//! ingestion bill); a failure costs one write unit.

use serde::{Deserialize, Serialize};

use crate::time::{format_rfc3339, Millis};

/// Most characters of an error kept: a stack trace's head says what failed, and the item
/// stays under the kilobyte DynamoDB bills one write unit for.
pub const MAX_ERROR_CHARS: usize = 500;

/// How long a failure is kept.
pub const FAILURE_TTL_MS: Millis = 30 * crate::time::DAY_MS;

/// One failure as stored, under its source's partition (see `docs/data-model.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// When it failed: the execution's finish or the call's time.
    pub at: Millis,
    /// The execution, for an agent's failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// What was being done: the execution's operation, or `probe` for a failed probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The error text the event carried, cut to [`MAX_ERROR_CHARS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the execution ran or the call took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
}

impl FailureRecord {
    /// A failure, its error cut to [`MAX_ERROR_CHARS`] (on a character boundary).
    pub fn new(
        at: Millis,
        execution_id: Option<&str>,
        operation: Option<&str>,
        error: Option<&str>,
        duration_ms: Option<f64>,
    ) -> Self {
        Self {
            at,
            execution_id: execution_id.map(str::to_owned),
            operation: operation.filter(|o| !o.is_empty()).map(str::to_owned),
            error: error.map(cut),
            duration_ms,
        }
    }

    /// What the API answers for it.
    pub fn view(&self, source_type: &str, source_id: &str) -> FailureView {
        FailureView {
            timestamp: format_rfc3339(self.at),
            source_type: source_type.to_owned(),
            source_id: source_id.to_owned(),
            execution_id: self.execution_id.clone(),
            operation: self.operation.clone(),
            error: self.error.clone(),
            duration_ms: self.duration_ms.map(|d| (d * 10.0).round() / 10.0),
        }
    }
}

fn cut(error: &str) -> String {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((i, _)) => error[..i].to_owned(),
        None => error.to_owned(),
    }
}

/// A failure as `GET /api/health/failures` and the executions export show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureView {
    /// When it failed (RFC 3339).
    pub timestamp: String,
    /// `agent` or `integration`.
    pub source_type: String,
    /// The agent's or integration's id.
    pub source_id: String,
    /// The execution (agents only; null for integration calls).
    pub execution_id: Option<String>,
    /// What was being done, if known.
    pub operation: Option<String>,
    /// The error text, if the event carried one.
    pub error: Option<String>,
    /// Duration in ms, 1 decimal, if known.
    pub duration_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let error = "é".repeat(MAX_ERROR_CHARS + 10);
        let f = FailureRecord::new(0, None, None, Some(&error), None);
        assert_eq!(f.error.map(|e| e.chars().count()), Some(MAX_ERROR_CHARS));
        let short = FailureRecord::new(0, None, Some(""), Some("boom"), None);
        assert_eq!(short.error.as_deref(), Some("boom"));
        assert_eq!(short.operation, None, "an empty operation says nothing");
    }

    #[test]
    fn the_view_rounds_and_formats() {
        let f = FailureRecord::new(
            1_700_000_000_000,
            Some("x1"),
            Some("Processing leads"),
            Some("timeout"),
            Some(1234.56),
        );
        let v = f.view("agent", "a1");
        assert_eq!(v.timestamp, "2023-11-14T22:13:20Z");
        assert_eq!(v.duration_ms, Some(1234.6));
        assert_eq!(v.execution_id.as_deref(), Some("x1"));
    }
}
