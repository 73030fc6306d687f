//! Timing: samples of a call batched to the clock's granularity, and their statistics.

use crate::error::Result;
use std::time::Instant;

/// Nearest-rank percentile of sorted samples (p in 0..=1).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// (min, median, p99) of time samples.
pub fn summarize(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    (
        percentile(&samples, 0.0),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
    )
}

/// The clock's granularity in ns: the smallest step of `Instant::now()` over a few full ticks.
/// About the cost of reading the clock with a TSC clocksource; a whole jiffy (e.g. 4 ms) when
/// the guest kernel fell back to the jiffies clocksource (seen under TCG).
pub fn clock_granularity() -> f64 {
    const SPIN_LIMIT: u64 = 50_000_000;
    let next_change = |from: Instant| -> Option<Instant> {
        for _ in 0..SPIN_LIMIT {
            let t = Instant::now();
            if t != from {
                return Some(t);
            }
        }
        None
    };
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let Some(a) = next_change(Instant::now()) else {
            return 1e7; // the clock hardly moves: assume 10 ms
        };
        let Some(b) = next_change(a) else {
            return 1e7;
        };
        best = best.min((b - a).as_nanos() as f64);
    }
    best.max(1.0)
}

/// Fewest samples per row, whatever the batching.
const MIN_SAMPLES: usize = 10;

/// How many calls one sample must batch so that it lasts at least 10 clock steps (the
/// quantisation error stays under 10%), given the cost of one call.
pub fn batch_size(granularity_ns: f64, cost_ns: f64) -> usize {
    if cost_ns <= 0.0 || !cost_ns.is_finite() {
        return 1;
    }
    let b = (10.0 * granularity_ns / cost_ns).ceil();
    if b >= 1e8 {
        100_000_000
    } else if b >= 1.0 {
        b as usize
    } else {
        1 // also NaN
    }
}

/// Number of samples for `iters` calls batched by `batch`.
pub fn sample_count(iters: usize, batch: usize) -> usize {
    iters
        .div_ceil(batch.max(1))
        .max(MIN_SAMPLES.min(iters.max(1)))
}

/// Time about `iters` calls of `f`, in ns per call. Warm-up and calibration first: on a fine
/// clock every call is a sample; on a coarse one each sample is the mean of a batch of
/// calls (see `batch_size`), and at least MIN_SAMPLES samples are taken.
pub fn time_each(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    let g = granularity();
    // Calibrate (this also warms up): double the count until it lasts 20 clock steps.
    let mut count = 1usize;
    let cost = loop {
        let t = Instant::now();
        for _ in 0..count {
            f()?;
        }
        let ns = t.elapsed().as_nanos() as f64;
        if ns >= 20.0 * g || count >= 1 << 24 {
            break ns / count as f64;
        }
        count *= 2;
    };
    let batch = batch_size(g, cost);
    let samples = sample_count(iters, batch);
    let mut v = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        for _ in 0..batch {
            f()?;
        }
        v.push(t.elapsed().as_nanos() as f64 / batch as f64);
    }
    Ok(v)
}

/// The clock granularity, measured once per process.
fn granularity() -> f64 {
    static G: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *G.get_or_init(clock_granularity)
}

/// Throughput from time samples of moving `bytes` each: min = slowest sample, median, and p99
/// = the rate at the 99th-percentile time (the tail, as for latencies). MB = 10^6 bytes.
pub fn throughput(samples_ns: Vec<f64>, bytes: f64) -> (f64, f64, f64) {
    let (tmin, tmed, tp99) = summarize(samples_ns.clone());
    let tmax = samples_ns.iter().copied().fold(tmin, f64::max);
    let rate = |t: f64| if t > 0.0 { bytes * 1e3 / t } else { 0.0 };
    (rate(tmax), rate(tmed), rate(tp99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(summarize(vec![3.0, 1.0, 2.0]), (1.0, 2.0, 3.0));
    }

    #[test]
    fn batching() {
        // Fine clock: one call per sample.
        assert_eq!(batch_size(30.0, 700.0), 1);
        assert_eq!(sample_count(10_000, 1), 10_000);
        // Jiffies clock (4 ms) and a 1 us call: 40000 calls per sample, still 10 samples.
        assert_eq!(batch_size(4e6, 1000.0), 40_000);
        assert_eq!(sample_count(10_000, 40_000), 10);
        assert_eq!(sample_count(5, 1), 5);
        assert_eq!(sample_count(1, 1000), 1);
        assert_eq!(batch_size(1.0, 0.0), 1);
        assert_eq!(batch_size(1.0, f64::NAN), 1);
        assert_eq!(batch_size(1e300, 1e-300), 100_000_000);
        let g = clock_granularity();
        assert!((1.0..1e8).contains(&g), "{g}");
    }

    #[test]
    fn throughput_tail() {
        // 1e6 bytes in 1 ms = 1000 MB/s.
        let (min, med, p99) = throughput(vec![1e6, 1e6, 2e6], 1e6);
        assert_eq!(med, 1000.0);
        assert_eq!(min, 500.0);
        assert_eq!(p99, 500.0);
    }
}
