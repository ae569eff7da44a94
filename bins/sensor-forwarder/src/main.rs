//! `sensor-forwarder`: IoT sensor readings from MQTT topics into Amazon
//! Kinesis Data Streams or Amazon Data Firehose (or stdout), as an AWS
//! IoT Core rule does it, each message acknowledged to the broker only
//! once its record is settled.
//!
//! This binary only reads settings and wires crates together: the
//! subscription is `shardline-mqtt`, readings → records `shardline-iot`,
//! the pipeline and its acknowledgements `shardline-pipeline`, delivery
//! `shardline-producer`, the run `shardline-runner`, the shared flags and
//! exit codes `shardline-cli`.

mod keys;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sensor-forwarder",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// How a partition-key strategy spreads sample readings over N shards:
    /// each shard's share, the hottest keys and a hot-shard warning.
    Keys(keys::KeysArgs),
    #[command(flatten)]
    Shell(shardline_cli::ShellCommand),
}

/// Forwarding readings (the default command).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: shardline_cli::CommonArgs,
    /// The broker: `mqtt://HOST:PORT`, or `mqtts://HOST:PORT` with
    /// --mqtt-ca-file (default mqtt://127.0.0.1:1883).
    #[arg(long, env = "SHARDLINE_MQTT_URL", hide_env_values = true)]
    pub(crate) mqtt_url: Option<String>,
    /// A topic filter to subscribe to with QoS 1; repeatable (default
    /// `sensors/+/temperature`).
    #[arg(long = "topic", value_name = "FILTER")]
    pub(crate) topics: Vec<String>,
    /// The session's client id: the broker keeps the subscriptions and
    /// the unacknowledged messages of this id across restarts.
    #[arg(long)]
    pub(crate) client_id: Option<String>,
    #[arg(long, env = "SHARDLINE_MQTT_USERNAME", hide_env_values = true)]
    pub(crate) mqtt_username: Option<String>,
    #[arg(
        long,
        env = "SHARDLINE_MQTT_PASSWORD",
        hide_env_values = true,
        requires = "mqtt_username"
    )]
    pub(crate) mqtt_password: Option<String>,
    /// The CA certificate (PEM) that signed the broker's (mqtts://).
    #[arg(long)]
    pub(crate) mqtt_ca_file: Option<PathBuf>,
    /// The client's certificate (PEM), for brokers that authenticate
    /// devices by certificate (AWS IoT Core).
    #[arg(long, requires_all = ["mqtt_ca_file", "mqtt_key_file"])]
    pub(crate) mqtt_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "mqtt_cert_file")]
    pub(crate) mqtt_key_file: Option<PathBuf>,
    /// Topic levels as fields: `sensors/<location>/<metric>` (default),
    /// with `+` for a level to pass over and a final `#`; `none` for no
    /// field from the topic.
    #[arg(long)]
    pub(crate) topic_template: Option<String>,
    /// Send only readings for which this is true, e.g.
    /// `temperature > 0 && temperature < 100` (docs/sensor-forwarder.md).
    #[arg(long)]
    pub(crate) filter: Option<String>,
    /// The schema readings must pass: `builtin` (default), `none`, or a
    /// JSON Schema file.
    #[arg(long)]
    pub(crate) schema: Option<String>,
    /// The built-in schema's temperature range, °C (default −50 to 100).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) temperature_min: Option<f64>,
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) temperature_max: Option<f64>,
    /// `iot` (device id + location hash; default), `device` (device id:
    /// IoT Core's `${device_id}`), `field:<path>`, `fixed:<key>` or
    /// `random`.
    #[arg(long)]
    pub(crate) partition_key: Option<String>,
}

fn main() -> ExitCode {
    shardline_cli::main("sensor-forwarder", || {
        let cli = Cli::parse();
        match cli.command {
            Some(Command::Keys(args)) => keys::run(&args),
            Some(Command::Shell(shell)) => shell.run(Cli::command()).map(|()| ExitCode::SUCCESS),
            None => run::main(cli.run),
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `--help` prints no environment variable's value: some hold secrets.
    #[test]
    fn help_prints_no_environment_value() {
        let shown = shardline_cli::env_values_shown(&super::Cli::command());
        assert!(
            shown.is_empty(),
            "--help would print the value of {shown:?}"
        );
    }
}
