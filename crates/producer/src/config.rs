//! The producer's settings, checked against the destination's limits when
//! the producer is built.

use std::time::Duration;

use crate::limits::BatchLimits;
use crate::retry::RetryPolicy;

/// Records per batch by default: 500 (`batch_size`), the most one
/// `PutRecords` call takes.
pub const DEFAULT_BATCH_RECORDS: usize = 500;
/// How long a record may wait for its batch to fill by default: 100 ms,
/// the KPL's `RecordMaxBufferedTime`. A service awaiting each record's
/// outcome gets it within a tenth of a second; a busy one fills batches by
/// count or size long before. (log-streamer keeps 5 s.)
pub const DEFAULT_LINGER: Duration = Duration::from_millis(100);
/// Batch requests in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;
/// Records the producer holds at most (queued, retrying, in flight).
pub const DEFAULT_QUEUE_MAX_RECORDS: usize = 100_000;
/// Memory the producer holds at most for records — their data and
/// bookkeeping, and the copies requests in flight make of them: what keeps
/// memory bounded when the destination is slow or down.
pub const DEFAULT_QUEUE_MAX_BYTES: usize = 64 * 1024 * 1024;

/// What one record costs beyond its data and partition key while the
/// producer holds it: its place in the queue, its receipt's channel, its
/// delivery history, its place in the sets that track what is unsettled.
/// An upper bound on 64-bit targets: the queue's `Pending` is 272 bytes
/// (`size_of`, checked by a test), the receipt channel's allocation about
/// 150.
pub const RECORD_OVERHEAD_BYTES: usize = 512;

/// What one entry of a request costs beyond its data and key while the
/// request is in flight: the JSON framing around it (`{"Data":"",
/// "PartitionKey":"","ExplicitHashKey":""}`, a 39-digit hash key) and its
/// share of the response (a 56-digit sequence number and a shard id).
pub const REQUEST_ENTRY_OVERHEAD_BYTES: usize = 256;

/// How many times a request's JSON body is counted: the SDK serializes it
/// into a `String` that starts empty and doubles as it fills, so its
/// buffer holds up to twice the body's length (heaptrack showed it as the
/// largest allocation of a full request).
pub const BODY_GROWTH: usize = 2;

/// The smallest aggregate worth the framing (20 bytes of magic and MD5).
pub const MIN_AGGREGATE_BYTES: usize = 1024;

/// Producer settings, given to [`crate::ProducerBuilder::config`] or set
/// one by one on the builder.
///
/// They deserialise from TOML (or any serde format): every field is
/// optional, durations are written as text (`"100ms"`, `"5s"`, `"2m"`),
/// and an unknown field is an error.
///
/// ```
/// use std::time::Duration;
/// use shardline_producer::{ProducerConfig, WhenRetriesRunOut};
///
/// let config: ProducerConfig = toml::from_str(r#"
///     linger = "250ms"
///     max_in_flight = 4
///     aggregate_max_bytes = 51200
///
///     [retry]
///     max_retries = 5
///     when_retries_run_out = { hold = { limit = "10m" } }
/// "#)?;
/// assert_eq!(config.linger, Duration::from_millis(250));
/// assert_eq!(config.retry.max_retries, Some(5));
/// assert_eq!(
///     config.retry.when_retries_run_out,
///     WhenRetriesRunOut::Hold { limit: Some(Duration::from_secs(600)) },
/// );
/// assert_eq!(config.batch_records, 500, "the default");
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// Records per batch request (≤ the destination's limit).
    pub batch_records: usize,
    /// Bytes per batch request (≤ the destination's limit).
    pub batch_bytes: usize,
    /// How long a record may wait for its batch to fill.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Batch requests in flight at once, at most. With
    /// `adaptive_concurrency` the producer keeps fewer in flight while the
    /// service answers slowly or pushes back.
    pub max_in_flight: usize,
    /// Records held at most; `send` waits while it is reached.
    pub queue_max_records: usize,
    /// Memory held at most, in bytes: records (data, key and
    /// [`RECORD_OVERHEAD_BYTES`] each) while queued, retrying or in flight,
    /// plus the copies requests in flight make ([`Self::request_budget`]
    /// of it). `send` waits while the records' share is used up.
    pub queue_max_bytes: usize,
    /// The share of `queue_max_bytes` set aside for the copies requests in
    /// flight make (see [`Self::request_copy_bytes`]); a request waits
    /// while the copies of those already in flight leave no room for its
    /// own. `None`: a quarter of `queue_max_bytes`, or one full batch's
    /// copies if that is more.
    pub request_memory_bytes: Option<usize>,
    /// How failed records are retried.
    pub retry: RetryPolicy,
    /// Keep each partition key's records in order through retries: at most
    /// one entry per key is in flight or waiting to retry at a time. Without
    /// aggregation that entry is one record; with it, one aggregate, which
    /// takes the key's queued records that fit.
    pub strict_ordering: bool,
    /// KPL aggregation (Kinesis only): user records bound for the same
    /// shard share one Kinesis record of at most this many bytes. `None`:
    /// off.
    pub aggregate_max_bytes: Option<usize>,
    /// Firehose packing: newline-delimited records share one Firehose
    /// record of at most this many bytes (Firehose bills each record
    /// rounded up to 5 KB). `None`: off.
    pub pack_max_bytes: Option<usize>,
    /// A fixed per-shard rate limit (Kinesis), as the KPL's `RateLimit`:
    /// send to each shard at most this percentage of its 1,000 records/s
    /// and 1 MiB/s, from the start. `None`: no fixed limit (shards are
    /// still paced once they throttle, with `adaptive_shard_rate`).
    pub rate_limit_percent: Option<u32>,
    /// Pace each shard that throttles (Kinesis): its rate is cut to what
    /// it takes, and probed upwards again, so that many producers sharing
    /// a stream settle just under each shard's capacity without talking to
    /// each other; throttled records wait for their shard instead of
    /// spending retries. See [`crate::rate_limit`].
    pub adaptive_shard_rate: bool,
    /// Keep fewer requests in flight (down to one) while answers slow down
    /// or the service pushes back, and more again (up to
    /// `max_in_flight`) while they are quick. See
    /// [`crate::concurrency`].
    pub adaptive_concurrency: bool,
}

