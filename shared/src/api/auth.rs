//! API-key authentication and scopes. The same check runs in-process locally and in each
//! Lambda function.

use http::HeaderMap;

use super::ApiError;
use crate::store::keys::FoundKey;
use crate::AppState;

/// A scope a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read health.
    Read,
    /// Report events and register entities.
    Ingest,
    /// Everything.
    Admin,
}

impl Scope {
    /// Its name in key records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Ingest => "ingest",
            Self::Admin => "admin",
        }
    }
}

/// Who is calling: the tenant and identity of a valid key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant every read and write is scoped to.
    pub tenant: String,
    /// The key's holder, shown as who acknowledged an alert.
    pub name: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The public id of the key, so what it opened (WebSocket connections) can be closed
    /// when it is revoked.
    pub key_id: String,
}

impl Principal {
    /// Whether the key grants `scope` (`admin` grants all).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| s == scope.name() || s == Scope::Admin.name())
    }
}

/// The key in an `Authorization: Bearer <key>` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

/// Checks a presented key and the scope; 401 for no or unknown key, 403 for a missing scope.
pub async fn authorize(
    state: &AppState,
    key: Option<&str>,
    scope: Scope,
) -> Result<Principal, ApiError> {
    let key = key.ok_or_else(|| {
        ApiError::Unauthorized("send an API key as Authorization: Bearer <api key>".to_owned())
    })?;
    let principal = check_key(state, key)
        .await?
        .map_err(ApiError::Unauthorized)?;
    require(principal, scope)
}

/// Looks a key up: the principal, or why it is refused (unknown or revoked). Notes the
/// use of a valid key (at most every 10 minutes); failing to note it refuses nothing.
async fn check_key(state: &AppState, key: &str) -> Result<Result<Principal, String>, ApiError> {
    let Some(found) = state.store.find_api_key(key).await? else {
        return Ok(Err("the API key is not valid".to_owned()));
    };
    if found.record.revoked_at.is_some() {
        return Ok(Err("the API key was revoked".to_owned()));
    }
    if let Err(e) = state
        .store
        .touch_api_key(key, &found, state.clock.now_ms())
        .await
    {
        tracing::warn!(error = %e, key_id = %found.key_id, "cannot note the key's use");
    }
    let FoundKey { key_id, record, .. } = found;
    Ok(Ok(Principal {
        tenant: record.tenant,
        name: record.name,
        scopes: record.scopes,
        key_id,
    }))
}

/// Checks that an authenticated caller has `scope`; 403 if not.
pub fn require(principal: Principal, scope: Scope) -> Result<Principal, ApiError> {
    if principal.has(scope) {
        Ok(principal)
    } else {
        Err(ApiError::Forbidden(format!(
            "this API key lacks the {} scope",
            scope.name()
        )))
    }
}

/// The context the Lambda authorizer passes to API Gateway, which hands it to every
/// function of the route as `requestContext.authorizer.lambda`.
pub fn authorizer_context(p: &Principal) -> serde_json::Value {
    serde_json::json!({"tenant": p.tenant, "name": p.name, "scopes": p.scopes.join(","), "key_id": p.key_id})
}

/// Reads a principal back from the authorizer context; `None` if it is not one of ours.
pub fn principal_from_context(
    fields: &std::collections::HashMap<String, serde_json::Value>,
) -> Option<Principal> {
    let text = |k: &str| fields.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Some(Principal {
        tenant: text("tenant")?,
        name: text("name")?,
        scopes: text("scopes")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        // Absent from contexts cached before keys had ids.
        key_id: text("key_id").unwrap_or_default(),
    })
}

/// The authorizer's decision for a request's headers: who is calling, or `None` to deny.
/// Any stored, unrevoked key is authorized (scopes are checked per route by the function).
pub async fn authorize_request(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let Some(key) = bearer(headers) else {
        return Ok(None);
    };
    Ok(check_key(state, key).await?.ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorizer_context_round_trips_and_scopes_are_checked() {
        let p = Principal {
            tenant: "acme".into(),
            name: "ops".into(),
            scopes: vec!["read".into()],
            key_id: "key_0123456789abcdef".into(),
        };
        let ctx = authorizer_context(&p);
        let fields: std::collections::HashMap<String, serde_json::Value> =
            serde_json::from_value(ctx).unwrap_or_default();
        assert_eq!(principal_from_context(&fields), Some(p.clone()));
        assert!(require(p.clone(), Scope::Read).is_ok());
        assert!(matches!(
            require(p, Scope::Ingest),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn bearer_keys_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("bearer ahm_x"),
        );
        assert_eq!(bearer(&h), Some("ahm_x"));
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Basic abc"),
        );
        assert_eq!(bearer(&h), None);
    }
}
