//! `cdc-forwarder keys`: how a key strategy spreads sample changes over
//! N shards.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use shardline_cdc::{Decoded, Decoder, Format, KeyBy, KeyColumns};
use shardline_cli::{ReportArgs, SampleKind};

#[derive(Debug, Clone, Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    report: ReportArgs,
    /// The format of the sample.
    #[arg(long, value_parser = ["debezium", "dms", "maxwell", "wal2json", "shardline"])]
    input: String,
    /// The sample: an NDJSON file, or `-` for stdin.
    #[arg(long)]
    from: PathBuf,
    /// `pk`, `table` or `table-txid`.
    #[arg(long, default_value = "pk")]
    partition_key: String,
    /// Key columns of tables whose input does not carry them.
    #[arg(long)]
    key_columns: Option<String>,
}

/// Changes are keyed; lines that do not decode are left out.
const CHANGES: SampleKind = SampleKind {
    items: "changes",
    left_out: "undecodable",
};

pub(crate) fn run(args: &KeysArgs) -> anyhow::Result<ExitCode> {
    let format: Format = args.input.parse().map_err(anyhow::Error::msg)?;
    let key_by: KeyBy = args.partition_key.parse().map_err(anyhow::Error::msg)?;
    let key_columns = match &args.key_columns {
        Some(spec) => shardline_cdc::table_columns(spec).context("--key-columns")?,
        None => KeyColumns::new(),
    };
    let mut decoder = Decoder::new(format).key_columns(key_columns);
    let report = args.report.report(&args.from, CHANGES, &key_by, |line| {
        match decoder.decode(line) {
            Ok(Decoded::Change(event)) => Some(Ok(*event)),
            Ok(_) => None,
            Err(_) => Some(Err(())),
        }
    })?;
    args.report.print(&report)?;
    Ok(ExitCode::SUCCESS)
}
