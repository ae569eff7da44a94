use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while installing, starting or talking to a test service.
///
/// Each variant says which service or step failed and carries what a
/// developer needs to fix it: the command that failed, the log file of the
/// service, or the AWS operation and its error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tool or package the harness installs could not be installed.
    #[error("installing {what} failed: {detail}")]
    Install { what: &'static str, detail: String },

    /// A program could not be started at all.
    #[error("could not start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    /// A service started but did not become ready in time.
    #[error("{service} was not ready after {waited:?}; its log is {log}: {tail}")]
    NotReady {
        service: &'static str,
        waited: Duration,
        log: PathBuf,
        tail: String,
    },

    /// A call to a service through the AWS SDK or a client failed.
    #[error("{service} {operation} failed: {message}")]
    Call {
        service: &'static str,
        operation: String,
        message: String,
    },

    /// A project binary driven by a test misbehaved: failed, printed no
    /// summary, did not exit.
    #[error("{0}")]
    Binary(String),

    /// A file-system or socket operation of the harness itself failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An [`Error::Io`] with what the harness was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`Error::Call`] naming the service and operation.
    pub fn call(
        service: &'static str,
        operation: impl Into<String>,
        err: impl std::fmt::Display,
    ) -> Self {
        Error::Call {
            service,
            operation: operation.into(),
            message: err.to_string(),
        }
    }
}
