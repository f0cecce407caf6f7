//! What each kind of channel receives for one message. Pure: the links are given.

use serde_json::{json, Value};

use crate::domain::alerts::{AlertRecord, Severity, SourceType};
use crate::domain::notify::Kind;
use crate::render::escape;
use crate::time::format_rfc3339;

/// One alert of a message with what a reader needs beyond the stored alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Item<'a> {
    /// The alert as it was when the message was decided.
    pub alert: &'a AlertRecord,
    /// Its source's display name, when it has one (agents and integrations).
    pub source_name: Option<&'a str>,
    /// The signed link that acknowledges it.
    pub acknowledge_url: Option<String>,
}

/// Everything a renderer needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<'a> {
    /// Receivers deduplicate on it.
    pub notification_id: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// Firing, resolved, reminder or acknowledged.
    pub kind: Kind,
    /// The alerts.
    pub items: Vec<Item<'a>>,
    /// The dashboard, if the deployment knows its public address.
    pub dashboard_url: Option<String>,
    /// The report a [`Kind::Report`] message carries.
    pub report: Option<crate::domain::report::Report>,
}

fn source_kind(t: SourceType) -> &'static str {
    match t {
        SourceType::System => "host",
        SourceType::Agent => "agent",
        SourceType::Integration => "integration",
    }
}

pub(crate) fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// `agent Sales Bot (sales-bot)`, `host web-1`, or `the system` for tenant-wide alerts.
pub fn where_text(item: &Item<'_>) -> String {
    let a = item.alert;
    if a.source_type == SourceType::System && a.source_id == "system" {
        return "the system".to_owned();
    }
    match item.source_name.filter(|n| *n != a.source_id) {
        Some(name) => format!("{} {name} ({})", source_kind(a.source_type), a.source_id),
        None => format!("{} {}", source_kind(a.source_type), a.source_id),
    }
}

/// Slack allows 50 blocks: header, two per alert, context; show the first 20.
const SLACK_SHOWN: usize = 20;

/// One alert's Slack section, with an acknowledge button while it is open and
/// unacknowledged.
fn slack_section(i: &Item) -> Value {
    let a = i.alert;
    let mut section = json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": format!(
            "*{}* · {}\n{} · since <!date^{}^{{date_short_pretty}} {{time}}|{}>{}",
            slack_escape(&a.message),
            severity_word(a.severity),
            slack_escape(&where_text(i)),
            a.raised_at.div_euclid(1000),
            format_rfc3339(a.raised_at),
            a.resolved_at.map(|t| format!(" · resolved {}", format_rfc3339(t))).unwrap_or_default(),
        )},
    });
    if let (Some(url), Some(map)) = (&i.acknowledge_url, section.as_object_mut()) {
        if a.resolved_at.is_none() && a.acknowledged_at.is_none() {
            map.insert(
                "accessory".into(),
                json!({
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Acknowledge"},
                    "url": url,
                    "action_id": format!("ack-{}", a.alert_id),
                }),
            );
        }
    }
    section
}

