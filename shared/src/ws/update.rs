//! The `health:update` message, split into parts when it is over the size limit.
//!
//! A whole update is `{"type":"health:update","data":{...}}`. A larger one is sent as
//! parts `{"type":"health:update","part":1,"parts":3,"data":{...}}`: every part carries the
//! same `timestamp` and the system object's scalar fields, and a slice of each array
//! (`agents`, `integrations`, `alerts`, `system.hosts`). Concatenating each array over
//! parts 1 to `parts` gives the whole update, whatever order the parts arrive in.

use serde::Serialize;

use crate::collector::TenantReport;
use crate::time::format_rfc3339;

/// Largest message sent, in bytes. API Gateway refuses messages over 128 KiB; 128,000
/// keeps under that and under "128 KB" read either way.
pub const MAX_MESSAGE_BYTES: usize = 128_000;

/// Why a message cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot serialise the update: {0}")]
pub struct UpdateError(#[from] serde_json::Error);

/// The arrays of an update, in the order they appear in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Array {
    Agents,
    Integrations,
    Alerts,
    Hosts,
}

/// The messages that carry `report` to a dashboard: one if it fits in
/// [`MAX_MESSAGE_BYTES`], else parts that each fit.
pub fn health_update(report: &TenantReport) -> Result<Vec<String>, UpdateError> {
    health_update_within(report, MAX_MESSAGE_BYTES)
}

/// [`health_update`] with another size limit (tests use small ones).
pub fn health_update_within(
    report: &TenantReport,
    limit: usize,
) -> Result<Vec<String>, UpdateError> {
    let mut elements: Vec<(Array, String)> = Vec::new();
    push_all(&mut elements, Array::Agents, &report.agents)?;
    push_all(&mut elements, Array::Integrations, &report.integrations)?;
    let alerts = report.alert_views();
    push_all(&mut elements, Array::Alerts, &alerts)?;
    push_all(&mut elements, Array::Hosts, &report.system.hosts)?;
    let mut system = serde_json::to_value(&report.system)?;
    if let Some(object) = system.as_object_mut() {
        object.remove("hosts");
    }
    let shell = Shell {
        system: serde_json::to_string(&system)?,
        timestamp: serde_json::to_string(&format_rfc3339(report.at))?,
    };

    Ok(in_parts(
        elements,
        limit,
        |e| e.1.len(),
        |part, group| shell.compose(part, group),
    ))
}

/// The messages that carry `elements` (`len` bytes of JSON each): one, from
/// `compose(None, all)`, if it fits in `limit` bytes; else parts from `compose(Some((part,
/// parts)), group)`, packed greedily against the size of an empty part with the widest part
/// numbers.
pub(super) fn in_parts<E>(
    elements: Vec<E>,
    limit: usize,
    len: impl Fn(&E) -> usize,
    compose: impl Fn(Option<(usize, usize)>, &[E]) -> String,
) -> Vec<String> {
    let whole = compose(None, &elements);
    if whole.len() <= limit {
        return vec![whole];
    }
    let empty = compose(Some((usize::MAX, usize::MAX)), &[]).len();
    let mut groups: Vec<Vec<E>> = vec![Vec::new()];
    let mut size = empty;
    for element in elements {
        let cost = len(&element) + 1;
        if size + cost > limit && groups.last().is_some_and(|g| !g.is_empty()) {
            groups.push(Vec::new());
            size = empty;
        }
        size += cost;
        if let Some(group) = groups.last_mut() {
            group.push(element);
        }
    }
    let parts = groups.len();
    groups
        .iter()
        .enumerate()
        .map(|(i, group)| compose(Some((i + 1, parts)), group))
        .collect()
}

fn push_all<T: Serialize>(
    out: &mut Vec<(Array, String)>,
    array: Array,
    items: &[T],
) -> Result<(), UpdateError> {
    for item in items {
        out.push((array, serde_json::to_string(item)?));
    }
    Ok(())
}

/// What every message of one update repeats.
struct Shell {
    /// The system object without `hosts`, as JSON.
    system: String,
    /// The timestamp, as a JSON string.
    timestamp: String,
}

