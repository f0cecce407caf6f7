//! The REST API as library handlers over `http` types, shared by the Lambda functions and
//! the local stack: routing, authentication, and one module per resource.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Serialize;

pub mod agents;
pub mod alerts;
pub mod auth;
pub mod badges;
pub mod error;
pub mod export;
pub mod failures;
pub mod hourly;
pub mod ingest;
pub mod integrations;
pub mod keys;
pub mod metrics;
pub mod notify;
pub mod otlp;
pub mod probe;
pub mod read;
pub mod reports;
pub mod slos;

pub use error::ApiError;

/// What a JSON (or text) endpoint answers: its response, or an error answer.
pub type Reply = Result<Response<String>, ApiError>;

use crate::domain::ids::check_id;
use crate::AppState;
use auth::Scope;

/// The OpenAPI 3.1 document of the API (docs/openapi.json), served by the local stack.
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

/// Largest request body accepted (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Where the caller reached this deployment: scheme and host, plus the stage's path when
/// the stage is part of the URL (`https://abc123.execute-api.eu-west-1.amazonaws.com`).
/// The Lambda adapter takes it from API Gateway's request context and attaches it to the
/// request, so links the API answers with (a badge's URL, a test message's dashboard
/// link) name the address the caller used without the template having to pass the HTTP
/// API's own URL to its functions, which would make the API depend on the functions it
/// integrates and the functions on the API (a cycle CloudFormation refuses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOrigin(pub String);

impl RequestOrigin {
    /// The origin of a request API Gateway received on `domain_name` in `stage`: the
    /// stage is in the URL unless it is the `$default` stage (or absent, as on a function
    /// URL). `None` without a domain name.
    pub fn from_gateway(domain_name: Option<&str>, stage: Option<&str>) -> Option<Self> {
        let domain = domain_name.map(str::trim).filter(|d| !d.is_empty())?;
        Some(Self(match stage.map(str::trim) {
            Some(s) if !s.is_empty() && s != "$default" => format!("https://{domain}/{s}"),
            _ => format!("https://{domain}"),
        }))
    }
}

/// The base of links to this deployment: `HEALTH_PUBLIC_URL` when set (a custom domain,
/// the local stack's own address), else the origin the request came through; `None` when
/// neither is known (links are then left out or relative).
pub(crate) fn public_base(state: &AppState, req: &Request<Bytes>) -> Option<String> {
    state.config.public_url.clone().or_else(|| {
        req.extensions()
            .get::<RequestOrigin>()
            .map(|o| o.0.trim_end_matches('/').to_owned())
    })
}

