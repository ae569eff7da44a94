//! Where batches go: the [`Destination`] trait, and how errors are
//! classified.

use std::time::Duration;

use bytes::Bytes;
use shardline_partition_key::{ExplicitHashKey, PartitionKey, ShardMap};

use crate::limits::BatchLimits;
use shardline_core::Delivery;

/// How long one batch request (`PutRecords`, `PutRecordBatch`) attempt may
/// take before it counts as failed (with an unknown outcome) and is retried
/// by the producer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest error message kept from the SDK: a service's own message is
/// a sentence; anything longer is a dump nobody reads in a log line.
#[cfg(any(feature = "kinesis", feature = "firehose"))]
const MAX_ERROR_MESSAGE_CHARS: usize = 300;

/// One entry of a batch call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The record's data (or an aggregate's, or a pack's).
    pub data: Bytes,
    /// Its partition key.
    pub partition_key: PartitionKey,
    /// Its explicit hash key, if it has one.
    pub explicit_hash_key: Option<ExplicitHashKey>,
}

/// Why one entry of a batch failed, as the service said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    /// The service's error code, e.g. `ProvisionedThroughputExceededException`.
    pub code: String,
    /// The service's message for it.
    pub message: String,
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, internal failures, 5xx, timeouts, connection errors.
    Retryable,
    /// Validation, a missing stream, access denied, KMS: trying again
    /// would fail the same way.
    Fatal,
}

impl ErrorClass {
    /// `retryable` or `fatal`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Fatal => "fatal",
        }
    }
}

/// A whole batch call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PutError {
    /// Whether trying again can help.
    pub class: ErrorClass,
    /// The service's error code, when it answered with one.
    pub code: Option<String>,
    /// What went wrong, one line.
    pub message: String,
    /// The request may have reached the service and been stored (a timeout
    /// or a connection lost after sending): a retry may duplicate it.
    pub outcome_unknown: bool,
}

/// A batch-put API: Kinesis `PutRecords`, Firehose `PutRecordBatch`, or a
/// service of your own.
///
/// `put` returns one result per entry, in order, for a call the service
/// answered; a `PutError` when the whole call failed. The producer does
/// the batching, retrying and acknowledging around it.
#[async_trait::async_trait]
pub trait Destination: Send + Sync + 'static {
    /// A name for logs and dead letters, e.g. `kinesis:orders`.
    fn name(&self) -> &str;

    /// The limits a batch must respect.
    fn limits(&self) -> BatchLimits;

    /// Sends one batch.
    async fn put(&self, entries: &[Entry]) -> Result<Vec<Result<Delivery, EntryError>>, PutError>;

    /// Checks that the destination exists and answers, before the first
    /// record is sent ([`crate::ProducerBuilder::check_destination`]). The
    /// default checks nothing.
    async fn check(&self) -> Result<(), PutError> {
        Ok(())
    }

    /// Whether records may be KPL-aggregated for this destination (Kinesis:
    /// yes; consumers deaggregate).
    fn supports_aggregation(&self) -> bool {
        false
    }

    /// The open shards' hash-key ranges, to aggregate records by the shard
    /// they will land in and to pace each shard. `Ok(None)`: no shards to
    /// speak of; with aggregation on, each record is then sent alone (an
    /// aggregate of keys bound for different shards would be stored in its
    /// first key's shard, where consumers that filter by hash key range
    /// drop the others).
    async fn shard_map(&self) -> Result<Option<ShardMap>, PutError> {
        Ok(None)
    }

    /// Whether the destination ends each record with a newline when it
    /// sends it (Firehose writes records back to back into S3 objects: one
    /// JSON document per line is what Athena and other readers expect).
    /// The producer counts that byte in the record's size.
    fn newline_delimited(&self) -> bool {
        false
    }
}

