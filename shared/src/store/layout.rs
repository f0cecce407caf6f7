//! The single-table key layout shared by both backends (documented in docs/data-model.md).
//!
//! Ids are validated to contain no control characters, and every id is the last component
//! of the key it appears in, so keys never collide even when ids contain `#`.

use super::{IndexKey, ItemKey};
use crate::time::{Millis, DAY_MS, MINUTE_MS};

/// Sort key of an entity's own record.
pub const META: &str = "META";

pub use crate::domain::records::Entity;

/// The letter that stands for `entity` in keys.
fn tag(entity: Entity) -> &'static str {
    match entity {
        Entity::Agent => "A",
        Entity::Integration => "I",
        Entity::Host => "H",
    }
}

/// The partition that holds one entity's day buckets and mark buckets.
pub fn partition(tenant: &str, entity: Entity, id: &str) -> String {
    format!("T#{tenant}#{}#{id}", tag(entity))
}

/// Sort key of a day bucket.
pub fn day_sk(day: i64) -> String {
    format!("D#{day:08}")
}

/// Parses the bucket index back out of a day or mark bucket's sort key.
pub fn bucket_index(sk: &str) -> Option<i64> {
    sk.get(2..)?.parse().ok()
}

/// A day bucket of an entity.
pub fn day(tenant: &str, entity: Entity, id: &str, day: i64) -> ItemKey {
    ItemKey {
        pk: partition(tenant, entity, id),
        sk: day_sk(day),
    }
}

/// An entity's summary of one hour ([`crate::domain::latency::HourSummary`]).
pub fn hour(tenant: &str, entity: Entity, id: &str, hour: i64) -> ItemKey {
    ItemKey {
        pk: partition(tenant, entity, id),
        sk: hour_sk(hour),
    }
}

/// Sort key of an hour bucket.
pub fn hour_sk(hour: i64) -> String {
    format!("L#{hour:010}")
}

/// A failed execution or call of an entity ([`crate::domain::failures::FailureRecord`]):
/// by time, then by the execution's or event's id, so a retried event rewrites its own item.
pub fn failure(tenant: &str, entity: Entity, id: &str, at: Millis, what: &str) -> ItemKey {
    ItemKey {
        pk: partition(tenant, entity, id),
        sk: format!("{}{what}", failure_sk_prefix(at)),
    }
}

/// The part of a failure's sort key before its id: every failure at or after `at` sorts at
/// or after it (`X#` and the time in 13 digits).
pub fn failure_sk_prefix(at: Millis) -> String {
    format!("X#{:013}#", at.max(0))
}

/// How long an hour bucket is kept after its hour: the longest SLO window (30 days) and
/// a day to spare.
pub const HOUR_BUCKET_TTL_MS: i64 = 31 * crate::time::DAY_MS;

/// The partition of a tenant's live items of one kind, one item per entity: what the
/// collector and the lists read with one Query.
pub fn live_partition(tenant: &str, entity: Entity) -> String {
    format!("T#{tenant}#LIVE#{}", tag(entity))
}

/// The tenant of a live item's or the gauges' partition key; `None` for any other key.
pub fn tenant_of_live(pk: &str) -> Option<&str> {
    let rest = pk.strip_prefix("T#")?;
    ["#LIVE#A", "#LIVE#I", "#LIVE#H", "#SYSTEM"]
        .into_iter()
        .find_map(|suffix| rest.strip_suffix(suffix))
}

/// An entity's live item (record, counters of the recent windows, recent event marks).
pub fn live(tenant: &str, entity: Entity, id: &str) -> ItemKey {
    ItemKey {
        pk: live_partition(tenant, entity),
        sk: id.to_owned(),
    }
}

/// Whose mark buckets: an entity's, or the tenant's gauges'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarksOf<'a> {
    /// An agent, integration or host.
    Entity(Entity, &'a str),
    /// The tenant's gauges.
    System,
}

/// The marks of an hour's events that moved out of a live item.
pub fn marks(tenant: &str, of: MarksOf<'_>, hour: i64) -> ItemKey {
    let pk = match of {
        MarksOf::Entity(entity, id) => partition(tenant, entity, id),
        MarksOf::System => system(tenant).pk,
    };
    ItemKey {
        pk,
        sk: format!("E#{hour:010}"),
    }
}

/// A tenant's one record of kind `kind` (`SYSTEM`, `COUNTS`, ...), alone in its partition.
fn tenant_record(tenant: &str, kind: &str) -> ItemKey {
    ItemKey {
        pk: format!("T#{tenant}#{kind}"),
        sk: META.to_owned(),
    }
}

/// The tenant-wide record (gauges).
pub fn system(tenant: &str) -> ItemKey {
    tenant_record(tenant, "SYSTEM")
}

/// The partition that lists every tenant in the secondary index.
pub const TENANTS: &str = "TENANTS";

/// A tenant's own record, listed under [`TENANTS`].
pub fn tenant(tenant: &str) -> ItemKey {
    tenant_record(tenant, "TENANT")
}

/// The tenant of a key made by [`tenant`].
pub fn tenant_of(pk: &str) -> Option<&str> {
    pk.strip_prefix("T#")?.strip_suffix("#TENANT")
}

/// How many entities of each kind (and probed integrations) a tenant holds, for quotas.
pub fn counts(tenant: &str) -> ItemKey {
    tenant_record(tenant, "COUNTS")
}

/// A tenant's summary, which each collector cycle writes (`GET /api/health/summary`).
pub fn summary(tenant: &str) -> ItemKey {
    tenant_record(tenant, "SUMMARY")
}

