//! `GET /api/health/system` and `GET /api/health/history/{type}`.

use super::Reply;
use http::StatusCode;
use serde_json::json;

use super::{bounded_param, json_response, query_param, ApiError};
use crate::domain::ids::check_id;
use crate::store::system::HistoryOf;
use crate::AppState;

/// Most days of history one request may ask for.
pub const MAX_HISTORY_DAYS: i64 = 90;
/// Days of history when `days` is not given.
pub const DEFAULT_HISTORY_DAYS: i64 = 30;

/// The tenant's system object.
#[tracing::instrument(skip(state))]
pub async fn system(state: &AppState, tenant: &str) -> Reply {
    let now = state.clock.now_ms();
    let system = state
        .store
        .system_health(tenant, now, state.config.latency_threshold_ms)
        .await?;
    Ok(json_response(StatusCode::OK, &system))
}

/// The overview's summary: the latest cycle's (one read), or the tenant's health evaluated
/// now when no cycle wrote one lately (a new tenant, or the collector stopped): a summary
/// older than three cycles would show a fleet as it no longer is.
#[tracing::instrument(skip(state))]
pub async fn summary(state: &AppState, tenant: &str) -> Reply {
    let now = state.clock.now_ms();
    let fresh_ms = 3 * 1_000 * state.config.polling_interval_secs as i64;
    if let Some(stored) = state.store.summary(tenant).await? {
        if now - stored.at <= fresh_ms {
            return Ok(super::json_text_response(StatusCode::OK, stored.json));
        }
    }
    let report = crate::collector::snapshot(&state.store, &state.config, tenant, now).await?;
    Ok(json_response(StatusCode::OK, &report.summary()))
}

/// Most hours `?hours=` shows (hour buckets are kept 31 days).
pub const MAX_HISTORY_HOURS: i64 = 168;

/// `GET /api/health/history/system?hours=N`: hosts' points by hour (agents and
/// integrations have `/api/health/hourly`).
async fn host_hours(
    state: &AppState,
    tenant: &str,
    kind: &str,
    entity_id: Option<&str>,
    query: Option<&str>,
) -> Reply {
    let bad = |m: &str| ApiError::bad_request("invalid_parameter", m.to_owned());
    if kind != "system" {
        return Err(bad(
            "hours: only system history is by hour here; agents and integrations have /api/health/hourly",
        ));
    }
    if query_param(query, "days").is_some() {
        return Err(bad("days, hours: give one of them"));
    }
    // Present: the caller came here for it.
    let hours = bounded_param(query, "hours", MAX_HISTORY_HOURS)?.unwrap_or(1);
    let now = state.clock.now_ms();
    let from = (crate::domain::live::hour_of(now) - hours + 1) * crate::time::HOUR_MS;
    // `system` (or none) is every host together, as for days.
    let host = entity_id.filter(|id| *id != "system");
    let Some(points) = state
        .store
        .host_hour_history(tenant, host, from, now)
        .await?
    else {
        return Err(ApiError::NotFound(format!(
            "no host with id {}",
            host.unwrap_or_default()
        )));
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "health_type": kind,
            "entity_id": entity_id.unwrap_or("system"),
            "days": (hours + 23) / 24,
            "hours": hours,
            "data_points": points.len(),
            "history": points,
        }),
    ))
}

/// Daily history of an agent, an integration, a host or all hosts (by hour for hosts with
/// `hours`).
#[tracing::instrument(skip(state))]
pub async fn history(state: &AppState, tenant: &str, kind: &str, query: Option<&str>) -> Reply {
    let bad = |m: &str| ApiError::bad_request("invalid_parameter", m.to_owned());
    let days = bounded_param(query, "days", MAX_HISTORY_DAYS)?.unwrap_or(DEFAULT_HISTORY_DAYS);
    let entity_id = query_param(query, "entity_id");
    if let Some(id) = &entity_id {
        check_id(id).map_err(|m| bad(&format!("entity_id: {m}")))?;
    }
    if query_param(query, "hours").is_some() {
        return host_hours(state, tenant, kind, entity_id.as_deref(), query).await;
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
