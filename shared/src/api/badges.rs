//! Status badges: `POST/GET /api/health/badges`, `DELETE /api/health/badges/{badge_id}`
//! (keyed), and `GET /api/health/badge/{token}` (public: the token is the authority).

use super::Reply;
use http::{HeaderValue, Response, StatusCode};
use serde_json::Value;

use super::{agent_or_integration_value, deleted, json_response, object_body, ok_json, ApiError};
use crate::domain::badge::{availability, status_colour, svg, uptime_message, Show};
use crate::domain::ids::check_id;
use crate::domain::live::hour_of;
use crate::domain::wire_name;
use crate::store::badges::BadgeRecord;
use crate::store::layout::Entity;
use crate::time::HOUR_MS;
use crate::AppState;

/// Creates a badge token for an existing agent or integration; 201 with the token (shown
/// once) and the badge's URL: absolute on `base` (where this deployment is reached, see
/// [`super::RequestOrigin`]), a path when it is not known.
pub async fn create(state: &AppState, tenant: &str, body: &[u8], base: Option<&str>) -> Reply {
    let bad = |m: &str| ApiError::bad_request("invalid_badge", m.to_owned());
    let mut source_type = None;
    let mut source_id = None;
    for (field, value) in object_body(body)? {
        match (field.as_str(), value) {
            ("source_type", v) => source_type = Some(agent_or_integration_value(&v)?),
            ("source_id", Value::String(s)) if check_id(&s).is_ok() => source_id = Some(s),
            ("source_id", _) => {
                return Err(bad(
                    "source_id: must be a string of 1 to 128 characters without control characters",
                ))
            }
            (other, _) => {
                return Err(bad(&format!(
                    "{other}: unknown field (source_type, source_id)"
                )))
            }
        }
    }
    let (entity, kind) =
        source_type.ok_or_else(|| bad("source_type: required (agent or integration)"))?;
    let id = source_id.ok_or_else(|| bad("source_id: required"))?;
    let now = state.clock.now_ms();
    let exists = match entity {
        Entity::Agent => state.store.agent_health(tenant, &id, now).await?.is_some(),
        _ => state.store.integration_record(tenant, &id).await?.is_some(),
    };
    if !exists {
        return Err(ApiError::NotFound(format!("no {kind} with id {id}")));
    }
    let held = state.store.list_badges(tenant).await?.len();
    ApiError::check_room("badges", state.config.quotas.badges, held, "a new badge")?;
    let created = state.store.create_badge(tenant, kind, &id, now).await?;
    let path = format!("/api/health/badge/{}", created.token);
    let url = match base {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path,
    };
    let mut body = serde_json::to_value(&created).unwrap_or_default();
    body["url"] = Value::String(url);
    Ok(json_response(StatusCode::CREATED, &body))
}

/// The tenant's badges (without their tokens).
pub async fn list(state: &AppState, tenant: &str) -> Reply {
    ok_json(&state.store.list_badges(tenant).await?)
}

/// Revokes a badge: its URL answers 404 from now on.
pub async fn revoke(state: &AppState, tenant: &str, badge_id: &str) -> Reply {
    deleted(state.store.revoke_badge(tenant, badge_id).await?, || {
        format!("no badge with id {badge_id}")
    })
}

/// The badge's SVG; `?show=status|uptime_24h|uptime_30d`, `?label=` to name it otherwise.
pub async fn image(state: &AppState, token: &str, query: Option<&str>) -> Reply {
    let show = Show::parse(super::query_param(query, "show").as_deref()).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_parameter",
            "show: must be status, uptime_24h or uptime_30d",
        )
    })?;
    let label = super::query_param(query, "label");
    if let Some(l) = &label {
        check_id(l)
            .map_err(|m| ApiError::bad_request("invalid_parameter", format!("label: {m}")))?;
    }
    let badge = state.store.find_badge(token).await?.ok_or_else(|| {
        ApiError::NotFound("no badge for this token (it may have been revoked)".to_owned())
    })?;
    let (name, message, colour) = badge_figures(state, &badge, show).await?;
    let label = label.unwrap_or_else(|| format!("{name}{}", show.label_suffix()));
    Ok(svg_response(svg(&label, &message, colour)))
}

/// The badge's entity name, message and colour for what it shows, from one read of the
/// entity's live item.
async fn badge_figures(
    state: &AppState,
    badge: &BadgeRecord,
    show: Show,
) -> Result<(String, String, &'static str), ApiError> {
    let (tenant, id) = (badge.tenant.as_str(), badge.source_id.as_str());
    let entity = if badge.source_type == "agent" {
        Entity::Agent
    } else {
        Entity::Integration
    };
    let now = state.clock.now_ms();
    Ok(match show {
        Show::Status => {
            let found = match entity {
                Entity::Agent => state
                    .store
                    .agent_health(tenant, id, now)
                    .await?
                    .map(|h| (h.agent_name, wire_name(&h.status))),
                _ => state
                    .store
                    .integration_health(tenant, id, now, state.config.latency_threshold_ms)
                    .await?
                    .map(|h| (h.integration_name, wire_name(&h.status))),
            };
            let (name, status) = found.unwrap_or_else(|| (id.to_owned(), "unknown".to_owned()));
            let colour = status_colour(&status);
            (name, status, colour)
        }
        uptime => {
            let from = (hour_of(now) - uptime.hours() + 1) * HOUR_MS;
            let (name, hours) = state
                .store
                .named_hours(tenant, entity, id, from, now)
                .await?
                .unwrap_or_else(|| (id.to_owned(), Vec::new()));
            let (message, colour) = uptime_message(availability(&hours));
            (name, message, colour)
        }
    })
}

/// An SVG answer, cached briefly.
fn svg_response(image: String) -> Response<String> {
    let mut response = Response::new(image);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml; charset=utf-8"),
    );
    // Short, so a revoked badge or a new status shows within a minute where it is embedded.
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    response
}
