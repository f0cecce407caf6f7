//! Deciding what a channel must be sent, from the stored alerts and what the channel was
//! already sent. Pure: the notifier stores the new state together with the messages in one
//! atomic write, so a decision is made once whoever makes it and whenever it crashes.
//!
//! Timing follows Alertmanager, per channel: a new group (nothing firing notified yet)
//! waits `group_wait_s` so alerts raised together go out together; later changes wait until
//! `group_interval_s` after the group's last message; an escalation goes at once; an
//! unacknowledged firing alert is repeated every `repeat_interval_s`. Unlike Alertmanager,
//! an acknowledged alert gets no reminders.

use crate::domain::alerts::AlertRecord;
use crate::domain::notify::{is_silenced, ChannelState, Kind, RuleRecord, Sent, SilenceRecord};
use crate::time::Millis;

/// Most alerts in one message; a larger group goes out as several messages, which keeps
/// every stored message well under DynamoDB's 400 KB item limit.
pub const MAX_ALERTS_PER_MESSAGE: usize = 100;

/// Weeks since the epoch, starting on Mondays (UTC): 1970-01-05 starts week 0.
pub fn week_of(at: Millis) -> i64 {
    (crate::time::day_of(at) - 4).div_euclid(7)
}

/// When week `week` starts.
pub fn week_start(week: i64) -> Millis {
    (week * 7 + 4) * crate::time::DAY_MS
}

/// Whether a channel's weekly report is due at `now`, and the state to keep: a channel
/// starts counting weeks when a rule first asks for reports (its first report comes the
/// next Monday, covering a whole week), then gets one report per week.
pub fn report_due(last: Option<i64>, wanted: bool, now: Millis) -> (bool, Option<i64>) {
    let week = week_of(now);
    match (wanted, last) {
        (false, _) => (false, last),
        (true, None) => (false, Some(week)),
        (true, Some(w)) if w < week => (true, Some(week)),
        (true, Some(w)) => (false, Some(w)),
    }
}

/// A message to send, before it gets an id.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Which kind.
    pub kind: Kind,
    /// The alerts it is about, as they are now.
    pub alerts: Vec<AlertRecord>,
}

/// The outcome of planning one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The channel's state after the messages are decided.
    pub state: ChannelState,
    /// The messages, in sending order.
    pub messages: Vec<Draft>,
    /// When something not yet due falls due (a group wait, an interval, a reminder).
    pub next_due: Option<Millis>,
}

/// The timing that applies to one alert on one channel: the most eager of the rules that
/// route it there.
#[derive(Debug, Clone, Copy)]
struct Timing {
    group_wait: Millis,
    group_interval: Millis,
    repeat: Millis,
    send_resolved: bool,
}

fn timing(rules: &[&RuleRecord], alert: &AlertRecord) -> Option<Timing> {
    let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
    rules
        .iter()
        .filter(|r| r.matcher.matches(alert))
        .map(|r| Timing {
            group_wait: ms(r.group_wait_s),
            group_interval: ms(r.group_interval_s),
            repeat: ms(r.repeat_interval_s),
            send_resolved: r.send_resolved,
        })
        .reduce(|a, b| Timing {
            group_wait: a.group_wait.min(b.group_wait),
            group_interval: a.group_interval.min(b.group_interval),
            repeat: a.repeat.min(b.repeat),
            send_resolved: a.send_resolved || b.send_resolved,
        })
}

