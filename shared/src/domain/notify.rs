//! Notification configuration as stored and shown: channels, routing rules, silences and
//! maintenance windows, and the matching and schedule rules that decide whether an alert is
//! routed or silenced. Pure: no I/O.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::alerts::{AlertRecord, AlertView, Severity, SourceType};
use crate::time::{format_rfc3339, Millis, DAY_MS, MINUTE_MS};

/// What write-only values are listed as.
pub const HIDDEN: &str = "***";

/// Where a channel delivers, with its secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Destination {
    /// JSON POST signed with `X-Health-Signature`.
    Webhook {
        /// Where to POST.
        url: String,
        /// The HMAC key of the signature.
        secret: String,
    },
    /// A Slack incoming webhook (Block Kit message).
    Slack {
        /// The incoming-webhook URL (its path is the secret).
        url: String,
    },
    /// Email through SMTP (local stack) or SES v2 (AWS).
    Email {
        /// Recipients.
        to: Vec<String>,
    },
    /// A message published to an SNS topic.
    Sns {
        /// The topic.
        topic_arn: String,
    },
    /// PagerDuty Events API v2.
    Pagerduty {
        /// The integration's routing key.
        routing_key: String,
    },
}

impl Destination {
    /// The channel type as the API names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook { .. } => "webhook",
            Self::Slack { .. } => "slack",
            Self::Email { .. } => "email",
            Self::Sns { .. } => "sns",
            Self::Pagerduty { .. } => "pagerduty",
        }
    }

    /// The destination as listed: secrets, routing keys and everything of a URL after its
    /// host are replaced by [`HIDDEN`] (a Slack webhook URL's path is its secret).
    pub fn listed(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Webhook { url, .. } => {
                json!({"type": "webhook", "url": hide_url(url), "secret": HIDDEN})
            }
            Self::Slack { url } => json!({"type": "slack", "url": hide_url(url)}),
            Self::Email { to } => json!({"type": "email", "to": to}),
            Self::Sns { topic_arn } => json!({"type": "sns", "topic_arn": topic_arn}),
            Self::Pagerduty { .. } => json!({"type": "pagerduty", "routing_key": HIDDEN}),
        }
    }

    /// The URL this destination posts to, if it is an HTTP one of its own.
    pub fn url(&self) -> Option<&str> {
        match self {
            Self::Webhook { url, .. } | Self::Slack { url } => Some(url),
            _ => None,
        }
    }
}

/// `https://host:port/***`: enough to recognise a destination, nothing that grants access.
pub fn hide_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}/{HIDDEN}",
                u.scheme(),
                u.host_str().unwrap_or_default()
            )
        }
        Err(_) => HIDDEN.to_owned(),
    }
}

/// A notification channel of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelRecord {
    /// Its id (from the path).
    pub channel_id: String,
    /// For a human; the id when not given.
    pub name: String,
    /// Disabled channels receive nothing.
    pub enabled: bool,
    /// Where it delivers.
    pub destination: Destination,
    /// When it was created.
    pub created_at: Millis,
    /// When it was last changed.
    pub updated_at: Millis,
}

impl ChannelRecord {
    /// The API shape, secrets hidden.
    pub fn view(&self) -> serde_json::Value {
        let mut v = self.destination.listed();
        if let Some(map) = v.as_object_mut() {
            map.insert("channel_id".into(), self.channel_id.clone().into());
            map.insert("name".into(), self.name.clone().into());
            map.insert("enabled".into(), self.enabled.into());
            map.insert("created_at".into(), format_rfc3339(self.created_at).into());
            map.insert("updated_at".into(), format_rfc3339(self.updated_at).into());
        }
        v
    }
}

/// Which alerts a rule or silence applies to; every given key must match, an empty
/// matcher matches every alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// Any of these severities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Vec<Severity>>,
    /// Any of these source types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<Vec<SourceType>>,
    /// A glob over the source id: `*` any run of characters, `?` one character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

