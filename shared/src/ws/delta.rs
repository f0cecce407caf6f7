//! `health:delta`: what changed since the previous message, for the connections that ask
//! for it (`?mode=delta`).
//!
//! A process that publishes cycles keeps, per tenant, a fingerprint of every entity and
//! alert it last published, and numbers its messages: `epoch` names the process (a new one
//! starts with a new epoch) and `seq` counts its messages per tenant from 1. A client that
//! sees a new epoch, or a `seq` that is not one more than the last it applied, reloads over
//! REST. A message whose elements pass [`MAX_MESSAGE_BYTES`](super::update::MAX_MESSAGE_BYTES)
//! is sent as parts with the same `seq`, each with `part` and `parts`: the client applies
//! the message once it holds every part.
//!
//! Between cycles, alerts raised or resolved by arriving events go to these connections as
//! `health:alerts` (the tenant's active alerts whole, with the system's scalars), which
//! carries no `seq`: it replaces the client's alert list, whichever process sent it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::update::{array, UpdateError, MAX_MESSAGE_BYTES};
use crate::collector::TenantReport;
use crate::domain::alerts::AlertView;
use crate::store::connections::{Feed, Listening};
use crate::time::format_rfc3339;

/// The sections of a delta message, in the order they appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Section {
    Agents,
    Integrations,
    Hosts,
    Raised,
    Changed,
    Resolved,
}

impl Section {
    /// Whether a connection listening so receives the element of this section about `id`:
    /// the overview's receive no entities; a watching one only the agents and integrations
    /// it watches (every host: a fleet has few).
    fn for_listener(self, listening: &Listening, id: &str) -> bool {
        match (self, listening.feed, &listening.watch) {
            (Self::Agents | Self::Integrations | Self::Hosts, Feed::DeltaOverview, _) => false,
            (Self::Agents, _, Some(w)) => w.agent(id),
            (Self::Integrations, _, Some(w)) => w.integration(id),
            _ => true,
        }
    }
}

/// What one tenant's last message said, by fingerprint.
#[derive(Debug, Default)]
struct Baseline {
    seq: u64,
    entities: HashMap<(Section, String), u64>,
    alerts: HashMap<String, u64>,
}

/// The deltas of one publishing process: its epoch and each tenant's baseline.
#[derive(Debug, Clone)]
pub struct Deltas {
    epoch: String,
    tenants: Arc<Mutex<HashMap<String, Baseline>>>,
}

impl Default for Deltas {
    fn default() -> Self {
        Self::new()
    }
}

/// One tenant's delta, ready to be sent to each feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    /// The message number, per tenant, from 1.
    pub seq: u64,
    /// The publishing process.
    pub epoch: String,
    /// The changed entities and alert changes, as JSON, by section.
    elements: Vec<(Section, String)>,
    /// The id of each element's entity (empty for alert changes), by the same index.
    ids: Vec<String>,
    /// The system object's scalars (no hosts), as JSON.
    system: String,
    /// The evaluation time, as a JSON string.
    timestamp: String,
}

fn fingerprint(json: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    json.hash(&mut h);
    h.finish()
}

impl Deltas {
    /// A new process's deltas, with a random epoch.
    pub fn new() -> Self {
        use rand::Rng;
        Self {
            epoch: format!("{:016x}", rand::rng().random::<u64>()),
            tenants: Arc::default(),
        }
    }

