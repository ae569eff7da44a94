//! Setting up and reading back what tests send: Kinesis streams, and
//! Firehose delivery streams that deliver to S3.
//!
//! These go through the official SDK like any consumer would, so a test's
//! "read back" proves what the service really holds.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, DeliveryStreamStatus, DeliveryStreamType,
    EncryptionConfiguration, ExtendedS3DestinationConfiguration, NoEncryptionConfig,
};
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};

use crate::Error;

/// How long a stream or delivery stream may take to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// GetRecords returns at most this many records per call
/// (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html>).
const GET_RECORDS_MAX: i32 = 10_000;

/// Creates a Kinesis stream with `shards` shards and waits until it is ACTIVE.
pub async fn create_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: i32,
) -> Result<(), Error> {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .map_err(|e| {
            Error::call(
                "Kinesis",
                format!("CreateStream {name}"),
                DisplayErrorContext(e),
            )
        })?;
    wait_until_active(client, name).await
}

/// Waits until a Kinesis stream is ACTIVE (after a create or a reshard).
pub async fn wait_until_active(client: &aws_sdk_kinesis::Client, name: &str) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| {
                Error::call(
                    "Kinesis",
                    format!("DescribeStreamSummary {name}"),
                    DisplayErrorContext(e),
                )
            })?;
        let status = summary
            .stream_description_summary()
            .map(|s| s.stream_status().clone());
        if status == Some(StreamStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::call(
                "Kinesis",
                format!("waiting for {name} to become ACTIVE"),
                format!("still {status:?} after {ACTIVE_TIMEOUT:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One record as a consumer reads it back from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    pub shard_id: String,
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// When the stream took it (`ApproximateArrivalTimestamp`), in
    /// milliseconds since the Unix epoch.
    pub arrival_ms: Option<i64>,
}

/// Reads a stream from TRIM_HORIZON on every shard, as a consumer would,
/// remembering its place so that each [`StreamReader::poll`] returns only
/// the records that arrived since the last one.
#[derive(Debug)]
pub struct StreamReader {
    client: aws_sdk_kinesis::Client,
    stream: String,
    /// Next iterator per shard; `None` once a closed shard is read to its end.
    iterators: BTreeMap<String, Option<String>>,
}

impl StreamReader {
    /// A reader positioned before the first record of every shard.
    pub fn new(client: &aws_sdk_kinesis::Client, stream: &str) -> Self {
        Self {
            client: client.clone(),
            stream: stream.to_owned(),
            iterators: BTreeMap::new(),
        }
    }

    /// Returns every record that arrived since the previous call, shard by
    /// shard, each shard's records in sequence order.
    pub async fn poll(&mut self) -> Result<Vec<ReadRecord>, Error> {
        self.discover_shards().await?;
        let mut out = Vec::new();
        let shard_ids: Vec<String> = self.iterators.keys().cloned().collect();
        for shard_id in shard_ids {
            while let Some(Some(iterator)) = self.iterators.get(&shard_id).cloned() {
                let page = self
                    .client
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(GET_RECORDS_MAX)
                    .send()
                    .await
                    .map_err(|e| {
                        Error::call(
                            "Kinesis",
                            format!("GetRecords {shard_id}"),
                            DisplayErrorContext(e),
                        )
                    })?;
                let records = page.records();
                let done = records.is_empty();
                out.extend(records.iter().map(|r| {
                    ReadRecord {
                        shard_id: shard_id.clone(),
                        sequence_number: r.sequence_number().to_owned(),
                        partition_key: r.partition_key().unwrap_or_default().to_owned(),
                        data: r.data().as_ref().to_vec(),
                        arrival_ms: r
                            .approximate_arrival_timestamp()
                            .and_then(|t| t.to_millis().ok()),
                    }
                }));
                self.iterators.insert(
                    shard_id.clone(),
                    page.next_shard_iterator().map(str::to_owned),
                );
                if done {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Adds an iterator for every shard not seen yet (new after a reshard).
    async fn discover_shards(&mut self) -> Result<(), Error> {
        let mut next_token: Option<String> = None;
        loop {
            let request = match &next_token {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let page = request.send().await.map_err(|e| {
                Error::call(
                    "Kinesis",
                    format!("ListShards {}", self.stream),
                    DisplayErrorContext(e),
                )
            })?;
            for shard in page.shards() {
                let id = shard.shard_id();
                if self.iterators.contains_key(id) {
                    continue;
                }
                let iterator = self
                    .client
                    .get_shard_iterator()
                    .stream_name(&self.stream)
                    .shard_id(id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .map_err(|e| {
                        Error::call(
                            "Kinesis",
                            format!("GetShardIterator {id}"),
                            DisplayErrorContext(e),
                        )
                    })?;
                self.iterators
                    .insert(id.to_owned(), iterator.shard_iterator().map(str::to_owned));
            }
            next_token = page.next_token().map(str::to_owned);
            if next_token.is_none() {
                return Ok(());
            }
        }
    }
}

/// Reads every record a stream holds now, from every shard.
pub async fn read_all(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<ReadRecord>, Error> {
    StreamReader::new(client, stream).poll().await
}

/// Reads a stream until it holds at least `expected` records or `timeout`
/// passes; returns what it read either way, so a test can say what was
/// missing.
pub async fn read_at_least(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    expected: usize,
    timeout: Duration,
) -> Result<Vec<ReadRecord>, Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut reader = StreamReader::new(client, stream);
    let mut records = Vec::new();
    loop {
        records.extend(reader.poll().await?);
        if records.len() >= expected || tokio::time::Instant::now() >= deadline {
            return Ok(records);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`read_at_least`] for records that are JSON objects: each parsed, with
/// the shard it was read from as `_shard` and its partition key as `_key`.
pub async fn read_json_at_least(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    expected: usize,
    timeout: Duration,
) -> Result<Vec<serde_json::Value>, Error> {
    read_at_least(client, stream, expected, timeout)
        .await?
        .into_iter()
        .map(|record| {
            let mut value: serde_json::Value =
                serde_json::from_slice(&record.data).map_err(|e| {
                    Error::call(
                        "Kinesis",
                        format!("reading {stream}"),
                        format!("a record is not JSON: {e}"),
                    )
                })?;
            if let Some(object) = value.as_object_mut() {
                object.insert("_shard".into(), record.shard_id.into());
                object.insert("_key".into(), record.partition_key.into());
            }
            Ok(value)
        })
        .collect()
}

/// An S3 bucket name for a [`crate::unique_name`]: S3 allows no `_`.
pub fn bucket_name(unique: &str) -> String {
    unique.replace('_', "-")
}

/// Creates `bucket` and a DirectPut delivery stream `name` that delivers to
/// it, uncompressed and unencrypted (moto's DescribeDeliveryStream output is
/// only parseable by the Rust SDK with those two set), and waits until the
/// delivery stream is ACTIVE.
pub async fn create_s3_delivery_stream(
    firehose: &aws_sdk_firehose::Client,
    s3: &aws_sdk_s3::Client,
    name: &str,
    bucket: &str,
) -> Result<(), Error> {
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| {
            Error::call(
                "S3",
                format!("CreateBucket {bucket}"),
                DisplayErrorContext(e),
            )
        })?;
    let destination = ExtendedS3DestinationConfiguration::builder()
        .role_arn("arn:aws:iam::123456789012:role/shardline-firehose")
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        .compression_format(CompressionFormat::Uncompressed)
        .encryption_configuration(
            EncryptionConfiguration::builder()
                .no_encryption_config(NoEncryptionConfig::NoEncryption)
                .build(),
        )
        .buffering_hints(
            BufferingHints::builder()
                .size_in_mbs(1)
                .interval_in_seconds(60)
                .build(),
        )
        .build()
        .map_err(|e| Error::call("Firehose", "building the S3 destination", e))?;
    firehose
        .create_delivery_stream()
        .delivery_stream_name(name)
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(destination)
        .send()
        .await
        .map_err(|e| {
            Error::call(
                "Firehose",
                format!("CreateDeliveryStream {name}"),
                DisplayErrorContext(e),
            )
        })?;
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let description = firehose
            .describe_delivery_stream()
            .delivery_stream_name(name)
            .send()
            .await
            .map_err(|e| {
                Error::call(
                    "Firehose",
                    format!("DescribeDeliveryStream {name}"),
                    DisplayErrorContext(e),
                )
            })?;
        let status = description
            .delivery_stream_description()
            .map(|d| d.delivery_stream_status().clone());
        if status == Some(DeliveryStreamStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::call(
                "Firehose",
                format!("waiting for {name} to become ACTIVE"),
                format!("still {status:?} after {ACTIVE_TIMEOUT:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every object in `bucket` with its bytes, by key.
pub async fn read_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let mut objects = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| {
                Error::call(
                    "S3",
                    format!("ListObjectsV2 {bucket}"),
                    DisplayErrorContext(e),
                )
            })?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| Error::call("S3", format!("GetObject {key}"), DisplayErrorContext(e)))?
                .body
                .collect()
                .await
                .map_err(|e| Error::call("S3", format!("reading {key}"), e))?;
            objects.insert(key.to_owned(), body.into_bytes().to_vec());
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return Ok(objects);
        }
    }
}
