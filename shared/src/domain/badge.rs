//! Status badges: small SVG images in the shields.io style (a grey label, a coloured
//! message) that a public status page or a README embeds.

use crate::domain::latency::HourSummary;

/// What a badge shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// The entity's status now.
    Status,
    /// Its availability over the last 24 hours.
    Uptime24h,
    /// Its availability over the last 30 days.
    Uptime30d,
}

impl Show {
    /// From the `show` query parameter (`status` by default).
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value.unwrap_or("status") {
            "status" => Some(Self::Status),
            "uptime_24h" => Some(Self::Uptime24h),
            "uptime_30d" => Some(Self::Uptime30d),
            _ => None,
        }
    }

    /// How many hours of summaries it needs (none for the status).
    pub fn hours(self) -> i64 {
        match self {
            Self::Status => 0,
            Self::Uptime24h => 24,
            Self::Uptime30d => 30 * 24,
        }
    }

    /// The default label after the entity's name.
    pub fn label_suffix(self) -> &'static str {
        match self {
            Self::Status => "",
            Self::Uptime24h => " uptime 24h",
            Self::Uptime30d => " uptime 30d",
        }
    }
}

/// Shields' colours.
pub mod colour {
    /// Good.
    pub const BRIGHT_GREEN: &str = "#4c1";
    /// Fine.
    pub const GREEN: &str = "#97ca00";
    /// Watch.
    pub const YELLOW: &str = "#dfb317";
    /// Poor.
    pub const ORANGE: &str = "#fe7d37";
    /// Bad.
    pub const RED: &str = "#e05d44";
    /// Nothing known.
    pub const GREY: &str = "#9f9f9f";
}

/// The colour of a status as the API spells it.
pub fn status_colour(status: &str) -> &'static str {
    match status {
        "active" | "idle" | "healthy" => colour::BRIGHT_GREEN,
        "paused" | "degraded" => colour::YELLOW,
        "error" => colour::RED,
        _ => colour::GREY,
    }
}

/// Availability (0..=1) over summaries: successful / all; `None` without any.
pub fn availability(summaries: &[(i64, HourSummary)]) -> Option<f64> {
    let (total, failed) = summaries.iter().fold((0u64, 0u64), |(t, f), (_, s)| {
        (
            t.saturating_add(s.total),
            f.saturating_add(s.failed.min(s.total)),
        )
    });
    (total > 0).then(|| 1.0 - failed as f64 / total as f64)
}

/// An availability as a badge's message and colour: `99.95%`, green from 99 %.
pub fn uptime_message(availability: Option<f64>) -> (String, &'static str) {
    match availability {
        None => ("no data".to_owned(), colour::GREY),
        Some(a) => {
            let percent = a * 100.0;
            // Two decimals, without rounding 99.996 up to a 100 % that was not reached.
            let shown = (percent * 100.0).floor() / 100.0;
            let text = format!("{shown:.2}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_owned();
            let c = match percent {
                p if p >= 99.9 => colour::BRIGHT_GREEN,
                p if p >= 99.0 => colour::GREEN,
                p if p >= 95.0 => colour::YELLOW,
                p if p >= 90.0 => colour::ORANGE,
                _ => colour::RED,
            };
            (format!("{text}%"), c)
        }
    }
}

/// Verdana 11px advance widths, approximated by character class (what shields measures
/// exactly); good enough that text neither overflows nor leaves wide gaps.
fn text_width(text: &str) -> u32 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 3.5,
            'f' | 't' | 'r' | ' ' | '(' | ')' | '[' | ']' | '-' => 4.5,
            'm' | 'w' | 'M' | 'W' | '%' => 10.0,
            c if c.is_ascii_uppercase() || c.is_ascii_digit() => 7.5,
            _ => 6.8,
        })
        .sum::<f64>()
        .ceil() as u32
}

fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The badge's SVG: `label` on grey, `message` on `colour`, with a title for screen
/// readers.
pub fn svg(label: &str, message: &str, colour: &str) -> String {
    let (lw, mw) = (text_width(label) + 10, text_width(message) + 10);
    let width = lw + mw;
    let (label, message) = (escape_xml(label), escape_xml(message));
    let (lx, mx) = (lw * 5, lw * 10 + mw * 5);
    format!(
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{l}: {m}">"##,
            r##"<title>{l}: {m}</title>"##,
            r##"<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>"##,
            r##"<clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath>"##,
            r##"<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{mw}" height="20" fill="{c}"/><rect width="{w}" height="20" fill="url(#s)"/></g>"##,
            r##"<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="110">"##,
            r##"<text x="{lx}" y="140" transform="scale(.1)" textLength="{lt}">{l}</text>"##,
            r##"<text x="{mx}" y="140" transform="scale(.1)" textLength="{mt}">{m}</text>"##,
            "</g></svg>"
        ),
        w = width,
        lw = lw,
        mw = mw,
        c = colour,
        l = label,
        m = message,
        lx = lx,
        mx = mx,
        lt = (lw - 10) * 10,
        mt = (mw - 10) * 10,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_floored_to_two_decimals_and_coloured_by_band() {
        assert_eq!(
            uptime_message(Some(0.99996)),
            ("99.99%".into(), colour::BRIGHT_GREEN)
        );
        assert_eq!(
            uptime_message(Some(1.0)),
            ("100%".into(), colour::BRIGHT_GREEN)
        );
        assert_eq!(uptime_message(Some(0.995)), ("99.5%".into(), colour::GREEN));
        assert_eq!(uptime_message(Some(0.5)), ("50%".into(), colour::RED));
        assert_eq!(uptime_message(None), ("no data".into(), colour::GREY));
        let s = |total, failed| HourSummary {
            total,
            failed,
            ..HourSummary::default()
        };
        assert_eq!(availability(&[(1, s(10, 1)), (2, s(30, 3))]), Some(0.9));
        assert_eq!(availability(&[]), None);
    }

    #[test]
    fn the_svg_escapes_names_and_says_what_it_shows() {
        let out = svg("<Sales & Co>", "healthy", colour::BRIGHT_GREEN);
        assert!(out.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(
            out.contains("<title>&lt;Sales &amp; Co&gt;: healthy</title>"),
            "{out}"
        );
        assert!(!out.contains("<Sales"));
        assert!(out.contains("fill=\"#4c1\""));
    }
}
