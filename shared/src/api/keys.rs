//! `POST/GET /api/health/keys` and `DELETE /api/health/keys/{key_id}` (scope `admin`):
//! the tenant's API keys. The secret is shown once, at creation; lists never show it.

use super::Reply;
use http::StatusCode;
use serde_json::Value;

use super::{json_response, object_body, ok_json, ApiError};
use crate::domain::ids::check_name;
use crate::store::keys::{KeyInfo, Revocation, SCOPES};
use crate::AppState;

/// A new key's holder and scopes, from a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// Who holds it.
    pub name: String,
    /// Its scopes, each once, in the order given.
    pub scopes: Vec<String>,
}

/// Reads `{"name": "...", "scopes": ["read", ...]}`; every problem is a 400 naming the field.
pub fn parse_new_key(body: &[u8]) -> Result<NewKey, ApiError> {
    let bad = |field: &str, m: &str| ApiError::bad_request("invalid_key", format!("{field}: {m}"));
    let mut name = None;
    let mut scopes = None;
    for (field, value) in object_body(body)? {
        match (field.as_str(), value) {
            ("name", Value::String(s)) if check_name(&s).is_ok() => name = Some(s),
            ("name", _) => {
                return Err(bad(
                    "name",
                    "must be a string of 1 to 128 characters without control characters",
                ))
            }
            ("scopes", Value::Array(items)) => {
                let mut list: Vec<String> = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s) if SCOPES.contains(&s) => {
                            if !list.iter().any(|x| x == s) {
                                list.push(s.to_owned());
                            }
                        }
                        _ => {
                            return Err(bad(
                                "scopes",
                                "must list scopes among \"read\", \"ingest\" and \"admin\"",
                            ))
                        }
                    }
                }
                if list.is_empty() {
                    return Err(bad("scopes", "must list at least one scope"));
                }
                scopes = Some(list);
            }
            ("scopes", _) => {
                return Err(bad(
                    "scopes",
                    "must be an array of \"read\", \"ingest\" and \"admin\"",
                ))
            }
            (other, _) => {
                return Err(bad(
                    other,
                    "is not a field of a key; expected name and scopes",
                ))
            }
        }
    }
    Ok(NewKey {
        name: name.ok_or_else(|| bad("name", "is required"))?,
        scopes: scopes.ok_or_else(|| bad("scopes", "is required"))?,
    })
}

/// `POST /api/health/keys`: 201 with the key, its secret shown this once.
pub async fn create(state: &AppState, tenant: &str, body: &[u8]) -> Reply {
    let new = parse_new_key(body)?;
    let active = state
        .store
        .list_api_keys(tenant)
        .await?
        .iter()
        .filter(|k| k.revoked_at.is_none())
        .count();
    ApiError::check_room("keys", state.config.quotas.keys, active, "a new API key")?;
    let created = state
        .store
        .new_api_key(tenant, &new.scopes, &new.name, state.clock.now_ms())
        .await?;
    tracing::info!(tenant, key_id = %created.key_id, name = %created.name, "API key created");
    Ok(json_response(StatusCode::CREATED, &created))
}

/// `GET /api/health/keys`: the tenant's keys, active and revoked, oldest first.
pub async fn list(state: &AppState, tenant: &str) -> Reply {
    ok_json(&state.store.list_api_keys(tenant).await?)
}

/// `DELETE /api/health/keys/{key_id}`: 204; from then on the key is refused, and the
/// WebSocket connections it opened are closed. 404 for an unknown id (or another
/// tenant's), 409 for the tenant's last active admin key.
pub async fn revoke(state: &AppState, tenant: &str, key_id: &str) -> Reply {
    revoke_key(state, tenant, key_id).await?;
    Ok(super::no_content())
}

/// Revokes a key and closes the WebSocket connections it opened: what both the API and
/// the local CLI do. Answers the key as now listed.
pub async fn revoke_key(state: &AppState, tenant: &str, key_id: &str) -> Result<KeyInfo, ApiError> {
    match state
        .store
        .revoke_api_key(tenant, key_id, state.clock.now_ms())
        .await?
    {
        Revocation::NotFound => Err(ApiError::NotFound(format!(
            "tenant {tenant} has no key {key_id}"
        ))),
        Revocation::LastAdmin => Err(ApiError::Conflict {
            code: "last_admin_key",
            message: format!(
                "{key_id} is the tenant's last active admin key; create another admin key first"
            ),
        }),
        Revocation::Revoked(info) => {
            let closed = state.close_key_connections(tenant, key_id).await?;
            tracing::info!(tenant, key_id, closed, "API key revoked");
            Ok(info)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_needs_a_name_and_known_scopes() {
        // The whole message, or (ending in ':') only the field it names.
        for (body, why) in [
            (r#"{"scopes": ["read"]}"#, "name: is required"),
            (r#"{"name": "ops"}"#, "scopes: is required"),
            (
                r#"{"name": "ops", "scopes": []}"#,
                "scopes: must list at least one scope",
            ),
            (r#"{"name": "ops", "scopes": ["root"]}"#, "scopes:"),
            (r#"{"name": "a\u0007", "scopes": ["read"]}"#, "name:"),
            (
                r#"{"name": "ops", "scopes": ["read"], "tenant": "x"}"#,
                "tenant:",
            ),
        ] {
            let refused = parse_new_key(body.as_bytes()).expect_err(body).to_string();
            let named = why.ends_with(':') && refused.starts_with(why);
            assert!(refused == why || named, "{body}: {refused}");
        }
        let ok = parse_new_key(br#"{"name": "ops laptop", "scopes": ["read", "ingest", "read"]}"#)
            .expect("parsing a valid new key");
        assert_eq!(ok.scopes, ["read", "ingest"]);
    }
}
