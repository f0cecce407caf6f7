//! `GET /api/health/agent/{agent_id}` and `PUT /api/health/agents/{agent_id}`.

use super::Reply;
use http::StatusCode;
use serde_json::Value;

use super::{json_response, object_body, ApiError};
use crate::domain::health::AgentHealth;
use crate::domain::ids::check_name;
use crate::store::agents::{health_of, AgentUpdate};
use crate::store::tenant::Consistency;
use crate::AppState;

/// An agent's health; 404 if the tenant has no such agent.
#[tracing::instrument(skip(state))]
pub async fn get(state: &AppState, tenant: &str, agent_id: &str) -> Reply {
    match state
        .store
        .agent_health(tenant, agent_id, state.clock.now_ms())
        .await?
    {
        Some(health) => Ok(json_response(StatusCode::OK, &health)),
        None => Err(ApiError::NotFound(format!("no agent with id {agent_id}"))),
    }
}

/// Every agent's health, sorted by `agent_id`; with `limit`, one page of it; with `q`,
/// `status` or `sort`, what matches in that order (read whole, then selected here).
#[tracing::instrument(skip(state))]
pub async fn list(state: &AppState, tenant: &str, query: Option<&str>) -> Reply {
    const PATH: &str = "/api/health/agents";
    let now = state.clock.now_ms();
    let selection = super::selection_request::<AgentHealth>(query)?;
    match super::page_request(query, selection.is_plain())? {
        // By id, a page is a range of the store's items.
        Some(page) if selection.is_plain() => {
            let (agents, next) = state
                .store
                .agent_health_page(tenant, now, page.after.as_deref(), page.limit)
                .await?;
            Ok(super::page_response(PATH, page.limit, &agents, next, ""))
        }
        // By id or name, only the answer's agents need their health.
        page if !selection.is_plain() && !selection.needs_health() => {
            let agents = state.store.load_agents(tenant, Consistency::Strong).await?;
            Ok(super::named_response(PATH, agents, &selection, page, |a| {
                health_of(&a, now)
            }))
        }
        page => {
            let agents = state.store.list_agent_health(tenant, now).await?;
            Ok(super::selected_response(PATH, agents, &selection, page))
        }
    }
}

/// Creates or updates an agent; answers its health.
#[tracing::instrument(skip(state, body))]
pub async fn put(state: &AppState, tenant: &str, agent_id: &str, body: &[u8]) -> Reply {
    let update = parse_update(body)?;
    let health = state
        .store
        .put_agent(tenant, agent_id, &update, state.clock.now_ms())
        .await?;
    Ok(json_response(StatusCode::OK, &health))
}

fn parse_update(body: &[u8]) -> Result<AgentUpdate, ApiError> {
    let mut update = AgentUpdate::default();
    for (field, value) in object_body(body)? {
        let bad = |m: &str| ApiError::bad_request("invalid_agent", format!("{field}: {m}"));
        match (field.as_str(), value) {
            // null is "not given" for a known field; an unknown one is refused below.
            ("agent_name" | "paused" | "confidence_score", Value::Null) => {}
            ("agent_name", Value::String(s)) if check_name(&s).is_ok() => {
                update.agent_name = Some(s);
            }
            ("agent_name", _) => {
                return Err(bad(
                    "must be a string of 1 to 128 characters without control characters",
                ))
            }
            ("paused", Value::Bool(b)) => update.paused = Some(b),
            ("paused", _) => return Err(bad("must be true or false")),
            ("confidence_score", Value::Number(n))
                if n.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)) =>
            {
                update.confidence_score = n.as_f64();
            }
            ("confidence_score", _) => return Err(bad("must be a number from 0 to 1")),
            _ => {
                return Err(bad(
                    "is not a field of an agent; expected agent_name, paused or confidence_score",
                ))
            }
        }
    }
    Ok(update)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_names_its_bad_field() {
        let unknown =
            "pausd: is not a field of an agent; expected agent_name, paused or confidence_score";
        for (body, why) in [
            (
                r#"{"confidence_score": 2}"#,
                "confidence_score: must be a number from 0 to 1",
            ),
            (r#"{"paused": "no"}"#, "paused: must be true or false"),
            (r#"{"pausd": null}"#, unknown),
            (r#"{"pausd": true}"#, unknown),
            ("[1]", "body: must be a JSON object"),
        ] {
            let refused = parse_update(body.as_bytes()).expect_err(body);
            assert_eq!(refused.to_string(), why, "{body}");
        }
        let ok =
            parse_update(br#"{"agent_name": "Sales", "paused": true, "confidence_score": 0.85}"#)
                .ok();
        assert_eq!(ok.and_then(|u| u.confidence_score), Some(0.85));
        assert_eq!(parse_update(b"").ok(), Some(AgentUpdate::default()));
    }
}
