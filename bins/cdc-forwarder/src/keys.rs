//! `cdc-forwarder keys`: how a key strategy spreads sample changes over
//! N shards.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use shardline_cdc::{ChangeEvent, Decoded, Decoder, Format, KeyBy, KeyColumns};
use shardline_partition_key::{Fields, shard_report};

#[derive(Debug, Clone, Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    report: shardline_runner::ReportArgs,
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

pub(crate) fn run(args: &KeysArgs) -> anyhow::Result<ExitCode> {
    let map = args.report.shard_map()?;
    let format: Format = args.input.parse().map_err(anyhow::Error::msg)?;
    let key_by: KeyBy = args.partition_key.parse().map_err(anyhow::Error::msg)?;
    let key_columns = match &args.key_columns {
        Some(spec) => shardline_cdc::table_columns(spec).context("--key-columns")?,
        None => KeyColumns::new(),
    };
    let mut decoder = Decoder::new(format).key_columns(key_columns);
    let mut events: Vec<ChangeEvent> = Vec::new();
    let mut undecodable = 0u64;
    for line in args.report.sample(&args.from)? {
        match decoder.decode(&line) {
            Ok(Decoded::Change(event)) => events.push(*event),
            Ok(_) => {}
            Err(_) => undecodable += 1,
        }
    }
    let report = shard_report(
        &key_by,
        events.iter().map(|e| e as &dyn Fields),
        &map,
        args.report.top,
    );
    args.report.print(
        &args.from,
        ("changes", events.len()),
        ("undecodable", undecodable),
        &report,
    )?;
    Ok(ExitCode::SUCCESS)
}
