//! A report as Markdown and as a standalone HTML page: the same titled blocks written two
//! ways, every client-given text escaped for its format.

use std::fmt::Write as _;

use super::escape;
use crate::domain::report::{duration, pct, Report, Totals};
use crate::domain::wire_name as name;

fn opt_duration(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "–".to_owned(), duration)
}

fn ms(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |x| format!("{x:.1} ms"))
}

/// One table: a header row and rows of cells, already text.
struct Table {
    head: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

/// The report's content as titled blocks, rendered the same way into Markdown and HTML.
enum Block {
    Heading(String),
    Text(String),
    List(Vec<String>),
    Table(Table),
}

fn blocks(r: &Report) -> Vec<Block> {
    let mut out = summary_blocks(r);
    out.extend([
        Block::Heading("Findings".into()),
        Block::List(r.findings.clone()),
    ]);
    out.extend(integration_section(r));
    out.extend(slo_section(r));
    out.extend(failing_agent_section(r));
    out.extend(failing_integration_section(r));
    out.extend(incident_blocks(r));
    out
}

/// A column of a section's table: its header, and its cell for each item.
type Column<T> = (&'static str, fn(&T) -> String);

/// A headed section: its table, or `none` where it has no rows.
fn section<T>(heading: &str, none: &str, items: &[T], columns: &[Column<T>]) -> [Block; 2] {
    let body = if items.is_empty() {
        Block::Text(none.into())
    } else {
        Block::Table(Table {
            head: columns.iter().map(|(head, _)| *head).collect(),
            rows: items
                .iter()
                .map(|item| columns.iter().map(|(_, cell)| cell(item)).collect())
                .collect(),
        })
    };
    [Block::Heading(heading.into()), body]
}

/// The title, the period and the summary table against the previous period.
fn summary_blocks(r: &Report) -> Vec<Block> {
    let word = r.period.word();
    let (s, p) = (&r.summary, &r.previous);
    // A figure as this period and the previous one read.
    let row = |label: &str, show: fn(&Totals) -> String| vec![label.to_owned(), show(s), show(p)];
    vec![
        Block::Heading(format!("Health report of {}: last {word}", r.tenant)),
        Block::Text(format!(
            "From {} to {}, against the {word} from {} (UTC days).",
            r.from, r.to, r.previous_from
        )),
        Block::Heading("Summary".into()),
        Block::Table(Table {
            head: vec!["", "this period", "previous period"],
            rows: vec![
                row("Executions", |t| t.executions.to_string()),
                row("Failed executions", |t| t.failed_executions.to_string()),
                row("Success rate", |t| pct(t.success_rate, 1)),
                row("Integration calls", |t| t.calls.to_string()),
                row("Availability", |t| pct(t.availability, 2)),
                row("Alerts", |t| t.alerts.to_string()),
                row("Mean time to acknowledge", |t| {
                    opt_duration(t.times.mtta_seconds)
                }),
                row("Mean time to resolve", |t| {
                    opt_duration(t.times.mttr_seconds)
                }),
            ],
        }),
    ]
}

fn integration_section(r: &Report) -> [Block; 2] {
    section(
        "Integrations",
        "No integrations.",
        &r.integrations,
        &[
            ("Integration", |i| i.integration_name.clone()),
            ("State", |i| i.state.clone()),
            ("Calls", |i| i.current.calls.to_string()),
            ("Availability", |i| pct(i.current.availability, 2)),
            ("before", |i| pct(i.previous.availability, 2)),
            ("p95", |i| ms(i.current.latency_p95_ms)),
            ("before", |i| ms(i.previous.latency_p95_ms)),
            ("Checks", |i| i.health_checks_performed.to_string()),
            ("Recovery attempts", |i| i.recovery_attempts.to_string()),
            ("Recoveries", |i| i.successful_recoveries.to_string()),
        ],
    )
}

fn burn(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |b| format!("{b:.2}×"))
}

fn slo_section(r: &Report) -> [Block; 2] {
    section(
        "SLOs",
        "No SLOs defined.",
        &r.slos,
        &[
            ("SLO", |s| s.slo_id.clone()),
            ("Source", |s| format!("{} {}", s.source_type, s.source_id)),
            ("Target", |s| pct(Some(s.target), 2)),
            ("Now", |s| pct(s.current, 2)),
            ("Buffer", |s| {
                s.buffer
                    .map_or_else(|| "–".to_owned(), |b| format!("{:+.2} points", b * 100.0))
            }),
            ("Budget left", |s| pct(Some(s.error_budget_remaining), 1)),
            ("Status", |s| name(&s.status)),
            ("Burn", |s| burn(s.burn_rate)),
            ("before", |s| burn(s.previous_burn_rate)),
        ],
    )
}

fn failing_agent_section(r: &Report) -> [Block; 2] {
    section(
        "Top failing agents",
        "No failed executions.",
        &r.top_failing_agents,
        &[
            ("Agent", |a| a.agent_name.clone()),
            ("Executions", |a| a.executions.to_string()),
            ("Failed", |a| a.failed.to_string()),
            ("Success rate", |a| pct(a.success_rate, 1)),
            ("before", |a| pct(a.previous_success_rate, 1)),
        ],
    )
}

fn failing_integration_section(r: &Report) -> [Block; 2] {
    section(
        "Top failing integrations",
        "No failed calls.",
        &r.top_failing_integrations,
        &[
            ("Integration", |i| i.integration_name.clone()),
            ("Calls", |i| i.current.calls.to_string()),
            ("Failed", |i| i.current.failures.to_string()),
            ("Availability", |i| pct(i.current.availability, 2)),
        ],
    )
}

/// The incidents' counts, then a table of the alerts if there were any.
fn incident_blocks(r: &Report) -> Vec<Block> {
    let inc = &r.incidents;
    let mut out = vec![
        Block::Heading("Incidents".into()),
        Block::Text(format!(
            "{} ({} critical, {} warning); {} acknowledged, mean time to acknowledge {}; {} resolved, mean time to resolve {}.",
            if inc.count == 1 { "1 alert".to_owned() } else { format!("{} alerts", inc.count) },
            inc.critical,
            inc.warning,
            inc.acknowledged,
            opt_duration(inc.times.mtta_seconds),
            inc.resolved,
            opt_duration(inc.times.mttr_seconds)
        )),
    ];
    if !inc.alerts.is_empty() {
        let after = |s: Option<i64>| opt_duration(s.map(|s| s as f64));
        out.push(Block::Table(Table {
            head: vec![
                "Raised",
                "Severity",
                "Alert",
                "Acknowledged after",
                "Resolved after",
            ],
            rows: inc
                .alerts
                .iter()
                .map(|a| {
                    vec![
                        a.raised_at.clone(),
                        name(&a.severity),
                        a.message.clone(),
                        after(a.time_to_acknowledge_s),
                        after(a.time_to_resolve_s),
                    ]
                })
                .collect(),
        }));
    }
    out
}

/// The report as Markdown (GitHub tables).
pub fn markdown(r: &Report) -> String {
    // Names are the clients' text: `<` must not open an HTML tag, a line break must not
    // end a line, and in a table a pipe must not end its cell.
    let text = |t: &str| t.replace('<', "\\<").replace(['\n', '\r'], " ");
    let cell = |t: &str| text(t).replace('|', "\\|");
    let mut out = String::new();
    let mut first = true;
    for block in blocks(r) {
        match block {
            Block::Heading(h) if first => {
                let _ = writeln!(out, "# {}\n", text(&h));
                first = false;
            }
            Block::Heading(h) => {
                let _ = writeln!(out, "## {}\n", text(&h));
            }
            Block::Text(t) => {
                let _ = writeln!(out, "{}\n", text(&t));
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(out, "- {}", text(&i));
                }
                out.push('\n');
            }
            Block::Table(t) => {
                let _ = writeln!(out, "| {} |", t.head.join(" | "));
                let _ = writeln!(out, "|{}", "---|".repeat(t.head.len()));
                for row in t.rows {
                    let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// The report as a standalone HTML page.
pub fn html(r: &Report) -> String {
    let mut body = String::new();
    let mut title = String::new();
    for block in blocks(r) {
        match block {
            Block::Heading(h) if title.is_empty() => {
                title = escape(&h);
                let _ = writeln!(body, "<h1>{title}</h1>");
            }
            Block::Heading(h) => {
                let _ = writeln!(body, "<h2>{}</h2>", escape(&h));
            }
            Block::Text(t) => {
                let _ = writeln!(body, "<p>{}</p>", escape(&t));
            }
            Block::List(items) => {
                body.push_str("<ul>\n");
                for i in items {
                    let _ = writeln!(body, "<li>{}</li>", escape(&i));
                }
                body.push_str("</ul>\n");
            }
            Block::Table(t) => {
                body.push_str("<table>\n<thead><tr>");
                for h in &t.head {
                    let _ = write!(body, "<th>{}</th>", escape(h));
                }
                body.push_str("</tr></thead>\n<tbody>\n");
                for row in t.rows {
                    body.push_str("<tr>");
                    for c in row {
                        let _ = write!(body, "<td>{}</td>", escape(&c));
                    }
                    body.push_str("</tr>\n");
                }
                body.push_str("</tbody>\n</table>\n");
            }
        }
    }
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1d232b}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem;display:block;overflow-x:auto}\
th,td{border:1px solid #d4d9e0;padding:.3rem .6rem;text-align:left;white-space:nowrap}\
th{background:#f2f4f7}\
@media (prefers-color-scheme:dark){body{background:#15191e;color:#e3e7ec}th{background:#232a32}th,td{border-color:#39424d}}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::AgentCounters;
    use crate::domain::report::{build, AgentInput, Period, PeriodKind, ReportInputs};
    use crate::time::DAY_MS;

    fn report_of(agent_name: &str, completed: u64, failed: u64) -> Report {
        let now = 100 * DAY_MS;
        build(&ReportInputs {
            tenant: "acme".into(),
            period: Period::ending(PeriodKind::Week, now),
            agents: vec![AgentInput {
                agent_id: "a".into(),
                agent_name: agent_name.into(),
                days: vec![(
                    99,
                    AgentCounters {
                        started: completed + failed,
                        completed,
                        failed,
                        ..AgentCounters::default()
                    },
                )],
            }],
            integrations: Vec::new(),
            slos: Vec::new(),
            alerts: Vec::new(),
        })
    }

    #[test]
    fn markdown_and_html_keep_clients_text_inert() {
        let r = report_of("A | <b>", 1, 1);
        let md = markdown(&r);
        assert!(md.contains("| A \\| \\<b> | 2 | 1 | 50.0 % | – |"), "{md}");
        let page = html(&r);
        assert!(page.contains("<td>A | &lt;b&gt;</td>"), "{page}");
        assert!(!page.contains("<b>"));
    }
}
