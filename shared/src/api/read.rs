//! `GET /api/health/system` and `GET /api/health/history/{type}`.

use http::{Response, StatusCode};
use serde_json::json;

use super::{json_response, query_param, ApiError};
use crate::domain::ids::check_id;
use crate::store::system::HistoryOf;
use crate::AppState;

/// Most days of history one request may ask for.
pub const MAX_HISTORY_DAYS: i64 = 90;
/// Days of history when `days` is not given.
pub const DEFAULT_HISTORY_DAYS: i64 = 30;

/// The tenant's system object.
#[tracing::instrument(skip(state))]
pub async fn system(state: &AppState, tenant: &str) -> Result<Response<String>, ApiError> {
    let now = state.clock.now_ms();
    let system = state
        .store
        .system_health(tenant, now, state.config.latency_threshold_ms)
        .await?;
    Ok(json_response(StatusCode::OK, &system))
}

/// Daily history of an agent, an integration, a host or all hosts.
#[tracing::instrument(skip(state))]
pub async fn history(
    state: &AppState,
    tenant: &str,
    kind: &str,
    query: Option<&str>,
) -> Result<Response<String>, ApiError> {
    let bad = |m: &str| ApiError::bad_request("invalid_parameter", m.to_owned());
    let days = match query_param(query, "days") {
        None => DEFAULT_HISTORY_DAYS,
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=MAX_HISTORY_DAYS).contains(d))
            .ok_or_else(|| bad("days: must be a whole number from 1 to 90"))?,
    };
    let entity_id = query_param(query, "entity_id");
    if let Some(id) = &entity_id {
        check_id(id).map_err(|m| bad(&format!("entity_id: {m}")))?;
    }
    let of = match (kind, entity_id.as_deref()) {
        ("agent", Some(id)) => HistoryOf::Agent(id),
        ("integration", Some(id)) => HistoryOf::Integration(id),
        ("agent" | "integration", None) => {
            return Err(bad(&format!("entity_id: is required for {kind} history")))
        }
        ("system", id) => HistoryOf::System(id),
        _ => return Err(bad("type: must be agent, integration or system")),
    };
    let now = state.clock.now_ms();
    let Some(points) = state.store.history(tenant, of, days, now).await? else {
        return Err(ApiError::NotFound(format!(
            "no {kind} with id {}",
            entity_id.as_deref().unwrap_or_default()
        )));
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "health_type": kind,
            "entity_id": entity_id.as_deref().unwrap_or("system"),
            "days": days,
            "data_points": points.len(),
            "history": points,
        }),
    ))
}
