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
use shardline_streams::StreamSpec;

use crate::Error;

/// How long a stream or delivery stream may take to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);

pub use shardline_streams::ReadRecord;

/// Creates a Kinesis stream with `shards` shards and waits until it is
/// ACTIVE (the product's own [`shardline_streams::create_stream`]).
pub async fn create_stream(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: i32,
) -> Result<(), Error> {
    let spec = StreamSpec::provisioned(u32::try_from(shards).unwrap_or(0));
    shardline_streams::create_stream(client, name, &spec, &mut |_| {})
        .await
        .map_err(|e| Error::call("Kinesis", format!("creating {name}"), e))?;
    Ok(())
}

/// Waits until a Kinesis stream is ACTIVE (after a create or a reshard).
pub async fn wait_until_active(client: &aws_sdk_kinesis::Client, name: &str) -> Result<(), Error> {
    shardline_streams::wait_until_active(client, name, ACTIVE_TIMEOUT, &mut |_| {})
        .await
        .map_err(|e| Error::call("Kinesis", format!("waiting for {name}"), e))?;
    Ok(())
}

/// Reads a stream from TRIM_HORIZON on every shard, records exactly as
/// stored (aggregates not opened), remembering its place so that each
/// [`StreamReader::poll`] returns only what arrived since: the product's
/// [`shardline_streams::StreamReader`], raw.
#[derive(Debug)]
pub struct StreamReader {
    reader: shardline_streams::StreamReader,
    stream: String,
}

impl StreamReader {
    /// A reader positioned before the first record of every shard.
    pub fn new(client: &aws_sdk_kinesis::Client, stream: &str) -> Self {
        Self {
            reader: shardline_streams::StreamReader::new(client, stream).raw(),
            stream: stream.to_owned(),
        }
    }

    /// Returns the records that arrived since the previous call: one
    /// `GetRecords` call to each shard that may be called now.
    pub async fn poll(&mut self) -> Result<Vec<ReadRecord>, Error> {
        self.reader
            .poll()
            .await
            .map_err(|e| Error::call("Kinesis", format!("reading {}", self.stream), e))
    }

    /// Reads until every shard is read to its newest record.
    pub async fn read_to_end(&mut self) -> Result<Vec<ReadRecord>, Error> {
        self.reader
            .read_to_end()
            .await
            .map_err(|e| Error::call("Kinesis", format!("reading {}", self.stream), e))
    }
}

/// Reads every record a stream holds now, from every shard.
pub async fn read_all(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Result<Vec<ReadRecord>, Error> {
    StreamReader::new(client, stream).read_to_end().await
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
