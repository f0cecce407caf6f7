//! Demo mode (`cargo run -- --demo`): feeds the scenario of [`crate::scenario`] into the local
//! tenant every few seconds through the same ingestion code as the API.

use crate::scenario::{tick_events, AGENTS, PAUSED_AGENT, TICK_MS};
use shared::domain::events::parse_batch;
use shared::store::agents::AgentUpdate;
use shared::AppState;

/// Registers the paused agent, then sends a batch every [`TICK_MS`] until aborted.
pub async fn run(state: AppState, tenant: &'static str) {
    let start = state.clock.now_ms();
    let run = format!("{start:x}");
    let paused = AgentUpdate {
        agent_name: AGENTS
            .iter()
            .find(|a| a.0 == PAUSED_AGENT)
            .map(|a| a.1.to_owned()),
        paused: Some(true),
        confidence_score: None,
    };
    if let Err(e) = state
        .store
        .put_agent(tenant, PAUSED_AGENT, &paused, start)
        .await
    {
        tracing::warn!(error = %e, "demo: cannot register the paused agent");
    }
    let period = std::time::Duration::from_millis(TICK_MS.unsigned_abs());
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0u64.. {
        ticker.tick().await;
        let now = state.clock.now_ms();
        let body = serde_json::json!({ "events": tick_events(&run, tick, now) }).to_string();
        let events = match parse_batch(body.as_bytes(), now) {
            Ok(events) => events,
            Err(errors) => {
                tracing::error!(?errors, "demo: the scenario made an invalid batch");
                continue;
            }
        };
        if let Err(e) = state.store.ingest(tenant, &events, now).await {
            tracing::warn!(error = %e, "demo: cannot store a batch; the next one follows");
        }
    }
}
