//! A latency histogram for the request path: observations go to one of a few shards picked by
//! thread, each on its own cache lines, so worker threads on different cores never write the
//! same line (prometheus-client's `Histogram` takes one lock per observation, and two cores
//! trading its cache line cost more than the rest of the metrics together). The shards are
//! summed when the registry is encoded, through prometheus-client's encoder.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Shards per histogram: enough for the workers of a small machine; more threads share.
const SHARDS: usize = 8;

/// One shard's counters, alone on its cache lines.
#[repr(align(128))]
struct Shard {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// Sum of observations, in nanoseconds.
    sum_nanos: AtomicU64,
}

struct Inner {
    /// Upper bounds in seconds, ascending.
    upper: Box<[f64]>,
    /// The same in nanoseconds, for the comparison on the hot path.
    upper_nanos: Box<[u64]>,
    shards: Box<[Shard]>,
}

/// A histogram of durations, sharded by thread.
#[derive(Clone)]
pub struct ShardedHistogram(Arc<Inner>);

impl std::fmt::Debug for ShardedHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedHistogram").finish_non_exhaustive()
    }
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<Option<usize>> = const { Cell::new(None) };
    }
    INDEX.with(|i| match i.get() {
        Some(n) => n,
        None => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            i.set(Some(n));
            n
        }
    })
}

impl ShardedHistogram {
    /// A histogram with the given upper bounds (seconds, ascending) and `+Inf`.
    pub fn new(upper: impl IntoIterator<Item = f64>) -> Self {
        let upper: Box<[f64]> = upper.into_iter().collect();
        let upper_nanos = upper.iter().map(|s| (s * 1e9) as u64).collect();
        let shards = (0..SHARDS)
            .map(|_| Shard {
                buckets: (0..=upper.len()).map(|_| AtomicU64::new(0)).collect(),
                count: AtomicU64::new(0),
                sum_nanos: AtomicU64::new(0),
            })
            .collect();
        Self(Arc::new(Inner {
            upper,
            upper_nanos,
            shards,
        }))
    }

    /// Records one duration.
    pub fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let inner = &*self.0;
        let Some(shard) = inner.shards.get(shard_index()) else {
            return;
        };
        let bucket = inner
            .upper_nanos
            .iter()
            .position(|u| nanos <= *u)
            .unwrap_or(inner.upper_nanos.len());
        if let Some(b) = shard.buckets.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        shard.count.fetch_add(1, Ordering::Relaxed);
        shard.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// `(sum in seconds, count, [(upper bound, observations in that bucket)])` over every shard.
    fn totals(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let inner = &*self.0;
        let mut buckets: Vec<(f64, u64)> = inner
            .upper
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .map(|u| (u, 0))
            .collect();
        let (mut count, mut sum) = (0u64, 0u64);
        for shard in inner.shards.iter() {
            for (total, b) in buckets.iter_mut().zip(shard.buckets.iter()) {
                total.1 += b.load(Ordering::Relaxed);
            }
            count += shard.count.load(Ordering::Relaxed);
            sum = sum.saturating_add(shard.sum_nanos.load(Ordering::Relaxed));
        }
        (sum as f64 / 1e9, count, buckets)
    }
}

impl TypedMetric for ShardedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ShardedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.totals();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_from_many_threads_add_up_in_their_buckets() {
        let h = ShardedHistogram::new([0.001, 0.01]);
        std::thread::scope(|s| {
            for _ in 0..12 {
                let h = h.clone();
                s.spawn(move || {
                    for _ in 0..100 {
                        h.observe(Duration::from_micros(500)); // first bucket
                        h.observe(Duration::from_millis(5)); // second
                        h.observe(Duration::from_secs(1)); // +Inf
                    }
                });
            }
        });
        let (sum, count, buckets) = h.totals();
        assert_eq!(count, 3600);
        assert_eq!(
            buckets.iter().map(|b| b.1).collect::<Vec<_>>(),
            [1200, 1200, 1200]
        );
        assert!((sum - 1200.0 * 1.0055).abs() < 1e-6, "{sum}");
        // A bound is inclusive, as Prometheus's `le` says.
        let edge = ShardedHistogram::new([0.001]);
        edge.observe(Duration::from_millis(1));
        assert_eq!(edge.totals().2[0].1, 1);
    }
}
