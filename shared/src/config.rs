//! Typed configuration, read once at startup. An invalid value is an error naming the
//! variable, never a silent default.

use crate::domain::address::AllowedAddress;

/// The variable that chooses the log format (read by `telemetry` when logging starts,
/// before the rest of the configuration).
pub const LOG_FORMAT_VAR: &str = "HEALTH_LOG_FORMAT";

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What a valid value looks like.
    pub reason: &'static str,
}

/// The contract's configuration, plus deployment settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `HEALTH_POLLING_INTERVAL`: seconds between collector cycles (1..=3600, default 30).
    pub polling_interval_secs: u64,
    /// `HEALTH_POLLING_ENABLED`: whether the collector runs (default true).
    pub polling_enabled: bool,
    /// `ALERT_ERROR_RATE_THRESHOLD`: agent error rate that raises a warning (0..=1, 0.5).
    pub error_rate_threshold: f64,
    /// `ALERT_LATENCY_THRESHOLD`: integration latency in ms that raises a warning (5000).
    pub latency_threshold_ms: f64,
    /// `ALERT_STUCK_MIN_SECONDS`: least time an execution runs before it can count as
    /// stuck (1..=604800, default 900); the bar is the larger of this and 3 × the agent's
    /// 7-day p99 duration.
    pub stuck_min_seconds: u64,
    /// `ALERT_QUEUE_DEPTH_THRESHOLD`: queue depth that raises a warning (100).
    pub queue_depth_threshold: u64,
    /// `PROBE_ALLOWED_ADDRESSES`: comma-separated addresses that probes and notification
    /// channels may target even though they are loopback or private (default none): an IP
    /// (`127.0.0.1`, `::1`) opens every port, an address with a port (`127.0.0.1:8025`,
    /// `[::1]:8025`) only that port.
    pub probe_allowed_addresses: Vec<AllowedAddress>,
    /// `COLLECTOR_INVOCATION_SECONDS`: how long one scheduled collector invocation keeps
    /// running cycles (1..=840, default 60: the EventBridge schedule fires every minute).
    pub collector_invocation_secs: u64,
    /// `HEALTH_PUBLIC_URL`: the address users reach this deployment at (no trailing slash),
    /// for dashboard and acknowledge links in notifications. The local stack defaults it
    /// to its own address; without it messages carry no links.
    pub public_url: Option<String>,
    /// `HEALTH_EMAIL_TRANSPORT`: how email channels send: `smtp://host:port` (plain, or
    /// STARTTLS when the server offers it), `smtps://host:port` (TLS), optionally with
    /// `user:password@`, or `ses` (Amazon SES v2). Unset: email channels fail with a clear
    /// delivery error.
    pub email_transport: Option<String>,
    /// `HEALTH_EMAIL_FROM`: the sender of notification mail (for SES, a verified identity).
    pub email_from: String,
    /// `PAGERDUTY_EVENTS_URL`: the PagerDuty Events API v2 endpoint.
    pub pagerduty_events_url: String,
    /// Per-tenant quotas (`HEALTH_QUOTA_*`).
    pub quotas: Quotas,
    /// `HEALTH_ALERT_HISTORY`: occurrences of one condition on one source kept (the
    /// newest; older resolved ones are deleted before their 30 days), 1..=10000, default
    /// 10. It bounds what every collector cycle reads when a condition comes and goes.
    pub alert_history: u64,
}

/// What one tenant may create or hold at once. Each is read from `HEALTH_QUOTA_<NAME>`
/// (the name in upper case); a request past one answers 429 `quota_exceeded` naming it and
/// changes nothing. Defaults are generous for a real fleet and small enough that one
/// tenant cannot fill a shared table or a shared cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Agents, integrations and hosts, each kind counted on its own.
    pub entities: u64,
    /// Integrations with a probe (each costs a request every cycle).
    pub probed_integrations: u64,
    /// Notification channels.
    pub channels: u64,
    /// Notification rules.
    pub notification_rules: u64,
    /// Silences (active or scheduled).
    pub silences: u64,
    /// SLOs.
    pub slos: u64,
    /// Badges (not revoked).
    pub badges: u64,
    /// API keys (not revoked).
    pub keys: u64,
    /// Open WebSocket connections of the tenant.
    pub websockets_per_tenant: u64,
    /// Open WebSocket connections of one key.
    pub websockets_per_key: u64,
    /// Exports streaming at once.
    pub concurrent_exports: u64,
}

