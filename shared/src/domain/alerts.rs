//! Alerts as stored and as the API shows them.

use super::records::Entity;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::time::{format_rfc3339, Millis};

/// How urgent an alert is. Declared most urgent first, so sorting by it puts critical first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Act now.
    Critical,
    /// Act soon.
    Warning,
    /// For information.
    Info,
}

impl Severity {
    /// Parses the `severity` query parameter.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "critical" => Some(Self::Critical),
            "warning" => Some(Self::Warning),
            "info" => Some(Self::Info),
            _ => None,
        }
    }
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    /// A host or the tenant as a whole.
    System,
    /// An agent.
    Agent,
    /// An integration.
    Integration,
}

impl SourceType {
    /// The type from its name in the API (`system`, `agent`, `integration`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "system" => Some(Self::System),
            "agent" => Some(Self::Agent),
            "integration" => Some(Self::Integration),
            _ => None,
        }
    }

    /// The agent or integration an alert of this type is about; `None` for a system
    /// alert, whose source is a host or the tenant as a whole.
    pub fn entity(self) -> Option<Entity> {
        match self {
            Self::Agent => Some(Entity::Agent),
            Self::Integration => Some(Entity::Integration),
            Self::System => None,
        }
    }
}

impl From<Entity> for SourceType {
    /// The type of an alert about `entity`: hosts' alerts are `system` ones.
    fn from(entity: Entity) -> Self {
        match entity {
            Entity::Agent => Self::Agent,
            Entity::Integration => Self::Integration,
            Entity::Host => Self::System,
        }
    }
}

/// An alert: one condition on one source, for as long as the condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Stable id.
    pub alert_id: String,
    /// Current severity.
    pub severity: Severity,
    /// For a human, e.g. `High CPU usage: 85%`.
    pub message: String,
    /// What kind of source.
    pub source_type: SourceType,
    /// Which source.
    pub source_id: String,
    /// The condition, e.g. `cpu_high`; with the source it identifies the alert.
    pub condition: String,
    /// When it was raised (or last escalated).
    pub raised_at: Millis,
    /// Acknowledged by this identity (cleared on escalation).
    pub acknowledged_by: Option<String>,
    /// When it was acknowledged.
    pub acknowledged_at: Option<Millis>,
    /// The acknowledger's notes.
    pub notes: Option<String>,
    /// When the condition cleared; `None` while active.
    pub resolved_at: Option<Millis>,
}

impl AlertRecord {
    /// A new, open alert: `condition` on `source_id` (of `source_type`), raised at
    /// `raised_at`, neither acknowledged nor resolved.
    pub fn open(
        alert_id: impl Into<String>,
        severity: Severity,
        message: impl Into<String>,
        (source_type, source_id): (SourceType, &str),
        condition: &str,
        raised_at: Millis,
    ) -> Self {
        Self {
            alert_id: alert_id.into(),
            severity,
            message: message.into(),
            source_type,
            source_id: source_id.to_owned(),
            condition: condition.to_owned(),
            raised_at,
            acknowledged_by: None,
            acknowledged_at: None,
            notes: None,
            resolved_at: None,
        }
    }

    /// The contract's `action_required`: critical alerts, and warnings on agents and
    /// integrations.
    pub fn action_required(&self) -> bool {
        self.severity == Severity::Critical
            || (self.severity == Severity::Warning && self.source_type != SourceType::System)
    }

    /// The API shape.
    pub fn view(&self) -> AlertView {
        AlertView {
            alert_id: self.alert_id.clone(),
            severity: self.severity,
            message: self.message.clone(),
            source_type: self.source_type,
            source_id: self.source_id.clone(),
            timestamp: format_rfc3339(self.raised_at),
            action_required: self.action_required(),
            acknowledged: self.acknowledged_at.is_some(),
            acknowledged_by: self.acknowledged_by.clone(),
            acknowledged_at: self.acknowledged_at.map(format_rfc3339),
            notes: self.notes.clone(),
            silenced: false,
            resolved_at: self.resolved_at.map(format_rfc3339),
        }
    }
}

