//! Helpers of the benchmarks: rates over a fixed wall time, medians, and a
//! pair of agents running whole invitations in memory.

pub mod pair;

use std::time::{Duration, Instant};

/// How many times `f` runs per second, over `round` of wall time.
pub fn rate(round: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < round {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The median of `v` (the upper one of an even count).
#[must_use]
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
