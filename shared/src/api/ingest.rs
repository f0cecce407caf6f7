//! `POST /api/health/events`.

use super::Reply;
use http::StatusCode;

use super::{json_response, ApiError};
use crate::domain::events::{parse_batch, Event};
use crate::store::ingest::IngestOutcome;
use crate::time::Millis;
use crate::AppState;

/// Validates the whole batch (nothing is stored if any event is invalid), stores it
/// idempotently, and answers 202 `{"accepted": N, "duplicates": M}`.
#[tracing::instrument(skip(state, body), fields(bytes = body.len()))]
pub async fn post_events(state: &AppState, tenant: &str, body: &[u8]) -> Reply {
    let now = state.clock.now_ms();
    let events = parse_batch(body, now)
        .map_err(|errors| ApiError::invalid_fields("invalid_events", errors))?;
    let outcome = store_events(state, tenant, &events, now).await?;
    Ok(json_response(StatusCode::ACCEPTED, &outcome))
}

/// Stores validated events idempotently and hands what they touched to the evaluator
/// (locally; in AWS the table's stream does), so alerts follow within seconds.
pub(crate) async fn store_events(
    state: &AppState,
    tenant: &str,
    events: &[Event],
    now: Millis,
) -> Result<IngestOutcome, ApiError> {
    let outcome = match &state.evaluator {
        Some(queue) => {
            let (outcome, touched) = state.store.ingest_touching(tenant, events, now).await?;
            // A full queue means the evaluator is behind; the next cycle evaluates these.
            if !touched.is_empty() && queue.try_send((tenant.to_owned(), touched)).is_err() {
                tracing::warn!("evaluation queue full; left to the next cycle");
            }
            outcome
        }
        None => state.store.ingest(tenant, events, now).await?,
    };
    tracing::info!(
        accepted = outcome.accepted,
        duplicates = outcome.duplicates,
        "ingested"
    );
    Ok(outcome)
}
