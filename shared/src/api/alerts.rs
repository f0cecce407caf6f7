//! `GET /api/health/alerts` and `POST /api/health/alerts/{alert_id}/acknowledge`.

use super::Reply;
use http::StatusCode;
use serde_json::Value;

use super::auth::Principal;
use super::{json_response, object_body, query_param, source_id_param, ApiError};
use crate::domain::alerts::{AlertView, Severity, SourceType};
use crate::domain::ids::MAX_TEXT_CHARS;
use crate::store::alerts::{AckOutcome, Acknowledgement};
use crate::AppState;

/// Active alerts, critical first then newest first, optionally of one severity. With
/// `source_type` and `source_id`, only that source's; adding `include_resolved=true` lists
/// its resolved ones too (kept 30 days), newest first, each with `resolved_at`: the alert
/// history a drill-down page shows.
#[tracing::instrument(skip(state))]
pub async fn list(state: &AppState, tenant: &str, query: Option<&str>) -> Reply {
    let ListQuery {
        severity,
        source,
        include_resolved,
    } = ListQuery::parse(query)?;
    let now = state.clock.now_ms();
    let config = state.store.notify_config(tenant).await?;
    let mut alerts: Vec<_> = match &source {
        None => state.store.active_alerts(tenant).await?,
        Some(s) => state
            .store
            .alerts_of_sources(tenant, std::slice::from_ref(s))
            .await?
            .into_iter()
            .map(|(a, _)| a)
            .filter(|a| include_resolved || a.resolved_at.is_none())
            .collect(),
    };
    if include_resolved {
        alerts.sort_by(|a, b| {
            b.raised_at
                .cmp(&a.raised_at)
                .then(a.alert_id.cmp(&b.alert_id))
        });
    } else if source.is_some() {
        crate::domain::alerts::sort_alerts(&mut alerts);
    }
    let alerts: Vec<AlertView> = alerts
        .iter()
        .filter(|a| severity.is_none_or(|s| a.severity == s))
        .map(|a| a.view_at(&config.silences, now))
        .collect();
    Ok(json_response(StatusCode::OK, &alerts))
}

/// The list's filters: a severity, one source, and whether that source's resolved alerts
/// are listed too.
struct ListQuery {
    severity: Option<Severity>,
    source: Option<(SourceType, String)>,
    include_resolved: bool,
}

impl ListQuery {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let bad = |m: &str| ApiError::bad_request("invalid_parameter", m.to_owned());
        let severity = match query_param(query, "severity") {
            None => None,
            Some(s) => Some(
                Severity::parse(&s)
                    .ok_or_else(|| bad("severity: must be critical, warning or info"))?,
            ),
        };
        let source = match (query_param(query, "source_type"), source_id_param(query)?) {
            (None, None) => None,
            (Some(t), Some(id)) => Some((
                SourceType::parse(&t)
                    .ok_or_else(|| bad("source_type: must be agent, integration or system"))?,
                id,
            )),
            _ => return Err(bad("source_type and source_id: give both or neither")),
        };
        let include_resolved = match query_param(query, "include_resolved").as_deref() {
            None | Some("false") => false,
            Some("true") if source.is_some() => true,
            Some("true") => {
                return Err(bad(
                    "include_resolved: needs source_type and source_id (one source's history)",
                ))
            }
            Some(_) => return Err(bad("include_resolved: must be true or false")),
        };
        Ok(Self {
            severity,
            source,
            include_resolved,
        })
    }
}

/// Acknowledges an alert as the key's holder; 404 for an unknown (or another tenant's)
/// alert, 409 for one that already resolved.
#[tracing::instrument(skip(state, principal, body))]
pub async fn acknowledge(
    state: &AppState,
    principal: &Principal,
    alert_id: &str,
    body: &[u8],
) -> Reply {
    let mut notes = None;
    for (field, value) in object_body(body)? {
        match (field.as_str(), value) {
            ("notes", Value::Null) => {}
            ("notes", Value::String(s)) if s.chars().count() <= MAX_TEXT_CHARS => notes = Some(s),
            ("notes", _) => {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    "notes: must be a string of at most 1024 characters",
                ))
            }
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    format!("{field}: is not a field of an acknowledgement; expected notes"),
                ))
            }
        }
    }
    let now = state.clock.now_ms();
    match state
        .store
        .acknowledge_alert(
            &principal.tenant,
            alert_id,
            Acknowledgement {
                by: &principal.name,
                notes: notes.as_deref(),
                at: now,
            },
        )
        .await?
    {
        AckOutcome::Acknowledged(alert) => {
            // Reminders stop and PagerDuty hears of it without waiting for a pass.
            state.notifier_wake.notify_one();
            let silences = state.store.notify_config(&principal.tenant).await?.silences;
            Ok(json_response(
                StatusCode::OK,
                &alert.view_at(&silences, now),
            ))
        }
        AckOutcome::NotFound => Err(ApiError::NotFound(format!("no alert with id {alert_id}"))),
        AckOutcome::Resolved(_) => Err(ApiError::Conflict {
            code: "alert_resolved",
            message: format!("alert {alert_id} has already resolved"),
        }),
    }
}
