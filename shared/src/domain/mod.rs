//! Pure domain logic: events, per-entity state, and the contract's metrics.

pub mod events;
pub mod health;
pub mod ids;
pub mod records;