/// One item of `GET /api/health/alerts`; the last four fields are additions to the
/// contract's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertView {
    /// Stable id.
    pub alert_id: String,
    /// Severity.
    pub severity: Severity,
    /// For a human.
    pub message: String,
    /// Kind of source.
    pub source_type: SourceType,
    /// Which source.
    pub source_id: String,
    /// When it was raised.
    pub timestamp: String,
    /// Whether someone must act.
    pub action_required: bool,
    /// Whether someone acknowledged it.
    pub acknowledged: bool,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When.
    pub acknowledged_at: Option<String>,
    /// Their notes.
    pub notes: Option<String>,
    /// Whether a silence or maintenance window holds its notifications now.
    pub silenced: bool,
    /// When it resolved: only on resolved alerts, which only a source's alert history
    /// lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
}

/// Sorts active alerts as the contract lists them: critical first, then newest first by
/// the second shown in `timestamp` (ties by id), so a client that holds the alerts can
/// put them in the same order from what it was sent.
pub fn sort_alerts(alerts: &mut [AlertRecord]) {
    alerts.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then(
                b.raised_at
                    .div_euclid(1_000)
                    .cmp(&a.raised_at.div_euclid(1_000)),
            )
            .then(a.alert_id.cmp(&b.alert_id))
    });
}

/// Identifies an alert: one condition on one source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertKey {
    /// Kind of source.
    pub source_type: SourceType,
    /// Which source.
    pub source_id: String,
    /// Which condition.
    pub condition: &'static str,
}

impl AlertKey {
    /// Condition `condition` on the source `source_id` of kind `source_type`.
    pub fn new(source_type: SourceType, source_id: &str, condition: &'static str) -> Self {
        Self {
            source_type,
            source_id: source_id.to_owned(),
            condition,
        }
    }

    /// The id prefix of an alert key: 8 hex digits of a hash of the source, then 8 of the
    /// condition, so ids are URL-safe whatever the source id and one source's alerts sort
    /// together (see [`source_prefix`]).
    pub fn id_prefix(&self) -> String {
        let condition = hex::encode(Sha256::digest(self.condition.as_bytes()));
        format!(
            "{}{}",
            source_prefix(self.source_type, &self.source_id),
            &condition[..8]
        )
    }
}

/// The first characters of the ids of every alert of one source: what a read of one
/// source's alerts asks for. Two sources may share it (32 bits); readers tell them apart
/// by the alerts' own fields.
pub fn source_prefix(source_type: SourceType, source_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("{source_type:?}"));
    h.update([0x1f]);
    h.update(source_id.as_bytes());
    format!("alert_{}", &hex::encode(h.finalize())[..8])
}

/// The prefix and occurrence number of an alert id (`<prefix>_<n>`, `n` counting the
/// occurrences of one condition on one source); `None` for an id of another shape.
pub fn occurrence(alert_id: &str) -> Option<(&str, u64)> {
    let (prefix, n) = alert_id.rsplit_once('_')?;
    Some((prefix, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, severity: Severity, at: Millis, source_type: SourceType) -> AlertRecord {
        AlertRecord {
            alert_id: id.into(),
            severity,
            message: String::new(),
            source_type,
            source_id: "s".into(),
            condition: "c".into(),
            raised_at: at,
            acknowledged_by: None,
            acknowledged_at: None,
            notes: None,
            resolved_at: None,
        }
    }

    #[test]
    fn alerts_sort_critical_first_then_newest_first() {
        let mut alerts = vec![
            alert("old-warning", Severity::Warning, 1, SourceType::System),
            alert("info", Severity::Info, 9, SourceType::System),
            alert("critical", Severity::Critical, 0, SourceType::System),
            alert("new-warning", Severity::Warning, 5, SourceType::System),
        ];
        sort_alerts(&mut alerts);
        let ids: Vec<&str> = alerts.iter().map(|a| a.alert_id.as_str()).collect();
        assert_eq!(ids, ["critical", "new-warning", "old-warning", "info"]);
    }

    #[test]
    fn action_is_required_for_critical_and_for_agent_and_integration_warnings() {
        assert!(alert("a", Severity::Critical, 0, SourceType::System).action_required());
        assert!(!alert("a", Severity::Warning, 0, SourceType::System).action_required());
        assert!(alert("a", Severity::Warning, 0, SourceType::Agent).action_required());
        assert!(!alert("a", Severity::Info, 0, SourceType::Integration).action_required());
    }
}
