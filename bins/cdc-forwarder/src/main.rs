//! `cdc-forwarder`: database changes into Amazon Kinesis Data Streams or
//! Amazon Data Firehose (or stdout), each row's changes in order, nothing
//! lost. Reads a PostgreSQL logical replication slot (wal2json), or NDJSON
//! in the Debezium, AWS DMS, Maxwell or wal2json format from a file or
//! stdin.
//!
//! This binary only reads settings and wires crates together: the slot is
//! `shardline-postgres`, files and stdin `shardline-tail`, decoding,
//! classification and keys `shardline-cdc`, the pipeline and its
//! acknowledgements `shardline-pipeline`, delivery `shardline-producer`,
//! the run `shardline-runner`, the shared flags and exit codes
//! `shardline-cli`.

mod keys;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cdc-forwarder",
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
    /// How a partition-key strategy spreads sample changes over N shards:
    /// each shard's share, the hottest keys and a hot-shard warning.
    Keys(keys::KeysArgs),
    #[command(flatten)]
    Shell(shardline_cli::ShellCommand),
}

/// Forwarding changes (the default command).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) common: shardline_cli::CommonArgs,
    /// Read this database's logical replication slot
    /// (`postgres://user@host:port/database`).
    #[arg(
        long,
        env = "SHARDLINE_POSTGRES_URL",
        hide_env_values = true,
        conflicts_with = "from"
    )]
    pub(crate) postgres_url: Option<String>,
    /// The replication slot (wal2json).
    #[arg(long)]
    pub(crate) slot: Option<String>,
    /// Create the slot when it does not exist (and nothing was read from an
    /// earlier one: see --accept-slot-gap).
    #[arg(long)]
    pub(crate) create_slot: bool,
    /// With --create-slot: create the slot anew even though the checkpoint
    /// file says changes were read from an earlier one. The new slot starts
    /// at the current WAL position; changes committed between the
    /// checkpoint and then are never read.
    #[arg(long)]
    pub(crate) accept_slot_gap: bool,
    /// Tables to forward: `schema.table`, `table`, `*.table`, `schema.*`,
    /// comma-separated (default: all).
    #[arg(long)]
    pub(crate) tables: Option<String>,
    /// Tables never to forward, in the same form.
    #[arg(long)]
    pub(crate) exclude_tables: Option<String>,
    /// The format of NDJSON input.
    #[arg(long, value_parser = ["debezium", "dms", "maxwell", "wal2json", "shardline"])]
    pub(crate) input: Option<String>,
    /// NDJSON input: a file (followed as it grows, unless --once) or `-`
    /// for stdin.
    #[arg(long, requires = "input")]
    pub(crate) from: Option<PathBuf>,
    /// Updates that change these columns are `critical_field_change`:
    /// `schema.table:col1,col2;schema.table2:col`.
    #[arg(long)]
    pub(crate) critical_fields: Option<String>,
    /// Key columns of tables whose input does not carry them (Debezium
    /// values, DMS): `schema.table:id;table2:a,b`.
    #[arg(long)]
    pub(crate) key_columns: Option<String>,
    /// `pk` (table + primary key: each row in order; default), `table`, or
    /// `table-txid` (table + transaction id; see docs/cdc.md for its
    /// caveat).
    #[arg(long)]
    pub(crate) partition_key: Option<String>,
    /// The JSON of each record: `normalized` (default) or `debezium`.
    #[arg(long)]
    pub(crate) output: Option<String>,
    /// Forward what is committed now, checkpoint, exit.
    #[arg(long)]
    pub(crate) once: bool,
}

fn main() -> ExitCode {
    shardline_cli::main("cdc-forwarder", || {
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
