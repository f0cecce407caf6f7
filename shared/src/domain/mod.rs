//! Pure domain logic: events, per-entity state, and the contract's metrics.

pub mod address;
pub mod alerts;
pub mod badge;
pub mod events;
pub mod failures;
pub mod health;
pub mod history;
pub mod ids;
pub mod latency;
pub mod listing;
pub mod live;
pub mod marks;
pub mod notify;
pub mod otlp;
pub mod otlp_bounds;
pub mod otlp_metrics;
pub mod records;
pub mod report;
pub mod round;
pub mod slo;
pub mod summary;
pub mod system;

/// A unit enum's name as the API spells it (its serde name), e.g. `at_risk`.
pub fn wire_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}
