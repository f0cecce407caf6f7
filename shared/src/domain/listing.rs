//! Search, status filter and sort of the agent and integration lists, done by the server so
//! that a fleet of 10,000 need not reach the browser: the client asks for one page of what
//! matches, in its order.
//!
//! Each order is a key per item (a string that sorts as the order does, ending in the id),
//! so a page's cursor is the last key it returned and the next page starts after it, even
//! when items changed places in between.

use crate::domain::health::{AgentHealth, AgentStatus, IntegrationHealth, IntegrationStatus};
use crate::time::parse_rfc3339;

/// Longest search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 128;

/// Separates the parts of a sort key; below every printable character, so a shorter name
/// sorts before a longer one that starts with it.
const SEP: char = '\u{1f}';

/// The orders a list can come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// By id (the store's order; the default).
    #[default]
    Id,
    /// By name, case-insensitive, then id.
    Name,
    /// Worst status first, then by name.
    Status,
    /// The worst rate first (an agent's lowest success rate, an integration's highest error
    /// rate), items without one last, then by name.
    Rate,
    /// The most recently active first, then by name.
    Recent,
}

impl Sort {
    /// Every order's name, as `sort=` takes it.
    pub const NAMES: [&'static str; 5] = ["id", "name", "status", "rate", "recent"];

    /// Its name, as `sort=` takes it.
    pub fn name(self) -> &'static str {
        // The variants are declared in the order of NAMES.
        Self::NAMES[self as usize]
    }

    /// The order named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "id" => Self::Id,
            "name" => Self::Name,
            "status" => Self::Status,
            "rate" => Self::Rate,
            "recent" => Self::Recent,
            _ => return None,
        })
    }
}

/// What a list request asks for beyond paging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Text the id or the name contains, lower case.
    pub search: Option<String>,
    /// The status items must have.
    pub status: Option<String>,
    /// The order.
    pub sort: Sort,
}

impl Selection {
    /// Whether it asks for anything but the whole list by id (which the store pages by
    /// itself).
    pub fn is_plain(&self) -> bool {
        self.search.is_none() && self.status.is_none() && self.sort == Sort::Id
    }

    /// Whether selecting needs each item's health (its status, rate or last activity), not
    /// only its id and name: without, only the answer's items need their health computed.
    pub fn needs_health(&self) -> bool {
        self.status.is_some() || !matches!(self.sort, Sort::Id | Sort::Name)
    }
}

/// An item of a list that can be searched and ordered by id and name.
pub trait Named {
    /// Its id.
    fn id(&self) -> &str;
    /// Its display name.
    fn name(&self) -> &str;
}

/// An item of a list that can be searched, filtered and sorted.
pub trait Listed: Named {
    /// The statuses an item of this kind can have, worst first.
    const STATUSES: &'static [&'static str];
    /// Its status, as the API writes it.
    fn status(&self) -> &'static str;
    /// How bad its rate is, from 0 (all well) to 1; `None` without one.
    fn badness(&self) -> Option<f64>;
    /// When it was last active or used.
    fn last(&self) -> Option<&str>;
}

impl Named for AgentHealth {
    fn id(&self) -> &str {
        &self.agent_id
    }
    fn name(&self) -> &str {
        &self.agent_name
    }
}

impl Listed for AgentHealth {
    const STATUSES: &'static [&'static str] = &["error", "paused", "idle", "active"];
    fn status(&self) -> &'static str {
        match self.status {
            AgentStatus::Error => "error",
            AgentStatus::Paused => "paused",
            AgentStatus::Idle => "idle",
            AgentStatus::Active => "active",
        }
    }
    /// An agent without executions in the hour has no rate to judge.
    fn badness(&self) -> Option<f64> {
        (self.metrics.recent_executions > 0).then_some(1.0 - self.success_rate)
    }
    fn last(&self) -> Option<&str> {
        self.last_active.as_deref()
    }
}

impl Named for IntegrationHealth {
    fn id(&self) -> &str {
        &self.integration_id
    }
    fn name(&self) -> &str {
        &self.integration_name
    }
}

impl Listed for IntegrationHealth {
    const STATUSES: &'static [&'static str] = &["error", "degraded", "healthy"];
    fn status(&self) -> &'static str {
        match self.status {
            IntegrationStatus::Error => "error",
            IntegrationStatus::Degraded => "degraded",
            IntegrationStatus::Healthy => "healthy",
        }
    }
    fn badness(&self) -> Option<f64> {
        Some(self.error_rate)
    }
    fn last(&self) -> Option<&str> {
        self.last_used.as_deref()
    }
}

