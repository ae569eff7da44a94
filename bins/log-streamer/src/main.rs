//! `log-streamer`: tails Apache, Nginx and application logs into Amazon
//! Kinesis Data Streams or Amazon Data Firehose (or stdout), through
//! rotation and crashes, with nothing lost.
//!
//! This binary only reads settings and wires crates together: tailing is
//! `shardline-tail`, parsing `shardline-log-parser`, validation and masking
//! `shardline-validate`, keys `shardline-partition-key`, the pipeline and
//! its acknowledgements `shardline-pipeline`, delivery
//! `shardline-producer`, the run `shardline-runner`, the shared flags and
//! exit codes `shardline-cli`.

mod generate;
mod keys;
mod process;
mod run;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "log-streamer",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks a config file (sources, formats, keys, schemas, masking,
    /// producer settings) without reading or sending anything.
    ValidateConfig { file: PathBuf },
    /// How a key strategy spreads sample lines over N shards: each shard's
    /// share, the hottest keys and a hot-shard warning.
    Keys(keys::KeysArgs),
    #[command(flatten)]
    Shell(shardline_cli::ShellCommand),
}

/// Running the streamer (the default command).
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) common: shardline_cli::CommonArgs,
    /// The files to follow, as a JSON list: [{"path": "...", "type": "apache"|"nginx"|"application"|"text"|"syslog"|"csv"|"custom", "format": "..."}].
    /// "csv" takes "columns": ["...", ...] and optionally "delimiter" (default ",") and "quote" (default "\"").
    /// Multi-line events (stack traces): add "multi_line_start_pattern": "<regex>" (a matching line starts an event)
    /// or "multi_line": "java"|"python"|"go", and optionally "multi_line_flush_ms" (default 1000); the type then defaults to "text".
    #[arg(long)]
    pub(crate) log_files: Option<String>,
    /// Read the files to their current end, deliver, checkpoint, exit.
    #[arg(long)]
    pub(crate) once: bool,
    /// Start files never seen before at their beginning (default: end).
    #[arg(long)]
    pub(crate) from_beginning: bool,
    /// Continue exactly where acknowledged work ended.
    #[arg(long)]
    pub(crate) resume_from_checkpoint: bool,
    /// Write realistic test lines into the configured files meanwhile.
    #[arg(long)]
    pub(crate) generate_test_logs: bool,
    /// Lines per second per file for --generate-test-logs.
    #[arg(long, default_value_t = 25)]
    pub(crate) generate_rate: u32,
    #[arg(long)]
    pub(crate) parse_workers: Option<usize>,
}

fn main() -> ExitCode {
    shardline_cli::main("log-streamer", || {
        let cli = Cli::parse();
        match cli.command {
            Some(Command::ValidateConfig { file }) => run::validate_config(&file),
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