impl Matcher {
    /// Whether the alert matches.
    pub fn matches(&self, alert: &AlertRecord) -> bool {
        self.severity
            .as_ref()
            .is_none_or(|s| s.contains(&alert.severity))
            && self
                .source_type
                .as_ref()
                .is_none_or(|s| s.contains(&alert.source_type))
            && self
                .source_id
                .as_ref()
                .is_none_or(|g| wildmatch::WildMatch::new(g).matches(&alert.source_id))
    }
}

/// Routes matching alerts to channels, with Alertmanager's timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleRecord {
    /// Its id (from the path).
    pub rule_id: String,
    /// Channel ids to notify.
    pub channels: Vec<String>,
    /// Which alerts.
    #[serde(rename = "match")]
    pub matcher: Matcher,
    /// Wait this long after the first alert of a new group, so alerts raised together go
    /// out in one message (0: at once).
    pub group_wait_s: u64,
    /// Later changes to a group are sent at most this often.
    pub group_interval_s: u64,
    /// An unacknowledged firing alert is repeated this often.
    pub repeat_interval_s: u64,
    /// Whether resolutions are sent.
    pub send_resolved: bool,
    /// Whether the rule's channels also get the weekly report (the first notifier pass of
    /// each week, Monday UTC, covering Monday to Sunday before).
    #[serde(default)]
    pub weekly_report: bool,
    /// When it was last changed.
    pub updated_at: Millis,
}

/// Defaults of a rule's timing (Alertmanager's defaults, with a shorter group wait).
pub const DEFAULT_GROUP_WAIT_S: u64 = 10;
/// Default `group_interval_s`.
pub const DEFAULT_GROUP_INTERVAL_S: u64 = 300;
/// Default `repeat_interval_s`.
pub const DEFAULT_REPEAT_INTERVAL_S: u64 = 4 * 3600;
/// Longest wait or interval a rule accepts: 7 days.
pub const MAX_INTERVAL_S: u64 = 7 * 24 * 3600;

impl RuleRecord {
    /// The API shape.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "rule_id": self.rule_id,
            "channels": self.channels,
            "match": self.matcher,
            "group_wait_s": self.group_wait_s,
            "group_interval_s": self.group_interval_s,
            "repeat_interval_s": self.repeat_interval_s,
            "send_resolved": self.send_resolved,
            "weekly_report": self.weekly_report,
            "updated_at": format_rfc3339(self.updated_at),
        })
    }
}

/// Day of the week as schedules name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    fn of(day: chrono::Weekday) -> Self {
        match day {
            chrono::Weekday::Mon => Self::Mon,
            chrono::Weekday::Tue => Self::Tue,
            chrono::Weekday::Wed => Self::Wed,
            chrono::Weekday::Thu => Self::Thu,
            chrono::Weekday::Fri => Self::Fri,
            chrono::Weekday::Sat => Self::Sat,
            chrono::Weekday::Sun => Self::Sun,
        }
    }
}

/// A recurring maintenance window: on each listed day, from `start` local time for
/// `duration_minutes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// Days the window starts on; empty: every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Local start time, `HH:MM`.
    pub start: String,
    /// Length in minutes (1 to 10080, a week).
    pub duration_minutes: u32,
}

