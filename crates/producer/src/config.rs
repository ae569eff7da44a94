//! The producer's settings, checked against the destination's limits when
//! the producer is built.

use std::time::Duration;

use crate::limits::BatchLimits;
use crate::retry::RetryPolicy;

/// The seed's batch size: 500 records (`batch_size`).
pub const DEFAULT_BATCH_RECORDS: usize = 500;
/// The seed's batch timeout: 5 s (`batch_timeout`).
pub const DEFAULT_LINGER: Duration = Duration::from_secs(5);
/// Batch requests in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;
/// Records the producer holds at most (queued, retrying, in flight).
pub const DEFAULT_QUEUE_MAX_RECORDS: usize = 100_000;
/// Bytes of record data the producer holds at most: what keeps memory
/// bounded when the destination is slow or down.
pub const DEFAULT_QUEUE_MAX_BYTES: usize = 64 * 1024 * 1024;

/// The smallest aggregate worth the framing (20 bytes of magic and MD5).
pub const MIN_AGGREGATE_BYTES: usize = 1024;

/// Producer settings. Build with [`crate::Producer::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Records per batch request (≤ the destination's limit).
    pub batch_records: usize,
    /// Bytes per batch request (≤ the destination's limit).
    pub batch_bytes: usize,
    /// How long a record may wait for its batch to fill.
    pub linger: Duration,
    /// Batch requests in flight at once.
    pub max_in_flight: usize,
    /// Records held at most; `send` waits while it is reached.
    pub queue_max_records: usize,
    /// Bytes held at most; `send` waits while it is reached.
    pub queue_max_bytes: usize,
    pub retry: RetryPolicy,
    /// Keep each partition key's records in order through retries: at most
    /// one record per key is in flight or waiting to retry at a time.
    pub strict_ordering: bool,
    /// KPL aggregation (Kinesis only): user records bound for the same
    /// shard share one Kinesis record of at most this many bytes. `None`:
    /// off.
    pub aggregate_max_bytes: Option<usize>,
    /// Firehose packing: newline-delimited records share one Firehose
    /// record of at most this many bytes (Firehose bills each record
    /// rounded up to 5 KB). `None`: off.
    pub pack_max_bytes: Option<usize>,
    /// Per-shard rate limiting (Kinesis): send to each shard at most this
    /// percentage of its 1,000 records/s and 1 MiB/s. `None`: off.
    pub rate_limit_percent: Option<u32>,
}

impl ProducerConfig {
    /// The defaults for a destination with these limits.
    pub fn defaults_for(limits: BatchLimits) -> Self {
        ProducerConfig {
            batch_records: DEFAULT_BATCH_RECORDS.min(limits.max_records),
            batch_bytes: limits.max_bytes,
            linger: DEFAULT_LINGER,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            queue_max_records: DEFAULT_QUEUE_MAX_RECORDS,
            queue_max_bytes: DEFAULT_QUEUE_MAX_BYTES,
            retry: RetryPolicy::default(),
            strict_ordering: false,
            aggregate_max_bytes: None,
            pack_max_bytes: None,
            rate_limit_percent: None,
        }
    }