/// The defaults that fit every destination: those for Firehose, whose
/// batches are the smaller (4 MiB; Kinesis takes 5 MiB). A builder starts
/// from its own destination's defaults instead
/// ([`ProducerConfig::defaults_for`]).
impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig::defaults_for(BatchLimits::FIREHOSE)
    }
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
            request_memory_bytes: None,
            retry: RetryPolicy::default(),
            strict_ordering: false,
            aggregate_max_bytes: None,
            pack_max_bytes: None,
            rate_limit_percent: None,
            adaptive_shard_rate: true,
            adaptive_concurrency: true,
        }
    }

    /// Whether request entries are new buffers (KPL aggregates, Firehose
    /// packs) rather than shared references to the records' data.
    fn entries_are_copies(&self) -> bool {
        self.aggregate_max_bytes.is_some() || self.pack_max_bytes.is_some()
    }

    /// The memory a request of `entries` entries holding `entry_bytes` of
    /// data and keys takes while in flight, beyond the records it carries.
    /// Kinesis and Firehose speak JSON through the SDK: each entry's data is
    /// copied into the request (a `Blob`), then base64-encoded into the
    /// body with its framing; an aggregate or a pack is a third copy. The
    /// SDK writes the body into a buffer that grows by doubling, so the
    /// body is counted [`BODY_GROWTH`] times.
    pub fn request_copy_bytes(&self, entry_bytes: usize, entries: usize) -> usize {
        let base64 = entry_bytes.div_ceil(3).saturating_mul(4);
        let body = base64.saturating_add(entries.saturating_mul(REQUEST_ENTRY_OVERHEAD_BYTES));
        let fresh = if self.entries_are_copies() {
            entry_bytes
        } else {
            0
        };
        entry_bytes
            .saturating_add(fresh)
            .saturating_add(body.saturating_mul(BODY_GROWTH))
    }

    /// The copies a request of a full batch makes.
    pub fn full_request_copy_bytes(&self) -> usize {
        self.request_copy_bytes(self.batch_bytes, self.batch_records)
    }

    /// The bytes set aside for requests in flight (see
    /// [`ProducerConfig::request_memory_bytes`]).
    pub fn request_budget(&self) -> usize {
        self.request_memory_bytes
            .unwrap_or_else(|| (self.queue_max_bytes / 4).max(self.full_request_copy_bytes()))
    }

    /// The bytes records may take: `queue_max_bytes` less the request
    /// budget.
    pub fn record_budget(&self) -> usize {
        self.queue_max_bytes.saturating_sub(self.request_budget())
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
        let full_request = self.full_request_copy_bytes();
        if self.request_budget() < full_request {
            return Err(ConfigError::RequestMemory {
                value: self.request_budget(),
                min: full_request,
            });
        }
        let largest_record = limits.max_record_bytes + RECORD_OVERHEAD_BYTES;
        if self.record_budget() < largest_record {
            return Err(ConfigError::QueueBytes {
                value: self.queue_max_bytes,
                min: self.request_budget().saturating_add(largest_record),
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
    /// `batch_records` is 0 or above the destination's limit.
    BatchRecords {
        /// The value given.
        value: usize,
        /// The destination's limit.
        limit: usize,
    },
    #[error(
        "batch_bytes must be {min} to {max} (one largest record up to the destination's limit per request), not {value}"
    )]
    /// `batch_bytes` cannot hold one largest record, or is above the limit.
    BatchBytes {
        /// The value given.
        value: usize,
        /// The least allowed.
        min: usize,
        /// The most allowed.
        max: usize,
    },
    /// A count that must be at least 1 is 0 (the setting's name).
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error(
        "queue_max_bytes must hold the request budget and one largest record ({min} bytes), not {value}"
    )]
    /// `queue_max_bytes` cannot hold the request budget and one record.
    QueueBytes {
        /// The value given.
        value: usize,
        /// The least allowed.
        min: usize,
    },
    #[error(
        "request_memory_bytes must hold the copies of one full batch ({min} bytes: lower batch_bytes or raise the budget), not {value}"
    )]
    /// `request_memory_bytes` cannot hold one full batch's copies.
    RequestMemory {
        /// The value given.
        value: usize,
        /// The least allowed.
        min: usize,
    },
    /// `queue_max_bytes` is 4 GiB or more.
    #[error("queue_max_bytes must be below 4 GiB, not {value}")]
    QueueBytesTooLarge {
        /// The value given.
        value: usize,
    },
    /// `aggregate_max_bytes` is out of range.
    #[error("aggregate_max_bytes must be {min} to {max} (one Kinesis record), not {value}")]
    AggregateBytes {
        /// The value given.
        value: usize,
        /// The least allowed.
        min: usize,
        /// The most allowed.
        max: usize,
    },
    /// `pack_max_bytes` is out of range.
    #[error("pack_max_bytes must be 1 to {max} (one record), not {value}")]
    PackBytes {
        /// The value given.
        value: usize,
        /// The most allowed.
        max: usize,
    },
    /// `rate_limit_percent` is out of range.
    #[error("rate_limit_percent must be 1 to 1000 (percent of a shard's capacity), not {value}")]
    RateLimit {
        /// The value given.
        value: u32,
    },
    /// Rate limiting asked of a destination without shards.
    #[error("{destination} has no shards to rate-limit")]
    RateLimitUnsupported {
        /// The destination's name.
        destination: String,
    },
    /// Aggregation and packing both asked for.
    #[error("aggregation (Kinesis) and packing (Firehose) cannot both be on")]
    AggregateAndPack,
    /// Aggregation asked of a destination that is not Kinesis.
    #[error("{destination} does not support KPL aggregation")]
    AggregationUnsupported {
        /// The destination's name.
        destination: String,
    },
    #[error(
        "{destination} does not delimit records with newlines, so records cannot be packed (packing is for Firehose)"
    )]
    /// Packing asked of a destination that does not delimit records with newlines.
    PackingUnsupported {
        /// The destination's name.
        destination: String,
    },
    /// The initial retry delay is longer than the longest.
    #[error("the initial retry delay {initial:?} exceeds the maximum {max:?}")]
    RetryDelays {
        /// The initial delay given.
        initial: Duration,
        /// The most allowed.
        max: Duration,
    },
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
            // A full 5 MiB batch alone needs more than 8 MiB of copies.
            ProducerConfig {
                queue_max_bytes: 8 * 1024 * 1024,
                ..base.clone()
            },
            ProducerConfig {
                request_memory_bytes: Some(1024 * 1024),
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

    #[test]
    fn the_memory_cap_is_split_between_records_and_requests() {
        let limits = BatchLimits::KINESIS;
        let plain = ProducerConfig::defaults_for(limits);
        // 5 MiB of data, and twice its base64 with 500 entries' framing
        // (the body's buffer grows by doubling): more than the default
        // quarter of 64 MiB, so the budget is one full request.
        let full = plain.request_copy_bytes(plain.batch_bytes, plain.batch_records);
        let body = (5 * 1024 * 1024usize).div_ceil(3) * 4 + 500 * 256;
        assert_eq!(full, 5 * 1024 * 1024 + 2 * body);
        assert_eq!(plain.request_budget(), full);
        assert_eq!(plain.record_budget(), 64 * 1024 * 1024 - full);
        // Aggregates are copies too: a full batch of them needs one copy
        // more.
        let aggregated = ProducerConfig {
            aggregate_max_bytes: Some(51_200),
            ..plain.clone()
        };
        let full = aggregated.request_copy_bytes(plain.batch_bytes, plain.batch_records);
        assert_eq!(full, 2 * 5 * 1024 * 1024 + 2 * body);
        assert_eq!(aggregated.request_budget(), full);
        assert_eq!(aggregated.record_budget(), 64 * 1024 * 1024 - full);
        assert_eq!(aggregated.validate(limits), Ok(()));
    }
}
