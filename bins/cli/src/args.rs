//! The flags every binary takes.

use std::path::PathBuf;

use clap::Args;

/// Destination, files, statistics, metrics and producer tuning: flattened
/// into each binary's own flags.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// Kinesis data stream to send to.
    #[arg(long)]
    pub stream_name: Option<String>,
    /// Firehose delivery stream to send to instead.
    #[arg(long, conflicts_with = "stream_name")]
    pub delivery_stream: Option<String>,
    /// AWS region (default: from the environment or the profile).
    #[arg(long, env = "AWS_REGION", hide_env_values = true)]
    pub region: Option<String>,
    /// Endpoint of the service (a local emulator); the SDK also reads
    /// AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL_FIREHOSE.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// A TOML file holding every setting (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `stdout`: print each record's data, one per line, and send nothing.
    #[arg(long, value_parser = ["stdout", "kinesis", "firehose"])]
    pub sink: Option<String>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Default: $XDG_STATE_HOME/shardline/<binary>/<stream>.checkpoint.json.
    #[arg(long)]
    pub checkpoint_file: Option<PathBuf>,
    /// Default: $XDG_STATE_HOME/shardline/<binary>/<stream>.dead-letters.ndjson.
    #[arg(long)]
    pub dead_letter_file: Option<PathBuf>,
    /// Seconds between statistics lines (0: none).
    #[arg(long)]
    pub stats_interval: Option<f64>,
    /// Serve Prometheus metrics on this address (`HOST:PORT`, `:PORT`;
    /// loopback unless a host is given).
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Publish the statistics as CloudWatch metrics under this namespace (e.g.
    /// `Shardline`); the SDK also reads AWS_ENDPOINT_URL_CLOUDWATCH.
    #[arg(long)]
    pub cloudwatch_namespace: Option<String>,
    /// KPL aggregation (Kinesis).
    #[arg(long)]
    pub aggregate: bool,
    /// Records per batch request (at most 500).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seconds a batch may wait to fill.
    #[arg(long)]
    pub batch_timeout: Option<f64>,
    /// Records the producer holds at most; reading waits while it is full.
    #[arg(long)]
    pub queue_maxsize: Option<usize>,
}

impl CommonArgs {
    /// The config file of `--config` ([`crate::load_config`]), or the
    /// defaults without one.
    pub fn config<S: serde::de::DeserializeOwned + Default>(
        &self,
    ) -> anyhow::Result<(crate::CommonConfig, S)> {
        match &self.config {
            Some(path) => crate::load_config(path),
            None => Ok((crate::CommonConfig::default(), S::default())),
        }
    }
}

/// The arguments of `command` and its subcommands whose environment
/// variable's value `--help` would print, as `command --flag (VARIABLE)`.
/// Every shardline binary keeps this empty: the environment holds secrets
/// (a PostgreSQL URL with its password, the MQTT password) that must not
/// end up in a terminal or a CI log.
///
/// ```
/// use clap::{Arg, Command};
///
/// let shown = Command::new("tool").arg(Arg::new("password").long("password").env("TOOL_PASSWORD"));
/// assert_eq!(shardline_cli::env_values_shown(&shown), ["tool --password (TOOL_PASSWORD)"]);
/// let hidden = Command::new("tool").arg(
///     Arg::new("password").long("password").env("TOOL_PASSWORD").hide_env_values(true),
/// );
/// assert!(shardline_cli::env_values_shown(&hidden).is_empty());
/// ```
pub fn env_values_shown(command: &clap::Command) -> Vec<String> {
    let mut shown: Vec<String> = command
        .get_arguments()
        .filter(|arg| !arg.is_hide_env_values_set())
        .filter_map(|arg| {
            let variable = arg.get_env()?.to_string_lossy();
            let flag = arg
                .get_long()
                .map_or_else(|| arg.get_id().to_string(), |long| format!("--{long}"));
            Some(format!("{} {flag} ({variable})", command.get_name()))
        })
        .collect();
    for subcommand in command.get_subcommands() {
        shown.extend(env_values_shown(subcommand));
    }
    shown
}