/// Every endpoint; each is one Lambda function in AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /api/health/events`
    IngestEvents,
    /// `PUT /api/health/agents/{agent_id}`
    PutAgent,
    /// `PUT /api/health/integrations/{integration_id}`
    PutIntegration,
    /// `GET /api/health/agent/{agent_id}`
    GetAgentHealth,
    /// `GET /api/health/agents`
    GetAllAgents,
    /// `GET /api/health/integrations`
    GetIntegrations,
    /// `GET /api/health/system`
    GetSystem,
    /// `GET /api/health/summary`: the overview's first paint in one read.
    GetSummary,
    /// `GET /api/health/alerts`
    GetAlerts,
    /// `POST /api/health/alerts/{alert_id}/acknowledge`
    AcknowledgeAlert,
    /// `GET /api/health/history/{type}`
    GetHistory,
    /// `GET /healthz`: liveness for load balancers and the sidecar; no key needed.
    Healthz,
    /// `POST /api/health/keys`
    CreateKey,
    /// `GET /api/health/keys`
    ListKeys,
    /// `DELETE /api/health/keys/{key_id}`
    RevokeKey,
    /// `PUT /api/health/channels/{channel_id}`
    PutChannel,
    /// `GET /api/health/channels`
    ListChannels,
    /// `DELETE /api/health/channels/{channel_id}`
    DeleteChannel,
    /// `POST /api/health/channels/{channel_id}/test`
    TestChannel,
    /// `PUT /api/health/notification-rules/{rule_id}`
    PutRule,
    /// `GET /api/health/notification-rules`
    ListRules,
    /// `DELETE /api/health/notification-rules/{rule_id}`
    DeleteRule,
    /// `POST /api/health/silences`
    CreateSilence,
    /// `GET /api/health/silences`
    ListSilences,
    /// `DELETE /api/health/silences/{silence_id}`
    DeleteSilence,
    /// `GET /api/health/alerts/{alert_id}/notifications`
    AlertNotifications,
    /// `GET /api/health/ack/{token}`: the confirm page of an acknowledge link; no key.
    AckPage,
    /// `POST /api/health/ack/{token}`: acknowledges through a link; no key.
    AckConfirm,
    /// `PUT /api/health/slos/{slo_id}`
    PutSlo,
    /// `GET /api/health/slos`
    ListSlos,
    /// `DELETE /api/health/slos/{slo_id}`
    DeleteSlo,
    /// `GET /api/health/failures`
    GetFailures,
    /// `GET /api/health/reports`
    GetReport,
    /// `GET /api/health/export`: streamed (in AWS, through the function's URL).
    Export,
    /// `GET /api/health/hourly`
    GetHourly,
    /// `POST /v1/traces`: the OTLP/HTTP trace receiver.
    IngestTraces,
    /// `POST /v1/metrics`: the OTLP/HTTP metrics receiver (host metrics).
    IngestMetrics,
    /// `GET /metrics`: OpenMetrics text for Prometheus.
    Metrics,
    /// `POST /api/health/badges`
    CreateBadge,
    /// `GET /api/health/badges`
    ListBadges,
    /// `DELETE /api/health/badges/{badge_id}`
    RevokeBadge,
    /// `GET /api/health/badge/{token}`: a badge's SVG; no key (the token is the authority).
    GetBadge,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 42] = [
        Self::IngestEvents,
        Self::PutAgent,
        Self::PutIntegration,
        Self::GetAgentHealth,
        Self::GetAllAgents,
        Self::GetIntegrations,
        Self::GetSystem,
        Self::GetSummary,
        Self::GetAlerts,
        Self::AcknowledgeAlert,
        Self::GetHistory,
        Self::Healthz,
        Self::CreateKey,
        Self::ListKeys,
        Self::RevokeKey,
        Self::PutChannel,
        Self::ListChannels,
        Self::DeleteChannel,
        Self::TestChannel,
        Self::PutRule,
        Self::ListRules,
        Self::DeleteRule,
        Self::CreateSilence,
        Self::ListSilences,
        Self::DeleteSilence,
        Self::AlertNotifications,
        Self::AckPage,
        Self::AckConfirm,
        Self::PutSlo,
        Self::ListSlos,
        Self::DeleteSlo,
        Self::GetFailures,
        Self::GetReport,
        Self::Export,
        Self::GetHourly,
        Self::IngestTraces,
        Self::IngestMetrics,
        Self::Metrics,
        Self::CreateBadge,
        Self::ListBadges,
        Self::RevokeBadge,
        Self::GetBadge,
    ];

    /// Its method and path template, as in the OpenAPI document and the SAM template.
    pub fn route(self) -> (&'static str, &'static str) {
        match self {
            Self::IngestEvents => ("POST", "/api/health/events"),
            Self::PutAgent => ("PUT", "/api/health/agents/{agent_id}"),
            Self::PutIntegration => ("PUT", "/api/health/integrations/{integration_id}"),
            Self::GetAgentHealth => ("GET", "/api/health/agent/{agent_id}"),
            Self::GetAllAgents => ("GET", "/api/health/agents"),
            Self::GetIntegrations => ("GET", "/api/health/integrations"),
            Self::GetSystem => ("GET", "/api/health/system"),
            Self::GetSummary => ("GET", "/api/health/summary"),
            Self::GetAlerts => ("GET", "/api/health/alerts"),
            Self::AcknowledgeAlert => ("POST", "/api/health/alerts/{alert_id}/acknowledge"),
            Self::GetHistory => ("GET", "/api/health/history/{type}"),
            Self::Healthz => ("GET", "/healthz"),
            Self::CreateKey => ("POST", "/api/health/keys"),
            Self::ListKeys => ("GET", "/api/health/keys"),
            Self::RevokeKey => ("DELETE", "/api/health/keys/{key_id}"),
            Self::PutChannel => ("PUT", "/api/health/channels/{channel_id}"),
            Self::ListChannels => ("GET", "/api/health/channels"),
            Self::DeleteChannel => ("DELETE", "/api/health/channels/{channel_id}"),
            Self::TestChannel => ("POST", "/api/health/channels/{channel_id}/test"),
            Self::PutRule => ("PUT", "/api/health/notification-rules/{rule_id}"),
            Self::ListRules => ("GET", "/api/health/notification-rules"),
            Self::DeleteRule => ("DELETE", "/api/health/notification-rules/{rule_id}"),
            Self::CreateSilence => ("POST", "/api/health/silences"),
            Self::ListSilences => ("GET", "/api/health/silences"),
            Self::DeleteSilence => ("DELETE", "/api/health/silences/{silence_id}"),
            Self::AlertNotifications => ("GET", "/api/health/alerts/{alert_id}/notifications"),
            Self::AckPage => ("GET", "/api/health/ack/{token}"),
            Self::AckConfirm => ("POST", "/api/health/ack/{token}"),
            Self::PutSlo => ("PUT", "/api/health/slos/{slo_id}"),
            Self::ListSlos => ("GET", "/api/health/slos"),
            Self::DeleteSlo => ("DELETE", "/api/health/slos/{slo_id}"),
            Self::GetFailures => ("GET", "/api/health/failures"),
            Self::GetReport => ("GET", "/api/health/reports"),
            Self::Export => ("GET", "/api/health/export"),
            Self::GetHourly => ("GET", "/api/health/hourly"),
            Self::IngestTraces => ("POST", "/v1/traces"),
            Self::IngestMetrics => ("POST", "/v1/metrics"),
            Self::Metrics => ("GET", "/metrics"),
            Self::CreateBadge => ("POST", "/api/health/badges"),
            Self::ListBadges => ("GET", "/api/health/badges"),
            Self::RevokeBadge => ("DELETE", "/api/health/badges/{badge_id}"),
            Self::GetBadge => ("GET", "/api/health/badge/{token}"),
        }
    }

    /// The Lambda function (binary under `functions/`) that serves it.
    pub fn function(self) -> &'static str {
        match self {
            Self::IngestEvents => "ingest-events",
            Self::PutAgent => "put-agent",
            Self::PutIntegration => "put-integration",
            Self::GetAgentHealth => "get-agent-health",
            Self::GetAllAgents => "get-all-agents",
            Self::GetIntegrations => "get-integrations-health",
            Self::GetSystem => "get-system-metrics",
            Self::GetSummary => "get-summary",
            Self::GetAlerts => "get-active-alerts",
            Self::AcknowledgeAlert => "acknowledge-alert",
            Self::GetHistory => "get-health-history",
            Self::Healthz => "healthz",
            Self::CreateKey => "create-key",
            Self::ListKeys => "list-keys",
            Self::RevokeKey => "revoke-key",
            Self::PutChannel => "put-channel",
            Self::ListChannels => "list-channels",
            Self::DeleteChannel => "delete-channel",
            Self::TestChannel => "test-channel",
            Self::PutRule => "put-notification-rule",
            Self::ListRules => "list-notification-rules",
            Self::DeleteRule => "delete-notification-rule",
            Self::CreateSilence => "create-silence",
            Self::ListSilences => "list-silences",
            Self::DeleteSilence => "delete-silence",
            Self::AlertNotifications => "get-alert-notifications",
            Self::AckPage => "ack-page",
            Self::AckConfirm => "ack-confirm",
            Self::PutSlo => "put-slo",
            Self::ListSlos => "list-slos",
            Self::DeleteSlo => "delete-slo",
            Self::GetFailures => "get-failures",
            Self::GetReport => "get-report",
            Self::Export => "export",
            Self::GetHourly => "get-hourly",
            Self::IngestTraces => "ingest-traces",
            Self::IngestMetrics => "ingest-metrics",
            Self::Metrics => "get-metrics",
            Self::CreateBadge => "create-badge",
            Self::ListBadges => "list-badges",
            Self::RevokeBadge => "revoke-badge",
            Self::GetBadge => "get-badge",
        }
    }

    /// Whether a request needs an API key: every route but `/healthz`, acknowledge links
    /// and badge images, whose URLs carry their own authority.
    pub fn needs_key(self) -> bool {
        !matches!(
            self,
            Self::Healthz | Self::AckPage | Self::AckConfirm | Self::GetBadge
        )
    }

    fn scope(self) -> Scope {
        match self {
            Self::IngestEvents
            | Self::PutAgent
            | Self::PutIntegration
            | Self::IngestTraces
            | Self::IngestMetrics => Scope::Ingest,
            Self::GetAgentHealth
            | Self::GetAllAgents
            | Self::GetIntegrations
            | Self::GetSystem
            | Self::GetSummary
            | Self::GetAlerts
            | Self::AcknowledgeAlert
            | Self::GetHistory
            | Self::Healthz
            | Self::ListChannels
            | Self::ListRules
            | Self::ListSilences
            | Self::AlertNotifications
            | Self::AckPage
            | Self::AckConfirm
            | Self::ListSlos
            | Self::GetFailures
            | Self::GetReport
            | Self::Export
            | Self::GetHourly
            | Self::Metrics
            | Self::ListBadges
            | Self::GetBadge => Scope::Read,
            Self::CreateKey
            | Self::ListKeys
            | Self::RevokeKey
            | Self::PutChannel
            | Self::DeleteChannel
            | Self::TestChannel
            | Self::PutRule
            | Self::DeleteRule
            | Self::CreateSilence
            | Self::DeleteSilence
            | Self::PutSlo
            | Self::DeleteSlo
            | Self::CreateBadge
            | Self::RevokeBadge => Scope::Admin,
        }
    }
}

