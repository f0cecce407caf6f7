//! Rounding as the contract shows numbers, and the ratio every rate is. The lowest room of
//! the domain: every other module may use it.

/// Rounds to `decimals` decimals (half away from zero), the one rounding of every figure
/// the API shows.
pub fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// Rounds to 1 decimal, as the contract shows percentages.
pub fn round1(x: f64) -> f64 {
    round_to(x, 1)
}

/// Rounds to 2 decimals; latencies and durations are shown in milliseconds to 0.01.
pub fn round2(x: f64) -> f64 {
    round_to(x, 2)
}

/// Rounds to 3 decimals, as the contract rounds rates and scores.
pub fn round3(x: f64) -> f64 {
    round_to(x, 3)
}

/// Rounds to 4 decimals, as the contract rounds integrations' error rates.
pub fn round4(x: f64) -> f64 {
    round_to(x, 4)
}

/// `part / max(whole, 1)`.
pub fn ratio(part: u64, whole: u64) -> f64 {
    part as f64 / whole.max(1) as f64
}