impl Message<'_> {
    /// A one-line summary: `[critical] 2 alerts firing (acme): High CPU usage: 91.5%`.
    pub fn subject(&self) -> String {
        if let Some(r) = &self.report {
            return format!(
                "Weekly health report ({}): {}",
                self.tenant,
                r.findings.first().map(String::as_str).unwrap_or_default()
            );
        }
        let top = self.items.first().map(|i| i.alert);
        let severity = top.map_or("info", |a| severity_word(a.severity));
        let what = match self.items.len() {
            1 => "alert",
            _ => "alerts",
        };
        let first = top.map(|a| a.message.as_str()).unwrap_or_default();
        let more = if self.items.len() > 1 {
            format!(" (+{} more)", self.items.len() - 1)
        } else {
            String::new()
        };
        format!(
            "[{severity}] {} {what} {} ({}): {first}{more}",
            self.items.len(),
            self.kind.as_str(),
            self.tenant
        )
    }

    /// The contract's webhook body.
    pub fn webhook(&self) -> Value {
        if let Some(r) = &self.report {
            return json!({
                "notification_id": self.notification_id,
                "status": self.kind.as_str(),
                "tenant": self.tenant,
                "alerts": [],
                "report": r,
            });
        }
        json!({
            "notification_id": self.notification_id,
            "status": self.kind.as_str(),
            "tenant": self.tenant,
            "alerts": self.items.iter().map(|i| {
                let a = i.alert;
                let mut v = json!({
                    "alert_id": a.alert_id,
                    "severity": a.severity,
                    "message": a.message,
                    "source_type": a.source_type,
                    "source_id": a.source_id,
                    "timestamp": format_rfc3339(a.raised_at),
                    "acknowledged": a.acknowledged_at.is_some(),
                    "silenced": false,
                    "acknowledge_url": i.acknowledge_url,
                });
                if let (Some(map), Some(name)) = (v.as_object_mut(), i.source_name) {
                    map.insert("source_name".into(), name.into());
                }
                if let (Some(map), Some(at)) = (v.as_object_mut(), a.resolved_at) {
                    map.insert("resolved_at".into(), format_rfc3339(at).into());
                }
                v
            }).collect::<Vec<_>>(),
        })
    }

    /// The plain-text body of mail and SNS messages.
    pub fn text(&self) -> String {
        if let Some(r) = &self.report {
            return format!(
                "{}\nNotification {}\n",
                crate::render::report::markdown(r),
                self.notification_id
            );
        }
        let mut out = format!("{}\n\n", self.subject());
        for i in &self.items {
            let a = i.alert;
            out.push_str(&format!(
                "- [{}] {}\n  on {}, since {}\n",
                severity_word(a.severity),
                a.message,
                where_text(i),
                format_rfc3339(a.raised_at)
            ));
            if let Some(at) = a.resolved_at {
                out.push_str(&format!("  resolved at {}\n", format_rfc3339(at)));
            }
            if let Some(url) = &i.acknowledge_url {
                out.push_str(&format!("  acknowledge: {url}\n"));
            }
        }
        if let Some(url) = &self.dashboard_url {
            out.push_str(&format!("\nDashboard: {url}\n"));
        }
        out.push_str(&format!("\nNotification {}\n", self.notification_id));
        out
    }

    /// The HTML body of mail.
    pub fn html(&self) -> String {
        if let Some(r) = &self.report {
            return crate::render::report::html(r);
        }
        let mut rows = String::new();
        for i in &self.items {
            let a = i.alert;
            let ack = i
                .acknowledge_url
                .as_ref()
                .map(|u| format!(r#" <a href="{}">Acknowledge</a>"#, escape(u)))
                .unwrap_or_default();
            rows.push_str(&format!(
                r#"<li><b style="color:{}">{}</b> {} <br><small>on {}, since {}</small>{ack}</li>"#,
                colour(a.severity, self.kind),
                severity_word(a.severity),
                escape(&a.message),
                escape(&where_text(i)),
                format_rfc3339(a.raised_at),
            ));
        }
        let dashboard = self
            .dashboard_url
            .as_ref()
            .map(|u| format!(r#"<p><a href="{}">Open the dashboard</a></p>"#, escape(u)))
            .unwrap_or_default();
        format!(
            "<!doctype html><html><body><h2>{}</h2><ul>{rows}</ul>{dashboard}<p><small>Notification {}</small></p></body></html>",
            escape(&self.subject()),
            escape(self.notification_id)
        )
    }

    /// A Slack incoming-webhook body: Block Kit blocks inside an attachment, whose colour
    /// bar shows the severity.
    pub fn slack(&self) -> Value {
        if let Some(r) = &self.report {
            return self.slack_report(r);
        }
        let top = self.items.first().map(|i| i.alert.severity);
        let mut blocks = vec![json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(&self.subject(), 150)},
        })];
        blocks.extend(self.items.iter().take(SLACK_SHOWN).map(slack_section));
        let mut context = vec![
            json!({"type": "mrkdwn", "text": format!("tenant {} · notification {}", slack_escape(self.tenant), self.notification_id)}),
        ];
        if self.items.len() > SLACK_SHOWN {
            context.push(
                json!({"type": "mrkdwn", "text": format!("and {} more", self.items.len() - SLACK_SHOWN)}),
            );
        }
        context.extend(self.slack_dashboard_link());
        blocks.push(json!({"type": "context", "elements": context}));
        json!({
            "text": self.subject(),
            "attachments": [{
                "color": top.map_or("#2eb67d", |s| colour(s, self.kind)),
                "blocks": blocks,
            }],
        })
    }

    /// A report's Slack message: its findings, its period and the dashboard's link.
    fn slack_report(&self, r: &crate::domain::report::Report) -> Value {
        let findings: Vec<String> = r
            .findings
            .iter()
            .map(|f| format!("• {}", slack_escape(f)))
            .collect();
        let mut context = vec![json!({"type": "mrkdwn", "text": format!(
            "{} to {} · notification {}", r.from, r.to, self.notification_id
        )})];
        context.extend(self.slack_dashboard_link());
        json!({
            "text": self.subject(),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("Weekly health report ({})", self.tenant), 150)}},
                {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&findings.join("\n"), 3000)}},
                {"type": "context", "elements": context},
            ],
        })
    }

    /// The dashboard's link as a Slack context element, if the deployment has a URL.
    fn slack_dashboard_link(&self) -> Option<Value> {
        self.dashboard_url
            .as_ref()
            .map(|url| json!({"type": "mrkdwn", "text": format!("<{url}|Open the dashboard>")}))
    }

    /// PagerDuty Events API v2 events, one per alert (`dedup_key` = alert id, so
    /// PagerDuty keeps one incident per alert and a repeated event changes nothing).
    /// A test triggers an incident and resolves it at once.
    pub fn pagerduty(&self, routing_key: &str) -> Vec<Value> {
        let mut events: Vec<Value> = self
            .items
            .iter()
            .map(|i| self.pagerduty_event(i, routing_key))
            .collect();
        if self.kind == Kind::Test {
            let resolves: Vec<Value> = self
                .items
                .iter()
                .map(|i| {
                    json!({
                        "routing_key": routing_key,
                        "event_action": "resolve",
                        "dedup_key": i.alert.alert_id,
                    })
                })
                .collect();
            events.extend(resolves);
        }
        events
    }

    /// One alert's PagerDuty event; a trigger carries the alert and its links.
    fn pagerduty_event(&self, i: &Item, routing_key: &str) -> Value {
        let a = i.alert;
        let action = match self.kind {
            Kind::Firing | Kind::Reminder | Kind::Test => "trigger",
            // A report pages no one: it has no alerts, so no events.
            Kind::Resolved | Kind::Report => "resolve",
            Kind::Acknowledged => "acknowledge",
        };
        let mut event = json!({
            "routing_key": routing_key,
            "event_action": action,
            "dedup_key": a.alert_id,
        });
        if action == "trigger" {
            let mut links = Vec::new();
            if let Some(url) = &i.acknowledge_url {
                links.push(json!({"href": url, "text": "Acknowledge"}));
            }
            if let Some(url) = &self.dashboard_url {
                links.push(json!({"href": url, "text": "Dashboard"}));
            }
            if let Some(map) = event.as_object_mut() {
                map.insert(
                    "payload".into(),
                    json!({
                        "summary": truncate(&format!("{} on {}", a.message, where_text(i)), 1024),
                        "source": a.source_id,
                        "severity": severity_word(a.severity),
                        "timestamp": format_rfc3339(a.raised_at),
                        "component": source_kind(a.source_type),
                        "group": self.tenant,
                        "class": a.condition,
                        "custom_details": {"tenant": self.tenant, "alert_id": a.alert_id, "notification_id": self.notification_id},
                    }),
                );
                map.insert("links".into(), links.into());
            }
        }
        event
    }
}

