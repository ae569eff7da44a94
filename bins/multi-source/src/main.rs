//! `multi-source`: web logs, IoT readings and database changes, generated
//! at a steady rate, each through its own records step into ONE producer,
//! with statistics per source (`web_logs`, `iot_sensors`,
//! `database_cdc`): a rehearsal of a multi-source deployment against a
//! real stream.
//!
//! It is also the worked example of embedding shardline in a Rust
//! program: each source is a `Source` (here `shardline-generate`; a file
//! tail, a replication slot or an MQTT subscription plug in the same way)
//! paired with its `Process` step (`LogRecords`, `SensorRecords`,
//! `ChangeRecords`), and `shardline-runner` gives them one producer,
//! the statistics, metrics and shutdown.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::{CommandFactory, Parser, ValueEnum};
use multi_source::Generator;
use shardline_cli::{CommonArgs, Defaults, Settings};
use shardline_runner::Runner;

/// Per-key order through retries, for the database changes (each row in
/// order); batches wait at most 100 ms, as cdc-forwarder's do.
const DEFAULTS: Defaults = Defaults {
    binary: "multi-source",
    strict_ordering: true,
    linger: Some(Duration::from_millis(100)),
    max_in_flight: None,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Web,
    Iot,
    Db,
    All,
}

#[derive(Debug, Parser)]
#[command(
    name = "multi-source",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<shardline_cli::ShellCommand>,
    #[command(flatten)]
    run: Args,
}

/// Generating and forwarding (the default command).
#[derive(Debug, clap::Args)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Which generators to run.
    #[arg(long, value_enum, default_value = "all")]
    source: Which,
    /// Web log lines a second (the defaults keep the proportions of a
    /// typical mix: 8,500 web : 4,200 IoT : 2,720 database).
    #[arg(long, default_value_t = 30)]
    web_rate: u32,
    /// IoT readings a second.
    #[arg(long, default_value_t = 15)]
    iot_rate: u32,
    /// Database changes a second.
    #[arg(long, default_value_t = 10)]
    db_rate: u32,
}

fn main() -> ExitCode {
    shardline_cli::main("multi-source", || {
        let cli = Cli::parse();
        match cli.command {
            Some(shell) => shell.run(Cli::command()).map(|()| ExitCode::SUCCESS),
            None => run(cli.run),
        }
    })
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (common, NoOwnKeys {}) = args.common.config()?;
    let settings = Settings::new(&args.common, common, DEFAULTS)?;
    shardline_cli::block_on(forward(args, settings))
}

/// The config file holds only the shared keys: any other is an error.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOwnKeys {}

async fn forward(args: Args, settings: Settings) -> anyhow::Result<ExitCode> {
    let mut running = Runner::start(settings.run.clone()).await?;
    shardline_cli::announce_metrics("multi-source", &running);
    let shutdown = shardline_cli::shutdown("multi-source", settings.duration)?;
    let mut made: Vec<(&str, Arc<AtomicU64>)> = Vec::new();
    let rates = [
        (Which::Web, Generator::Web, args.web_rate),
        (Which::Iot, Generator::Iot, args.iot_rate),
        (Which::Db, Generator::Db, args.db_rate),
    ];
    for (which, generator, rate) in rates {
        if args.source == which || args.source == Which::All {
            made.push((generator.name(), generator.spawn(&mut running, rate)?));
        }
    }
    eprintln!(
        "multi-source: {} → {:?}; dead letters in {}",
        made.iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", "),
        settings.run.destination,
        settings.run.dead_letter_file.display()
    );
    let summary = running.run(shutdown).await?;
    let code = shardline_cli::finish("multi-source", &settings.run.destination, &summary);
    let generated: serde_json::Map<String, serde_json::Value> = made
        .iter()
        .map(|(name, count)| ((*name).to_owned(), count.load(Ordering::Relaxed).into()))
        .collect();
    eprintln!(
        "multi-source: generated {}",
        serde_json::Value::Object(generated)
    );
    Ok(code)
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
