//! A Prometheus histogram of durations that counts each sample into its
//! bucket as it is recorded.
//!
//! metrics-exporter-prometheus keeps every raw sample until upkeep folds it
//! into buckets. For the per-event latency, at over a million events a
//! second, that buffer of samples, not the events, set trackd's peak memory
//! and cost more than the counting; here memory is fixed and a batch's
//! samples take one atomic add per bucket they touch.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bucket counts and the running sum of a histogram of durations.
#[derive(Debug)]
pub struct DurationHistogram {
    /// The metric's name.
    name: &'static str,
    /// Its HELP text.
    help: &'static str,
    /// Upper bounds in seconds, ascending, as printed in `le`.
    bounds: &'static [f64],
    /// The same bounds in nanoseconds, for counting.
    bounds_nanos: Box<[u64]>,
    /// Samples per bucket, not cumulative; the last is above every bound.
    counts: Box<[AtomicU64]>,
    /// Sum of every sample, in nanoseconds (enough for 584 years).
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    /// A histogram named `name` with buckets up to each of `bounds` seconds.
    pub fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> Self {
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "bucket bounds ascend"
        );
        DurationHistogram {
            name,
            help,
            bounds,
            bounds_nanos: bounds.iter().map(|s| (s * 1e9).round() as u64).collect(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records, for each of `starts`, the time from it to `end`.
    pub fn record_since(&self, starts: &[Instant], end: Instant) {
        let mut counts = vec![0u64; self.counts.len()];
        let mut sum: u64 = 0;
        for &start in starts {
            let nanos = nanos(end.saturating_duration_since(start));
            counts[self.bounds_nanos.partition_point(|&b| b < nanos)] += 1;
            sum = sum.saturating_add(nanos);
        }
        for (total, n) in self.counts.iter().zip(counts) {
            if n > 0 {
                total.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.sum_nanos.fetch_add(sum, Ordering::Relaxed);
    }

    /// Appends the histogram in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let name = self.name;
        let _ = write!(
            out,
            "# HELP {name} {}\n# TYPE {name} histogram\n",
            self.help
        );
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let last = self.counts.last().expect("one bucket above every bound");
        cumulative += last.load(Ordering::Relaxed);
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = write!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {cumulative}\n{name}_sum {sum}\n{name}_count {cumulative}\n\n"
        );
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_cumulative_buckets_with_sum_and_count() {
        let histogram = DurationHistogram::new("t_seconds", "Test.", &[0.001, 0.1, 1.0]);
        let end = Instant::now() + Duration::from_secs(10);
        let at = |ms: u64| end - Duration::from_millis(ms);
        // 1 ms exactly is in the 0.001 bucket (le means ≤).
        histogram.record_since(&[at(1), at(50), at(50), at(2000)], end);
        histogram.record_since(&[end + Duration::from_secs(1)], end);
        let mut text = String::new();
        histogram.render(&mut text);
        assert_eq!(
            text,
            "# HELP t_seconds Test.\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{le=\"0.001\"} 2\n\
             t_seconds_bucket{le=\"0.1\"} 4\n\
             t_seconds_bucket{le=\"1\"} 4\n\
             t_seconds_bucket{le=\"+Inf\"} 5\n\
             t_seconds_sum 2.101\n\
             t_seconds_count 5\n\n"
        );
    }
}