impl Shell {
    /// One message holding `elements` (in array order).
    fn compose(&self, part: Option<(usize, usize)>, elements: &[(Array, String)]) -> String {
        let mut out = String::with_capacity(
            256 + self.system.len() + elements.iter().map(|e| e.1.len() + 1).sum::<usize>(),
        );
        out.push_str(r#"{"type":"health:update","#);
        if let Some((part, parts)) = part {
            out.push_str(&format!(r#""part":{part},"parts":{parts},"#));
        }
        out.push_str(r#""data":{"agents":"#);
        array(&mut out, elements.iter(), Array::Agents);
        out.push_str(r#","integrations":"#);
        array(&mut out, elements.iter(), Array::Integrations);
        out.push_str(r#","alerts":"#);
        array(&mut out, elements.iter(), Array::Alerts);
        out.push_str(r#","system":"#);
        // The system object without hosts ends in `}`: put `"hosts":[...]` before it.
        let scalars = self.system.strip_suffix('}').unwrap_or(&self.system);
        out.push_str(scalars);
        if scalars.len() > 1 {
            out.push(',');
        }
        out.push_str(r#""hosts":"#);
        array(&mut out, elements.iter(), Array::Hosts);
        out.push_str(r#"},"timestamp":"#);
        out.push_str(&self.timestamp);
        out.push_str("}}");
        out
    }
}

/// Writes the JSON array of the `elements` of section `which`.
pub(super) fn array<'a, S: PartialEq + 'a>(
    out: &mut String,
    elements: impl Iterator<Item = &'a (S, String)>,
    which: S,
) {
    out.push('[');
    let mut first = true;
    for (_, json) in elements.filter(|(s, _)| *s == which) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(json);
    }
    out.push(']');
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::domain::alerts::{AlertRecord, Severity, SourceType};
    use crate::domain::health::agent_health;
    use crate::domain::records::AgentRecord;
    use crate::domain::system::{system_health, SystemInputs};
    use crate::time::Millis;

    pub(crate) const NOW: Millis = 1_790_000_000_000;

    /// A report of tenant `acme` with `agents` agents and one warning alert, at `NOW`.
    pub(crate) fn report(agents: usize) -> TenantReport {
        let records: Vec<AgentRecord> = (0..agents)
            .map(|i| AgentRecord {
                agent_name: format!("Agent number {i} with a reasonably long name"),
                ..AgentRecord::new(&format!("agent-{i:05}"), NOW)
            })
            .collect();
        let alerts = vec![AlertRecord {
            alert_id: "alert_1".into(),
            severity: Severity::Warning,
            message: "High CPU usage: 85%".into(),
            source_type: SourceType::System,
            source_id: "system".into(),
            condition: "cpu_high".into(),
            raised_at: NOW,
            acknowledged_by: None,
            acknowledged_at: None,
            notes: None,
            resolved_at: None,
        }];
        let system = system_health(
            SystemInputs {
                agents: &[],
                integrations: &[],
                hosts: &[],
                system: &Default::default(),
                alerts: &alerts,
            },
            NOW,
        );
        TenantReport {
            tenant: "acme".into(),
            at: NOW,
            agents: records
                .iter()
                .map(|r| agent_health(r, &[], &[], &[], NOW))
                .collect(),
            integrations: Vec::new(),
            system,
            alerts,
            probes: 0,
            raised: 0,
            updated: 0,
            resolved: 0,
            silenced: Vec::new(),
            recently_resolved: Vec::new(),
        }
    }

    fn parse(message: &str) -> Value {
        serde_json::from_str(message).unwrap_or_else(|e| panic!("not JSON ({e}): {message}"))
    }

    /// The contract's whole-update document for `report`, built with serde_json.
    fn expected(report: &TenantReport) -> Value {
        let alerts: Vec<_> = report.alerts.iter().map(|a| a.view()).collect();
        json!({
            "agents": report.agents,
            "integrations": report.integrations,
            "alerts": alerts,
            "system": report.system,
            "timestamp": format_rfc3339(report.at),
        })
    }

    #[test]
    fn a_small_update_is_one_message_in_the_contract_shape() {
        let report = report(3);
        let messages = health_update(&report).expect("building the health update");
        assert_eq!(messages.len(), 1);
        let message = parse(&messages[0]);
        assert_eq!(message["type"], "health:update");
        assert!(message.get("part").is_none() && message.get("parts").is_none());
        assert_eq!(message["data"], expected(&report));
        assert_eq!(message["data"]["timestamp"], "2026-09-21T14:13:20Z");
        assert_eq!(message["data"]["system"]["alerts"]["warning"], 1);
    }

    #[test]
    fn a_large_update_is_split_into_parts_under_the_limit_that_reassemble() {
        let report = report(2_000);
        let messages = health_update(&report).expect("building the health update");
        assert!(messages.len() > 2, "{} messages", messages.len());
        let mut whole = json!({"agents": [], "integrations": [], "alerts": [], "hosts": []});
        for (i, text) in messages.iter().enumerate() {
            assert!(
                text.len() <= MAX_MESSAGE_BYTES,
                "part {i}: {} bytes",
                text.len()
            );
            let message = parse(text);
            assert_eq!(message["type"], "health:update");
            assert_eq!(message["part"], i + 1);
            assert_eq!(message["parts"], messages.len());
            let data = &message["data"];
            assert_eq!(data["timestamp"], "2026-09-21T14:13:20Z");
            assert_eq!(data["system"]["total_agents"], report.system.total_agents);
            for (key, slice) in [
                ("agents", &data["agents"]),
                ("integrations", &data["integrations"]),
                ("alerts", &data["alerts"]),
                ("hosts", &data["system"]["hosts"]),
            ] {
                let slice = slice
                    .as_array()
                    .cloned()
                    .unwrap_or_else(|| panic!("{key} is not an array"));
                if let Some(a) = whole[key].as_array_mut() {
                    a.extend(slice);
                }
            }
        }
        let mut system = serde_json::to_value(&report.system).unwrap_or_default();
        system["hosts"] = whole["hosts"].clone();
        let reassembled = json!({
            "agents": whole["agents"],
            "integrations": whole["integrations"],
            "alerts": whole["alerts"],
            "system": system,
            "timestamp": format_rfc3339(report.at),
        });
        assert_eq!(reassembled, expected(&report));
    }

    #[test]
    fn parts_are_filled_close_to_the_limit() {
        let report = report(600);
        let limit = 20_000;
        let messages = health_update_within(&report, limit)
            .expect("building the health update within the limit");
        let total: usize = messages.iter().map(String::len).sum();
        // Greedy packing wastes less than one element per part.
        assert!(
            messages.len() <= total / (limit - 1_000) + 1,
            "{}",
            messages.len()
        );
        assert!(messages.iter().all(|m| m.len() <= limit));
    }
}
