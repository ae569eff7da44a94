//! Kinesis Data Streams through `PutRecords`.

use std::time::Duration;

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use shardline_partition_key::{ShardMap, ShardRange};

use crate::destination::{
    DEFAULT_REQUEST_TIMEOUT, Destination, Entry, EntryError, ErrorClass, PutError, from_sdk_error,
    not_deleting,
};
use crate::limits::BatchLimits;
use shardline_core::Delivery;

/// A Kinesis data stream, by name or ARN.
#[derive(Debug, Clone)]
pub struct KinesisDestination {
    client: aws_sdk_kinesis::Client,
    stream: StreamRef,
    name: String,
}

#[derive(Debug, Clone)]
enum StreamRef {
    Name(String),
    Arn(String),
}

impl KinesisDestination {
    /// Sends to `stream` (a name, or an ARN starting with `arn:`) through
    /// `client`. The SDK's own retries are turned off — the producer retries
    /// only the entries that failed, and a retrying SDK would resend whole
    /// batches — and each attempt gets [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn new(client: &aws_sdk_kinesis::Client, stream: &str) -> Self {
        Self::with_request_timeout(client, stream, DEFAULT_REQUEST_TIMEOUT)
    }

    /// As [`KinesisDestination::new`] with another attempt timeout.
    pub fn with_request_timeout(
        client: &aws_sdk_kinesis::Client,
        stream: &str,
        timeout: Duration,
    ) -> Self {
        let config = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(timeout)
                    .build(),
            )
            .build();
        let stream = if stream.starts_with("arn:") {
            StreamRef::Arn(stream.to_owned())
        } else {
            StreamRef::Name(stream.to_owned())
        };
        let name = match &stream {
            StreamRef::Name(n) | StreamRef::Arn(n) => format!("kinesis:{n}"),
        };
        KinesisDestination {
            client: aws_sdk_kinesis::Client::from_conf(config),
            stream,
            name,
        }
    }
}

#[async_trait::async_trait]
impl Destination for KinesisDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports_aggregation(&self) -> bool {
        true
    }

    /// `DescribeStreamSummary`: the stream exists and is not being deleted.
    async fn check(&self) -> Result<(), PutError> {
        let request = match &self.stream {
            StreamRef::Name(name) => self.client.describe_stream_summary().stream_name(name),
            StreamRef::Arn(arn) => self.client.describe_stream_summary().stream_arn(arn),
        };
        let summary = request
            .send()
            .await
            .map_err(|e| from_sdk_error("DescribeStreamSummary", e))?;
        let status = summary
            .stream_description_summary()
            .map(|s| s.stream_status().as_str());
        not_deleting(&self.name, status)
    }

    async fn shard_map(&self) -> Result<Option<ShardMap>, PutError> {
        let mut ranges = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = match &token {
                Some(token) => self.client.list_shards().next_token(token),
                None => match &self.stream {
                    StreamRef::Name(name) => self.client.list_shards().stream_name(name),
                    StreamRef::Arn(arn) => self.client.list_shards().stream_arn(arn),
                },
            };
            let page = request
                .send()
                .await
                .map_err(|e| from_sdk_error("ListShards", e))?;
            for shard in page.shards() {
                // Closed shards (split or merged away) take no new records.
                let open = shard
                    .sequence_number_range()
                    .is_none_or(|range| range.ending_sequence_number().is_none());
                let Some(hash) = shard.hash_key_range() else {
                    continue;
                };
                let (Ok(start), Ok(end)) = (
                    hash.starting_hash_key().parse::<u128>(),
                    hash.ending_hash_key().parse::<u128>(),
                ) else {
                    continue;
                };
                if open {
                    ranges.push(ShardRange {
                        shard_id: shard.shard_id().to_owned(),
                        starting_hash_key: start,
                        ending_hash_key: end,
                    });
                }
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok((!ranges.is_empty()).then(|| ShardMap::new(ranges)))
    }

    fn limits(&self) -> BatchLimits {
        BatchLimits::KINESIS
    }

    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        let records = entries
            .iter()
            .map(|entry| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(entry.data.to_vec()))
                    .partition_key(entry.partition_key.as_str())
                    .set_explicit_hash_key(entry.explicit_hash_key.map(|k| k.to_string()))
                    .build()
                    .map_err(|e| PutError {
                        class: ErrorClass::Fatal,
                        code: None,
                        message: format!("building a PutRecords entry: {e}"),
                        outcome_unknown: false,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let request = self.client.put_records().set_records(Some(records));
        let request = match &self.stream {
            StreamRef::Name(name) => request.stream_name(name),
            StreamRef::Arn(arn) => request.stream_arn(arn),
        };
        let output = request
            .send()
            .await
            .map_err(|e| from_sdk_error("PutRecords", e))?;
        // The answer is owned: its strings move into the deliveries rather
        // than being copied (two per record).
        // A count that does not match `entries` is caught by the producer.
        Ok(output
            .records
            .into_iter()
            .map(|result| match result.error_code {
                Some(code) => Err(EntryError {
                    code,
                    message: result.error_message.unwrap_or_default(),
                }),
                None => Ok(Delivery::kinesis(result.shard_id, result.sequence_number)),
            })
            .collect())
    }
}
