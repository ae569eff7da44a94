//! `cdc-forwarder keys`: how a key strategy spreads sample changes over
//! N shards.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use shardline_cdc::{ChangeEvent, Decoded, Decoder, Format, KeyBy, KeyColumns};
use shardline_partition_key::{Fields, ShardMap, shard_report};

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
    if args.report.shards == 0 {
        bail!("--shards must be at least 1");
    }
    let format: Format = args.input.parse().map_err(anyhow::Error::msg)?;
    let key_by: KeyBy = args.partition_key.parse().map_err(anyhow::Error::msg)?;
    let key_columns = match &args.key_columns {
        Some(spec) => shardline_cdc::table_columns(spec).context("--key-columns")?,
        None => KeyColumns::new(),
    };
    let mut decoder = Decoder::new(format).key_columns(key_columns);
    let reader: Box<dyn BufRead> = if args.from.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(&args.from)
                .with_context(|| format!("opening {}", args.from.display()))?,
        ))
    };
    let mut events: Vec<ChangeEvent> = Vec::new();
    let mut undecodable = 0u64;
    for line in reader.split(b'\n').take(args.report.sample) {
        let line = line.with_context(|| format!("reading {}", args.from.display()))?;
        match decoder.decode(&line) {
            Ok(Decoded::Change(event)) => events.push(*event),
            Ok(_) => {}
            Err(_) => undecodable += 1,
        }
    }
    let report = shard_report(
        &key_by,
        events.iter().map(|e| e as &dyn Fields),
        &ShardMap::even(args.report.shards),
        args.report.top,
    );
    if args.report.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "input": args.from,
                "changes": events.len(),
                "undecodable_lines": undecodable,
                "report": report,
            }))?
        );
    } else {
        println!(
            "== {} ({} changes{})",
            args.from.display(),
            events.len(),
            if undecodable > 0 {
                format!(", {undecodable} lines that do not decode")
            } else {
                String::new()
            }
        );
        print!("{}", report.to_text());
    }
    Ok(ExitCode::SUCCESS)
}
