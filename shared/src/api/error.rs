//! The one error type of the HTTP boundary, and its mapping to status and JSON body.

use http::{Response, StatusCode};
use serde_json::json;

use crate::domain::events::FieldError;
use crate::store::StoreError;

/// Every way a request can fail. Client faults carry a message for a human that names the
/// field; our faults carry only their cause, which is logged and never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or invalid input.
    #[error("{message}")]
    BadRequest {
        /// snake_case code.
        code: &'static str,
        /// For a human; names the field.
        message: String,
        /// Per-field problems, when there are several.
        details: Vec<FieldError>,
    },
    /// No key, or an unknown one.
    #[error("{0}")]
    Unauthorized(String),
    /// The key lacks a scope.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown id or route.
    #[error("{0}")]
    NotFound(String),
    /// The route exists with other methods.
    #[error("method {method} is not allowed here; use {allow}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods the route takes.
        allow: &'static str,
    },
    /// The request conflicts with the resource's state.
    #[error("{message}")]
    Conflict {
        /// snake_case code.
        code: &'static str,
        /// For a human.
        message: String,
    },
    /// The body is over the limit.
    #[error("the request body is over {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body holds more than a documented maximum of items (spans, data points,
    /// values); the text names it.
    #[error("{0}")]
    TooManyItems(String),
    /// The request's body did not arrive within the server's deadline (a slow or stalled
    /// client); the connection is closed after the answer.
    #[error("the request body did not arrive within {seconds} s")]
    RequestTimeout {
        /// The deadline in seconds.
        seconds: u64,
    },
    /// A per-tenant quota would be exceeded; nothing was changed.
    #[error("{message}")]
    QuotaExceeded {
        /// The quota's name (`channels`, `entities`, ...), as docs/api.md lists them.
        quota: &'static str,
        /// Its limit for this tenant.
        limit: u64,
        /// For a human: what was refused and how to make room.
        message: String,
    },
    /// Overloaded or a dependency is down; answered with `Retry-After`.
    #[error("{0}")]
    Unavailable(String),
    /// Our fault.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Seconds a client is asked to wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

impl ApiError {
    /// A 400 with one message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// A 400 listing field errors.
    pub fn invalid_fields(code: &'static str, details: Vec<FieldError>) -> Self {
        let shown: Vec<String> = details.iter().take(10).map(FieldError::describe).collect();
        let more = details.len().saturating_sub(shown.len());
        let mut message = shown.join("; ");
        if more > 0 {
            message.push_str(&format!("; and {more} more (see details)"));
        }
        Self::BadRequest {
            code,
            message,
            details,
        }
    }

    /// A 429 for quota `quota` of `limit`, refusing `what` (e.g. "a new channel").
    pub fn quota(quota: &'static str, limit: u64, what: &str) -> Self {
        Self::QuotaExceeded {
            quota,
            limit,
            message: format!(
                "{what} would exceed this tenant's {quota} quota of {limit}; remove one first or ask for a higher quota"
            ),
        }
    }

    /// Refuses a new item when the tenant already holds `in_use` of a quota's `limit`
    /// ([`Self::quota`]); `Ok` while there is room.
    pub fn check_room(
        quota: &'static str,
        limit: u64,
        in_use: usize,
        what: &str,
    ) -> Result<(), Self> {
        if u64::try_from(in_use).unwrap_or(u64::MAX) >= limit {
            return Err(Self::quota(quota, limit, what));
        }
        Ok(())
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TooManyItems(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Conflict { code, .. } => code,
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RequestTimeout { .. } => "request_timeout",
            Self::QuotaExceeded { .. } => "quota_exceeded",
            Self::TooManyItems(_) => "too_many_items",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The contract's error response. Internal errors are logged with their cause chain
    /// here, and answered with an opaque message.
    pub fn into_response(self) -> Response<String> {
        if let Self::Internal(cause) = &self {
            let mut chain = cause.to_string();
            let mut source = cause.source();
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            tracing::error!(error = %chain, "request failed");
        }
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        match &self {
            Self::BadRequest { details, .. } if !details.is_empty() => {
                error["details"] = json!(details);
            }
            Self::QuotaExceeded { quota, limit, .. } => {
                error["quota"] = json!(quota);
                error["limit"] = json!(limit);
            }
            _ => {}
        }
        let mut response = super::json_response(self.status(), &json!({ "error": error }));
        match self {
            Self::MethodNotAllowed { allow, .. } => {
                response
                    .headers_mut()
                    .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
            }
            Self::Unavailable(_) => {
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Quota { quota, limit } => {
                let what = match quota {
                    "probed_integrations" => "a new probed integration",
                    _ => "a new agent, integration or host",
                };
                Self::quota(quota, limit, what)
            }
            StoreError::Conflict => {
                Self::Unavailable("too many concurrent writes to the same data; retry".to_owned())
            }
            other => Self::Internal(Box::new(other)),
        }
    }
}