/// A routed request: the endpoint and its decoded path parameter, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The `{id}` of the path, percent-decoded.
    pub id: Option<String>,
}

/// Matches a method and path to an endpoint; 404 for unknown paths, 405 for known paths
/// with another method.
pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let not_found = || ApiError::NotFound(format!("no route for {path}"));
    if let Some(route) = root_route(method, path) {
        return route;
    }
    let rest = path
        .strip_prefix("/api/health/")
        .ok_or_else(not_found)?
        .trim_end_matches('/');
    let segments: Vec<&str> = rest.split('/').collect();
    // The token is checked by its signature, not by the id rule (it is longer).
    if let ["ack", token] = segments.as_slice() {
        return ack_route(method, token);
    }
    let (endpoint, id, allow) = admin_endpoint(method, &segments)
        .or_else(|| data_endpoint(&segments))
        .ok_or_else(not_found)?;
    if method.as_str() != endpoint.route().0 {
        return Err(not_allowed(method, allow));
    }
    let id = id.map(path_id).transpose()?;
    Ok(Route { endpoint, id })
}

fn not_allowed(method: &Method, allow: &'static str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        allow,
    }
}

/// The routes outside `/api/health/`, if `path` is one.
fn root_route(method: &Method, path: &str) -> Option<Result<Route, ApiError>> {
    // The paths Prometheus and OpenTelemetry exporters use by default.
    for (fixed, endpoint) in [
        ("/v1/traces", Endpoint::IngestTraces),
        ("/v1/metrics", Endpoint::IngestMetrics),
        ("/metrics", Endpoint::Metrics),
    ] {
        if path == fixed {
            let allow = endpoint.route().0;
            if method.as_str() != allow {
                return Some(Err(not_allowed(method, allow)));
            }
            return Some(Ok(Route { endpoint, id: None }));
        }
    }
    if path == "/healthz" {
        return Some(match method.as_str() {
            "GET" | "HEAD" => Ok(Route {
                endpoint: Endpoint::Healthz,
                id: None,
            }),
            _ => Err(not_allowed(method, "GET")),
        });
    }
    None
}

