//! `PUT`, `GET` and `DELETE` of SLOs.

use super::Reply;
use http::StatusCode;

use super::{deleted, json_response, ok_json, ApiError};
use crate::domain::slo::{status, SloBody};
use crate::time::DAY_MS;
use crate::AppState;

/// `PUT /api/health/slos/{slo_id}`: creates or replaces an SLO; 200 with its figures now.
pub async fn put(state: &AppState, tenant: &str, slo_id: &str, body: &[u8]) -> Reply {
    let body: SloBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_slo", format!("the body is not an SLO: {e}"))
    })?;
    let slo = body
        .validate(slo_id)
        .map_err(|errors| ApiError::invalid_fields("invalid_slo", errors))?;
    let slos = state.store.slos(tenant).await?;
    if !slos.iter().any(|s| s.slo_id == slo.slo_id) {
        ApiError::check_room("slos", state.config.quotas.slos, slos.len(), "a new SLO")?;
    }
    state.store.put_slo(tenant, &slo).await?;
    let now = state.clock.now_ms();
    let span = i64::from(slo.window_days) * DAY_MS;
    let data = state
        .store
        .slo_data(tenant, &slo, span, now)
        .await?
        .unwrap_or_default();
    Ok(json_response(StatusCode::OK, &status(&slo, &data, now)))
}

/// `GET /api/health/slos`: every SLO with its figures, by id.
pub async fn list(state: &AppState, tenant: &str) -> Reply {
    let list = state
        .store
        .slo_statuses(tenant, state.clock.now_ms())
        .await?;
    ok_json(&list)
}

/// `DELETE /api/health/slos/{slo_id}`: 204, or 404 for an unknown SLO.
pub async fn delete(state: &AppState, tenant: &str, slo_id: &str) -> Reply {
    deleted(state.store.delete_slo(tenant, slo_id).await?, || {
        format!("no SLO {slo_id}")
    })
}