impl Schedule {
    /// Checks the fields; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        self.timezone.parse::<chrono_tz::Tz>().map_err(|_| {
            format!(
                "schedule.timezone: {} is not an IANA time zone such as Europe/Berlin",
                self.timezone
            )
        })?;
        NaiveTime::parse_from_str(&self.start, "%H:%M")
            .map_err(|_| "schedule.start: must be a local time HH:MM such as 22:00".to_owned())?;
        if !(1..=10_080).contains(&self.duration_minutes) {
            return Err("schedule.duration_minutes: must be from 1 to 10080 (a week)".to_owned());
        }
        Ok(())
    }

    /// The occurrence that covers `now`, as (start, end) in UTC milliseconds, if any.
    ///
    /// Occurrences start on a listed day at `start` local time and last `duration_minutes`
    /// of real time, so a window across midnight belongs to the day it starts on. On the
    /// day a DST change skips the start time, the window starts when the clock resumes
    /// (the first valid local time after the gap); when the start time occurs twice, at
    /// its first occurrence.
    pub fn occurrence_at(&self, now: Millis) -> Option<(Millis, Millis)> {
        let tz: chrono_tz::Tz = self.timezone.parse().ok()?;
        let start = NaiveTime::parse_from_str(&self.start, "%H:%M").ok()?;
        let duration = i64::from(self.duration_minutes) * MINUTE_MS;
        let today = Utc
            .timestamp_millis_opt(now)
            .single()?
            .with_timezone(&tz)
            .date_naive();
        // Every start that can still cover now: back as many days as the window is long.
        let back = duration / DAY_MS + 1;
        (0..=back).find_map(|n| {
            let day: NaiveDate = today - chrono::Days::new(u64::try_from(n).ok()?);
            if !self.days.is_empty() && !self.days.contains(&Weekday::of(day.weekday())) {
                return None;
            }
            let begin = local_start(&tz, day, start)?;
            (begin <= now && now < begin + duration).then_some((begin, begin + duration))
        })
    }
}

/// The UTC time of `time` on `day` in `tz`: the earlier of two when the clock goes back, the
/// end of the gap when it skips forward.
fn local_start(tz: &chrono_tz::Tz, day: NaiveDate, time: NaiveTime) -> Option<Millis> {
    let naive = day.and_time(time);
    if let Some(t) = tz.from_local_datetime(&naive).earliest() {
        return Some(t.timestamp_millis());
    }
    // In a gap: step forward a minute at a time to the first local time that exists (gaps
    // are at most a few hours).
    (1..=24 * 60).find_map(|m| {
        tz.from_local_datetime(&(naive + chrono::Duration::minutes(m)))
            .earliest()
            .map(|t| t.timestamp_millis())
    })
}

/// A one-off silence or a recurring maintenance window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceRecord {
    /// Its id.
    pub silence_id: String,
    /// Which alerts it silences.
    #[serde(rename = "match")]
    pub matcher: Matcher,
    /// Start of a one-off silence.
    pub starts_at: Option<Millis>,
    /// End of a one-off silence (set to the deletion time when deleted early).
    pub ends_at: Option<Millis>,
    /// The recurrence of a maintenance window.
    pub schedule: Option<Schedule>,
    /// Why.
    pub comment: String,
    /// Who created it: the key's name.
    pub created_by: String,
    /// When.
    pub created_at: Millis,
}

impl SilenceRecord {
    /// Whether it is in effect at `now`.
    pub fn active_at(&self, now: Millis) -> bool {
        match &self.schedule {
            Some(s) => s.occurrence_at(now).is_some(),
            None => {
                self.starts_at.is_some_and(|s| s <= now) && self.ends_at.is_some_and(|e| now < e)
            }
        }
    }

    /// Whether it is over for good (a one-off silence past its end).
    pub fn ended_by(&self, now: Millis) -> bool {
        self.schedule.is_none() && self.ends_at.is_none_or(|e| e <= now)
    }

    /// Whether it silences `alert` at `now`.
    pub fn silences(&self, alert: &AlertRecord, now: Millis) -> bool {
        self.active_at(now) && self.matcher.matches(alert)
    }

    /// The API shape.
    pub fn view(&self, now: Millis) -> serde_json::Value {
        let mut v = serde_json::json!({
            "silence_id": self.silence_id,
            "match": self.matcher,
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": format_rfc3339(self.created_at),
            "active": self.active_at(now),
        });
        if let Some(map) = v.as_object_mut() {
            if let Some(s) = &self.schedule {
                map.insert("schedule".into(), serde_json::json!(s));
                if let Some((from, to)) = s.occurrence_at(now) {
                    map.insert("starts_at".into(), format_rfc3339(from).into());
                    map.insert("ends_at".into(), format_rfc3339(to).into());
                }
            } else {
                if let Some(t) = self.starts_at {
                    map.insert("starts_at".into(), format_rfc3339(t).into());
                }
                if let Some(t) = self.ends_at {
                    map.insert("ends_at".into(), format_rfc3339(t).into());
                }
            }
        }
        v
    }
}

