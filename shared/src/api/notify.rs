//! Notification channels, rules, silences, the delivery log, and the acknowledge pages that
//! messages link to.

use super::Reply;
use http::{Response, StatusCode};
use serde_json::{Map, Value};

use super::auth::Principal;
use super::{deleted, json_response, object_body, ok_json, probe, ApiError};
use crate::domain::alerts::AlertRecord;
use crate::domain::ids::{check_id, check_name, check_text};
use crate::domain::notify::{
    ChannelRecord, Destination, Matcher, RuleRecord, Schedule, SilenceRecord,
    DEFAULT_GROUP_INTERVAL_S, DEFAULT_GROUP_WAIT_S, DEFAULT_REPEAT_INTERVAL_S, HIDDEN,
    MAX_INTERVAL_S,
};
use crate::notify::token::{self, TokenError};
use crate::render::escape;
use crate::store::alerts::{AckOutcome, Acknowledgement, GuardedAck};
use crate::store::notify::NotificationRecord;
use crate::time::{format_rfc3339, parse_rfc3339, Millis, DAY_MS};
use crate::AppState;

/// Most recipients of one email channel.
pub const MAX_RECIPIENTS: usize = 50;
/// Longest one-off silence: a year.
pub const MAX_SILENCE_MS: Millis = 366 * DAY_MS;
/// The fields of a notification rule's body.
const RULE_FIELDS: [&str; 7] = [
    "channels",
    "match",
    "group_wait_s",
    "group_interval_s",
    "repeat_interval_s",
    "send_resolved",
    "weekly_report",
];
/// The fields of a silence's body.
const SILENCE_FIELDS: [&str; 5] = ["match", "starts_at", "ends_at", "schedule", "comment"];

fn bad(code: &'static str, field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(code, format!("{field}: {message}"))
}

fn string(body: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad("invalid_channel", field, "must be a string")),
    }
}

/// A write-only value: given, or `"***"` to keep the stored one.
/// A true-or-false field, `default` where absent or null.
fn flag(
    body: &Map<String, Value>,
    field: &str,
    default: bool,
    code: &'static str,
) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(code, field, "must be true or false")),
    }
}

/// The first field of `body` that is not one of `allowed`.
fn unknown_field<'a>(body: &'a Map<String, Value>, allowed: &[&str]) -> Option<&'a String> {
    body.keys().find(|k| !allowed.contains(&k.as_str()))
}

fn secret(
    body: &Map<String, Value>,
    field: &str,
    stored: Option<String>,
) -> Result<String, ApiError> {
    match string(body, field)? {
        Some(s) if s == HIDDEN => stored.ok_or_else(|| {
            bad(
                "invalid_channel",
                field,
                "is \"***\" (keep the stored value) but nothing is stored yet",
            )
        }),
        Some(s) if !s.is_empty() && s.chars().count() <= 2048 => Ok(s),
        Some(_) => Err(bad(
            "invalid_channel",
            field,
            "must be 1 to 2048 characters",
        )),
        None => Err(bad("invalid_channel", field, "is required")),
    }
}

async fn parse_destination(
    state: &AppState,
    body: &Map<String, Value>,
    stored: Option<&Destination>,
) -> Result<Destination, ApiError> {
    let kind = string(body, "type")?.ok_or_else(|| {
        bad(
            "invalid_channel",
            "type",
            "is required: webhook, slack, email, sns or pagerduty",
        )
    })?;
    check_channel_fields(body, &kind)?;
    let same = stored.filter(|d| d.kind() == kind);
    let url = |stored_url: Option<String>| async move {
        let url = secret(body, "url", stored_url)?;
        probe::check_url(&url, &state.config.probe_allowed_addresses)
            .await
            .map_err(|m| bad("invalid_channel", "url", m))?;
        Ok::<_, ApiError>(url)
    };
    Ok(match kind.as_str() {
        "webhook" => {
            let stored_secret = match same {
                Some(Destination::Webhook { secret, .. }) => Some(secret.clone()),
                _ => None,
            };
            Destination::Webhook {
                url: url(stored_url(same)).await?,
                secret: secret(body, "secret", stored_secret)?,
            }
        }
        "slack" => Destination::Slack {
            url: url(stored_url(same)).await?,
        },
        "email" => Destination::Email {
            to: email_recipients(body)?,
        },
        "sns" => Destination::Sns {
            topic_arn: sns_topic(body)?,
        },
        _ => {
            let stored_key = match same {
                Some(Destination::Pagerduty { routing_key }) => Some(routing_key.clone()),
                _ => None,
            };
            Destination::Pagerduty {
                routing_key: secret(body, "routing_key", stored_key)?,
            }
        }
    })
}

