//! A destination that accepts every entry at once and counts what it was
//! given: for measuring the producer's own overhead, and the Kinesis PUT
//! payload units a run would be billed.

use std::sync::atomic::{AtomicU64, Ordering};

use shardline_producer::{
    BatchLimits, Delivery, Destination, Entry, EntryError, PutError, ShardMap,
};

/// Kinesis bills PUT payload units of 25 KB per record, rounded up
/// (<https://aws.amazon.com/kinesis/data-streams/pricing/>).
pub const PUT_PAYLOAD_UNIT_BYTES: u64 = 25 * 1024;

/// What an [`Accept`] destination was given.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub entries: AtomicU64,
    pub payload_units: AtomicU64,
}

/// Firehose bills each record rounded up to 5 KB
/// (<https://aws.amazon.com/firehose/pricing/>).
pub const FIREHOSE_UNIT_BYTES: u64 = 5 * 1024;

/// Accepts everything; counts requests, entries and billing units (25 KB
/// PUT payload units with Kinesis limits, 5 KB units with Firehose limits).
#[derive(Debug, Clone)]
pub struct Accept {
    pub counts: std::sync::Arc<Counts>,
    pub limits: BatchLimits,
}

impl Default for Accept {
    fn default() -> Self {
        Accept::with_limits(BatchLimits::KINESIS)
    }
}

impl Accept {
    pub fn with_limits(limits: BatchLimits) -> Self {
        Accept {
            counts: std::sync::Arc::default(),
            limits,
        }
    }
}

#[async_trait::async_trait]
impl Destination for Accept {
    fn name(&self) -> &str {
        "accept"
    }

    fn limits(&self) -> BatchLimits {
        self.limits
    }

    fn supports_aggregation(&self) -> bool {
        self.limits.counts_partition_key
    }

    /// With Kinesis's limits, a stream of one shard: aggregates hold any
    /// keys, as they would in a one-shard stream.
    async fn shard_map(&self) -> Result<Option<ShardMap>, PutError> {
        Ok(self.limits.counts_partition_key.then(|| ShardMap::even(1)))
    }

    /// With Firehose's limits it frames records as Firehose's destination
    /// does: each ends with a newline.
    fn newline_delimited(&self) -> bool {
        !self.limits.counts_partition_key
    }

    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        self.counts
            .entries
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        let unit = if self.limits.counts_partition_key {
            PUT_PAYLOAD_UNIT_BYTES
        } else {
            FIREHOSE_UNIT_BYTES
        };
        let units: u64 = entries
            .iter()
            .map(|e| {
                let framing = usize::from(self.newline_delimited() && !e.data.ends_with(b"\n"));
                let size = self
                    .limits
                    .record_size(e.data.len() + framing, e.partition_key.len_bytes())
                    as u64;
                size.div_ceil(unit).max(1)
            })
            .sum();
        self.counts
            .payload_units
            .fetch_add(units, Ordering::Relaxed);
        Ok(entries.iter().map(|_| Ok(Delivery::default())).collect())
    }
}