/// An acknowledge link: its page (GET) or its confirmation (POST).
fn ack_route(method: &Method, token: &str) -> Result<Route, ApiError> {
    let endpoint = if method == Method::GET {
        Endpoint::AckPage
    } else {
        Endpoint::AckConfirm
    };
    if !matches!(method.as_str(), "GET" | "POST") {
        return Err(not_allowed(method, "GET, POST"));
    }
    Ok(Route {
        endpoint,
        id: Some(token.to_owned()),
    })
}

/// An endpoint, the raw id in its path and the methods its path allows.
type Matched<'a> = (Endpoint, Option<&'a str>, &'static str);

/// The endpoints of keys, notifications, SLOs and badges.
fn admin_endpoint<'a>(method: &Method, segments: &[&'a str]) -> Option<Matched<'a>> {
    let get = method == Method::GET;
    let delete = method == Method::DELETE;
    Some(match segments {
        // Paths with two methods.
        ["keys"] if get => (Endpoint::ListKeys, None, "GET"),
        ["keys"] => (Endpoint::CreateKey, None, "GET, POST"),
        ["keys", id] => (Endpoint::RevokeKey, Some(*id), "DELETE"),
        ["channels"] => (Endpoint::ListChannels, None, "GET"),
        ["channels", id] if delete => (Endpoint::DeleteChannel, Some(*id), "PUT, DELETE"),
        ["channels", id] => (Endpoint::PutChannel, Some(*id), "PUT, DELETE"),
        ["channels", id, "test"] => (Endpoint::TestChannel, Some(*id), "POST"),
        ["notification-rules"] => (Endpoint::ListRules, None, "GET"),
        ["notification-rules", id] if delete => (Endpoint::DeleteRule, Some(*id), "PUT, DELETE"),
        ["notification-rules", id] => (Endpoint::PutRule, Some(*id), "PUT, DELETE"),
        ["silences"] if get => (Endpoint::ListSilences, None, "GET, POST"),
        ["silences"] => (Endpoint::CreateSilence, None, "GET, POST"),
        ["silences", id] => (Endpoint::DeleteSilence, Some(*id), "DELETE"),
        ["slos"] => (Endpoint::ListSlos, None, "GET"),
        ["badges"] if get => (Endpoint::ListBadges, None, "GET, POST"),
        ["badges"] => (Endpoint::CreateBadge, None, "GET, POST"),
        ["badges", id] => (Endpoint::RevokeBadge, Some(*id), "DELETE"),
        ["badge", token] => (Endpoint::GetBadge, Some(*token), "GET"),
        ["slos", id] if delete => (Endpoint::DeleteSlo, Some(*id), "PUT, DELETE"),
        ["slos", id] => (Endpoint::PutSlo, Some(*id), "PUT, DELETE"),
        ["alerts", id, "notifications"] => (Endpoint::AlertNotifications, Some(*id), "GET"),
        _ => return None,
    })
}

/// The endpoints of ingestion and reading.
fn data_endpoint<'a>(segments: &[&'a str]) -> Option<Matched<'a>> {
    Some(match segments {
        ["events"] => (Endpoint::IngestEvents, None, "POST"),
        ["agents", id] => (Endpoint::PutAgent, Some(*id), "PUT"),
        ["integrations", id] => (Endpoint::PutIntegration, Some(*id), "PUT"),
        ["agent", id] => (Endpoint::GetAgentHealth, Some(*id), "GET"),
        ["agents"] => (Endpoint::GetAllAgents, None, "GET"),
        ["integrations"] => (Endpoint::GetIntegrations, None, "GET"),
        ["system"] => (Endpoint::GetSystem, None, "GET"),
        ["summary"] => (Endpoint::GetSummary, None, "GET"),
        ["alerts"] => (Endpoint::GetAlerts, None, "GET"),
        ["alerts", id, "acknowledge"] => (Endpoint::AcknowledgeAlert, Some(*id), "POST"),
        ["history", kind] => (Endpoint::GetHistory, Some(*kind), "GET"),
        ["failures"] => (Endpoint::GetFailures, None, "GET"),
        ["reports"] => (Endpoint::GetReport, None, "GET"),
        ["export"] => (Endpoint::Export, None, "GET"),
        ["hourly"] => (Endpoint::GetHourly, None, "GET"),
        _ => return None,
    })
}

