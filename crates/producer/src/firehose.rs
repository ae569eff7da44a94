//! Amazon Data Firehose through `PutRecordBatch`.

use std::time::Duration;

use aws_sdk_firehose::config::retry::RetryConfig;
use aws_sdk_firehose::config::timeout::TimeoutConfig;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record as FirehoseRecord;

use crate::destination::DEFAULT_REQUEST_TIMEOUT;
use crate::destination::{
    Destination, Entry, EntryError, ErrorClass, PutError, from_sdk_error, not_deleting,
};
use crate::limits::BatchLimits;
use shardline_core::Delivery;

/// A Firehose delivery stream. Firehose has no partition keys: records'
/// keys only matter to the producer's per-key ordering.
///
/// Each record is sent newline-terminated (one is added where it lacks
/// one), so that the objects Firehose writes to S3 hold one record per
/// line, as Kinesis Agent's do; [`FirehoseDestination::newline_delimited`]
/// turns that off for binary records.
#[derive(Debug, Clone)]
pub struct FirehoseDestination {
    client: aws_sdk_firehose::Client,
    delivery_stream: String,
    name: String,
    newline: bool,
}

impl FirehoseDestination {
    /// Sends to `delivery_stream` through `client`, with the SDK's own
    /// retries off and [`DEFAULT_REQUEST_TIMEOUT`] per attempt.
    pub fn new(client: &aws_sdk_firehose::Client, delivery_stream: &str) -> Self {
        Self::with_request_timeout(client, delivery_stream, DEFAULT_REQUEST_TIMEOUT)
    }

    /// As [`FirehoseDestination::new`] with another attempt timeout.
    pub fn with_request_timeout(
        client: &aws_sdk_firehose::Client,
        delivery_stream: &str,
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
        FirehoseDestination {
            client: aws_sdk_firehose::Client::from_conf(config),
            delivery_stream: delivery_stream.to_owned(),
            name: format!("firehose:{delivery_stream}"),
            newline: true,
        }
    }

    /// Whether each record is sent newline-terminated (the default).
    pub fn newline_delimited(mut self, on: bool) -> Self {
        self.newline = on;
        self
    }
}

#[async_trait::async_trait]
impl Destination for FirehoseDestination {
    /// `DescribeDeliveryStream`: the delivery stream exists and is not
    /// being deleted.
    async fn check(&self) -> Result<(), PutError> {
        let described = self
            .client
            .describe_delivery_stream()
            .delivery_stream_name(&self.delivery_stream)
            .send()
            .await
            .map_err(|e| from_sdk_error("DescribeDeliveryStream", e))?;
        let status = described
            .delivery_stream_description()
            .map(|d| d.delivery_stream_status().as_str());
        not_deleting(&self.name, status)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn limits(&self) -> BatchLimits {
        BatchLimits::FIREHOSE
    }

    fn newline_delimited(&self) -> bool {
        self.newline
    }

    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError> {
        let records = entries
            .iter()
            .map(|entry| {
                let framed = self.newline && !entry.data.ends_with(b"\n");
                let mut data = Vec::with_capacity(entry.data.len() + usize::from(framed));
                data.extend_from_slice(&entry.data);
                if framed {
                    data.push(b'\n');
                }
                FirehoseRecord::builder()
                    .data(Blob::new(data))
                    .build()
                    .map_err(|e| PutError {
                        class: ErrorClass::Fatal,
                        code: None,
                        message: format!("building a PutRecordBatch record: {e}"),
                        outcome_unknown: false,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .put_record_batch()
            .delivery_stream_name(&self.delivery_stream)
            .set_records(Some(records))
            .send()
            .await
            .map_err(|e| from_sdk_error("PutRecordBatch", e))?;
        // The answer is owned: its strings move into the deliveries.
        // A count that does not match `entries` is caught by the producer.
        Ok(output
            .request_responses
            .into_iter()
            .map(|result| match result.error_code {
                Some(code) => Err(EntryError {
                    code,
                    message: result.error_message.unwrap_or_default(),
                }),
                None => Ok(Delivery::firehose(result.record_id)),
            })
            .collect())
    }
}