/// The URL of a stored webhook or Slack channel.
fn stored_url(stored: Option<&Destination>) -> Option<String> {
    match stored {
        Some(Destination::Webhook { url, .. } | Destination::Slack { url }) => Some(url.clone()),
        _ => None,
    }
}

/// Refuses a channel type that does not exist and a field its type does not have.
fn check_channel_fields(body: &Map<String, Value>, kind: &str) -> Result<(), ApiError> {
    let allowed: &[&str] = match kind {
        "webhook" => &["url", "secret"],
        "slack" => &["url"],
        "email" => &["to"],
        "sns" => &["topic_arn"],
        "pagerduty" => &["routing_key"],
        _ => {
            return Err(bad(
                "invalid_channel",
                "type",
                format!(
                "{kind} is not a channel type; expected webhook, slack, email, sns or pagerduty"
            ),
            ))
        }
    };
    if let Some(other) = unknown_field(body, &[allowed, &["type", "name", "enabled"]].concat()) {
        return Err(bad(
            "invalid_channel",
            other,
            format!(
                "is not a field of a {kind} channel; expected {}, name or enabled",
                allowed.join(", ")
            ),
        ));
    }
    Ok(())
}

/// An email channel's `to`: 1 to `MAX_RECIPIENTS` addresses.
fn email_recipients(body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match body.get("to") {
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_RECIPIENTS => list
            .iter()
            .map(|v| {
                v.as_str()
                    .filter(|s| s.parse::<lettre::Address>().is_ok())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        bad(
                            "invalid_channel",
                            "to",
                            format!("{v} is not an email address"),
                        )
                    })
            })
            .collect(),
        _ => Err(bad(
            "invalid_channel",
            "to",
            "is required: a list of 1 to 50 email addresses",
        )),
    }
}

