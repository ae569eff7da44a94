//! `log-streamer keys`: the shard report for the configured files.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;
use shardline_cli::{ReportArgs, SampleKind};

use crate::process::{key_for, parser_for};
use crate::settings::{ConfigFile, parse_log_files};

#[derive(Debug, Clone, Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    report: ReportArgs,
    /// The files to sample, as `--log-files` takes them.
    #[arg(long)]
    log_files: Option<String>,
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

/// Lines that parse are keyed; the others are left out.
const LINES: SampleKind = SampleKind {
    items: "records",
    left_out: "unparsed",
};

pub(crate) fn run(args: &KeysArgs) -> anyhow::Result<ExitCode> {
    let files = match (&args.log_files, &args.config) {
        (Some(json), _) => parse_log_files(json)?,
        (None, Some(path)) => shardline_cli::load_config::<ConfigFile>(path)?.1.log_files,
        (None, None) => anyhow::bail!("give --log-files or --config"),
    };
    let mut reports = Vec::new();
    for file in &files {
        let parser = parser_for(file)?;
        let strategy = key_for(file)?;
        let mut json = Vec::new();
        let report =
            args.report
                .report(Path::new(&file.path), LINES, strategy.as_ref(), |line| {
                    let record = parser.parse_bytes(line).ok()?;
                    json.clear();
                    Some(
                        record
                            .write_json(&mut json)
                            .ok()
                            .and_then(|()| serde_json::from_slice::<Value>(&json).ok())
                            .ok_or(()),
                    )
                })?;
        reports.push(report);
    }
    args.report.print_all(&reports)?;
    Ok(ExitCode::SUCCESS)
}