/// The id in a path, percent-decoded and checked.
fn path_id(raw: &str) -> Result<String, ApiError> {
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("invalid_id", "the id in the path is not UTF-8"))?
        .into_owned();
    check_id(&decoded)
        .map_err(|m| ApiError::bad_request("invalid_id", format!("the id in the path {m}")))?;
    Ok(decoded)
}

/// Serves one request whose answer may be binary (the OTLP receiver's); every other
/// endpoint as [`handle`] does.
pub async fn handle_bytes(
    state: &AppState,
    req: Request<Bytes>,
    only: Option<Endpoint>,
) -> Response<Bytes> {
    let signal = match route(req.method(), req.uri().path()).map(|r| r.endpoint) {
        Ok(Endpoint::IngestTraces) => Some((Endpoint::IngestTraces, otlp::Signal::Traces)),
        Ok(Endpoint::IngestMetrics) => Some((Endpoint::IngestMetrics, otlp::Signal::Metrics)),
        _ => None,
    };
    if let Some((endpoint, signal)) = signal {
        if only.is_none_or(|e| e == endpoint) {
            return otlp::serve(state, req, signal).await;
        }
    }
    handle(state, req, only).await.map(Bytes::from)
}

/// Serves one request. `only` restricts the endpoints served (a Lambda function serves its
/// own); every other route answers 404. Never fails: errors become their JSON response.
pub async fn handle(
    state: &AppState,
    req: Request<Bytes>,
    only: Option<Endpoint>,
) -> Response<String> {
    match serve(state, req, only).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn serve(state: &AppState, req: Request<Bytes>, only: Option<Endpoint>) -> Reply {
    let route = route(req.method(), req.uri().path())?;
    if only.is_some_and(|e| e != route.endpoint) {
        return Err(ApiError::NotFound(format!(
            "no route for {}",
            req.uri().path()
        )));
    }
    if req.body().len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    if let Some(answer) = serve_unkeyed(state, &req, &route).await {
        return answer;
    }
    let principal = principal_for(state, &req, route.endpoint).await?;
    serve_keyed(state, &req, &route, &principal).await
}

/// The endpoints that carry their own authority instead of a key, if `route` is one.
async fn serve_unkeyed(state: &AppState, req: &Request<Bytes>, route: &Route) -> Option<Reply> {
    let id = route.id.as_deref().unwrap_or_default();
    Some(match route.endpoint {
        Endpoint::Healthz => healthz(state).await,
        // Acknowledge links carry their own signed authority instead of a key.
        Endpoint::AckPage => Ok(notify::ack_page(state, id).await),
        Endpoint::AckConfirm => {
            let wants_json = accept(req).is_some_and(|v| v.contains("application/json"));
            Ok(notify::ack_confirm(state, id, wants_json).await)
        }
        // Badge URLs carry their own authority: an unguessable, revocable token.
        Endpoint::GetBadge => badges::image(state, id, req.uri().query()).await,
        _ => return None,
    })
}

/// The request's `Accept` header, if it is text.
fn accept(req: &Request<Bytes>) -> Option<&str> {
    req.headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
}

/// Runs a change to the notification settings, then wakes the notifier to apply it.
async fn waking(state: &AppState, change: impl std::future::Future<Output = Reply>) -> Reply {
    let r = change.await;
    state.notifier_wake.notify_one();
    r
}

/// The endpoints a key opens, for the key's tenant.
async fn serve_keyed(
    state: &AppState,
    req: &Request<Bytes>,
    route: &Route,
    principal: &auth::Principal,
) -> Reply {
    let tenant = principal.tenant.as_str();
    let id = route.id.as_deref().unwrap_or_default();
    let body = req.body();
    let query = req.uri().query();
    match route.endpoint {
        Endpoint::IngestEvents => ingest::post_events(state, tenant, body).await,
        Endpoint::PutAgent => agents::put(state, tenant, id, body).await,
        Endpoint::PutIntegration => integrations::put(state, tenant, id, body).await,
        Endpoint::GetAgentHealth => agents::get(state, tenant, id).await,
        Endpoint::GetAllAgents => agents::list(state, tenant, query).await,
        Endpoint::GetIntegrations => integrations::list(state, tenant, query).await,
        Endpoint::GetSystem => read::system(state, tenant).await,
        Endpoint::GetSummary => read::summary(state, tenant).await,
        Endpoint::GetAlerts => alerts::list(state, tenant, query).await,
        Endpoint::AcknowledgeAlert => alerts::acknowledge(state, principal, id, body).await,
        Endpoint::GetHistory => read::history(state, tenant, id, query).await,
        Endpoint::Healthz => healthz(state).await,
        Endpoint::CreateKey => keys::create(state, tenant, body).await,
        Endpoint::ListKeys => keys::list(state, tenant).await,
        Endpoint::RevokeKey => keys::revoke(state, tenant, id).await,
        Endpoint::PutChannel => waking(state, notify::put_channel(state, tenant, id, body)).await,
        Endpoint::ListChannels => notify::list_channels(state, tenant).await,
        Endpoint::DeleteChannel => notify::delete_channel(state, tenant, id).await,
        Endpoint::TestChannel => {
            notify::test_channel(state, tenant, id, public_base(state, req)).await
        }
        Endpoint::PutRule => waking(state, notify::put_rule(state, tenant, id, body)).await,
        Endpoint::ListRules => notify::list_rules(state, tenant).await,
        Endpoint::DeleteRule => notify::delete_rule(state, tenant, id).await,
        Endpoint::CreateSilence => notify::create_silence(state, principal, body).await,
        Endpoint::ListSilences => notify::list_silences(state, tenant).await,
        Endpoint::DeleteSilence => waking(state, notify::delete_silence(state, tenant, id)).await,
        Endpoint::AlertNotifications => notify::alert_notifications(state, tenant, id).await,
        Endpoint::PutSlo => slos::put(state, tenant, id, body).await,
        Endpoint::GetFailures => failures::list(state, tenant, query).await,
        Endpoint::GetReport => reports::get(state, tenant, query).await,
        Endpoint::GetHourly => hourly::get(state, tenant, query).await,
        Endpoint::Export => export::respond_collected(state, tenant, query).await,
        Endpoint::ListSlos => slos::list(state, tenant).await,
        Endpoint::DeleteSlo => slos::delete(state, tenant, id).await,
        Endpoint::CreateBadge => {
            badges::create(state, tenant, body, public_base(state, req).as_deref()).await
        }
        Endpoint::ListBadges => badges::list(state, tenant).await,
        Endpoint::RevokeBadge => badges::revoke(state, tenant, id).await,
        Endpoint::Metrics => metrics::get(state, tenant, accept(req)).await,
        // Binary answers: served by `otlp::serve` (through `handle_bytes`).
        Endpoint::AckPage
        | Endpoint::AckConfirm
        | Endpoint::IngestTraces
        | Endpoint::IngestMetrics
        | Endpoint::GetBadge => Err(ApiError::NotFound("no route".to_owned())),
    }
}

/// `{"status": "ok"}` when the store answers a read, else 503 `unavailable`: what a
/// load balancer needs to route around an instance, with nothing about any tenant.
async fn healthz(state: &AppState) -> Reply {
    match state.store.ping().await {
        Ok(()) => Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ok"}),
        )),
        Err(e) => {
            tracing::error!(error = %e, "health check: the store does not answer");
            Err(ApiError::Unavailable(
                "the store does not answer".to_owned(),
            ))
        }
    }
}