    /// The delta of `report` against what the tenant's previous delta said, which it then
    /// becomes. The first of a tenant lists every entity and alert.
    pub fn next(&self, report: &TenantReport) -> Result<Delta, UpdateError> {
        let (current, alerts) = published(report)?;
        let system = system_scalars(report)?;
        let timestamp = to_json(&format_rfc3339(report.at))?;

        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let base = tenants.entry(report.tenant.clone()).or_default();
        let mut elements = Vec::new();
        let mut ids = Vec::new();
        let mut entities = HashMap::with_capacity(current.len());
        for (section, id, f, json) in current {
            let key = (section, id);
            if base.entities.get(&key) != Some(&f) {
                elements.push((section, json));
                ids.push(key.1.clone());
            }
            entities.insert(key, f);
        }
        let mut now_alerts = HashMap::with_capacity(alerts.len());
        for (id, json) in alerts {
            let f = fingerprint(&json);
            match base.alerts.get(&id) {
                None => elements.push((Section::Raised, json)),
                Some(old) if *old != f => elements.push((Section::Changed, json)),
                Some(_) => {}
            }
            now_alerts.insert(id, f);
        }
        let mut resolved: Vec<&String> = base
            .alerts
            .keys()
            .chain(&report.recently_resolved)
            .filter(|id| !now_alerts.contains_key(*id))
            .collect();
        resolved.sort();
        resolved.dedup();
        for id in resolved {
            elements.push((Section::Resolved, to_json(id)?));
        }
        ids.resize(elements.len(), String::new());
        base.seq += 1;
        base.entities = entities;
        base.alerts = now_alerts;
        Ok(Delta {
            seq: base.seq,
            epoch: self.epoch.clone(),
            elements,
            ids,
            system,
            timestamp,
        })
    }
}

/// An entity as published: its section, id, fingerprint (of what counts as a change) and
/// JSON.
type Published = (Section, String, u64, String);

/// An active alert as published: its id and JSON.
type PublishedAlert = (String, String);

