//! Runs shardline pipelines into one sink.
//!
//! Given [`Settings`], a [`Runner`] builds what every pipeline of a process
//! shares: one AWS SDK configuration, the sink (the producer for a Kinesis
//! data stream or a Firehose delivery stream, checked to exist at start-up;
//! or stdout), the metrics registry, the statistics reporter with its
//! alarms and CloudWatch, and the Prometheus endpoint. [`Runner::run`]
//! runs the pipelines until their input ends, one fails, or the caller's
//! shutdown future resolves, then stops them within the shutdown timeout
//! and returns a [`Summary`]. It prints nothing but the statistics lines
//! it is asked for, installs no signal handler and never exits the
//! process: that is the binaries' part.
//!
//! # Example
//!
//! Lines into a sink of the caller's, until the input ends:
//!
//! ```
//! use std::sync::Arc;
//! use shardline_core::{DeadLetterFile, Origin, PartitionKey, Process, Processed, Record, SourceName};
//! use shardline_pipeline::StdoutSink;
//! use shardline_runner::{Destination, Runner, Settings, Stopped};
//! use shardline_tail::LinesSource;
//!
//! struct Lines;
//!
//! impl Process for Lines {
//!     fn process(&self, data: &[u8], _origin: Origin<'_>) -> Processed {
//!         let key = PartitionKey::new_or_hashed(&String::from_utf8_lossy(data));
//!         Processed::Record(Record::from_source(SourceName::new("lines"), key, data.to_vec()))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let mut settings = Settings::new(Destination::Stdout, dir.path().join("dead-letters.ndjson"));
//! settings.stats_interval = std::time::Duration::ZERO;
//! let dead_letters = DeadLetterFile::open(&settings.dead_letter_file)?;
//! let out = std::fs::File::create(dir.path().join("out.txt"))?;
//! let sink = Arc::new(StdoutSink::with_writer(Box::new(out), dead_letters));
//!
//! let mut runner = Runner::start_with_sink(settings, sink).await?;
//! let pipeline = runner.pipeline("lines", LinesSource::new(&b"a\nb\nc\n"[..], "input"), Arc::new(Lines));
//! runner.spawn("lines", pipeline);
//! let summary = runner.run(std::future::pending()).await?;
//!
//! assert_eq!(summary.stopped, Stopped::EndOfInput);
//! assert!(summary.is_complete(), "{:?}", summary.problems());
//! assert_eq!(summary.snapshot.total_sent, 3);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod aws;
mod runner;
mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use aws::{describe_aws_error, sdk_config};
pub use runner::{PipelineOutcome, Runner, Stopped, Summary, sleep_or_forever};
pub use settings::{DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STATS_INTERVAL, Destination, Settings};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The dead-letter file could not be opened.
    #[error("dead-letter file {}: {source}", path.display())]
    DeadLetterFile {
        /// The file.
        path: PathBuf,
        #[source]
        /// What failed underneath.
        source: std::io::Error,
    },
    /// No AWS region is set.
    #[error("no AWS region: set AWS_REGION or give a region (--region)")]
    NoRegion,
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role is available ({detail})"
    )]
    /// No AWS credentials were found.
    NoCredentials {
        /// What the SDK said.
        detail: String,
    },
    /// The stream or delivery stream does not exist.
    #[error("{what} does not exist (in this account and region)")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The service refused the start-up check.
    #[error("{what}: {code}: {message}")]
    Service {
        /// What was looked for.
        what: String,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The endpoint could not be reached.
    #[error("cannot reach {what}: {detail}")]
    Unreachable {
        /// What was looked for.
        what: String,
        /// What the SDK said.
        detail: String,
    },
    /// The producer's settings are out of range.
    #[error("producer settings: {0}")]
    Producer(#[from] shardline_producer::BuildError),
    /// The metrics endpoint could not be served.
    #[error("serving metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        #[source]
        /// What failed underneath.
        source: std::io::Error,
    },
}