/// The key that places `item` in `sort`'s order (byte order of the keys).
pub fn sort_key<T: Listed>(item: &T, sort: Sort) -> String {
    if let Some(key) = named_key(item, sort) {
        return key;
    }
    let (id, name) = (item.id(), item.name().to_lowercase());
    match sort {
        Sort::Status => {
            let rank = T::STATUSES
                .iter()
                .position(|s| *s == item.status())
                .unwrap_or(T::STATUSES.len());
            format!("{rank:02}{name}{SEP}{id}")
        }
        Sort::Rate => {
            // Worst first: 1 - badness ascending; none after every rate.
            let place = item.badness().map_or(2_000_000_000, |b| {
                ((1.0 - b.clamp(0.0, 1.0)) * 1e9).round() as u64
            });
            format!("{place:010}{name}{SEP}{id}")
        }
        // Recent (id and name were keyed above).
        _ => {
            let at = item.last().and_then(parse_rfc3339).unwrap_or(0);
            let place = i64::MAX - at.max(0);
            format!("{place:019}{name}{SEP}{id}")
        }
    }
}

/// The key of `item` in an order by id or by name; `None` for an order by its health.
fn named_key<T: Named>(item: &T, sort: Sort) -> Option<String> {
    match sort {
        Sort::Id => Some(item.id().to_owned()),
        Sort::Name => Some(format!("{}{SEP}{}", item.name().to_lowercase(), item.id())),
        _ => None,
    }
}

/// What of `items` the selection keeps, in its order, each with its sort key.
pub fn select<T: Listed>(items: Vec<T>, selection: &Selection) -> Vec<(String, T)> {
    select_by(items, selection, |x| {
        selection
            .status
            .as_deref()
            .is_none_or(|s| x.status() == s)
            .then(|| sort_key(x, selection.sort))
    })
}

/// [`select`] for a selection that needs no health ([`Selection::needs_health`]): by id
/// and name alone, so items can be selected before their health is computed. A status
/// filter or another order, which it cannot judge, keeps nothing.
pub fn select_named<T: Named>(items: Vec<T>, selection: &Selection) -> Vec<(String, T)> {
    if selection.status.is_some() {
        return Vec::new();
    }
    select_by(items, selection, |x| named_key(x, selection.sort))
}

/// The items whose id or name contains the search and to which `key` gives a sort key, in
/// the order of those keys.
fn select_by<T: Named>(
    items: Vec<T>,
    selection: &Selection,
    key: impl Fn(&T) -> Option<String>,
) -> Vec<(String, T)> {
    let mut out: Vec<(String, T)> = items
        .into_iter()
        .filter(|x| {
            selection.search.as_deref().is_none_or(|q| {
                x.id().to_lowercase().contains(q) || x.name().to_lowercase().contains(q)
            })
        })
        .filter_map(|x| key(&x).map(|k| (k, x)))
        .collect();
    out.sort_by(|(a, _), (b, _)| a.cmp(b));
    out
}