/// An SNS channel's `topic_arn`, shaped as an SNS topic's ARN.
fn sns_topic(body: &Map<String, Value>) -> Result<String, ApiError> {
    let arn = string(body, "topic_arn")?.unwrap_or_default();
    let parts: Vec<&str> = arn.split(':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && parts.iter().skip(3).all(|p| !p.is_empty());
    if !ok {
        return Err(bad(
            "invalid_channel",
            "topic_arn",
            "must be an SNS topic ARN such as arn:aws:sns:us-east-1:123456789012:alerts",
        ));
    }
    Ok(arn)
}

/// `PUT /api/health/channels/{channel_id}`: creates or replaces a channel.
#[tracing::instrument(skip(state, body))]
pub async fn put_channel(state: &AppState, tenant: &str, channel_id: &str, body: &[u8]) -> Reply {
    let body = object_body(body)?;
    let name = match string(&body, "name")? {
        None => channel_id.to_owned(),
        Some(n) => {
            check_name(&n).map_err(|m| bad("invalid_channel", "name", m))?;
            n
        }
    };
    let enabled = flag(&body, "enabled", true, "invalid_channel")?;
    let stored = state.store.channel(tenant, channel_id).await?;
    if stored.is_none() {
        let config = state.store.notify_config(tenant).await?;
        ApiError::check_room(
            "channels",
            state.config.quotas.channels,
            config.channels.len(),
            "a new channel",
        )?;
    }
    let destination =
        parse_destination(state, &body, stored.as_ref().map(|c| &c.destination)).await?;
    let now = state.clock.now_ms();
    let record = state
        .store
        .put_channel(tenant, channel_id, |old| ChannelRecord {
            channel_id: channel_id.to_owned(),
            name: name.clone(),
            enabled,
            destination: destination.clone(),
            created_at: old.map_or(now, |o| o.created_at),
            updated_at: now,
        })
        .await?;
    tracing::info!(
        tenant,
        channel_id,
        kind = record.destination.kind(),
        "channel saved"
    );
    Ok(json_response(StatusCode::OK, &record.view()))
}

/// 200 with the views of a listing, in order, as a JSON array.
fn listed(views: impl Iterator<Item = Value>) -> Reply {
    ok_json(&views.collect::<Vec<_>>())
}

/// `GET /api/health/channels`: every channel, secrets hidden, by id.
pub async fn list_channels(state: &AppState, tenant: &str) -> Reply {
    let config = state.store.notify_config(tenant).await?;
    listed(config.channels.iter().map(ChannelRecord::view))
}

/// `DELETE /api/health/channels/{channel_id}`.
pub async fn delete_channel(state: &AppState, tenant: &str, channel_id: &str) -> Reply {
    deleted(
        state.store.delete_channel(tenant, channel_id).await?,
        || format!("no channel {channel_id}"),
    )
}

/// `POST /api/health/channels/{channel_id}/test`: sends a test message now; 200 with the
/// delivery result whether or not the channel accepted it. `base` is where the caller
/// reached this deployment, for the message's dashboard link.
pub async fn test_channel(
    state: &AppState,
    tenant: &str,
    channel_id: &str,
    base: Option<String>,
) -> Reply {
    let channel = state
        .store
        .channel(tenant, channel_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no channel {channel_id}")))?;
    let notifier = crate::notify::Notifier::new(state)
        .map_err(|e| ApiError::Internal(Box::new(e)))?
        .with_public_url(base);
    let result = notifier
        .test_channel(tenant, &channel, state.clock.now_ms())
        .await?;
    Ok(json_response(StatusCode::OK, &result))
}

fn parse_matcher(value: Option<&Value>, code: &'static str) -> Result<Matcher, ApiError> {
    let matcher: Matcher = match value {
        None | Some(Value::Null) => Matcher::default(),
        Some(v @ Value::Object(_)) => serde_json::from_value(v.clone()).map_err(|e| {
            bad(
                code,
                "match",
                format!("{e}; expected severity (list), source_type (list) and source_id (glob)"),
            )
        })?,
        Some(_) => return Err(bad(code, "match", "must be an object")),
    };
    if let Some(glob) = &matcher.source_id {
        check_id(glob).map_err(|m| bad(code, "match.source_id", m))?;
    }
    Ok(matcher)
}

fn seconds(body: &Map<String, Value>, field: &str, default: u64) -> Result<u64, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().filter(|s| *s <= MAX_INTERVAL_S).ok_or_else(|| {
            bad(
                "invalid_rule",
                field,
                "must be a whole number of seconds from 0 to 604800 (7 days)",
            )
        }),
    }
}

/// A rule's `channels`: one or more ids of the tenant's `channels`.
fn rule_channels(
    body: &Map<String, Value>,
    channels: &[ChannelRecord],
) -> Result<Vec<String>, ApiError> {
    match body.get("channels") {
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|v| {
                let id = v.as_str().ok_or_else(|| {
                    bad("invalid_rule", "channels", "must be a list of channel ids")
                })?;
                if channels.iter().any(|c| c.channel_id == id) {
                    Ok(id.to_owned())
                } else {
                    Err(bad(
                        "invalid_rule",
                        "channels",
                        format!("{id} is not a channel of this tenant; create it first"),
                    ))
                }
            })
            .collect(),
        _ => Err(bad(
            "invalid_rule",
            "channels",
            "is required: a list of at least one channel id",
        )),
    }
}