/// Whether any of the silences silences `alert` at `now`.
pub fn is_silenced(silences: &[SilenceRecord], alert: &AlertRecord, now: Millis) -> bool {
    silences.iter().any(|s| s.silences(alert, now))
}

/// Silences decide an alert's `silenced` flag, so the alert's API shape with it is made
/// here, beside them (alerts know nothing of silences).
impl AlertRecord {
    /// The API shape, with `silenced` set from the tenant's silences at `now`.
    pub fn view_at(&self, silences: &[SilenceRecord], now: Millis) -> AlertView {
        AlertView {
            silenced: is_silenced(silences, self, now),
            ..self.view()
        }
    }
}

/// What kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// New or escalated alerts.
    Firing,
    /// Alerts whose condition cleared.
    Resolved,
    /// Alerts still firing and not acknowledged.
    Reminder,
    /// Alerts acknowledged here, for channels that track acknowledgement (PagerDuty).
    Acknowledged,
    /// A test message (`POST /api/health/channels/{id}/test`).
    Test,
    /// The weekly report (no alerts).
    Report,
}

impl Kind {
    /// The payload's `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
            Self::Reminder => "reminder",
            Self::Acknowledged => "acknowledged",
            Self::Test => "test",
            Self::Report => "report",
        }
    }
}

/// What a channel was last sent about one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    /// The severity it was sent at.
    pub severity: Severity,
    /// The alert's `raised_at` then (an escalation changes it).
    pub raised_at: Millis,
    /// When it was last sent (first notification or reminder).
    pub at: Millis,
    /// Whether its acknowledgement was sent (channels that track it).
    #[serde(default)]
    pub acknowledged: bool,
}

