//! Latency distributions: a log-bucketed histogram (the mapping of DDSketch) whose
//! percentiles are within [`RELATIVE_ACCURACY`] of the exact value, which merges by adding
//! counts, and which packs into a few bytes per occupied bucket.
//!
//! Why not a sketch crate: the live item has a kilobyte for everything (each event is one
//! write unit only under it), so the buckets must pack into its text rows, delta-coded, a
//! bucket in 3 to 5 characters; the crates serialize whole structs with dense stores of
//! floating-point counts. The mapping itself is the few lines below.

use std::fmt::Write as _;

/// Largest relative error of a percentile: the value returned is within 2 % of the
/// sample at that rank.
pub const RELATIVE_ACCURACY: f64 = 0.02;

/// Smallest value told apart, ms; smaller values (and 0) count as this.
pub const MIN_VALUE: f64 = 0.01;

/// Most buckets a histogram keeps; beyond, the lowest merge (as DDSketch's
/// collapsing-lowest store), so the upper percentiles, which alerts and SLOs judge, stay
/// within the accuracy. 2 % buckets from 1 ms to 1 hour take 380.
pub const MAX_BUCKETS: usize = 400;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// The bucket of a value: bucket `i` holds values in `(γ^(i-1), γ^i]`.
pub fn bucket_of(value: f64) -> i32 {
    let v = if value.is_finite() {
        value.max(MIN_VALUE)
    } else {
        MIN_VALUE
    };
    (v.ln() / gamma().ln()).ceil() as i32
}

/// The value a bucket stands for: within [`RELATIVE_ACCURACY`] of every value it holds.
pub fn value_of(bucket: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(bucket) / (g + 1.0)
}

/// The 1-based nearest rank of quantile `q` among `n` values.
pub fn nearest_rank(q: f64, n: u64) -> u64 {
    ((q * n as f64).ceil() as u64).clamp(1, n.max(1))
}

/// What a single value reads as once counted: the value its bucket stands for, rounded
/// to 1 decimal as the API shows percentiles.
pub fn estimate(value: f64) -> f64 {
    crate::domain::round::round_to(value_of(bucket_of(value)), 1)
}

/// Counts by bucket, ascending by bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    buckets: Vec<(i32, u64)>,
}

impl Histogram {
    /// Counts a value.
    pub fn add(&mut self, value: f64) {
        self.add_n(bucket_of(value), 1);
    }

    fn add_n(&mut self, bucket: i32, n: u64) {
        match self.buckets.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(i) => self.buckets[i].1 = self.buckets[i].1.saturating_add(n),
            Err(i) => self.buckets.insert(i, (bucket, n)),
        }
        if self.buckets.len() > MAX_BUCKETS {
            let (_, lowest) = self.buckets.remove(0);
            self.buckets[0].1 = self.buckets[0].1.saturating_add(lowest);
        }
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.buckets {
            self.add_n(*b, *n);
        }
    }

    /// How many values it counts.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum()
    }

    /// Whether it counts nothing.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The value at quantile `q` (0..=1) by nearest rank: that of the `⌈q·n⌉`-th smallest
    /// of the `n` counted (at least the first), within [`RELATIVE_ACCURACY`]; `None` if
    /// empty. Nearest rank never answers below a sample the quantile covers, so the p99 of
    /// a few slow calls is the slowest, not an interpolation.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = nearest_rank(q, n);
        let mut seen = 0u64;
        for (b, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return Some(value_of(*b));
            }
        }
        self.buckets.last().map(|(b, _)| value_of(*b))
    }

    /// How many values are at most `threshold` (by bucket: a bucket counts when the value
    /// it stands for is, so within [`RELATIVE_ACCURACY`] of the threshold).
    pub fn count_at_most(&self, threshold: f64) -> u64 {
        self.buckets
            .iter()
            .take_while(|(b, _)| value_of(*b) <= threshold)
            .map(|(_, n)| n)
            .sum()
    }

    /// Packs the buckets as `bucket[*count]` items joined by `:`, each bucket after the
    /// first as its distance from the one before (`182:3*2:5` is buckets 182, 185 twice
    /// and 190).
    pub fn pack(&self) -> String {
        let mut out = String::new();
        let mut prev = 0i64;
        for (i, (b, n)) in self.buckets.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            let b = i64::from(*b);
            let _ = write!(out, "{}", if i == 0 { b } else { b - prev });
            if *n != 1 {
                let _ = write!(out, "*{n}");
            }
            prev = b;
        }
        out
    }

    /// The histogram of [`Histogram::pack`]'s text.
    pub fn unpack(text: &str) -> Result<Self, String> {
        let mut h = Histogram::default();
        let mut prev = 0i64;
        for (i, part) in text.split(':').filter(|p| !p.is_empty()).enumerate() {
            let (b, n) = part.split_once('*').unwrap_or((part, "1"));
            let b: i64 = b
                .parse()
                .map_err(|_| format!("bad latency bucket {part:?}"))?;
            let n: u64 = n
                .parse()
                .map_err(|_| format!("bad latency count {part:?}"))?;
            if i > 0 && b <= 0 {
                return Err(format!("latency buckets out of order at {part:?}"));
            }
            let bucket = if i == 0 { b } else { prev + b };
            let bucket = i32::try_from(bucket)
                .map_err(|_| format!("latency bucket out of range {part:?}"))?;
            h.buckets.push((bucket, n));
            prev = i64::from(bucket);
        }
        Ok(h)
    }
}

impl serde::Serialize for Histogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.pack())
    }
}

impl<'de> serde::Deserialize<'de> for Histogram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        Histogram::unpack(&text).map_err(serde::de::Error::custom)
    }
}