/// `PUT /api/health/notification-rules/{rule_id}`.
#[tracing::instrument(skip(state, body))]
pub async fn put_rule(state: &AppState, tenant: &str, rule_id: &str, body: &[u8]) -> Reply {
    let body = object_body(body)?;
    if let Some(other) = unknown_field(&body, &RULE_FIELDS) {
        return Err(bad(
            "invalid_rule",
            other,
            "is not a field of a rule; expected channels, match, group_wait_s, group_interval_s, repeat_interval_s, send_resolved or weekly_report",
        ));
    }
    let config = state.store.notify_config(tenant).await?;
    if !config.rules.iter().any(|r| r.rule_id == rule_id) {
        ApiError::check_room(
            "notification_rules",
            state.config.quotas.notification_rules,
            config.rules.len(),
            "a new notification rule",
        )?;
    }
    let mut channels = rule_channels(&body, &config.channels)?;
    channels.dedup();
    let repeat = seconds(&body, "repeat_interval_s", DEFAULT_REPEAT_INTERVAL_S)?;
    if repeat == 0 {
        return Err(bad(
            "invalid_rule",
            "repeat_interval_s",
            "must be at least 1 second",
        ));
    }
    let rule = RuleRecord {
        rule_id: rule_id.to_owned(),
        channels,
        matcher: parse_matcher(body.get("match"), "invalid_rule")?,
        group_wait_s: seconds(&body, "group_wait_s", DEFAULT_GROUP_WAIT_S)?,
        group_interval_s: seconds(&body, "group_interval_s", DEFAULT_GROUP_INTERVAL_S)?,
        repeat_interval_s: repeat,
        send_resolved: flag(&body, "send_resolved", true, "invalid_rule")?,
        weekly_report: flag(&body, "weekly_report", false, "invalid_rule")?,
        updated_at: state.clock.now_ms(),
    };
    state.store.put_rule(tenant, &rule).await?;
    Ok(json_response(StatusCode::OK, &rule.view()))
}

/// `GET /api/health/notification-rules`.
pub async fn list_rules(state: &AppState, tenant: &str) -> Reply {
    let config = state.store.notify_config(tenant).await?;
    listed(config.rules.iter().map(RuleRecord::view))
}

/// `DELETE /api/health/notification-rules/{rule_id}`.
pub async fn delete_rule(state: &AppState, tenant: &str, rule_id: &str) -> Reply {
    deleted(state.store.delete_rule(tenant, rule_id).await?, || {
        format!("no notification rule {rule_id}")
    })
}

fn time_field(body: &Map<String, Value>, field: &str) -> Result<Option<Millis>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_rfc3339(s).map(Some).ok_or_else(|| {
            bad(
                "invalid_silence",
                field,
                "must be an RFC 3339 time such as 2026-02-02T13:00:00Z",
            )
        }),
        Some(_) => Err(bad(
            "invalid_silence",
            field,
            "must be an RFC 3339 time string",
        )),
    }
}

/// A silence's `comment`: empty where absent.
fn silence_comment(body: &Map<String, Value>) -> Result<String, ApiError> {
    match body.get("comment") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => {
            check_text(s).map_err(|m| bad("invalid_silence", "comment", m))?;
            Ok(s.clone())
        }
        Some(_) => Err(bad("invalid_silence", "comment", "must be a string")),
    }
}

/// A one-off silence's start (now where absent) and end: in the future, within a year.
fn one_off_times(body: &Map<String, Value>, now: Millis) -> Result<(Millis, Millis), ApiError> {
    let starts = time_field(body, "starts_at")?.unwrap_or(now);
    let ends = time_field(body, "ends_at")?.ok_or_else(|| {
        bad(
            "invalid_silence",
            "ends_at",
            "is required (or give a schedule for a maintenance window)",
        )
    })?;
    if ends <= starts.max(now) {
        return Err(bad(
            "invalid_silence",
            "ends_at",
            "must be after starts_at and in the future",
        ));
    }
    if ends - starts > MAX_SILENCE_MS {
        return Err(bad(
            "invalid_silence",
            "ends_at",
            "must be within a year of starts_at; use a schedule for recurring windows",
        ));
    }
    Ok((starts, ends))
}

