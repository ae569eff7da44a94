//! What a run needs: where records go, how the producer behaves, where
//! dead letters and metrics go, and how long shutdown may take.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shardline_metrics::AlarmConfig;
use shardline_producer::{BatchLimits, ProducerConfig};

/// How long delivery may take after a stop before what is left is
/// dead-lettered (`shutdown_deadline`): inside the 30 s systemd and
/// Kubernetes give a service before killing it.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Time between statistics lines by default.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(10);

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A Kinesis data stream, by name.
    Kinesis(String),
    /// A Firehose delivery stream, by name.
    Firehose(String),
    /// Standard output, one record per line; nothing is sent.
    Stdout,
}

impl Destination {
    /// The stream's name, or `stdout`.
    pub fn label(&self) -> &str {
        match self {
            Destination::Kinesis(name) | Destination::Firehose(name) => name,
            Destination::Stdout => "stdout",
        }
    }

    /// The limits of the service records go to (stdout takes Kinesis's, so
    /// that what a dry run accepts, a real one does too).
    pub fn limits(&self) -> BatchLimits {
        match self {
            Destination::Firehose(_) => BatchLimits::FIREHOSE,
            _ => BatchLimits::KINESIS,
        }
    }
}

/// A run's settings. [`Settings::new`] gives the defaults; the fields are
/// public to change.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Where records go: a Kinesis stream, a Firehose delivery stream, or
    /// stdout.
    pub destination: Destination,
    /// The AWS region; `None`: from the environment (`AWS_REGION`, the
    /// profile).
    pub region: Option<String>,
    /// One endpoint for every AWS service (a local emulator); the SDK also
    /// reads `AWS_ENDPOINT_URL_KINESIS` and the like.
    pub endpoint_url: Option<String>,
    /// The producer's settings.
    pub producer: ProducerConfig,
    /// Where records that cannot be delivered are written.
    pub dead_letter_file: PathBuf,
    /// How long delivery may take after a stop before what is left is
    /// dead-lettered.
    pub shutdown_timeout: Duration,
    /// Time between statistics lines; zero: none (alarms and CloudWatch
    /// still run every [`DEFAULT_STATS_INTERVAL`], quietly).
    pub stats_interval: Duration,
    /// Serve Prometheus metrics here.
    pub metrics_addr: Option<SocketAddr>,
    /// Publish CloudWatch metrics under this namespace.
    pub cloudwatch_namespace: Option<String>,
    /// When alarms are raised.
    pub alarms: AlarmConfig,
}

impl Settings {
    /// Records to `destination`, what cannot be delivered to
    /// `dead_letter_file`; the producer's defaults for that destination,
    /// no metrics endpoint.
    pub fn new(destination: Destination, dead_letter_file: impl Into<PathBuf>) -> Self {
        let producer = ProducerConfig::defaults_for(destination.limits());
        Settings {
            destination,
            region: None,
            endpoint_url: None,
            producer,
            dead_letter_file: dead_letter_file.into(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            stats_interval: DEFAULT_STATS_INTERVAL,
            metrics_addr: None,
            cloudwatch_namespace: None,
            alarms: AlarmConfig::default(),
        }
    }

    /// Whether any AWS client is needed (a stream, or CloudWatch).
    pub fn needs_aws(&self) -> bool {
        self.destination != Destination::Stdout || self.cloudwatch_namespace.is_some()
    }
}