fn colour(s: Severity, kind: Kind) -> &'static str {
    match (kind, s) {
        (Kind::Resolved, _) => "#2eb67d",
        (_, Severity::Critical) => "#d40e0d",
        (_, Severity::Warning) => "#ecb22e",
        (_, Severity::Info) => "#36c5f0",
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Slack's mrkdwn escaping: only `&`, `<` and `>`.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> AlertRecord {
        AlertRecord {
            alert_id: "alert_agent_sales_error_rate_1".into(),
            severity: Severity::Warning,
            message: "Agent Sales <Bot> has high error rate: 65.0%".into(),
            source_type: SourceType::Agent,
            source_id: "sales".into(),
            condition: "error_rate_high".into(),
            raised_at: 1_800_000_000_000,
            acknowledged_by: None,
            acknowledged_at: None,
            notes: None,
            resolved_at: None,
        }
    }

    fn message(a: &AlertRecord) -> Message<'_> {
        Message {
            notification_id: "n_1",
            tenant: "acme",
            kind: Kind::Firing,
            items: vec![Item {
                alert: a,
                source_name: Some("Sales Bot"),
                acknowledge_url: Some("https://mon.example.com/api/health/ack/t.s".into()),
            }],
            dashboard_url: Some("https://mon.example.com/".into()),
            report: None,
        }
    }

    #[test]
    fn a_report_message_carries_the_report_in_each_channel_form() {
        use crate::domain::report::{build, Period, PeriodKind, ReportInputs};
        let report = build(&ReportInputs {
            tenant: "acme".into(),
            period: Period::ending(PeriodKind::Week, 100 * crate::time::DAY_MS - 1),
            agents: Vec::new(),
            integrations: Vec::new(),
            slos: Vec::new(),
            alerts: Vec::new(),
        });
        let m = Message {
            notification_id: "n_r",
            tenant: "acme",
            kind: Kind::Report,
            items: Vec::new(),
            dashboard_url: Some("https://mon.example.com/".into()),
            report: Some(report),
        };
        assert_eq!(
            m.subject(),
            "Weekly health report (acme): No notable change against last week."
        );
        let hook = m.webhook();
        assert_eq!(
            (
                hook["status"].as_str(),
                hook["alerts"].as_array().map(Vec::len)
            ),
            (Some("report"), Some(0))
        );
        assert_eq!(hook["report"]["period"], "week");
        assert!(m.text().starts_with("# Health report of acme: last week\n"));
        assert!(m.text().ends_with("Notification n_r\n"));
        assert!(m.html().starts_with("<!doctype html>"));
        let slack = m.slack();
        assert_eq!(
            slack["blocks"][1]["text"]["text"],
            "• No notable change against last week."
        );
        assert!(m.pagerduty("key").is_empty(), "a report pages no one");
    }

    #[test]
    fn the_webhook_body_has_the_contract_fields() {
        let a = alert();
        let body = message(&a).webhook();
        assert_eq!(body["notification_id"], "n_1");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["tenant"], "acme");
        let item = &body["alerts"][0];
        assert_eq!(item["alert_id"], "alert_agent_sales_error_rate_1");
        assert_eq!(item["severity"], "warning");
        assert_eq!(item["source_type"], "agent");
        assert_eq!(item["timestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(item["acknowledged"], false);
        assert_eq!(item["silenced"], false);
        assert_eq!(
            item["acknowledge_url"],
            "https://mon.example.com/api/health/ack/t.s"
        );
    }

    #[test]
    fn slack_shows_colour_name_and_an_acknowledge_button_and_escapes_text() {
        let a = alert();
        let body = message(&a).slack();
        assert_eq!(body["attachments"][0]["color"], "#ecb22e");
        let blocks = &body["attachments"][0]["blocks"];
        assert_eq!(blocks[0]["type"], "header");
        let section = blocks[1]["text"]["text"].as_str().unwrap_or_default();
        assert!(section.contains("agent Sales Bot (sales)"), "{section}");
        assert!(section.contains("&lt;Bot&gt;"), "{section}");
        assert_eq!(blocks[1]["accessory"]["type"], "button");
        assert_eq!(
            blocks[1]["accessory"]["url"],
            "https://mon.example.com/api/health/ack/t.s"
        );
    }

    #[test]
    fn pagerduty_events_follow_the_alert_life_by_alert_id() {
        let a = alert();
        let mut m = message(&a);
        let trigger = m.pagerduty("rk");
        assert_eq!(trigger[0]["event_action"], "trigger");
        assert_eq!(trigger[0]["dedup_key"], "alert_agent_sales_error_rate_1");
        assert_eq!(trigger[0]["payload"]["severity"], "warning");
        assert_eq!(trigger[0]["payload"]["source"], "sales");
        m.kind = Kind::Resolved;
        let resolve = m.pagerduty("rk");
        assert_eq!(resolve[0]["event_action"], "resolve");
        assert!(resolve[0].get("payload").is_none());
        m.kind = Kind::Acknowledged;
        assert_eq!(m.pagerduty("rk")[0]["event_action"], "acknowledge");
    }

    #[test]
    fn mail_bodies_carry_the_link_and_escape_html() {
        let a = alert();
        let m = message(&a);
        assert!(m
            .text()
            .contains("acknowledge: https://mon.example.com/api/health/ack/t.s"));
        assert!(m.html().contains("Sales &lt;Bot&gt;"));
        assert_eq!(
            m.subject(),
            "[warning] 1 alert firing (acme): Agent Sales <Bot> has high error rate: 65.0%"
        );
    }
}