/// A tenant's leases on the places named `name` (e.g. `exports`).
pub fn leases(tenant: &str, name: &str) -> ItemKey {
    ItemKey {
        pk: format!("T#{tenant}#LEASES"),
        sk: name.to_owned(),
    }
}

/// The collector's claim on a tenant's latest cycle.
pub fn cycle(tenant: &str) -> ItemKey {
    tenant_record(tenant, "CYCLE")
}

/// The partition of a tenant's alerts, active and recently resolved.
pub fn alerts_partition(tenant: &str) -> String {
    format!("T#{tenant}#ALERTS")
}

/// One alert.
pub fn alert(tenant: &str, alert_id: &str) -> ItemKey {
    ItemKey {
        pk: alerts_partition(tenant),
        sk: alert_id.to_owned(),
    }
}

/// How long resolved alerts are kept for history.
pub const RESOLVED_ALERT_TTL_MS: Millis = 30 * DAY_MS;

/// An API key, by the hex SHA-256 of the key.
pub fn api_key(hash_hex: &str) -> ItemKey {
    ItemKey {
        pk: format!("KEY#{hash_hex}"),
        sk: "KEY".to_owned(),
    }
}

/// The index partition listing a tenant's API keys.
pub fn keys_partition(tenant: &str) -> String {
    format!("T#{tenant}#KEYS")
}

/// The index entry that lists an API key under its tenant, by key id.
pub fn key_index(tenant: &str, key_id: &str) -> IndexKey {
    IndexKey {
        pk: keys_partition(tenant),
        sk: key_id.to_owned(),
    }
}

/// How long mark buckets are kept after their hour: longer than the oldest accepted event,
/// so any retry the API accepts is recognised as one.
pub const EVENT_MARK_TTL_MS: Millis = crate::domain::events::MAX_EVENT_AGE_MS + DAY_MS;
/// How long day buckets are kept: the 90 days of history the API serves, plus margin.
pub const DAY_BUCKET_TTL_MS: Millis = 100 * DAY_MS;

/// Converts a time plus a retention to a DynamoDB TTL value (epoch seconds).
pub fn expiry(at: Millis, keep: Millis) -> Option<i64> {
    Some((at + keep) / 1000)
}

/// The end of a day bucket.
pub fn day_end(day: i64) -> Millis {
    (day + 1) * DAY_MS
}

/// A WebSocket connection, keyed by its connection id alone because that is all a
/// `$disconnect` event and a 410 answer carry.
pub fn connection(connection_id: &str) -> ItemKey {
    ItemKey {
        pk: format!("CONN#{connection_id}"),
        sk: "CONN".to_owned(),
    }
}

/// The connection id of a key made by [`connection`].
pub fn connection_id(pk: &str) -> Option<&str> {
    pk.strip_prefix("CONN#")
}

/// The index partition listing a tenant's WebSocket connections.
pub fn connections_partition(tenant: &str) -> String {
    format!("T#{tenant}#CONNECTIONS")
}

/// The index entry that lists a connection under its tenant.
pub fn connection_index(tenant: &str, connection_id: &str) -> IndexKey {
    IndexKey {
        pk: connections_partition(tenant),
        sk: connection_id.to_owned(),
    }
}

/// How long a connection record is kept: API Gateway closes every WebSocket connection
/// after two hours, so a record whose `$disconnect` was lost expires soon after.
pub const CONNECTION_TTL_MS: Millis = 2 * crate::time::HOUR_MS + 10 * MINUTE_MS;

/// The partition of a tenant's notification configuration: channels, rules, silences and
/// each channel's notification state, read together with one Query.
pub fn notify_partition(tenant: &str) -> String {
    format!("T#{tenant}#NOTIFY")
}

/// A notification channel.
pub fn channel(tenant: &str, channel_id: &str) -> ItemKey {
    ItemKey {
        pk: notify_partition(tenant),
        sk: format!("C#{channel_id}"),
    }
}

/// The partition of a tenant's SLOs.
pub fn slo_partition(tenant: &str) -> String {
    format!("T#{tenant}#SLO")
}

/// An SLO.
pub fn slo(tenant: &str, slo_id: &str) -> ItemKey {
    ItemKey {
        pk: slo_partition(tenant),
        sk: slo_id.to_owned(),
    }
}

/// What a channel was sent, and its outbox.
pub fn channel_state(tenant: &str, channel_id: &str) -> ItemKey {
    ItemKey {
        pk: notify_partition(tenant),
        sk: format!("G#{channel_id}"),
    }
}

/// A notification rule.
pub fn rule(tenant: &str, rule_id: &str) -> ItemKey {
    ItemKey {
        pk: notify_partition(tenant),
        sk: format!("R#{rule_id}"),
    }
}

/// A silence or maintenance window.
pub fn silence(tenant: &str, silence_id: &str) -> ItemKey {
    ItemKey {
        pk: notify_partition(tenant),
        sk: format!("S#{silence_id}"),
    }
}

/// The partition of a tenant's messages: the outbox and the delivery log.
pub fn notifications_partition(tenant: &str) -> String {
    format!("T#{tenant}#NLOG")
}

/// One message to one channel.
pub fn notification(tenant: &str, notification_id: &str) -> ItemKey {
    ItemKey {
        pk: notifications_partition(tenant),
        sk: notification_id.to_owned(),
    }
}

/// The deployment's secret for acknowledge links.
pub fn ack_secret() -> ItemKey {
    ItemKey {
        pk: "DEPLOYMENT".to_owned(),
        sk: "ACK_SECRET".to_owned(),
    }
}
