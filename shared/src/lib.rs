//! The agent health monitor's library: every piece of logic the Lambda functions and the
//! local stack run. Binaries only wire it up.

pub mod api;
pub mod collector;
pub mod config;
pub mod domain;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod notify;
pub mod outbound;
pub mod render;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod ws;

pub use state::AppState;