impl Quotas {
    /// Each quota's name (as in errors and docs), variable and value.
    pub fn entries(&self) -> [(&'static str, &'static str, u64); 11] {
        [
            ("entities", "HEALTH_QUOTA_ENTITIES", self.entities),
            (
                "probed_integrations",
                "HEALTH_QUOTA_PROBED_INTEGRATIONS",
                self.probed_integrations,
            ),
            ("channels", "HEALTH_QUOTA_CHANNELS", self.channels),
            (
                "notification_rules",
                "HEALTH_QUOTA_NOTIFICATION_RULES",
                self.notification_rules,
            ),
            ("silences", "HEALTH_QUOTA_SILENCES", self.silences),
            ("slos", "HEALTH_QUOTA_SLOS", self.slos),
            ("badges", "HEALTH_QUOTA_BADGES", self.badges),
            ("keys", "HEALTH_QUOTA_KEYS", self.keys),
            (
                "websockets_per_tenant",
                "HEALTH_QUOTA_WEBSOCKETS_PER_TENANT",
                self.websockets_per_tenant,
            ),
            (
                "websockets_per_key",
                "HEALTH_QUOTA_WEBSOCKETS_PER_KEY",
                self.websockets_per_key,
            ),
            (
                "concurrent_exports",
                "HEALTH_QUOTA_CONCURRENT_EXPORTS",
                self.concurrent_exports,
            ),
        ]
    }

    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut q = Self::default();
        for (name, variable, default) in Self::default().entries() {
            let slot = match name {
                "entities" => &mut q.entities,
                "probed_integrations" => &mut q.probed_integrations,
                "channels" => &mut q.channels,
                "notification_rules" => &mut q.notification_rules,
                "silences" => &mut q.silences,
                "slos" => &mut q.slos,
                "badges" => &mut q.badges,
                "keys" => &mut q.keys,
                "websockets_per_tenant" => &mut q.websockets_per_tenant,
                "websockets_per_key" => &mut q.websockets_per_key,
                _ => &mut q.concurrent_exports,
            };
            *slot = number(
                lookup,
                variable,
                default,
                1..=10_000_000,
                "must be a whole number from 1 to 10000000",
            )?;
        }
        Ok(q)
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            entities: 20_000,
            probed_integrations: 200,
            channels: 50,
            notification_rules: 100,
            silences: 500,
            slos: 200,
            badges: 200,
            keys: 100,
            websockets_per_tenant: 200,
            websockets_per_key: 20,
            concurrent_exports: 2,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            polling_interval_secs: 30,
            polling_enabled: true,
            error_rate_threshold: 0.5,
            latency_threshold_ms: 5000.0,
            queue_depth_threshold: 100,
            stuck_min_seconds: 900,
            probe_allowed_addresses: Vec::new(),
            collector_invocation_secs: 60,
            public_url: None,
            email_transport: None,
            email_from: "Agent Health Monitor <alerts@localhost>".to_owned(),
            pagerduty_events_url: "https://events.pagerduty.com/v2/enqueue".to_owned(),
            quotas: Quotas::default(),
            alert_history: 10,
        }
    }
}

/// Polling intervals without a report after which a host or an unpaused agent is silent.
pub const SILENT_INTERVALS: i64 = 5;