/// A channel's notification state, stored beside its configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelState {
    /// Firing alerts the channel was told about, by alert id.
    #[serde(default)]
    pub notified: BTreeMap<String, Sent>,
    /// Since when new alerts wait for the group to be sent.
    #[serde(default)]
    pub pending_since: Option<Millis>,
    /// When the group's last firing or resolved message was decided.
    #[serde(default)]
    pub last_group_at: Option<Millis>,
    /// Messages decided and not yet delivered or given up, oldest first.
    #[serde(default)]
    pub outbox: Vec<String>,
    /// Since when every delivery attempt failed; `None` when the last one succeeded.
    #[serde(default)]
    pub failing_since: Option<Millis>,
    /// The last delivery error, for the channel-failing alert.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The last week (`notify::plan::week_of`) whose report was decided for the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_week: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn at(text: &str) -> Millis {
        parse_rfc3339(text).unwrap_or_else(|| panic!("bad time {text}"))
    }

    fn alert(severity: Severity, source_type: SourceType, source_id: &str) -> AlertRecord {
        AlertRecord {
            alert_id: "a".into(),
            severity,
            message: String::new(),
            source_type,
            source_id: source_id.into(),
            condition: "c".into(),
            raised_at: 0,
            acknowledged_by: None,
            acknowledged_at: None,
            notes: None,
            resolved_at: None,
        }
    }

    #[test]
    fn matchers_need_every_given_key_and_glob_the_source_id() {
        let m = Matcher {
            severity: Some(vec![Severity::Critical]),
            source_type: Some(vec![SourceType::Agent]),
            source_id: Some("sales-*".into()),
        };
        assert!(m.matches(&alert(Severity::Critical, SourceType::Agent, "sales-bot")));
        assert!(!m.matches(&alert(Severity::Warning, SourceType::Agent, "sales-bot")));
        assert!(!m.matches(&alert(Severity::Critical, SourceType::System, "sales-bot")));
        assert!(!m.matches(&alert(Severity::Critical, SourceType::Agent, "support-bot")));
        assert!(Matcher::default().matches(&alert(Severity::Info, SourceType::System, "x")));
    }

    fn window(tz: &str, days: Vec<Weekday>, start: &str, minutes: u32) -> Schedule {
        Schedule {
            timezone: tz.into(),
            days,
            start: start.into(),
            duration_minutes: minutes,
        }
    }

    #[test]
    fn a_window_across_midnight_in_a_non_utc_zone_covers_the_next_morning() {
        // Saturday 22:00 Berlin (CET, UTC+1) for 4 hours: Sat 21:00Z to Sun 01:00Z.
        let w = window("Europe/Berlin", vec![Weekday::Sat], "22:00", 240);
        assert!(w.check().is_ok());
        assert_eq!(w.occurrence_at(at("2026-11-28T20:59:59Z")), None);
        assert_eq!(
            w.occurrence_at(at("2026-11-28T21:00:00Z")),
            Some((at("2026-11-28T21:00:00Z"), at("2026-11-29T01:00:00Z")))
        );
        // Sunday 01:30 local: still Saturday's window, although Sunday is not listed.
        assert!(w.occurrence_at(at("2026-11-29T00:30:00Z")).is_some());
        assert_eq!(w.occurrence_at(at("2026-11-29T01:00:00Z")), None);
        // A Friday night is not in it.
        assert_eq!(w.occurrence_at(at("2026-11-27T22:00:00Z")), None);
    }

    #[test]
    fn windows_keep_local_time_across_dst_changes() {
        // 01:00 Berlin daily for 2 h; Sundays 02:30 Berlin for 1 h.
        let daily = window("Europe/Berlin", vec![], "01:00", 120);
        let gap = window("Europe/Berlin", vec![Weekday::Sun], "02:30", 60);
        for (w, now, start, end) in [
            // In summer (UTC+2) 01:00 is 23:00Z the day before.
            (
                &daily,
                "2026-07-01T23:30:00Z",
                "2026-07-01T23:00:00Z",
                "2026-07-02T01:00:00Z",
            ),
            // The night clocks go forward (29 March 2026, 02:00 -> 03:00): 01:00 CET is 00:00Z
            // and the window lasts two real hours.
            (
                &daily,
                "2026-03-29T01:59:00Z",
                "2026-03-29T00:00:00Z",
                "2026-03-29T02:00:00Z",
            ),
            // A start inside the skipped hour begins when the clock resumes, 03:00 CEST.
            (
                &gap,
                "2026-03-29T01:10:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T02:00:00Z",
            ),
            // The night clocks go back (25 October 2026, 03:00 -> 02:00): 02:30 happens twice
            // and the window starts at the first, 00:30Z.
            (
                &gap,
                "2026-10-25T00:45:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z",
            ),
        ] {
            let expected = Some((at(start), at(end)));
            assert_eq!(w.occurrence_at(at(now)), expected, "at {now}");
        }
    }

    #[test]
    fn schedules_name_the_wrong_field() {
        let bad_zone = window("Mars/Olympus", vec![], "22:00", 60).check();
        assert!(bad_zone.is_err_and(|e| e.starts_with("schedule.timezone")));
        let bad_start = window("UTC", vec![], "25:00", 60).check();
        assert!(bad_start.is_err_and(|e| e.starts_with("schedule.start")));
        let bad_length = window("UTC", vec![], "22:00", 0).check();
        assert!(bad_length.is_err_and(|e| e.starts_with("schedule.duration_minutes")));
    }

    #[test]
    fn one_off_silences_hold_between_start_and_end() {
        let s = SilenceRecord {
            silence_id: "s".into(),
            matcher: Matcher::default(),
            starts_at: Some(100),
            ends_at: Some(200),
            schedule: None,
            comment: String::new(),
            created_by: "ops".into(),
            created_at: 0,
        };
        assert!(!s.active_at(99));
        assert!(s.active_at(100));
        assert!(!s.active_at(200));
        assert!(s.ended_by(200));
    }

    #[test]
    fn listed_destinations_hide_secrets_and_url_paths() {
        let d = Destination::Webhook {
            url: "https://hooks.example.com:8443/in/abc?token=x".into(),
            secret: "s3cret".into(),
        };
        let listed = d.listed().to_string();
        assert!(!listed.contains("s3cret") && !listed.contains("abc") && !listed.contains("token"));
        assert!(listed.contains("https://hooks.example.com:8443/***"));
    }
}
