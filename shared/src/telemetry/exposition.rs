//! The Prometheus exposition writer: OpenMetrics 1.0 text, or the classic text format
//! 0.0.4 for a scraper that asks only for that. Below both of its users: the tenant's
//! families (`GET /metrics`, in `api::metrics`) and the process's own figures
//! ([`super::StackStats`]).

use std::fmt::Write as _;

/// The OpenMetrics content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format's content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics, as the contract gives, unless the client asks for the classic text format
/// and not for OpenMetrics (older scrapers send `Accept: text/plain;version=0.0.4`).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    match accept {
        Some(a) => a.contains("application/openmetrics-text") || !a.contains("text/plain"),
        None => true,
    }
}

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A value that goes up and down.
    Gauge,
    /// A monotonic total; its samples carry the `_total` suffix.
    Counter,
}

/// Exposition text being written.
#[derive(Debug)]
pub struct Exposition {
    open: bool,
    text: String,
}

/// One sample: its labels and value.
pub type Sample = (Vec<(&'static str, String)>, f64);

impl Exposition {
    /// An empty exposition; `open_metrics` chooses OpenMetrics over the classic format.
    pub fn new(open_metrics: bool) -> Self {
        Self {
            open: open_metrics,
            text: String::new(),
        }
    }

    /// Writes one family. `name` has no `_total`: counters get it on their samples (and,
    /// in the classic format, in their `TYPE` line, as Prometheus expects).
    pub fn family(&mut self, name: &str, kind: Type, help: &str, samples: &[Sample]) {
        let (type_word, sample_name) = match kind {
            Type::Gauge => ("gauge", name.to_owned()),
            Type::Counter => ("counter", format!("{name}_total")),
        };
        let declared = if self.open { name } else { &sample_name };
        let _ = writeln!(self.text, "# HELP {declared} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {declared} {type_word}");
        for (labels, value) in samples {
            self.text.push_str(&sample_name);
            if !labels.is_empty() {
                self.text.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.text.push(',');
                    }
                    let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
                }
                self.text.push('}');
            }
            let _ = writeln!(self.text, " {}", number(*value));
        }
    }

    /// The text, with OpenMetrics' closing `# EOF`.
    pub fn finish(mut self) -> String {
        if self.open {
            self.text.push_str("# EOF\n");
        }
        self.text
    }
}

/// A label value with `\`, `"` and line feeds escaped.
pub fn escape_label(value: &str) -> String {
    escape_help(value).replace('"', "\\\"")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_declared_per_format_and_labels_escaped() {
        for open in [true, false] {
            let mut e = Exposition::new(open);
            e.family(
                "x_calls",
                Type::Counter,
                "Calls.",
                &[(vec![("id", "a\"b\\c\nd".to_owned())], 3.0)],
            );
            let text = e.finish();
            let declared = if open { "x_calls" } else { "x_calls_total" };
            assert!(
                text.contains(&format!("# TYPE {declared} counter\n")),
                "{text}"
            );
            assert!(
                text.contains("x_calls_total{id=\"a\\\"b\\\\c\\nd\"} 3\n"),
                "{text}"
            );
            assert_eq!(text.ends_with("# EOF\n"), open);
        }
    }

    #[test]
    fn openmetrics_unless_only_the_classic_text_is_asked_for() {
        let prometheus =
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(wants_openmetrics(None));
        assert!(wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
    }

    #[test]
    fn numbers_are_written_as_the_formats_spell_them() {
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}