/// The required `source_type` of a query about one kind of entity with stored history:
/// `agent` or `integration`, as the entity and its name.
pub(crate) fn agent_or_integration(
    query: Option<&str>,
) -> Result<(crate::store::layout::Entity, &'static str), ApiError> {
    match query_param(query, "source_type") {
        Some(v) => agent_or_integration_value(&serde_json::Value::String(v)),
        None => Err(ApiError::bad_request(
            "invalid_parameter",
            "source_type: required (agent or integration)",
        )),
    }
}

/// The `source_id` query parameter, checked by the id rule; `None` when absent.
pub(crate) fn source_id_param(query: Option<&str>) -> Result<Option<String>, ApiError> {
    query_param(query, "source_id")
        .map(|id| {
            check_id(&id).map_err(|m| {
                ApiError::bad_request("invalid_parameter", format!("source_id: {m}"))
            })?;
            Ok(id)
        })
        .transpose()
}

/// A `source_type` given in a JSON body: `agent` or `integration`.
pub(crate) fn agent_or_integration_value(
    value: &serde_json::Value,
) -> Result<(crate::store::layout::Entity, &'static str), ApiError> {
    use crate::store::layout::Entity;
    match value.as_str() {
        Some("agent") => Ok((Entity::Agent, "agent")),
        Some("integration") => Ok((Entity::Integration, "integration")),
        _ => Err(ApiError::bad_request(
            "invalid_parameter",
            "source_type: must be agent or integration",
        )),
    }
}

/// Who is calling, allowed to call `endpoint`. In AWS the Lambda authorizer has checked
/// the key and passed who is calling; its answer is cached per key for every route, so the
/// scope is checked here. Elsewhere (locally, a function URL) the key is checked here.
pub(crate) async fn principal_for(
    state: &AppState,
    req: &Request<Bytes>,
    endpoint: Endpoint,
) -> Result<auth::Principal, ApiError> {
    match req.extensions().get::<auth::Principal>() {
        Some(p) => auth::require(p.clone(), endpoint.scope()),
        None => auth::authorize(state, auth::bearer(req.headers()), endpoint.scope()).await,
    }
}

