//! What every shardline binary shares around its sources.
//!
//! `log-streamer`, `cdc-forwarder`, `sensor-forwarder` and `multi-source`
//! differ in what they read; everything after that is the same, and lives
//! here so that a binary is only its sources and its wiring:
//!
//! - [`CommonArgs`]: the flags every binary takes (`--stream-name`,
//!   `--delivery-stream`, `--sink stdout`, `--region`, `--duration`,
//!   `--dead-letter-file`, statistics and metrics, producer tuning);
//! - [`CommonConfig`] and [`load_config`]: the same settings in a TOML
//!   file, next to the binary's own sections, unknown keys refused;
//! - [`Settings`]: both resolved and checked — the destination, the
//!   producer configuration, the files, the metrics endpoints;
//! - [`Running`]: one AWS SDK configuration, the producer (or stdout)
//!   sink, the metrics registry, the statistics reporter, Prometheus and
//!   CloudWatch, SIGINT/SIGTERM; then a bounded shutdown and the seeds'
//!   statistics JSON as the summary.

mod args;
mod aws;
mod config;
mod running;
mod settings;

pub use args::{CommonArgs, ReportArgs};
pub use aws::{describe_aws_error, sdk_config, sink};
pub use config::{
    COMMON_KEYS, CommonConfig, MetricsSection, ProducerSection, load_config, seconds,
};
pub use running::{PipelineResult, Running, Signals, StopReason, block_on, sleep_or_forever};
pub use settings::{Defaults, Destination, Settings};

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings and errors).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}