/// Classifies an AWS error code, falling back on the HTTP status for codes
/// it does not know (5xx and 429: retryable; other 4xx: fatal).
pub fn classify(code: &str, http_status: Option<u16>) -> ErrorClass {
    const RETRYABLE: [&str; 20] = [
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "InternalFailure",
        "InternalFailureException",
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ExpiredTokenException",
        "ExpiredToken",
        "RequestExpired",
    ];
    const FATAL: [&str; 13] = [
        "ValidationException",
        "InvalidArgumentException",
        "ResourceNotFoundException",
        "ResourceInUseException",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "KMSOptInRequired",
        "KMSAccessDeniedException",
        "InvalidKMSResourceException",
    ];
    if RETRYABLE.contains(&code) {
        return ErrorClass::Retryable;
    }
    if FATAL.contains(&code) {
        return ErrorClass::Fatal;
    }
    match http_status {
        Some(status) if status >= 500 || status == 429 => ErrorClass::Retryable,
        Some(_) => ErrorClass::Fatal,
        None => ErrorClass::Retryable,
    }
}

/// A destination's check: a stream (or delivery stream) in `status`
/// `DELETING` cannot be used; any other status can, or will be soon
/// (`CREATING`, `UPDATING`: records wait and retry).
#[cfg(any(feature = "kinesis", feature = "firehose"))]
pub(crate) fn not_deleting(name: &str, status: Option<&str>) -> Result<(), PutError> {
    match status {
        Some("DELETING") => Err(PutError {
            class: ErrorClass::Fatal,
            code: None,
            message: format!("{name} is being deleted"),
            outcome_unknown: false,
        }),
        _ => Ok(()),
    }
}

/// The SDK's error types, shared by every AWS service client.
#[cfg(feature = "kinesis")]
mod sdk {
    pub(super) use aws_sdk_kinesis::config::http::HttpResponse;
    pub(super) use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
}
#[cfg(all(feature = "firehose", not(feature = "kinesis")))]
mod sdk {
    pub(super) use aws_sdk_firehose::config::http::HttpResponse;
    pub(super) use aws_sdk_firehose::error::{ProvideErrorMetadata, SdkError};
}

/// Turns an SDK error into a [`PutError`], for any AWS service client (they
/// share the SDK's error and response types). The message is one line:
/// the operation, the service's error code and its own message, or, for an
/// error that never reached the service, the chain of causes.
#[cfg(any(feature = "kinesis", feature = "firehose"))]
pub(crate) fn from_sdk_error<E>(
    operation: &str,
    err: sdk::SdkError<E, sdk::HttpResponse>,
) -> PutError
where
    E: sdk::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use sdk::SdkError;
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let status = service.raw().status().as_u16();
            let message = match service.err().message() {
                Some(text) if !text.is_empty() => format!("{operation}: {code}: {text}"),
                _ => format!("{operation}: {code} (HTTP {status})"),
            };
            PutError {
                class: classify(&code, Some(status)),
                code: Some(code),
                message: one_line(&message),
                outcome_unknown: false,
            }
        }
        SdkError::ConstructionFailure(_) => PutError {
            class: ErrorClass::Fatal,
            code: None,
            message: one_line(&format!("{operation}: {}", causes(&err))),
            outcome_unknown: false,
        },
        SdkError::DispatchFailure(failure) => PutError {
            class: ErrorClass::Retryable,
            code: None,
            message: one_line(&format!("{operation}: {}", causes(&err))),
            // A user error never left the client; an I/O error or timeout
            // may have struck after the request was sent.
            outcome_unknown: !failure.is_user(),
        },
        _ => PutError {
            // Timeouts and unreadable responses: the request may have been
            // processed.
            class: ErrorClass::Retryable,
            code: None,
            message: one_line(&format!("{operation}: {}", causes(&err))),
            outcome_unknown: true,
        },
    }
}