/// Checks a request's key from its headers alone, so a server can refuse a caller before
/// reading (or waiting for) its body. `Ok(None)` for a route that needs no key; the
/// principal otherwise, which the server attaches to the request (as an extension) so the
/// handler does not look the key up again. The error is what the handler would answer.
pub async fn authorize_head(
    state: &AppState,
    endpoint: Endpoint,
    headers: &http::HeaderMap,
) -> Result<Option<auth::Principal>, ApiError> {
    if !endpoint.needs_key() {
        return Ok(None);
    }
    auth::authorize(state, auth::bearer(headers), endpoint.scope())
        .await
        .map(Some)
}

/// An empty 204 answer.
pub(crate) fn no_content() -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// 200 with `body` as JSON: the answer of every listing.
pub(crate) fn ok_json(body: &impl Serialize) -> Reply {
    Ok(json_response(StatusCode::OK, body))
}

/// 204 where something was `found` and deleted, else 404 saying `missing`: the answer of
/// every `DELETE` of a stored item.
pub(crate) fn deleted(found: bool, missing: impl FnOnce() -> String) -> Reply {
    if found {
        Ok(no_content())
    } else {
        Err(ApiError::NotFound(missing()))
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<String> {
    json_text_response(
        status,
        serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned()),
    )
}

/// A response whose body is JSON already serialized (e.g. as stored).
pub fn json_text_response(status: StatusCode, text: String) -> Response<String> {
    let mut response = Response::new(text);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Most items one page of a list may ask for.
pub const MAX_PAGE: usize = 1000;

/// A page of a list as asked: `limit` items after the cursor's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub(crate) limit: usize,
    pub(crate) after: Option<String>,
}

/// A whole-number query parameter from 1 to `max`; `None` when absent.
pub(crate) fn bounded_param(
    query: Option<&str>,
    name: &str,
    max: i64,
) -> Result<Option<i64>, ApiError> {
    query_param(query, name)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!("{name}: must be a whole number from 1 to {max}"),
                    )
                })
        })
        .transpose()
}

/// Longest cursor accepted, in bytes once decoded: a sort key holds a 19-digit place, a
/// lower-cased name and an id (each up to 128 characters of up to 4 bytes).
const MAX_CURSOR_BYTES: usize = 1_100;

/// `limit` and `cursor` of a list request; `None` without `limit` (the whole list). A
/// cursor without `limit` is refused, since it would otherwise be silently ignored. A
/// cursor of a list by id holds an id; of a sorted selection, a sort key.
pub(crate) fn page_request(
    query: Option<&str>,
    by_id: bool,
) -> Result<Option<PageRequest>, ApiError> {
    use base64::Engine;
    let bad = |m: &str| ApiError::bad_request("invalid_parameter", m.to_owned());
    let cursor = query_param(query, "cursor");
    let Some(limit) = bounded_param(query, "limit", MAX_PAGE as i64)? else {
        return match cursor {
            Some(_) => Err(bad("cursor: needs limit")),
            None => Ok(None),
        };
    };
    let limit = limit as usize;
    let after = match cursor {
        None => None,
        Some(c) => {
            let after = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|a| a.len() <= MAX_CURSOR_BYTES)
                .filter(|a| !by_id || crate::domain::ids::check_id(a).is_ok())
                .ok_or_else(|| bad("cursor: not a cursor this API gave"))?;
            Some(after)
        }
    };
    Ok(Some(PageRequest { limit, after }))
}

/// Answers a page: the array, and when more follow a `Link` header to the next page
/// (`params`, already encoded, are the request's other parameters, kept on that link).
pub(crate) fn page_response(
    path: &str,
    limit: usize,
    body: &impl Serialize,
    next: Option<String>,
    params: &str,
) -> Response<String> {
    use base64::Engine;
    let mut response = json_response(StatusCode::OK, body);
    if let Some(after) = next {
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after.as_bytes());
        let more = if params.is_empty() { "" } else { "&" };
        let link = format!("<{path}?limit={limit}&cursor={cursor}{more}{params}>; rel=\"next\"");
        if let Ok(value) = http::HeaderValue::from_str(&link) {
            response.headers_mut().insert(http::header::LINK, value);
        }
    }
    response
}

/// The search, status filter and sort a list request asks for (`q`, `status`, `sort`).
pub(crate) fn selection_request<T: crate::domain::listing::Listed>(
    query: Option<&str>,
) -> Result<crate::domain::listing::Selection, ApiError> {
    use crate::domain::listing::{Selection, Sort, MAX_SEARCH_CHARS};
    let bad = |m: String| ApiError::bad_request("invalid_parameter", m);
    let search = match query_param(query, "q") {
        None => None,
        Some(q) if (1..=MAX_SEARCH_CHARS).contains(&q.chars().count()) => Some(q.to_lowercase()),
        Some(_) => {
            return Err(bad(format!(
                "q: must be 1 to {MAX_SEARCH_CHARS} characters"
            )))
        }
    };
    let status = match query_param(query, "status") {
        None => None,
        Some(s) if T::STATUSES.contains(&s.as_str()) => Some(s),
        Some(_) => {
            return Err(bad(format!(
                "status: must be one of {}",
                T::STATUSES.join(", ")
            )))
        }
    };
    let sort = match query_param(query, "sort") {
        None => Sort::Id,
        Some(s) => Sort::parse(&s)
            .ok_or_else(|| bad(format!("sort: must be one of {}", Sort::NAMES.join(", "))))?,
    };
    Ok(Selection {
        search,
        status,
        sort,
    })
}