impl Config {
    /// How long a source may go without reporting before it is silent: 5 polling
    /// intervals (the contract's silence), ms.
    pub fn silent_after_ms(&self) -> crate::time::Millis {
        SILENT_INTERVALS.saturating_mul(
            i64::try_from(self.polling_interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
        )
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, so tests need not touch the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // Read by telemetry before this; checked here so a typo stops the start.
        read(&lookup, LOG_FORMAT_VAR, (), "must be json or text", |v| {
            matches!(v.trim().to_ascii_lowercase().as_str(), "json" | "text").then_some(())
        })?;
        let mut c = Self::default();
        c.read_polling(&lookup)?;
        c.read_thresholds(&lookup)?;
        c.read_deployment(&lookup)?;
        c.quotas = Quotas::from_lookup(&lookup)?;
        Ok(c)
    }

    /// Reads how the collector polls and how many resolved alerts it keeps, over the
    /// defaults.
    fn read_polling(
        &mut self,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        self.polling_interval_secs = number(
            lookup,
            "HEALTH_POLLING_INTERVAL",
            self.polling_interval_secs,
            1..=3600,
            "must be a whole number of seconds from 1 to 3600",
        )?;
        self.alert_history = number(
            lookup,
            "HEALTH_ALERT_HISTORY",
            self.alert_history,
            1..=10_000,
            "must be a whole number from 1 to 10000",
        )?;
        self.polling_enabled = read(
            lookup,
            "HEALTH_POLLING_ENABLED",
            self.polling_enabled,
            "must be true or false",
            |v| match v.trim() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
        )?;
        Ok(())
    }

    /// Reads when the collector alerts, over the defaults.
    fn read_thresholds(
        &mut self,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        self.error_rate_threshold = number(
            lookup,
            "ALERT_ERROR_RATE_THRESHOLD",
            self.error_rate_threshold,
            0.0..=1.0,
            "must be a number from 0 to 1",
        )?;
        self.latency_threshold_ms = read(
            lookup,
            "ALERT_LATENCY_THRESHOLD",
            self.latency_threshold_ms,
            "must be a number of milliseconds above 0",
            |v| {
                v.trim()
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite() && *v > 0.0)
            },
        )?;
        self.stuck_min_seconds = number(
            lookup,
            "ALERT_STUCK_MIN_SECONDS",
            self.stuck_min_seconds,
            1..=604_800,
            "must be a whole number of seconds from 1 to 604800",
        )?;
        self.queue_depth_threshold = number(
            lookup,
            "ALERT_QUEUE_DEPTH_THRESHOLD",
            self.queue_depth_threshold,
            1..,
            "must be a whole number above 0",
        )?;
        Ok(())
    }

    /// Reads what the deployment sets: probe addresses, the collector's invocation, the
    /// public URL and notification transports, over the defaults.
    fn read_deployment(
        &mut self,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        self.probe_allowed_addresses = read(
            lookup,
            "PROBE_ALLOWED_ADDRESSES",
            std::mem::take(&mut self.probe_allowed_addresses),
            "must be a comma-separated list of IP addresses (every port) \
             or addresses with a port (127.0.0.1:8025, [::1]:8025)",
            |v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::parse::<AllowedAddress>)
                    .collect::<Result<_, _>>()
                    .ok()
            },
        )?;
        self.collector_invocation_secs = number(
            lookup,
            "COLLECTOR_INVOCATION_SECONDS",
            self.collector_invocation_secs,
            1..=840,
            "must be a whole number of seconds from 1 to 840",
        )?;
        if let Some(url) = lookup("HEALTH_PUBLIC_URL") {
            self.public_url = Some(http_url("HEALTH_PUBLIC_URL", url)?);
        }
        self.email_transport = read(
            lookup,
            "HEALTH_EMAIL_TRANSPORT",
            self.email_transport.take(),
            "must be smtp://host:port, smtps://host:port or ses",
            |v| {
                let t = v.trim();
                (t == "ses" || t.starts_with("smtp://") || t.starts_with("smtps://"))
                    .then(|| Some(t.to_owned()))
            },
        )?;
        self.email_from = read(
            lookup,
            "HEALTH_EMAIL_FROM",
            std::mem::take(&mut self.email_from),
            "must be an address such as alerts@example.com or Name <alerts@example.com>",
            |v| {
                v.parse::<lettre::message::Mailbox>()
                    .is_ok()
                    .then(|| v.to_owned())
            },
        )?;
        if let Some(url) = lookup("PAGERDUTY_EVENTS_URL") {
            self.pagerduty_events_url = http_url("PAGERDUTY_EVENTS_URL", url)?;
        }
        Ok(())
    }
}

/// Reads `variable` through `lookup`: `default` where it is unset, else what `parse` makes
/// of its value, or an error that gives `reason` where `parse` makes nothing.
fn read<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
    reason: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    let Some(value) = lookup(variable) else {
        return Ok(default);
    };
    match parse(&value) {
        Some(v) => Ok(v),
        None => Err(ConfigError {
            variable,
            value,
            reason,
        }),
    }
}

/// Reads `variable` as a number (white space around it ignored) within `range`.
fn number<T: std::str::FromStr + PartialOrd>(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
    range: impl std::ops::RangeBounds<T>,
    reason: &'static str,
) -> Result<T, ConfigError> {
    read(lookup, variable, default, reason, |v| {
        v.trim().parse().ok().filter(|n| range.contains(n))
    })
}

