//! What can go wrong administering or reading a stream.

use std::time::Duration;

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};

/// An error from a stream operation, naming the call and the stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The stream does not exist (`ResourceNotFoundException`).
    #[error("stream {stream} does not exist")]
    NotFound {
        /// The stream's name.
        stream: String,
    },
    /// The service refused a call or could not be reached.
    #[error("{operation} {stream}: {detail}")]
    Call {
        /// The API call (`CreateStream`, `GetRecords`, ...).
        operation: &'static str,
        /// The stream (or shard) it was for.
        stream: String,
        /// The service's error code, when it answered with one.
        code: Option<String>,
        /// The whole error, with its causes.
        detail: String,
    },
    /// The stream exists already with another shape than the one asked for.
    #[error(
        "stream {stream} exists already with {found}, not {wanted}; \
         `scale` changes the shard count of an existing stream"
    )]
    ShapeDiffers {
        /// The stream's name.
        stream: String,
        /// What it has.
        found: String,
        /// What was asked for.
        wanted: String,
    },
    /// The stream did not reach the state waited for in time.
    #[error("stream {stream} is still {status} after {waited:?} (waiting for {goal})")]
    Timeout {
        /// The stream's name.
        stream: String,
        /// Its status at the last look.
        status: String,
        /// What was waited for.
        goal: String,
        /// How long.
        waited: Duration,
    },
    /// An argument the service would refuse, caught before calling it.
    #[error("{0}")]
    Invalid(String),
}

impl StreamError {
    /// The error of a failed SDK call: `NotFound` for
    /// `ResourceNotFoundException`, otherwise `Call` with the service's
    /// code and the whole error chain.
    pub(crate) fn call<E, R>(operation: &'static str, stream: &str, error: SdkError<E, R>) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let service = error.as_service_error();
        let code = service.and_then(|e| e.code()).map(str::to_owned);
        if code.as_deref() == Some("ResourceNotFoundException") {
            return StreamError::NotFound {
                stream: stream.to_owned(),
            };
        }
        let detail = match (service, &code) {
            (Some(e), Some(code)) => match e.message() {
                Some(message) => format!("{code}: {message}"),
                None => code.clone(),
            },
            _ => causes(&error),
        };
        StreamError::Call {
            operation,
            stream: stream.to_owned(),
            code,
            detail,
        }
    }

    /// The service's error code, if it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            StreamError::Call { code, .. } => code.as_deref(),
            StreamError::NotFound { .. } => Some("ResourceNotFoundException"),
            _ => None,
        }
    }

    /// Whether the endpoint does not know the operation at all: an
    /// emulator that lacks it (kinesalite has no `UpdateShardCount` and no
    /// `EnableEnhancedMonitoring`).
    pub fn is_unsupported_operation(&self) -> bool {
        matches!(
            self.code(),
            Some("UnknownOperationException" | "InvalidAction" | "UnsupportedOperation")
        )
    }
}

/// An error and its causes in plain words (`dispatch failure: io error:
/// ... Connection refused`), each said once: the SDK's own context adds a
/// debug dump of the response, which is no message for a user.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Layer(&'static str, #[source] Option<Box<Layer>>);

    #[test]
    fn causes_are_said_once_each_in_order() {
        let error = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "io error",
                Some(Box::new(Layer("Connection refused", None))),
            ))),
        );
        assert_eq!(
            causes(&error),
            "dispatch failure: io error: Connection refused"
        );
        let repeated = Layer("timed out", Some(Box::new(Layer("timed out", None))));
        assert_eq!(causes(&repeated), "timed out");
    }
}
