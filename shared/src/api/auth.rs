//! API-key authentication and scopes. The same check runs in-process locally and in each
//! Lambda function.

use http::HeaderMap;

use super::ApiError;
use crate::store::ApiKeyRecord;
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
    let record: ApiKeyRecord = state
        .store
        .find_api_key(key)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the API key is not valid".to_owned()))?;
    let principal = Principal {
        tenant: record.tenant,
        name: record.name,
        scopes: record.scopes,
    };
    if principal.has(scope) {
        Ok(principal)
    } else {
        Err(ApiError::Forbidden(format!(
            "this API key lacks the {} scope",
            scope.name()
        )))
    }
}