/// An error and its sources, `: `-separated; a source that only repeats
/// the text before it is left out.
#[cfg(any(feature = "kinesis", feature = "firehose"))]
pub(crate) fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// `text` on one line (line breaks and runs of spaces become one space),
/// cut at [`MAX_ERROR_MESSAGE_CHARS`] characters with an ellipsis.
#[cfg(any(feature = "kinesis", feature = "firehose"))]
pub(crate) fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len().min(MAX_ERROR_MESSAGE_CHARS + 3));
    let mut chars = 0;
    for word in text.split_whitespace() {
        let separator = usize::from(chars > 0);
        let room = MAX_ERROR_MESSAGE_CHARS.saturating_sub(chars + separator);
        let word_chars = word.chars().count();
        if separator == 1 && room > 0 {
            line.push(' ');
        }
        if word_chars > room {
            // A word longer than the room left (a URL, a dump with no
            // spaces) is cut rather than dropped, so the line keeps its
            // start.
            line.extend(word.chars().take(room));
            line.push_str(" …");
            break;
        }
        line.push_str(word);
        chars += separator + word_chars;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(feature = "kinesis", feature = "firehose"))]
    #[test]
    fn a_stream_being_deleted_fails_the_check_and_any_other_status_passes() {
        let deleting = not_deleting("kinesis:orders", Some("DELETING"));
        assert!(
            matches!(&deleting, Err(e) if e.class == ErrorClass::Fatal
                && e.message == "kinesis:orders is being deleted"),
            "{deleting:?}"
        );
        for status in [Some("ACTIVE"), Some("CREATING"), Some("UPDATING"), None] {
            assert!(not_deleting("kinesis:orders", status).is_ok(), "{status:?}");
        }
    }

    #[cfg(any(feature = "kinesis", feature = "firehose"))]
    #[test]
    fn an_error_message_is_one_line_of_bounded_length() {
        assert_eq!(
            one_line("PutRecords: dispatch failure:\n  io error:   refused"),
            "PutRecords: dispatch failure: io error: refused"
        );
        let long = "word ".repeat(200);
        let line = one_line(&long);
        assert!(
            line.chars().count() <= MAX_ERROR_MESSAGE_CHARS + 2,
            "{line}"
        );
        assert!(line.ends_with(" …"), "{line}");
        assert!(!line.contains('\n'));

        let unbroken = "x".repeat(1_000);
        let line = one_line(&format!("PutRecords: {unbroken}"));
        assert!(line.starts_with("PutRecords: xxx"), "{line}");
        assert!(line.ends_with(" …"), "{line}");
        assert!(
            line.chars().count() <= MAX_ERROR_MESSAGE_CHARS + 2,
            "{line}"
        );
    }

    #[cfg(any(feature = "kinesis", feature = "firehose"))]
    #[test]
    fn causes_are_joined_without_repeats() {
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl std::fmt::Display for Layer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Layer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let err = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "io error",
                Some(Box::new(Layer(
                    "io error",
                    Some(Box::new(Layer("connection refused", None))),
                ))),
            ))),
        );
        assert_eq!(
            causes(&err),
            "dispatch failure: io error: connection refused"
        );
    }

    #[test]
    fn classification_table() {
        let cases = [
            (
                "ProvisionedThroughputExceededException",
                Some(400),
                ErrorClass::Retryable,
            ),
            ("InternalFailure", Some(500), ErrorClass::Retryable),
            (
                "ServiceUnavailableException",
                Some(503),
                ErrorClass::Retryable,
            ),
            ("KMSThrottlingException", Some(400), ErrorClass::Retryable),
            ("ValidationException", Some(400), ErrorClass::Fatal),
            ("ResourceNotFoundException", Some(400), ErrorClass::Fatal),
            ("AccessDeniedException", Some(400), ErrorClass::Fatal),
            ("KMSDisabledException", Some(400), ErrorClass::Fatal),
            ("SomethingNew", Some(502), ErrorClass::Retryable),
            ("SomethingNew", Some(429), ErrorClass::Retryable),
            ("SomethingNew", Some(400), ErrorClass::Fatal),
            ("SomethingNew", None, ErrorClass::Retryable),
        ];
        for (code, status, want) in cases {
            assert_eq!(classify(code, status), want, "{code} {status:?}");
        }
    }
}
