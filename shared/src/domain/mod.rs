//! Pure domain logic: events, per-entity state, and the contract's metrics.

pub mod address;
pub mod alerts;
pub mod events;
pub mod failures;
pub mod health;
pub mod history;
pub mod ids;
pub mod latency;
pub mod live;
pub mod notify;
pub mod records;
pub mod report;
pub mod slo;
pub mod system;