/// A maintenance window's `schedule`, which stands instead of `starts_at` and `ends_at`.
fn window_schedule(body: &Map<String, Value>, v: &Value) -> Result<Schedule, ApiError> {
    if body.contains_key("starts_at") || body.contains_key("ends_at") {
        return Err(bad(
            "invalid_silence",
            "schedule",
            "a maintenance window has a schedule instead of starts_at and ends_at",
        ));
    }
    let schedule: Schedule = serde_json::from_value(v.clone()).map_err(|e| {
        bad(
            "invalid_silence",
            "schedule",
            format!("{e}; expected timezone, days, start and duration_minutes"),
        )
    })?;
    schedule
        .check()
        .map_err(|m| ApiError::bad_request("invalid_silence", m))?;
    Ok(schedule)
}

/// `POST /api/health/silences`: a one-off silence (`starts_at`, `ends_at`) or a
/// maintenance window (`schedule`); 201 with the silence.
#[tracing::instrument(skip(state, principal, body))]
pub async fn create_silence(state: &AppState, principal: &Principal, body: &[u8]) -> Reply {
    let body = object_body(body)?;
    if let Some(other) = unknown_field(&body, &SILENCE_FIELDS) {
        return Err(bad(
            "invalid_silence",
            other,
            "is not a field of a silence; expected match, starts_at, ends_at, schedule or comment",
        ));
    }
    let now = state.clock.now_ms();
    let comment = silence_comment(&body)?;
    let matcher = parse_matcher(body.get("match"), "invalid_silence")?;
    let (starts_at, ends_at, schedule) = match body.get("schedule") {
        None | Some(Value::Null) => {
            let (starts, ends) = one_off_times(&body, now)?;
            (Some(starts), Some(ends), None)
        }
        Some(v) => (None, None, Some(window_schedule(&body, v)?)),
    };
    let silence = SilenceRecord {
        silence_id: crate::store::notify::new_silence_id(),
        matcher,
        starts_at,
        ends_at,
        schedule,
        comment,
        created_by: principal.name.clone(),
        created_at: now,
    };
    let config = state.store.notify_config(&principal.tenant).await?;
    let held = config.silences.iter().filter(|s| !s.ended_by(now)).count();
    ApiError::check_room(
        "silences",
        state.config.quotas.silences,
        held,
        "a new silence",
    )?;
    state.store.put_silence(&principal.tenant, &silence).await?;
    tracing::info!(tenant = %principal.tenant, silence_id = %silence.silence_id, "silence created");
    Ok(json_response(StatusCode::CREATED, &silence.view(now)))
}

/// `GET /api/health/silences`: active and future silences and every maintenance window.
pub async fn list_silences(state: &AppState, tenant: &str) -> Reply {
    let now = state.clock.now_ms();
    let config = state.store.notify_config(tenant).await?;
    listed(
        config
            .silences
            .iter()
            .filter(|s| !s.ended_by(now))
            .map(|s| s.view(now)),
    )
}

/// `DELETE /api/health/silences/{silence_id}`: ends a silence now, removes a window.
pub async fn delete_silence(state: &AppState, tenant: &str, silence_id: &str) -> Reply {
    let ended = state
        .store
        .end_silence(tenant, silence_id, state.clock.now_ms())
        .await?;
    deleted(ended.is_some(), || format!("no silence {silence_id}"))
}

/// `GET /api/health/alerts/{alert_id}/notifications`: the alert's delivery log.
pub async fn alert_notifications(state: &AppState, tenant: &str, alert_id: &str) -> Reply {
    let log = state
        .store
        .notifications_for_alert(tenant, alert_id)
        .await?;
    if log.is_empty() && state.store.alert(tenant, alert_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no alert with id {alert_id}")));
    }
    listed(log.iter().map(NotificationRecord::view))
}

