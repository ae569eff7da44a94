//! Per-shard rate limiting, as the KPL does: a producer that sends no
//! faster than a shard takes records does not throttle itself into retry
//! storms.

use std::collections::HashMap;
use std::time::Duration;

use std::time::Instant;

/// Records a shard takes per second.
/// <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>
pub const SHARD_RECORDS_PER_SECOND: f64 = 1_000.0;
/// Bytes a shard takes per second (1 MiB).
/// <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>
pub const SHARD_BYTES_PER_SECOND: f64 = 1_048_576.0;

/// One shard's two token buckets: records and bytes, each refilled at the
/// shard's rate and holding at most one second's worth.
#[derive(Debug, Clone, Copy)]
struct Buckets {
    records: f64,
    bytes: f64,
    refilled: Instant,
}

/// Token buckets per shard, at a share of each shard's capacity.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    records_per_second: f64,
    bytes_per_second: f64,
    shards: HashMap<usize, Buckets>,
}

impl RateLimiter {
    /// Buckets at `percent` of a shard's capacity (the KPL's `RateLimit`,
    /// 150 by default there: it lets the service absorb bursts).
    pub(crate) fn new(percent: u32) -> Self {
        let share = f64::from(percent) / 100.0;
        RateLimiter {
            records_per_second: SHARD_RECORDS_PER_SECOND * share,
            bytes_per_second: SHARD_BYTES_PER_SECOND * share,
            shards: HashMap::new(),
        }
    }

    /// Takes `records` records and `bytes` bytes from `shard`'s buckets if
    /// both have them, at `now`.
    pub(crate) fn try_take(
        &mut self,
        shard: usize,
        records: f64,
        bytes: f64,
        now: Instant,
    ) -> bool {
        let (records_cap, bytes_cap) = (self.records_per_second, self.bytes_per_second);
        let buckets = self.shards.entry(shard).or_insert(Buckets {
            records: records_cap,
            bytes: bytes_cap,
            refilled: now,
        });
        let elapsed = now
            .saturating_duration_since(buckets.refilled)
            .as_secs_f64();
        buckets.records = (buckets.records + elapsed * records_cap).min(records_cap);
        buckets.bytes = (buckets.bytes + elapsed * bytes_cap).min(bytes_cap);
        buckets.refilled = now;
        // A record larger than a whole bucket may go once the bucket is full.
        let bytes_needed = bytes.min(bytes_cap);
        if buckets.records >= records && buckets.bytes >= bytes_needed {
            buckets.records -= records;
            buckets.bytes -= bytes_needed;
            true
        } else {
            false
        }
    }

    /// How soon to look again after a record was held back.
    pub(crate) const RETRY_AFTER: Duration = Duration::from_millis(10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_takes_a_seconds_worth_then_its_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(100);
        let taken = (0..2_000)
            .filter(|_| limiter.try_take(0, 1.0, 10.0, start))
            .count();
        assert_eq!(taken, 1_000);
        // Another shard has its own buckets.
        assert!(limiter.try_take(1, 1.0, 10.0, start));
        // 100 ms later, 100 more records.
        let later = start + Duration::from_millis(100);
        let taken = (0..2_000)
            .filter(|_| limiter.try_take(0, 1.0, 10.0, later))
            .count();
        assert_eq!(taken, 100);
    }

    #[test]
    fn bytes_limit_too() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(100);
        // 1 MiB/s in 100 KiB records: 10 at once.
        let taken = (0..50)
            .filter(|_| limiter.try_take(0, 1.0, 102_400.0, start))
            .count();
        assert_eq!(taken, 10);
        // At 150%, 15.
        let mut limiter = RateLimiter::new(150);
        let taken = (0..50)
            .filter(|_| limiter.try_take(0, 1.0, 102_400.0, start))
            .count();
        assert_eq!(taken, 15);
    }
}
