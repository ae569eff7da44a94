//! `log-streamer keys`: the shard report for the configured files.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use shardline_log_parser::LogParser;
use shardline_partition_key::{Fields, shard_report};

use crate::process::{key_for, parser_for};
use crate::settings::{ConfigFile, parse_log_files};

#[derive(Debug, Clone, Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    report: shardline_runner::ReportArgs,
    /// The seed's JSON list of log files.
    #[arg(long)]
    log_files: Option<String>,
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

pub(crate) fn run(args: &KeysArgs) -> anyhow::Result<ExitCode> {
    let files = match (&args.log_files, &args.config) {
        (Some(json), _) => parse_log_files(json)?,
        (None, Some(path)) => {
            shardline_runner::load_config::<ConfigFile>(path)?
                .1
                .log_files
        }
        (None, None) => anyhow::bail!("give --log-files or --config"),
    };
    let map = args.report.shard_map()?;
    let mut reports = Vec::new();
    for file in &files {
        let parser: LogParser = parser_for(file)?;
        let strategy = key_for(file)?;
        let reader = std::io::BufReader::new(
            std::fs::File::open(&file.path).with_context(|| format!("opening {}", file.path))?,
        );
        let mut records: Vec<Value> = Vec::new();
        let mut json = Vec::new();
        for line in reader.split(b'\n').take(args.report.sample) {
            let line = line.with_context(|| format!("reading {}", file.path))?;
            if let Ok(record) = parser.parse_bytes(&line) {
                json.clear();
                record.write_json(&mut json)?;
                records.push(serde_json::from_slice(&json)?);
            }
        }
        let report = shard_report(
            strategy.as_ref(),
            records.iter().map(|r| r as &dyn Fields),
            &map,
            args.report.top,
        );
        reports.push((file.path.clone(), report));
    }
    if args.report.json {
        let out: Vec<Value> = reports
            .iter()
            .map(|(path, report)| serde_json::json!({"file": path, "report": report}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (path, report) in &reports {
            println!("== {path}");
            print!("{}", report.to_text());
        }
    }
    Ok(ExitCode::SUCCESS)
}