/// One page of a selection: at most `limit` items after the key `after`, and the key to
/// continue after when more follow.
pub fn page<T>(
    selected: Vec<(String, T)>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    let start = after.map_or(0, |a| selected.partition_point(|(k, _)| k.as_str() <= a));
    let mut rest = selected.into_iter().skip(start);
    let page: Vec<(String, T)> = rest.by_ref().take(limit).collect();
    let next = match rest.next() {
        Some(_) => page.last().map(|(k, _)| k.clone()),
        None => None,
    };
    (page.into_iter().map(|(_, x)| x).collect(), next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::AgentRecord;

    const NOW: i64 = 1_800_000_000_000;

    fn agent(id: &str, name: &str, rate: Option<f64>, last: Option<i64>) -> AgentHealth {
        let mut record = AgentRecord::new(id, NOW);
        record.agent_name = name.to_owned();
        record.last_active = last;
        let mut h = crate::domain::health::agent_health(&record, &[], &[], &[], NOW);
        if let Some(r) = rate {
            h.success_rate = r;
            h.metrics.recent_executions = 4;
        }
        h
    }

    fn ids(v: &[AgentHealth]) -> Vec<&str> {
        v.iter().map(|a| a.agent_id.as_str()).collect()
    }

    fn fleet() -> Vec<AgentHealth> {
        vec![
            agent("a3", "zeta", Some(1.0), Some(NOW - 3_000)),
            agent("a1", "Alpha", Some(0.5), Some(NOW - 1_000)),
            agent("a2", "alpha", None, None),
            agent("a4", "Gamma", Some(0.25), Some(NOW - 2_000)),
        ]
    }

    fn sorted(sort: Sort) -> Vec<String> {
        let selection = Selection {
            sort,
            ..Selection::default()
        };
        select(fleet(), &selection)
            .into_iter()
            .map(|(_, a)| a.agent_id)
            .collect()
    }

    #[test]
    fn by_id_or_name_the_records_select_what_the_health_would() {
        // Selected by id and name alone (before health is computed), a search and an
        // order by id or name keep and order exactly what they keep and order of the
        // health objects.
        for sort in [Sort::Id, Sort::Name] {
            for search in [None, Some("alpha"), Some("a4"), Some("nobody")] {
                let selection = Selection {
                    search: search.map(str::to_owned),
                    status: None,
                    sort,
                };
                assert!(!selection.needs_health());
                let by_health: Vec<(String, String)> = select(fleet(), &selection)
                    .into_iter()
                    .map(|(k, a)| (k, a.agent_id))
                    .collect();
                let by_name: Vec<(String, String)> = select_named(fleet(), &selection)
                    .into_iter()
                    .map(|(k, a)| (k, a.agent_id))
                    .collect();
                assert_eq!(by_name, by_health, "{sort:?}, searching {search:?}");
            }
        }
        for needs in [
            Selection {
                status: Some("idle".into()),
                ..Selection::default()
            },
            Selection {
                sort: Sort::Rate,
                ..Selection::default()
            },
        ] {
            assert!(needs.needs_health(), "{needs:?}");
            assert!(select_named(fleet(), &needs).is_empty(), "{needs:?}");
        }
    }

    #[test]
    fn each_order_sorts_as_the_dashboard_did() {
        assert_eq!(sorted(Sort::Id), ["a1", "a2", "a3", "a4"]);
        assert_eq!(
            sorted(Sort::Name),
            ["a1", "a2", "a4", "a3"],
            "case-insensitive (Alpha, alpha, Gamma, zeta), ties by id"
        );
        let mut failing = fleet();
        failing[0].status = AgentStatus::Error;
        failing[2].status = AgentStatus::Active;
        let by_status: Vec<String> = select(
            failing,
            &Selection {
                sort: Sort::Status,
                ..Selection::default()
            },
        )
        .into_iter()
        .map(|(_, a)| a.agent_id)
        .collect();
        assert_eq!(
            by_status,
            ["a3", "a1", "a4", "a2"],
            "error (a3) first, then idle by name (Alpha, Gamma), active (a2) last"
        );
        assert_eq!(
            sorted(Sort::Rate),
            ["a4", "a1", "a3", "a2"],
            "lowest success rate first, none last"
        );
        assert_eq!(
            sorted(Sort::Recent),
            ["a1", "a4", "a3", "a2"],
            "most recent first, never active last"
        );
    }

    #[test]
    fn search_matches_id_or_name_and_status_filters() {
        let found = |search: &str, status: Option<&str>| {
            let selection = Selection {
                search: Some(search.to_owned()),
                status: status.map(str::to_owned),
                sort: Sort::Name,
            };
            let kept: Vec<AgentHealth> = select(fleet(), &selection)
                .into_iter()
                .map(|(_, a)| a)
                .collect();
            ids(&kept)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(found("alp", None), ["a1", "a2"]);
        assert_eq!(found("a4", None), ["a4"]);
        assert_eq!(found("a", Some("paused")), Vec::<String>::new());
        assert_eq!(found("a", Some("idle")).len(), 4);
    }

    #[test]
    fn pages_continue_after_the_last_key_even_when_that_item_is_gone() {
        let selection = Selection {
            sort: Sort::Rate,
            ..Selection::default()
        };
        let (first, next) = page(select(fleet(), &selection), None, 2);
        assert_eq!(ids(&first), ["a4", "a1"]);
        let next = next.expect("a cursor: more follow");
        // a1, whose key the cursor holds, is gone by the next request.
        let mut changed = fleet();
        changed.retain(|a| a.agent_id != "a1");
        let (second, last) = page(select(changed, &selection), Some(&next), 2);
        assert_eq!(ids(&second), ["a3", "a2"]);
        assert_eq!(last, None, "the last page has no cursor");
    }
}
