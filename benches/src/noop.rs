//! A destination that accepts every entry at once and counts what it was
//! given: for measuring the producer's own overhead, and the Kinesis PUT
//! payload units a run would be billed.

use std::sync::atomic::{AtomicU64, Ordering};

use shardline_producer::{BatchLimits, Delivery, Destination, Entry, EntryError, PutError};

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

/// Accepts everything; counts requests, entries and payload units.
#[derive(Debug, Default, Clone)]
pub struct Accept {
    pub counts: std::sync::Arc<Counts>,
}

#[async_trait::async_trait]
impl Destination for Accept {
    fn name(&self) -> &str {
        "accept"
    }

    fn limits(&self) -> BatchLimits {
        BatchLimits::KINESIS
    }

    fn supports_aggregation(&self) -> bool {
        true
    }

    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        self.counts
            .entries
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        let units: u64 = entries
            .iter()
            .map(|e| {
                let size = (e.data.len() + e.partition_key.len_bytes()) as u64;
                size.div_ceil(PUT_PAYLOAD_UNIT_BYTES).max(1)
            })
            .sum();
        self.counts
            .payload_units
            .fetch_add(units, Ordering::Relaxed);
        Ok(entries.iter().map(|_| Ok(Delivery::default())).collect())
    }
}
