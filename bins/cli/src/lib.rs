//! The command line every shardline binary shares.
//!
//! `log-streamer`, `cdc-forwarder`, `sensor-forwarder` and `multi-source`
//! differ in what they read. Everything else a user types or sees is the
//! same, and lives here, so that a binary is its own flags and its wiring:
//!
//! - [`CommonArgs`]: the flags every binary takes (`--stream-name`,
//!   `--delivery-stream`, `--sink stdout`, `--region`, `--duration`,
//!   `--dead-letter-file`, statistics and metrics, producer tuning);
//! - [`CommonConfig`] and [`load_config`]: the same settings in a TOML
//!   file, next to the binary's own sections, unknown keys refused;
//! - [`Settings`]: both resolved and checked, and turned into the
//!   runner's settings;
//! - [`shutdown`]: SIGINT, SIGTERM or `--duration` stop a run; a second
//!   signal exits at once;
//! - [`finish`]: the problems of a run on stderr, the statistics JSON, and
//!   the exit code;
//! - [`ReportArgs`]: the `keys` subcommand's shard report.
//!
//! # Example
//!
//! ```
//! use clap::Parser;
//! use shardline_cli::{CommonArgs, CommonConfig, Defaults, Settings};
//! use shardline_runner::Destination;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     common: CommonArgs,
//! }
//!
//! let cli = Cli::parse_from(["example", "--stream-name", "orders", "--batch-size", "100", "--dead-letter-file", "dl.ndjson", "--checkpoint-file", "cp.json"]);
//! let defaults = Defaults { binary: "example", strict_ordering: false, linger: None, max_in_flight: None };
//! let settings = Settings::new(&cli.common, CommonConfig::default(), defaults)?;
//! assert_eq!(settings.run.destination, Destination::Kinesis("orders".into()));
//! assert_eq!(settings.run.producer.batch_records, 100);
//! # Ok::<(), anyhow::Error>(())
//! ```

#![warn(missing_docs)]

mod args;
mod config;
mod keys;
mod settings;
mod shell;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use shardline_runner::{Destination, Runner, Summary, sleep_or_forever};

pub use args::{CommonArgs, env_values_shown};
pub use config::{
    COMMON_KEYS, CommonConfig, MetricsSection, ProducerSection, load_config, seconds,
};
pub use keys::{ReportArgs, SampleKind, SampleReport};
pub use settings::{DEFAULT_BATCH_TIMEOUT, Defaults, STDIN_DEAD_LETTER_AFTER, Settings};
pub use shell::ShellCommand;

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings and errors),
/// in colour only when stderr is a terminal: a log file or a journal gets
/// no escape codes.
pub fn init_tracing() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Runs a binary's async main on a multi-threaded runtime.
pub fn block_on<T>(main: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(main)
}

/// A binary's `main`: runs `run` and turns an error into a message on
/// stderr (`binary: error: cause`) and a failure exit code.
pub fn main(binary: &str, run: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    init_tracing();
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{binary}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The future that stops a run: the first SIGINT or SIGTERM, or the end of
/// `duration`. From then on, a second signal exits the process at once
/// with status 130; the checkpoints hold only settled input, so nothing is
/// lost, only read again. Call it before the pipelines start, so that a
/// signal is never missed.
pub fn shutdown(
    binary: &'static str,
    duration: Option<Duration>,
) -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    Ok(async move {
        let reason = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            () = sleep_or_forever(duration) => "--duration",
        };
        tracing::info!("{binary}: stopping on {reason}");
        tokio::spawn(async move {
            let signal = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            eprintln!(
                "\n{binary}: {signal} again; exiting now (the checkpoints hold only settled input)"
            );
            std::process::exit(130);
        });
    })
}

/// Says on stderr where the run's Prometheus endpoint listens, if it
/// serves one.
pub fn announce_metrics(binary: &str, runner: &Runner) {
    if let Some(addr) = runner.metrics_addr() {
        eprintln!("{binary}: Prometheus metrics on http://{addr}/metrics");
    }
}

/// Ends a run: each problem on stderr, the statistics JSON (on stdout, or
/// on stderr when the records went to stdout), and the exit code: failure
/// if any input read was left unsettled or a pipeline failed.
pub fn finish(binary: &str, destination: &Destination, summary: &Summary) -> ExitCode {
    let problems = summary.problems();
    for problem in &problems {
        eprintln!("{binary}: {problem}");
    }
    match serde_json::to_string_pretty(&summary.snapshot) {
        Ok(json) if *destination == Destination::Stdout => eprintln!("{json}"),
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("{binary}: writing the statistics: {e}"),
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