fn html(status: StatusCode, title: &str, body: &str) -> Response<String> {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{t}</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}}\
         button{{font-size:1rem;padding:.5rem 1.2rem}}.muted{{color:#666}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut response = Response::new(page);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    response
}

async fn claim(state: &AppState, token_text: &str) -> Result<token::AckClaim, Response<String>> {
    let secret = match state.store.ack_secret().await {
        Ok(s) => s,
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    token::verify(&secret, token_text, state.clock.now_ms()).map_err(|e| {
        let title = match e {
            TokenError::Invalid => "Link not valid",
            TokenError::Expired => "Link expired",
        };
        html(
            StatusCode::FORBIDDEN,
            title,
            &format!("<p>{}</p>", escape(&e.to_string())),
        )
    })
}

/// The page of a link sent before the alert escalated: it no longer applies (the
/// escalation cleared the acknowledgement it could give), and says where to acknowledge.
fn escalated_page(
    state: &AppState,
    claim: &token::AckClaim,
    alert: &AlertRecord,
    status: StatusCode,
) -> Response<String> {
    let severity = |s| crate::notify::render::severity_word(s);
    let sent = match claim.sent_for {
        Some(sent) => format!(
            "This link was sent for the alert as a {}",
            severity(sent.severity)
        ),
        None => "This link was sent".to_owned(),
    };
    let dashboard = match &state.config.public_url {
        Some(base) => format!("<a href=\"{}/\">the dashboard</a>", escape(base)),
        None => "the dashboard".to_owned(),
    };
    let since = match (&alert.acknowledged_by, alert.acknowledged_at) {
        (Some(by), Some(at)) => format!(
            "<p>It has since been acknowledged by {} at {}.</p>",
            escape(by),
            format_rfc3339(at)
        ),
        _ => format!(
            "<p>Acknowledge it again from the newer message about it, or on {dashboard}.</p>"
        ),
    };
    html(
        status,
        "This link no longer applies",
        &format!(
            "<p><b>{}</b></p><p>{sent}; it escalated to {} at {}, after the link was sent, \
             so this link acknowledges nothing.</p>{since}",
            escape(&alert.message),
            severity(alert.severity),
            format_rfc3339(alert.raised_at),
        ),
    )
}

/// `GET /api/health/ack/{token}`: shows the alert and a button; acknowledges nothing, so
/// mail scanners that open links cannot acknowledge. A link sent before the alert escalated
/// shows why it no longer applies, without a button.
pub async fn ack_page(state: &AppState, token_text: &str) -> Response<String> {
    let claim = match claim(state, token_text).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let alert = match state.store.alert(&claim.tenant, &claim.alert_id).await {
        Ok(found) => found.map(|(a, _)| a),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(alert) = alert else {
        return alert_gone_page();
    };
    let summary = format!(
        "<p><b>{}</b> ({:?})<br><span class=\"muted\">{} {} · raised {}</span></p>",
        escape(&alert.message),
        alert.severity,
        escape(&format!("{:?}", alert.source_type).to_lowercase()),
        escape(&alert.source_id),
        format_rfc3339(alert.raised_at)
    );
    if let Some(at) = alert.resolved_at {
        return html(
            StatusCode::OK,
            "Alert resolved",
            &format!(
                "{summary}<p>It resolved at {}; nothing to acknowledge.</p>",
                format_rfc3339(at)
            ),
        );
    }
    if !claim.applies_to(&alert) {
        return escalated_page(state, &claim, &alert, StatusCode::OK);
    }
    if let (Some(by), Some(at)) = (&alert.acknowledged_by, alert.acknowledged_at) {
        return html(
            StatusCode::OK,
            "Already acknowledged",
            &format!(
                "{summary}<p>Acknowledged by {} at {}.</p>",
                escape(by),
                format_rfc3339(at)
            ),
        );
    }
    html(
        StatusCode::OK,
        "Acknowledge this alert?",
        &format!(
            "{summary}<form method=\"post\"><button type=\"submit\">Acknowledge</button></form>"
        ),
    )
}

/// `POST /api/health/ack/{token}`: acknowledges the token's alert as "via <channel>". A
/// second use answers with the first acknowledgement. JSON (the alert) when the client
/// asks for it, else a page. A link sent before the alert escalated changes nothing: 409
/// (`alert_escalated`).
pub async fn ack_confirm(state: &AppState, token_text: &str, wants_json: bool) -> Response<String> {
    let claim = match claim(state, token_text).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let channel_name = match state.store.channel(&claim.tenant, &claim.channel_id).await {
        Ok(Some(c)) => c.name,
        Ok(None) => claim.channel_id.clone(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let by = format!("via {channel_name}");
    let outcome = state
        .store
        .acknowledge_alert_if(
            &claim.tenant,
            &claim.alert_id,
            Acknowledgement {
                by: &by,
                notes: None,
                at: state.clock.now_ms(),
            },
            |alert| claim.applies_to(alert),
        )
        .await;
    match outcome {
        Ok(GuardedAck::Outcome(AckOutcome::Acknowledged(alert))) => {
            tracing::info!(tenant = %claim.tenant, alert_id = %claim.alert_id, by = %by, "alert acknowledged from a message");
            state.notifier_wake.notify_one();
            acknowledged_answer(state, &claim, &alert, wants_json).await
        }
        Ok(GuardedAck::Outcome(AckOutcome::NotFound)) => {
            if wants_json {
                return ApiError::NotFound(format!("no alert with id {}", claim.alert_id))
                    .into_response();
            }
            alert_gone_page()
        }
        Ok(GuardedAck::Outcome(AckOutcome::Resolved(alert))) => {
            if wants_json {
                return ApiError::Conflict {
                    code: "alert_resolved",
                    message: format!("alert {} has already resolved", alert.alert_id),
                }
                .into_response();
            }
            html(
                StatusCode::CONFLICT,
                "Alert resolved",
                "<p>The alert resolved before it was acknowledged.</p>",
            )
        }
        Ok(GuardedAck::NoLongerApplies(alert)) => {
            escalated_answer(state, &claim, &alert, wants_json)
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The answer to a link sent before its alert escalated: 409, as JSON or a page.
fn escalated_answer(
    state: &AppState,
    claim: &token::AckClaim,
    alert: &AlertRecord,
    wants_json: bool,
) -> Response<String> {
    tracing::info!(tenant = %claim.tenant, alert_id = %claim.alert_id, "acknowledge link used after the alert escalated: refused");
    if wants_json {
        return ApiError::Conflict {
            code: "alert_escalated",
            message: format!(
                "alert {} escalated after this link was sent; acknowledge it from the \
                 newer message or the dashboard",
                alert.alert_id
            ),
        }
        .into_response();
    }
    escalated_page(state, claim, alert, StatusCode::CONFLICT)
}

/// The answer to an acknowledgement just made: the alert as JSON, or a page.
async fn acknowledged_answer(
    state: &AppState,
    claim: &token::AckClaim,
    alert: &AlertRecord,
    wants_json: bool,
) -> Response<String> {
    if wants_json {
        let now = state.clock.now_ms();
        return match state.store.notify_config(&claim.tenant).await {
            Ok(config) => json_response(StatusCode::OK, &alert.view_at(&config.silences, now)),
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    html(
        StatusCode::OK,
        "Acknowledged",
        &format!(
            "<p><b>{}</b></p><p>Acknowledged by {} at {}.</p>",
            escape(&alert.message),
            escape(alert.acknowledged_by.as_deref().unwrap_or_default()),
            alert
                .acknowledged_at
                .map(format_rfc3339)
                .unwrap_or_default()
        ),
    )
}

/// The page of a link whose alert no longer exists.
fn alert_gone_page() -> Response<String> {
    html(
        StatusCode::NOT_FOUND,
        "Alert not found",
        "<p>This alert no longer exists.</p>",
    )
}