/// A list endpoint's answer to a search, filter or sort: the whole list as read, kept,
/// ordered and paged here. `X-Total-Count` says how many match in all.
pub(crate) fn selected_response<T: crate::domain::listing::Listed + Serialize>(
    path: &str,
    items: Vec<T>,
    selection: &crate::domain::listing::Selection,
    page: Option<PageRequest>,
) -> Response<String> {
    // The whole list by id is what the store read: nothing to keep or order (the path of
    // every `GET` without parameters).
    if page.is_none() && selection.is_plain() {
        let mut response = json_response(StatusCode::OK, &items);
        response
            .headers_mut()
            .insert("x-total-count", http::HeaderValue::from(items.len()));
        return response;
    }
    let selected = crate::domain::listing::select(items, selection);
    respond_selected(path, selected, selection, page, |x| x)
}

/// [`selected_response`] for a selection by id and name alone (one that does not
/// [`crate::domain::listing::Selection::needs_health`]): items are selected and paged as
/// stored, and `answer` (their health) is computed only for those answered, 100 of 10,000
/// for a dashboard's first page by name.
pub(crate) fn named_response<D: crate::domain::listing::Named, T: Serialize>(
    path: &str,
    items: Vec<D>,
    selection: &crate::domain::listing::Selection,
    page: Option<PageRequest>,
    answer: impl Fn(D) -> T,
) -> Response<String> {
    let selected = crate::domain::listing::select_named(items, selection);
    respond_selected(path, selected, selection, page, answer)
}

/// The answer of a selection: all of it, or the page asked for with the next page's link
/// (keeping the selection's parameters), with the count selected in `X-Total-Count`.
fn respond_selected<D, T: Serialize>(
    path: &str,
    selected: Vec<(String, D)>,
    selection: &crate::domain::listing::Selection,
    page: Option<PageRequest>,
    answer: impl Fn(D) -> T,
) -> Response<String> {
    let total = selected.len();
    let mut response = match page {
        None => {
            let all: Vec<T> = selected.into_iter().map(|(_, x)| answer(x)).collect();
            json_response(StatusCode::OK, &all)
        }
        Some(p) => {
            let (items, next) = crate::domain::listing::page(selected, p.after.as_deref(), p.limit);
            let items: Vec<T> = items.into_iter().map(answer).collect();
            let mut params = url::form_urlencoded::Serializer::new(String::new());
            if let Some(q) = &selection.search {
                params.append_pair("q", q);
            }
            if let Some(s) = &selection.status {
                params.append_pair("status", s);
            }
            params.append_pair("sort", selection.sort.name());
            page_response(path, p.limit, &items, next, &params.finish())
        }
    };
    response
        .headers_mut()
        .insert("x-total-count", http::HeaderValue::from(total));
    response
}

/// The value of a query parameter (decoded); `None` if absent.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Parses an optional JSON object body: empty means `{}`.
pub(crate) fn object_body(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "invalid_body",
            "body: must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(
            "invalid_json",
            format!("body: is not valid JSON ({e})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_names_the_stage_only_when_it_is_in_the_url() {
        let origin = |domain, stage| RequestOrigin::from_gateway(domain, stage).map(|o| o.0);
        assert_eq!(
            origin(
                Some("abc.execute-api.eu-west-1.amazonaws.com"),
                Some("$default")
            ),
            Some("https://abc.execute-api.eu-west-1.amazonaws.com".to_owned())
        );
        assert_eq!(
            origin(
                Some("abc.execute-api.eu-west-1.amazonaws.com"),
                Some("prod")
            ),
            Some("https://abc.execute-api.eu-west-1.amazonaws.com/prod".to_owned())
        );
        assert_eq!(
            origin(Some("xyz.lambda-url.eu-west-1.on.aws"), None),
            Some("https://xyz.lambda-url.eu-west-1.on.aws".to_owned())
        );
        assert_eq!(origin(None, Some("prod")), None);
        assert_eq!(origin(Some(""), Some("prod")), None);
    }

    #[test]
    fn routes_match_methods_and_decode_ids() {
        let r = route(&Method::GET, "/api/health/agent/sales%20bot");
        assert_eq!(r.ok().and_then(|r| r.id), Some("sales bot".to_owned()));
        assert!(matches!(
            route(&Method::GET, "/api/health/events"),
            Err(ApiError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            route(&Method::GET, "/api/health/nope"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route(&Method::GET, "/elsewhere"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            route(&Method::PUT, "/api/health/agents/a%07b"),
            Err(ApiError::BadRequest { .. })
        ));
    }
}