    /// Checks the settings against the destination's limits.
    pub fn validate(&self, limits: BatchLimits) -> Result<(), ConfigError> {
        if self.batch_records == 0 || self.batch_records > limits.max_records {
            return Err(ConfigError::BatchRecords {
                value: self.batch_records,
                limit: limits.max_records,
            });
        }
        if self.batch_bytes < limits.max_record_bytes || self.batch_bytes > limits.max_bytes {
            return Err(ConfigError::BatchBytes {
                value: self.batch_bytes,
                min: limits.max_record_bytes,
                max: limits.max_bytes,
            });
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::Zero("max_in_flight"));
        }
        if self.queue_max_records == 0 {
            return Err(ConfigError::Zero("queue_max_records"));
        }
        if self.queue_max_bytes < limits.max_record_bytes {
            return Err(ConfigError::QueueBytes {
                value: self.queue_max_bytes,
                min: limits.max_record_bytes,
            });
        }
        if u32::try_from(self.queue_max_bytes).is_err() {
            return Err(ConfigError::QueueBytesTooLarge {
                value: self.queue_max_bytes,
            });
        }
        if let Some(max) = self.aggregate_max_bytes
            && (max < MIN_AGGREGATE_BYTES || max > limits.max_record_bytes)
        {
            return Err(ConfigError::AggregateBytes {
                value: max,
                min: MIN_AGGREGATE_BYTES,
                max: limits.max_record_bytes,
            });
        }
        if let Some(max) = self.pack_max_bytes
            && (max == 0 || max > limits.max_record_bytes)
        {
            return Err(ConfigError::PackBytes {
                value: max,
                max: limits.max_record_bytes,
            });
        }
        if let Some(percent) = self.rate_limit_percent
            && !(1..=1000).contains(&percent)
        {
            return Err(ConfigError::RateLimit { value: percent });
        }
        if self.aggregate_max_bytes.is_some() && self.pack_max_bytes.is_some() {
            return Err(ConfigError::AggregateAndPack);
        }
        if self.retry.initial_delay > self.retry.max_delay {
            return Err(ConfigError::RetryDelays {
                initial: self.retry.initial_delay,
                max: self.retry.max_delay,
            });
        }
        Ok(())
    }
}

/// A setting the destination cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error(
        "batch_records must be 1 to {limit} (the destination's limit per request), not {value}"
    )]
    BatchRecords { value: usize, limit: usize },
    #[error(
        "batch_bytes must be {min} to {max} (one largest record up to the destination's limit per request), not {value}"
    )]
    BatchBytes {
        value: usize,
        min: usize,
        max: usize,
    },
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("queue_max_bytes must hold at least one largest record ({min} bytes), not {value}")]
    QueueBytes { value: usize, min: usize },
    #[error("queue_max_bytes must be below 4 GiB, not {value}")]
    QueueBytesTooLarge { value: usize },
    #[error("aggregate_max_bytes must be {min} to {max} (one Kinesis record), not {value}")]
    AggregateBytes {
        value: usize,
        min: usize,
        max: usize,
    },
    #[error("pack_max_bytes must be 1 to {max} (one record), not {value}")]
    PackBytes { value: usize, max: usize },
    #[error("rate_limit_percent must be 1 to 1000 (percent of a shard's capacity), not {value}")]
    RateLimit { value: u32 },
    #[error("{destination} has no shards to rate-limit")]
    RateLimitUnsupported { destination: String },
    #[error("aggregation (Kinesis) and packing (Firehose) cannot both be on")]
    AggregateAndPack,
    #[error("{destination} does not support KPL aggregation")]
    AggregationUnsupported { destination: String },
    #[error("the initial retry delay {initial:?} exceeds the maximum {max:?}")]
    RetryDelays { initial: Duration, max: Duration },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_for_both_services() {
        for limits in [BatchLimits::KINESIS, BatchLimits::FIREHOSE] {
            assert_eq!(
                ProducerConfig::defaults_for(limits).validate(limits),
                Ok(())
            );
        }
    }

    #[test]
    fn limits_are_enforced() {
        let limits = BatchLimits::KINESIS;
        let base = ProducerConfig::defaults_for(limits);
        let cases = [
            ProducerConfig {
                batch_records: 501,
                ..base.clone()
            },
            ProducerConfig {
                batch_records: 0,
                ..base.clone()
            },
            ProducerConfig {
                batch_bytes: 6 * 1024 * 1024,
                ..base.clone()
            },
            ProducerConfig {
                batch_bytes: 1024,
                ..base.clone()
            },
            ProducerConfig {
                max_in_flight: 0,
                ..base.clone()
            },
            ProducerConfig {
                queue_max_bytes: 1024,
                ..base.clone()
            },
        ];
        for config in cases {
            assert!(config.validate(limits).is_err(), "{config:?}");
        }
        let message = ProducerConfig {
            batch_records: 501,
            ..base
        }
        .validate(limits)
        .unwrap_err()
        .to_string();
        assert!(message.contains("1 to 500"), "{message}");
    }
}
