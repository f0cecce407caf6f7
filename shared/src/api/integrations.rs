//! `GET /api/health/integrations` and `PUT /api/health/integrations/{integration_id}`.

use super::Reply;
use http::StatusCode;
use serde_json::{Map, Value};

use super::{json_response, object_body, probe, ApiError};
use crate::domain::health::IntegrationHealth;
use crate::domain::ids::check_name;
use crate::domain::records::Probe;
use crate::store::integrations::IntegrationUpdate;
use crate::store::tenant::Consistency;
use crate::AppState;

/// Longest probe URL accepted, in characters (the channels' limit).
pub const MAX_PROBE_URL_CHARS: usize = 2048;
/// Default probe timeout.
pub const DEFAULT_PROBE_TIMEOUT_MS: u64 = 5000;
/// Longest probe timeout, so one probe cannot outlast a collector cycle.
pub const MAX_PROBE_TIMEOUT_MS: u64 = 25_000;

/// `GET /api/health/integrations`: every integration's health, sorted by id; with
/// `limit`, one page of it; with `q`, `status` or `sort`, what matches in that order.
#[tracing::instrument(skip(state))]
pub async fn list(state: &AppState, tenant: &str, query: Option<&str>) -> Reply {
    const PATH: &str = "/api/health/integrations";
    let now = state.clock.now_ms();
    let latency = state.config.latency_threshold_ms;
    let selection = super::selection_request::<IntegrationHealth>(query)?;
    match super::page_request(query, selection.is_plain())? {
        // By id, a page is a range of the store's items.
        Some(page) if selection.is_plain() => {
            let (list, next) = state
                .store
                .integration_health_page(tenant, now, latency, page.after.as_deref(), page.limit)
                .await?;
            Ok(super::page_response(PATH, page.limit, &list, next, ""))
        }
        // By id or name, only the answer's integrations need their health.
        page if !selection.is_plain() && !selection.needs_health() => {
            let list = state
                .store
                .load_integrations(tenant, Consistency::Strong)
                .await?;
            Ok(super::named_response(PATH, list, &selection, page, |i| {
                i.health(now, latency)
            }))
        }
        page => {
            let list = state
                .store
                .list_integration_health(tenant, now, latency)
                .await?;
            Ok(super::selected_response(PATH, list, &selection, page))
        }
    }
}

/// Creates or updates an integration; answers its health (the shape of one item of
/// `GET /api/health/integrations`).
#[tracing::instrument(skip(state, body))]
pub async fn put(state: &AppState, tenant: &str, integration_id: &str, body: &[u8]) -> Reply {
    let update = parse_update(state, body).await?;
    let health = state
        .store
        .put_integration(
            tenant,
            integration_id,
            &update,
            state.clock.now_ms(),
            state.config.latency_threshold_ms,
        )
        .await?;
    Ok(json_response(StatusCode::OK, &health))
}

async fn parse_update(state: &AppState, body: &[u8]) -> Result<IntegrationUpdate, ApiError> {
    let mut update = IntegrationUpdate::default();
    for (field, value) in object_body(body)? {
        match (field.as_str(), value) {
            // null is "not given" for a known field; an unknown one is refused below.
            ("integration_name" | "probe", Value::Null) => {}
            ("integration_name", Value::String(s)) if check_name(&s).is_ok() => {
                update.integration_name = Some(s);
            }
            ("integration_name", _) => {
                return Err(bad(
                    &field,
                    "must be a string of 1 to 128 characters without control characters",
                ))
            }
            ("probe", Value::Object(p)) => update.probe = Some(parse_probe(state, &p).await?),
            ("probe", _) => {
                return Err(bad(
                    &field,
                    "must be an object {\"url\", \"timeout_ms\", \"expected_status\"}",
                ))
            }
            _ => {
                return Err(bad(
                    &field,
                    "is not a field of an integration; expected integration_name or probe",
                ))
            }
        }
    }
    Ok(update)
}

fn bad(field: &str, m: &str) -> ApiError {
    ApiError::bad_request("invalid_integration", format!("{field}: {m}"))
}

/// An integration's `probe`: a URL the probe may reach, its timeout and expected status.
async fn parse_probe(state: &AppState, p: &Map<String, Value>) -> Result<Probe, ApiError> {
    let url = match p.get("url") {
        // As channel URLs: a longer one is no real endpoint, and every cycle
        // would read it back.
        Some(Value::String(u)) if u.chars().count() > MAX_PROBE_URL_CHARS => {
            return Err(bad(
                "probe.url",
                &format!("must be at most {MAX_PROBE_URL_CHARS} characters"),
            ))
        }
        Some(Value::String(u)) => probe::check_url(u, &state.config.probe_allowed_addresses)
            .await
            .map_err(|m| bad("probe.url", &m))?,
        _ => return Err(bad("probe.url", "is required and must be a string")),
    };
    let timeout_ms = match p.get("timeout_ms") {
        None | Some(Value::Null) => DEFAULT_PROBE_TIMEOUT_MS,
        Some(v) => v
            .as_u64()
            .filter(|t| (1..=MAX_PROBE_TIMEOUT_MS).contains(t))
            .ok_or_else(|| {
                bad(
                    "probe.timeout_ms",
                    "must be a whole number of milliseconds from 1 to 25000",
                )
            })?,
    };
    let expected_status = match p.get("expected_status") {
        None | Some(Value::Null) => 200,
        Some(v) => v
            .as_u64()
            .filter(|s| (100..=599).contains(s))
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| {
                bad(
                    "probe.expected_status",
                    "must be an HTTP status from 100 to 599",
                )
            })?,
    };
    if let Some(other) = p
        .keys()
        .find(|k| !matches!(k.as_str(), "url" | "timeout_ms" | "expected_status"))
    {
        return Err(bad(
            &format!("probe.{other}"),
            "is not a field of a probe; expected url, timeout_ms or expected_status",
        ));
    }
    Ok(Probe {
        url: url.to_string(),
        timeout_ms,
        expected_status,
    })
}