/// What `report` publishes, as JSON: each entity by section and id, and each active
/// alert (marked silenced as the tenant's silences say) by id.
fn published(report: &TenantReport) -> Result<(Vec<Published>, Vec<PublishedAlert>), UpdateError> {
    let mut current: Vec<Published> = Vec::new();
    for a in &report.agents {
        let json = to_json(a)?;
        current.push((
            Section::Agents,
            a.agent_id.clone(),
            fingerprint(&json),
            json,
        ));
    }
    for i in &report.integrations {
        // `uptime_seconds` grows with the clock: an integration that is up would otherwise
        // go out every cycle. It is sent whole when anything else changes.
        let steady = crate::domain::health::IntegrationHealth {
            uptime_seconds: 0,
            ..i.clone()
        };
        let fp = fingerprint(&to_json(&steady)?);
        current.push((
            Section::Integrations,
            i.integration_id.clone(),
            fp,
            to_json(i)?,
        ));
    }
    for h in &report.system.hosts {
        let json = to_json(h)?;
        current.push((Section::Hosts, h.host_id.clone(), fingerprint(&json), json));
    }
    let mut alerts: Vec<PublishedAlert> = Vec::with_capacity(report.alerts.len());
    for view in report.alert_views() {
        let json = to_json(&view)?;
        alerts.push((view.alert_id, json));
    }
    Ok((current, alerts))
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, UpdateError> {
    Ok(serde_json::to_string(value)?)
}

/// The system object without `hosts`, as JSON.
fn system_scalars(report: &TenantReport) -> Result<String, UpdateError> {
    let mut system = serde_json::to_value(&report.system)?;
    if let Some(object) = system.as_object_mut() {
        object.remove("hosts");
    }
    to_json(&system)
}

impl Delta {
    /// How many entities and alert changes it carries.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether nothing changed (the message is a heartbeat).
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// The messages that carry it to a connection listening so (on a delta feed), each at
    /// most `limit` bytes where its elements allow: one, or parts.
    pub fn messages(&self, listening: &Listening, limit: usize) -> Vec<String> {
        let elements: Vec<&(Section, String)> = self
            .elements
            .iter()
            .zip(&self.ids)
            .filter(|((s, _), id)| s.for_listener(listening, id))
            .map(|(e, _)| e)
            .collect();
        super::update::in_parts(
            elements,
            limit,
            |e| e.1.len(),
            |part, group| self.compose(part, group),
        )
    }

    fn compose(&self, part: Option<(usize, usize)>, elements: &[&(Section, String)]) -> String {
        let mut out = String::with_capacity(
            256 + self.system.len() + elements.iter().map(|e| e.1.len() + 1).sum::<usize>(),
        );
        out.push_str(&format!(
            r#"{{"type":"health:delta","seq":{},"epoch":"{}","#,
            self.seq, self.epoch
        ));
        if let Some((part, parts)) = part {
            out.push_str(&format!(r#""part":{part},"parts":{parts},"#));
        }
        out.push_str(r#""data":{"#);
        // Every feed gets the contract's three lists; the overview's are empty (its
        // elements hold no entities).
        for (name, section) in [
            ("agents", Section::Agents),
            ("integrations", Section::Integrations),
            ("hosts", Section::Hosts),
        ] {
            out.push_str(&format!(r#""{name}":"#));
            array(&mut out, elements.iter().copied(), section);
            out.push(',');
        }
        out.push_str(r#""alerts":{"raised":"#);
        array(&mut out, elements.iter().copied(), Section::Raised);
        out.push_str(r#","changed":"#);
        array(&mut out, elements.iter().copied(), Section::Changed);
        out.push_str(r#","resolved":"#);
        array(&mut out, elements.iter().copied(), Section::Resolved);
        out.push_str(r#"},"system":"#);
        out.push_str(&self.system);
        out.push_str(r#","timestamp":"#);
        out.push_str(&self.timestamp);
        out.push_str("}}");
        out
    }
}

/// The `health:alerts` message of `report`: the tenant's active alerts whole and the
/// system's scalars, for delta connections between cycles.
pub fn alerts_message(report: &TenantReport) -> Result<String, UpdateError> {
    #[derive(Serialize)]
    struct Data<'a> {
        alerts: Vec<AlertView>,
        system: &'a serde_json::value::RawValue,
        timestamp: String,
    }
    #[derive(Serialize)]
    struct Message<'a> {
        r#type: &'static str,
        data: Data<'a>,
    }
    let system = system_scalars(report)?;
    let system = serde_json::value::RawValue::from_string(system)?;
    to_json(&Message {
        r#type: "health:alerts",
        data: Data {
            alerts: report.alert_views(),
            system: &system,
            timestamp: format_rfc3339(report.at),
        },
    })
}

/// The messages each of `feeds` receives for `report`: a cycle's (`event` false) or an
/// event's that changed the tenant's alerts. A feed whose messages cannot be built is
/// left out (logged).
pub fn feed_messages(
    report: &TenantReport,
    deltas: &Deltas,
    listening: &[Listening],
    event: bool,
) -> Vec<(Listening, Vec<String>)> {
    let wants_delta = listening.iter().any(|l| !l.feed.is_full());
    // One delta per cycle, whatever the number of delta feeds: it moves the baseline.
    let delta = (wants_delta && !event).then(|| deltas.next(report));
    // Each distinct way of listening once (dashboards on the same page share messages), in
    // a fixed order.
    // (A set: a tenant's connections may each watch something else.)
    let mut seen = std::collections::HashSet::with_capacity(listening.len());
    let mut distinct: Vec<&Listening> = listening.iter().filter(|l| seen.insert(*l)).collect();
    distinct.sort_by_key(|l| Feed::ALL.iter().position(|f| *f == l.feed));
    let mut out: Vec<(Listening, Vec<String>)> = Vec::new();
    for listener in distinct {
        let feed = listener.feed;
        let built = match (feed, event, &delta) {
            (Feed::Full, _, _) => super::update::health_update(report),
            // Alerts whole, without a seq: the next cycle's delta carries the rest. One
            // too large for a message waits for that delta.
            (_, true, _) => alerts_message(report).map(|m| {
                if m.len() <= MAX_MESSAGE_BYTES {
                    vec![m]
                } else {
                    Vec::new()
                }
            }),
            (_, false, Some(Ok(d))) => Ok(d.messages(listener, MAX_MESSAGE_BYTES)),
            (_, false, Some(Err(e))) => {
                tracing::error!(tenant = %report.tenant, error = %e, "cannot build the delta");
                continue;
            }
            (_, false, None) => continue,
        };
        match built {
            Ok(messages) => out.push((listener.clone(), messages)),
            Err(e) => {
                tracing::error!(tenant = %report.tenant, ?feed, error = %e, "cannot build the update")
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::ws::update::tests::{report, NOW};

    fn parse(message: &str) -> Value {
        serde_json::from_str(message).unwrap_or_else(|e| panic!("not JSON ({e}): {message}"))
    }

    /// The one message of `delta` for `feed`, parsed.
    fn only(delta: &Delta, feed: impl Into<Listening>) -> Value {
        let messages = delta.messages(&feed.into(), 128_000);
        assert_eq!(messages.len(), 1, "expected one message: {messages:?}");
        parse(&messages[0])
    }

    fn ids(v: &Value, key: &str) -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("not an array: {v}"))
            .iter()
            .map(|x| x[key].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn the_first_delta_lists_everything_and_then_only_what_changed() {
        let deltas = Deltas::new();
        let mut r = report(3);
        let first = deltas.next(&r).expect("building the first delta");
        let m = only(&first, Feed::Delta);
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("health:delta"), Some(1))
        );
        assert_eq!(ids(&m["data"]["agents"], "agent_id").len(), 3);
        assert_eq!(ids(&m["data"]["alerts"]["raised"], "alert_id"), ["alert_1"]);

        // Nothing changed: a heartbeat, numbered on, with the time and the system.
        r.at = NOW + 30_000;
        let quiet = deltas.next(&r).expect("building a heartbeat");
        assert!(quiet.is_empty());
        let m = only(&quiet, Feed::Delta);
        assert_eq!(m["seq"], 2);
        assert_eq!(m["epoch"], first.epoch.as_str());
        assert_eq!(m["data"]["agents"], serde_json::json!([]));
        assert_eq!(m["data"]["timestamp"], "2026-09-21T14:13:50Z");
        assert!(m["data"]["system"]["total_agents"].is_u64(), "{m}");
        assert!(m["data"]["system"].get("hosts").is_none(), "{m}");

        // One agent changes, the alert is acknowledged, then resolved.
        r.agents[1].agent_name = "renamed".into();
        r.alerts[0].acknowledged_by = Some("oncall".into());
        let m = only(&deltas.next(&r).expect("building a delta"), Feed::Delta);
        assert_eq!(m["seq"], 3);
        assert_eq!(ids(&m["data"]["agents"], "agent_id"), ["agent-00001"]);
        assert_eq!(m["data"]["agents"][0]["agent_name"], "renamed");
        assert_eq!(
            ids(&m["data"]["alerts"]["changed"], "alert_id"),
            ["alert_1"]
        );
        r.alerts.clear();
        let m = only(&deltas.next(&r).expect("building a delta"), Feed::Delta);
        assert_eq!(
            m["data"]["alerts"]["resolved"],
            serde_json::json!(["alert_1"])
        );
        assert_eq!(m["data"]["agents"], serde_json::json!([]));
    }

    #[test]
    fn an_alert_resolved_before_any_delta_named_it_is_still_named_resolved() {
        let deltas = Deltas::new();
        let mut r = report(1);
        r.alerts.clear();
        deltas.next(&r).expect("building the first delta");
        // Raised by an event between cycles (clients had it from health:alerts), resolved
        // by this cycle.
        r.recently_resolved = vec!["alert_between".into()];
        let m = only(&deltas.next(&r).expect("building a delta"), Feed::Delta);
        assert_eq!(
            m["data"]["alerts"]["resolved"],
            serde_json::json!(["alert_between"])
        );
    }

    #[test]
    fn an_integration_is_not_sent_again_only_because_its_uptime_grew() {
        use crate::domain::health::integration_health;
        use crate::domain::records::{ConnectionState, IntegrationRecord};
        let deltas = Deltas::new();
        let mut record = IntegrationRecord::new("slack", NOW - 600_000);
        record.state = ConnectionState::Active;
        record.up_since = Some(NOW - 600_000);
        let mut r = report(1);
        r.integrations = vec![integration_health(&record, &[], &[], &[], NOW, 5_000.0)];
        deltas.next(&r).expect("building the first delta");
        r.at = NOW + 30_000;
        r.integrations = vec![integration_health(&record, &[], &[], &[], r.at, 5_000.0)];
        assert_eq!(r.integrations[0].uptime_seconds, 630, "the uptime grew");
        let quiet = only(&deltas.next(&r).expect("building a delta"), Feed::Delta);
        assert_eq!(quiet["data"]["integrations"], serde_json::json!([]));
        record.consecutive_failures = 2;
        r.integrations = vec![integration_health(&record, &[], &[], &[], r.at, 5_000.0)];
        let changed = only(&deltas.next(&r).expect("building a delta"), Feed::Delta);
        assert_eq!(
            changed["data"]["integrations"][0]["uptime_seconds"], 630,
            "sent whole"
        );
    }

    #[test]
    fn a_watching_connection_gets_the_changes_of_what_it_watches_and_every_alert() {
        use crate::store::connections::Watch;
        let deltas = Deltas::new();
        let r = report(3);
        let delta = deltas.next(&r).expect("building a delta");
        let watching = Listening {
            feed: Feed::Delta,
            watch: Some(Watch::new(
                vec!["agent-00002".into(), "gone".into()],
                Vec::new(),
            )),
        };
        let m = only(&delta, watching.clone());
        assert_eq!(ids(&m["data"]["agents"], "agent_id"), ["agent-00002"]);
        assert_eq!(ids(&m["data"]["alerts"]["raised"], "alert_id"), ["alert_1"]);
        assert_eq!(m["seq"], 1, "the same numbering as every delta connection");
        let nothing = Listening {
            feed: Feed::Delta,
            watch: Some(Watch::default()),
        };
        assert_eq!(
            only(&delta, nothing)["data"]["agents"],
            serde_json::json!([])
        );
        assert_eq!(
            ids(&only(&delta, Feed::Delta)["data"]["agents"], "agent_id").len(),
            3
        );
    }

    #[test]
    fn the_overview_gets_no_entities_and_other_tenants_count_apart() {
        let deltas = Deltas::new();
        let r = report(2);
        let m = only(
            &deltas.next(&r).expect("building a delta"),
            Feed::DeltaOverview,
        );
        assert_eq!(m["data"]["agents"], serde_json::json!([]), "{m}");
        assert_eq!(m["data"]["hosts"], serde_json::json!([]), "{m}");
        assert_eq!(ids(&m["data"]["alerts"]["raised"], "alert_id"), ["alert_1"]);
        let mut other = report(2);
        other.tenant = "globex".into();
        assert_eq!(deltas.next(&other).expect("building a delta").seq, 1);
        assert_eq!(deltas.next(&r).expect("building a delta").seq, 2);
    }

    #[test]
    fn a_large_delta_comes_in_parts_that_share_its_seq_and_hold_every_entity_once() {
        let deltas = Deltas::new();
        let r = report(2_000);
        let delta = deltas.next(&r).expect("building a delta");
        let messages = delta.messages(&Feed::Delta.into(), 64_000);
        assert!(messages.len() > 1);
        let mut agents = Vec::new();
        for (i, text) in messages.iter().enumerate() {
            assert!(text.len() <= 64_000, "part {i} is {} bytes", text.len());
            let m = parse(text);
            assert_eq!(
                (m["seq"].as_u64(), m["part"].as_u64()),
                (Some(1), Some(i as u64 + 1))
            );
            assert_eq!(m["parts"].as_u64(), Some(messages.len() as u64));
            agents.extend(ids(&m["data"]["agents"], "agent_id"));
        }
        assert_eq!(agents.len(), 2_000);
    }

    #[test]
    fn a_new_process_has_a_new_epoch() {
        assert_ne!(Deltas::new().epoch, Deltas::new().epoch);
    }

    #[test]
    fn the_alerts_message_carries_the_active_alerts_whole() {
        let m = parse(&alerts_message(&report(1)).expect("building the alerts message"));
        assert_eq!(m["type"], "health:alerts");
        assert!(m.get("seq").is_none());
        assert_eq!(ids(&m["data"]["alerts"], "alert_id"), ["alert_1"]);
        assert!(m["data"]["system"]["alerts"].is_object(), "{m}");
    }
}