fn earliest(a: Option<Millis>, b: Millis) -> Option<Millis> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// What one look over the alerts found each routed alert to need.
#[derive(Default)]
struct Sorted<'a> {
    new_firing: Vec<(&'a AlertRecord, Timing)>,
    changed: Vec<(&'a AlertRecord, Timing)>,
    escalated: bool,
    resolved: Vec<(&'a AlertRecord, Timing)>,
    reminders: Vec<&'a AlertRecord>,
    acknowledged: Vec<&'a AlertRecord>,
}

/// How a firing alert that was notified stands against what was sent about it.
enum Since {
    /// Raised again or more severe: it goes at once.
    Escalated,
    /// Less severe than was sent.
    Changed,
    /// Acknowledged since, on a channel told about acknowledgements.
    Acknowledged,
    /// Unacknowledged and its reminder is due.
    Reminder,
    /// Unacknowledged; its reminder falls due then.
    ReminderAt(Millis),
    /// Nothing to say.
    Unchanged,
}

fn since_sent(
    alert: &AlertRecord,
    sent: &Sent,
    t: Timing,
    tracks_acknowledgement: bool,
    now: Millis,
) -> Since {
    if alert.raised_at != sent.raised_at || alert.severity < sent.severity {
        Since::Escalated
    } else if alert.severity != sent.severity {
        Since::Changed
    } else if alert.acknowledged_at.is_some() {
        if tracks_acknowledgement && !sent.acknowledged {
            Since::Acknowledged
        } else {
            Since::Unchanged
        }
    } else if sent.at.saturating_add(t.repeat) <= now {
        Since::Reminder
    } else {
        Since::ReminderAt(sent.at.saturating_add(t.repeat))
    }
}

/// One channel's plan as it is being made.
struct Planner<'s> {
    /// The state before this plan: group timing counts from it.
    before: &'s ChannelState,
    next: ChannelState,
    messages: Vec<Draft>,
    next_due: Option<Millis>,
    now: Millis,
}

/// Plans one channel at `now`. `rules` are the enabled rules that list the channel;
/// `alerts` every stored alert of the tenant (active and recently resolved);
/// `tracks_acknowledgement` is true for channels told about acknowledgements (PagerDuty).
pub fn plan(
    state: &ChannelState,
    rules: &[&RuleRecord],
    alerts: &[AlertRecord],
    silences: &[SilenceRecord],
    tracks_acknowledgement: bool,
    now: Millis,
) -> Plan {
    let mut planner = Planner {
        before: state,
        next: state.clone(),
        messages: Vec::new(),
        next_due: None,
        now,
    };
    planner.forget_unrouted(rules, alerts);
    let sorted = planner.sort(rules, alerts, silences, tracks_acknowledgement);
    planner.firing(&sorted);
    planner.resolved(&sorted.resolved);
    planner.reminders(sorted.reminders);
    planner.acknowledged(sorted.acknowledged);
    Plan {
        state: planner.next,
        messages: planner.messages,
        next_due: planner.next_due,
    }
}

impl Planner<'_> {
    /// Forgets alerts that are gone from the store (expired) or no longer routed here.
    fn forget_unrouted(&mut self, rules: &[&RuleRecord], alerts: &[AlertRecord]) {
        self.next.notified.retain(|id, _| {
            alerts
                .iter()
                .any(|a| &a.alert_id == id && timing(rules, a).is_some())
        });
    }

    fn sort<'a>(
        &mut self,
        rules: &[&RuleRecord],
        alerts: &'a [AlertRecord],
        silences: &[SilenceRecord],
        tracks_acknowledgement: bool,
    ) -> Sorted<'a> {
        let mut sorted = Sorted::default();
        for alert in alerts {
            let Some(t) = timing(rules, alert) else {
                continue;
            };
            let silenced = is_silenced(silences, alert, self.now);
            let sent = self.next.notified.get(&alert.alert_id);
            match (alert.resolved_at, sent) {
                (Some(_), Some(_)) => {
                    if silenced || !t.send_resolved {
                        self.next.notified.remove(&alert.alert_id);
                    } else {
                        sorted.resolved.push((alert, t));
                    }
                }
                (Some(_), None) => {}
                (None, _) if silenced => {}
                (None, None) => sorted.new_firing.push((alert, t)),
                (None, Some(s)) => {
                    match since_sent(alert, s, t, tracks_acknowledgement, self.now) {
                        Since::Escalated => {
                            sorted.escalated = true;
                            sorted.changed.push((alert, t));
                        }
                        Since::Changed => sorted.changed.push((alert, t)),
                        Since::Acknowledged => sorted.acknowledged.push(alert),
                        Since::Reminder => sorted.reminders.push(alert),
                        Since::ReminderAt(at) => self.next_due = earliest(self.next_due, at),
                        Since::Unchanged => {}
                    }
                }
            }
        }
        sorted
    }

    /// When a group with these timings may next be sent: the shortest group interval after
    /// the channel's last group message (at once if it never had one).
    fn interval_due<'t>(&self, timings: impl Iterator<Item = &'t Timing>) -> Millis {
        let interval = timings.map(|t| t.group_interval).min().unwrap_or(0);
        self.before
            .last_group_at
            .map_or(self.now, |at| at.saturating_add(interval))
    }

    /// When the firing message (new alerts and changes to notified ones) falls due.
    fn firing_due(&mut self, sorted: &Sorted) -> Millis {
        if sorted.escalated {
            self.now
        } else if !sorted.changed.is_empty() || !self.before.notified.is_empty() {
            let all = sorted.new_firing.iter().chain(&sorted.changed);
            self.interval_due(all.map(|(_, t)| t))
        } else if sorted.new_firing.is_empty() {
            Millis::MAX
        } else {
            let since = *self.next.pending_since.get_or_insert(self.now);
            let wait = sorted
                .new_firing
                .iter()
                .map(|(_, t)| t.group_wait)
                .min()
                .unwrap_or(0);
            since.saturating_add(wait)
        }
    }

    fn firing(&mut self, sorted: &Sorted) {
        if sorted.new_firing.is_empty() {
            self.next.pending_since = None;
        }
        let due = self.firing_due(sorted);
        let firing: Vec<&AlertRecord> = sorted
            .new_firing
            .iter()
            .chain(&sorted.changed)
            .map(|(a, _)| *a)
            .collect();
        if firing.is_empty() {
            return;
        }
        if due > self.now {
            self.next_due = earliest(self.next_due, due);
            return;
        }
        for a in &firing {
            self.next.notified.insert(
                a.alert_id.clone(),
                Sent {
                    severity: a.severity,
                    raised_at: a.raised_at,
                    at: self.now,
                    acknowledged: a.acknowledged_at.is_some(),
                },
            );
        }
        self.next.pending_since = None;
        self.next.last_group_at = Some(self.now);
        push_messages(&mut self.messages, Kind::Firing, firing);
    }

    fn resolved(&mut self, resolved: &[(&AlertRecord, Timing)]) {
        if resolved.is_empty() {
            return;
        }
        let due = self.interval_due(resolved.iter().map(|(_, t)| t));
        if due > self.now {
            self.next_due = earliest(self.next_due, due);
            return;
        }
        for (a, _) in resolved {
            self.next.notified.remove(&a.alert_id);
        }
        self.next.last_group_at = Some(self.now);
        push_messages(
            &mut self.messages,
            Kind::Resolved,
            resolved.iter().map(|(a, _)| *a).collect(),
        );
    }

    fn reminders(&mut self, reminders: Vec<&AlertRecord>) {
        if reminders.is_empty() {
            return;
        }
        for a in &reminders {
            if let Some(s) = self.next.notified.get_mut(&a.alert_id) {
                s.at = self.now;
            }
        }
        push_messages(&mut self.messages, Kind::Reminder, reminders);
    }

    fn acknowledged(&mut self, acknowledged: Vec<&AlertRecord>) {
        if acknowledged.is_empty() {
            return;
        }
        for a in &acknowledged {
            if let Some(s) = self.next.notified.get_mut(&a.alert_id) {
                s.acknowledged = true;
            }
        }
        push_messages(&mut self.messages, Kind::Acknowledged, acknowledged);
    }
}