/// An http(s) URL without a trailing slash.
fn http_url(variable: &'static str, value: String) -> Result<String, ConfigError> {
    match url::Url::parse(value.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(value.trim().trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError {
            variable,
            value,
            reason: "must be an http:// or https:// URL",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn no_variables_give_the_contract_defaults() {
        assert_eq!(with(&[]).ok(), Some(Config::default()));
    }

    #[test]
    fn an_invalid_value_names_the_variable() {
        let err = with(&[("ALERT_ERROR_RATE_THRESHOLD", "1.5")])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid configuration: ALERT_ERROR_RATE_THRESHOLD=\"1.5\": must be a number from 0 to 1")
        );
        assert!(with(&[("HEALTH_POLLING_INTERVAL", "0")]).is_err());
        assert!(with(&[("HEALTH_POLLING_ENABLED", "yes")]).is_err());
        assert!(with(&[("PROBE_ALLOWED_ADDRESSES", "127.0.0.1,nope")]).is_err());
        assert!(with(&[("PROBE_ALLOWED_ADDRESSES", "127.0.0.1:0")]).is_err());
    }

    #[test]
    fn notification_settings_are_checked() {
        let c = with(&[
            ("HEALTH_PUBLIC_URL", "https://health.example.com/"),
            ("HEALTH_EMAIL_TRANSPORT", "smtp://127.0.0.1:1025"),
            ("HEALTH_EMAIL_FROM", "Ops <alerts@example.com>"),
            ("PAGERDUTY_EVENTS_URL", "http://127.0.0.1:9/v2/enqueue"),
        ])
        .ok()
        .unwrap_or_default();
        assert_eq!(c.public_url.as_deref(), Some("https://health.example.com"));
        assert_eq!(c.email_transport.as_deref(), Some("smtp://127.0.0.1:1025"));
        assert_eq!(c.email_from, "Ops <alerts@example.com>");
        assert_eq!(c.pagerduty_events_url, "http://127.0.0.1:9/v2/enqueue");
        assert!(with(&[("HEALTH_EMAIL_TRANSPORT", "ses")]).is_ok());
        for (variable, value) in [
            ("HEALTH_PUBLIC_URL", "monitor.example.com"),
            ("HEALTH_EMAIL_TRANSPORT", "sendmail"),
            ("HEALTH_EMAIL_FROM", "not an address"),
            ("PAGERDUTY_EVENTS_URL", "ftp://x"),
        ] {
            let err = with(&[(variable, value)]).err().map(|e| e.variable);
            assert_eq!(err, Some(variable));
        }
    }

    #[test]
    fn the_stuck_floor_is_whole_seconds_up_to_a_week() {
        assert_eq!(Config::default().stuck_min_seconds, 900);
        let read = |v: &str| with(&[("ALERT_STUCK_MIN_SECONDS", v)]).map(|c| c.stuck_min_seconds);
        assert_eq!(read(" 60 ").ok(), Some(60));
        assert_eq!(read("604800").ok(), Some(604_800));
        for bad in ["0", "604801", "1.5", "-1", "soon"] {
            let err = read(bad).err().map(|e| e.to_string());
            assert_eq!(
                err,
                Some(format!("invalid configuration: ALERT_STUCK_MIN_SECONDS=\"{bad}\": must be a whole number of seconds from 1 to 604800")),
                "{bad}"
            );
        }
    }

    #[test]
    fn quotas_are_read_by_name_and_checked() {
        let c = with(&[("HEALTH_QUOTA_CHANNELS", "3"), ("HEALTH_QUOTA_KEYS", " 7 ")])
            .ok()
            .unwrap_or_default();
        assert_eq!(c.quotas.channels, 3);
        assert_eq!(c.quotas.keys, 7);
        assert_eq!(c.quotas.slos, Quotas::default().slos);
        for (_, variable, _) in Quotas::default().entries() {
            let err = with(&[(variable, "0")]).err().map(|e| e.variable);
            assert_eq!(err, Some(variable), "{variable}=0 must be refused");
        }
    }

    #[test]
    fn valid_values_are_read() {
        let c = with(&[
            ("HEALTH_POLLING_INTERVAL", "1"),
            (
                "PROBE_ALLOWED_ADDRESSES",
                "127.0.0.1, ::1, 127.0.0.1:8025, [::1]:8025",
            ),
        ]);
        let c = c.ok().unwrap_or_default();
        assert_eq!(c.polling_interval_secs, 1);
        let allowed: Vec<String> = c
            .probe_allowed_addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            allowed,
            ["127.0.0.1", "::1", "127.0.0.1:8025", "[::1]:8025"],
            "reading bare and port-restricted entries"
        );
    }
}
