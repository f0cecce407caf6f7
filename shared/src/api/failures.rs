//! `GET /api/health/failures`: one source's recent failures with their error text.

use super::Reply;
use http::StatusCode;

use super::{agent_or_integration, bounded_param, json_response, source_id_param, ApiError};
use crate::domain::failures::FailureView;
use crate::AppState;

/// Failures listed when the request gives no `limit`.
pub const DEFAULT_LIMIT: usize = 20;
/// Most failures one request lists.
pub const MAX_LIMIT: usize = 100;

/// The last `limit` (default 20, at most 100) failed executions of an agent or failed calls
/// and probes of an integration, newest first.
pub async fn list(state: &AppState, tenant: &str, query: Option<&str>) -> Reply {
    let (entity, source_type) = agent_or_integration(query)?;
    let source_id = source_id_param(query)?
        .ok_or_else(|| ApiError::bad_request("invalid_parameter", "source_id: required"))?;
    let limit =
        bounded_param(query, "limit", MAX_LIMIT as i64)?.map_or(DEFAULT_LIMIT, |l| l as usize);
    let failures: Vec<FailureView> = state
        .store
        .recent_failures(tenant, entity, &source_id, limit)
        .await?
        .iter()
        .map(|f| f.view(source_type, &source_id))
        .collect();
    Ok(json_response(StatusCode::OK, &failures))
}