fn push_messages(messages: &mut Vec<Draft>, kind: Kind, mut alerts: Vec<&AlertRecord>) {
    // Most urgent first, then by id, so a message reads the same however it was assembled.
    alerts.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then(a.alert_id.cmp(&b.alert_id))
    });
    for chunk in alerts.chunks(MAX_ALERTS_PER_MESSAGE) {
        messages.push(Draft {
            kind,
            alerts: chunk.iter().map(|a| (*a).clone()).collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alerts::{Severity, SourceType};
    use crate::domain::notify::{Matcher, Schedule};

    const T0: Millis = 1_800_000_000_000;
    const S: Millis = 1000;

    fn rule(wait: u64, interval: u64, repeat: u64) -> RuleRecord {
        RuleRecord {
            rule_id: "r".into(),
            channels: vec!["c".into()],
            matcher: Matcher::default(),
            group_wait_s: wait,
            group_interval_s: interval,
            repeat_interval_s: repeat,
            send_resolved: true,
            weekly_report: false,
            updated_at: 0,
        }
    }

    #[test]
    fn weeks_start_on_monday_and_a_report_goes_once_a_week() {
        // 2026-11-30 is a Monday.
        let monday = crate::time::parse_rfc3339("2026-11-30T00:00:00Z").unwrap_or_default();
        assert_eq!(week_start(week_of(monday)), monday);
        assert_eq!(
            week_of(monday - 1),
            week_of(monday) - 1,
            "Sunday night is last week"
        );
        assert_eq!(
            week_of(monday + 7 * crate::time::DAY_MS - 1),
            week_of(monday)
        );
        let w = week_of(monday);
        // A rule that starts asking mid-week waits for the next Monday.
        assert_eq!(
            report_due(None, true, monday + 3 * crate::time::DAY_MS),
            (false, Some(w))
        );
        assert_eq!(
            report_due(Some(w), true, monday + 6 * crate::time::DAY_MS),
            (false, Some(w))
        );
        assert_eq!(
            report_due(Some(w), true, monday + 7 * crate::time::DAY_MS),
            (true, Some(w + 1))
        );
        assert_eq!(
            report_due(Some(w + 1), true, monday + 7 * crate::time::DAY_MS),
            (false, Some(w + 1))
        );
        assert_eq!(
            report_due(Some(w), false, monday + 30 * crate::time::DAY_MS),
            (false, Some(w))
        );
    }

    fn alert(id: &str, severity: Severity, raised_at: Millis) -> AlertRecord {
        let source = (SourceType::System, id);
        AlertRecord::open(
            id,
            severity,
            format!("{id} fires"),
            source,
            "cpu_high",
            raised_at,
        )
    }

    /// The plan for `a` alone, on a channel that has sent nothing yet, at `T0`.
    /// The plan at `now` after `state` for one rule and one alert, nothing silenced, the
    /// channel not tracking acknowledgements.
    fn plan_one(state: &ChannelState, r: &RuleRecord, a: &AlertRecord, now: Millis) -> Plan {
        plan(state, &[r], std::slice::from_ref(a), &[], false, now)
    }

    fn first_plan(r: &RuleRecord, a: &AlertRecord) -> Plan {
        plan_one(&ChannelState::default(), r, a, T0)
    }

    fn kinds(p: &Plan) -> Vec<(Kind, usize)> {
        p.messages
            .iter()
            .map(|m| (m.kind, m.alerts.len()))
            .collect()
    }

    #[test]
    fn alerts_raised_together_wait_for_the_group_and_go_out_in_one_message() {
        let r = rule(10, 300, 3600);
        let alerts: Vec<_> = (0..50)
            .map(|i| alert(&format!("a{i:02}"), Severity::Warning, T0))
            .collect();
        let first = plan(&ChannelState::default(), &[&r], &alerts, &[], false, T0);
        assert!(first.messages.is_empty());
        assert_eq!(first.next_due, Some(T0 + 10 * S));
        // Planned again before the wait is over: still waiting, from the first sighting.
        let again = plan(&first.state, &[&r], &alerts, &[], false, T0 + 5 * S);
        assert!(again.messages.is_empty());
        assert_eq!(again.next_due, Some(T0 + 10 * S));
        let due = plan(&again.state, &[&r], &alerts, &[], false, T0 + 10 * S);
        assert_eq!(kinds(&due), [(Kind::Firing, 50)]);
        // Nothing more to say until the reminder.
        let quiet = plan(&due.state, &[&r], &alerts, &[], false, T0 + 11 * S);
        assert!(quiet.messages.is_empty());
        assert_eq!(quiet.next_due, Some(T0 + 10 * S + 3600 * S));
    }

    #[test]
    fn later_alerts_wait_for_the_group_interval_and_escalations_go_at_once() {
        let r = rule(0, 300, 3600);
        let a = alert("a", Severity::Warning, T0);
        let first = first_plan(&r, &a);
        assert_eq!(kinds(&first), [(Kind::Firing, 1)]);
        let b = alert("b", Severity::Warning, T0 + 60 * S);
        let later = plan(
            &first.state,
            &[&r],
            &[a.clone(), b.clone()],
            &[],
            false,
            T0 + 60 * S,
        );
        assert!(later.messages.is_empty());
        assert_eq!(later.next_due, Some(T0 + 300 * S));
        // a escalates: it goes now, and b, which was waiting, goes with it.
        let mut a2 = a.clone();
        a2.severity = Severity::Critical;
        a2.raised_at = T0 + 90 * S;
        let escalation = plan(&later.state, &[&r], &[a2, b], &[], false, T0 + 90 * S);
        assert_eq!(kinds(&escalation), [(Kind::Firing, 2)]);
        assert_eq!(escalation.messages[0].alerts[0].alert_id, "a");
    }

    #[test]
    fn reminders_repeat_until_acknowledged() {
        let r = rule(0, 60, 600);
        let a = alert("a", Severity::Critical, T0);
        let first = first_plan(&r, &a);
        let reminder = plan_one(&first.state, &r, &a, T0 + 600 * S);
        assert_eq!(kinds(&reminder), [(Kind::Reminder, 1)]);
        let next = plan_one(&reminder.state, &r, &a, T0 + 900 * S);
        assert!(next.messages.is_empty());
        assert_eq!(next.next_due, Some(T0 + 1200 * S));
        let mut acked = a;
        acked.acknowledged_at = Some(T0 + 1000 * S);
        let after_ack = plan(&next.state, &[&r], &[acked], &[], false, T0 + 5000 * S);
        assert!(after_ack.messages.is_empty());
        assert_eq!(after_ack.next_due, None);
    }

    #[test]
    fn acknowledgements_reach_channels_that_track_them_once() {
        let r = rule(0, 60, 600);
        let a = alert("a", Severity::Critical, T0);
        let first = plan(
            &ChannelState::default(),
            &[&r],
            std::slice::from_ref(&a),
            &[],
            true,
            T0,
        );
        let mut acked = a;
        acked.acknowledged_at = Some(T0 + S);
        let ack = plan(&first.state, &[&r], &[acked.clone()], &[], true, T0 + S);
        assert_eq!(kinds(&ack), [(Kind::Acknowledged, 1)]);
        let again = plan(&ack.state, &[&r], &[acked], &[], true, T0 + 2 * S);
        assert!(again.messages.is_empty());
    }

    #[test]
    fn resolutions_follow_send_resolved_and_the_group_interval() {
        let mut r = rule(0, 60, 600);
        let a = alert("a", Severity::Warning, T0);
        let first = first_plan(&r, &a);
        let mut cleared = a;
        cleared.resolved_at = Some(T0 + 30 * S);
        let early = plan_one(&first.state, &r, &cleared, T0 + 30 * S);
        assert!(early.messages.is_empty());
        assert_eq!(early.next_due, Some(T0 + 60 * S));
        let due = plan_one(&early.state, &r, &cleared, T0 + 60 * S);
        assert_eq!(kinds(&due), [(Kind::Resolved, 1)]);
        assert!(due.state.notified.is_empty());
        r.send_resolved = false;
        let quiet = plan_one(&first.state, &r, &cleared, T0 + 60 * S);
        assert!(quiet.messages.is_empty());
        assert!(quiet.state.notified.is_empty());
    }

    #[test]
    fn a_silence_holds_notifications_and_its_end_notifies_what_still_fires() {
        let r = rule(0, 60, 600);
        let a = alert("a", Severity::Critical, T0);
        let silence = SilenceRecord {
            silence_id: "s".into(),
            matcher: Matcher::default(),
            starts_at: Some(T0 - S),
            ends_at: Some(T0 + 120 * S),
            schedule: None,
            comment: "deploy".into(),
            created_by: "ops".into(),
            created_at: T0 - S,
        };
        let silenced = plan(
            &ChannelState::default(),
            &[&r],
            std::slice::from_ref(&a),
            std::slice::from_ref(&silence),
            false,
            T0,
        );
        assert!(silenced.messages.is_empty());
        let after = plan(
            &silenced.state,
            &[&r],
            &[a],
            &[silence],
            false,
            T0 + 120 * S,
        );
        assert_eq!(kinds(&after), [(Kind::Firing, 1)]);
    }

    #[test]
    fn a_maintenance_window_silences_only_during_its_occurrence() {
        let r = rule(0, 60, 600);
        let window = SilenceRecord {
            silence_id: "w".into(),
            matcher: Matcher::default(),
            starts_at: None,
            ends_at: None,
            schedule: Some(Schedule {
                timezone: "UTC".into(),
                days: vec![],
                start: "00:00".into(),
                duration_minutes: 60,
            }),
            comment: String::new(),
            created_by: "ops".into(),
            created_at: 0,
        };
        // T0 is 2027-01-15T08:00:00Z: outside the window.
        let a = alert("a", Severity::Critical, T0);
        let p = plan(&ChannelState::default(), &[&r], &[a], &[window], false, T0);
        assert_eq!(kinds(&p), [(Kind::Firing, 1)]);
    }

    #[test]
    fn unrouted_alerts_are_ignored_and_big_groups_are_split() {
        let mut r = rule(0, 60, 600);
        r.matcher.severity = Some(vec![Severity::Critical]);
        let alerts: Vec<_> = (0..250)
            .map(|i| alert(&format!("a{i:03}"), Severity::Critical, T0))
            .chain([alert("w", Severity::Warning, T0)])
            .collect();
        let p = plan(&ChannelState::default(), &[&r], &alerts, &[], false, T0);
        assert_eq!(
            kinds(&p),
            [(Kind::Firing, 100), (Kind::Firing, 100), (Kind::Firing, 50)]
        );
        assert!(!p.state.notified.contains_key("w"));
    }
}
