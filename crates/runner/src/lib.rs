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
    #[error("dead-letter file {}: {source}", path.display())]
    DeadLetterFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no AWS region: set AWS_REGION or give a region (--region)")]
    NoRegion,
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role is available ({detail})"
    )]
    NoCredentials { detail: String },
    #[error("{what} does not exist (in this account and region)")]
    NotFound { what: String },
    #[error("{what}: {code}: {message}")]
    Service {
        what: String,
        code: String,
        message: String,
    },
    #[error("cannot reach {what}: {detail}")]
    Unreachable { what: String, detail: String },
    #[error("producer settings: {0}")]
    Producer(#[from] shardline_producer::BuildError),
    #[error("serving metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