/// One hour of an agent or integration, moved out of its live item once the hour is over:
/// what SLOs, charts by hour and the 7-day p99 of stuck executions read.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HourSummary {
    /// Executions finished (agents; by their start) or calls and probes (integrations).
    #[serde(default)]
    pub total: u64,
    /// Of those, failed.
    #[serde(default)]
    pub failed: u64,
    /// Execution durations or call and probe latencies.
    #[serde(default)]
    pub latency: Histogram,
    /// Model input tokens (agents).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub input_tokens: u64,
    /// Model output tokens (agents).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub output_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl HourSummary {
    /// Adds another summary.
    pub fn merge(&mut self, other: &HourSummary) {
        self.total = self.total.saturating_add(other.total);
        self.failed = self.failed.saturating_add(other.failed);
        self.latency.merge(&other.latency);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.total == 0 && self.latency.is_empty()
    }
}

/// The 50th, 95th and 99th percentiles of durations or latencies, ms, 1 decimal (within
/// [`RELATIVE_ACCURACY`]); `None` without data. Answers show them flattened, as
/// `latency_p50_ms`, `latency_p95_ms` and `latency_p99_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// The median.
    #[serde(rename = "latency_p50_ms")]
    pub p50: Option<f64>,
    /// The 95th percentile.
    #[serde(rename = "latency_p95_ms")]
    pub p95: Option<f64>,
    /// The 99th percentile.
    #[serde(rename = "latency_p99_ms")]
    pub p99: Option<f64>,
}

impl Percentiles {
    /// p50, p95 and p99, in that order.
    pub fn values(self) -> [Option<f64>; 3] {
        [self.p50, self.p95, self.p99]
    }
}

/// The percentiles of `h`.
pub fn percentiles(h: &Histogram) -> Percentiles {
    let [p50, p95, p99] =
        [0.50, 0.95, 0.99].map(|q| h.quantile(q).map(|v| crate::domain::round::round_to(v, 1)));
    Percentiles { p50, p95, p99 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact value of the same rank the histogram answers for.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[nearest_rank(q, sorted.len() as u64) as usize - 1]
    }

    fn check(values: &[f64]) {
        let mut h = Histogram::default();
        for v in values {
            h.add(*v);
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let want = exact(&sorted, q).max(MIN_VALUE);
            let got = h.quantile(q).unwrap_or(f64::NAN);
            let err = (got - want).abs() / want;
            // A hair over 2 % is float rounding at a bucket's edge, not the method.
            assert!(
                err <= RELATIVE_ACCURACY + 1e-9,
                "q={q}: got {got}, exact {want}, error {err}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn percentiles_are_within_two_percent_of_exact(
            values in proptest::collection::vec(0.0f64..600_000.0, 1..400)
        ) {
            check(&values);
        }

        #[test]
        fn merged_histograms_answer_as_one(
            a in proptest::collection::vec(0.1f64..5_000.0, 1..200),
            b in proptest::collection::vec(100.0f64..90_000.0, 1..200),
        ) {
            let (mut ha, mut hb, mut all) =
                (Histogram::default(), Histogram::default(), Histogram::default());
            a.iter().for_each(|v| { ha.add(*v); all.add(*v) });
            b.iter().for_each(|v| { hb.add(*v); all.add(*v) });
            ha.merge(&hb);
            proptest::prop_assert_eq!(&ha, &all);
            let mut both = a.clone();
            both.extend(&b);
            check(&both);
        }

        #[test]
        fn packing_round_trips(values in proptest::collection::vec(0.0f64..1e7, 0..300)) {
            let mut h = Histogram::default();
            values.iter().for_each(|v| h.add(*v));
            let text = h.pack();
            proptest::prop_assert_eq!(Histogram::unpack(&text), Ok(h));
        }
    }

    #[test]
    fn log_normal_latencies_of_a_day_pack_small() {
        // 1,440 calls around 120 ms, spread 0.5× to 2.5×.
        let mut h = Histogram::default();
        for k in 0..1_440u64 {
            let u = (k.wrapping_mul(2_654_435_761) % 1_000) as f64 / 1_000.0;
            h.add(120.0 * (0.5 + 2.0 * u * u));
        }
        let text = h.pack();
        assert!(text.len() < 320, "{} bytes: {text}", text.len());
        check(
            &(0..1_440u64)
                .map(|k| {
                    let u = (k.wrapping_mul(2_654_435_761) % 1_000) as f64 / 1_000.0;
                    120.0 * (0.5 + 2.0 * u * u)
                })
                .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn thresholds_count_by_bucket() {
        let mut h = Histogram::default();
        for v in [50.0, 150.0, 190.0, 250.0, 1_000.0] {
            h.add(v);
        }
        assert_eq!(h.count_at_most(200.0), 3);
        assert_eq!(h.count_at_most(10.0), 0);
        assert_eq!(h.count_at_most(1e9), 5);
        assert_eq!(percentiles(&Histogram::default()), Percentiles::default());
        // Nearest rank: of 100, 200 and 300 ms the median is 200 and the p95 and p99 300.
        let mut h = Histogram::default();
        [100.0, 200.0, 300.0].iter().for_each(|v| h.add(*v));
        assert_eq!(
            percentiles(&h).values(),
            [
                Some(estimate(200.0)),
                Some(estimate(300.0)),
                Some(estimate(300.0))
            ]
        );
    }

    #[test]
    fn damaged_text_is_refused() {
        for bad in ["x", "5:0", "5:-2", "5*y", "99999999999"] {
            assert!(Histogram::unpack(bad).is_err(), "{bad}");
        }
    }
}
