//! `sensor-forwarder keys`: how a key strategy spreads sample readings
//! over N shards.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;
use shardline_cli::{ReportArgs, SampleKind};
use shardline_core::Origin;

use crate::run::{SensorsSection, key_for, processor};

#[derive(Debug, Clone, Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    report: ReportArgs,
    /// The sample: readings as NDJSON (one message payload per line), or
    /// `-` for stdin.
    #[arg(long)]
    from: PathBuf,
    /// The topic the sample was published to, for the topic template's
    /// fields (e.g. `sensors/factory-a/temperature`).
    #[arg(long)]
    topic: Option<String>,
    /// Topic levels as fields (default `sensors/<location>/<metric>`).
    #[arg(long)]
    topic_template: Option<String>,
    /// `iot`, `device`, `field:<path>`, `fixed:<key>` or `random`.
    #[arg(long, default_value = "iot")]
    partition_key: String,
}

/// Readings are keyed; lines that are not one are left out.
const READINGS: SampleKind = SampleKind {
    items: "readings",
    left_out: "unreadable",
};

pub(crate) fn run(args: &KeysArgs) -> anyhow::Result<ExitCode> {
    let strategy = key_for(&args.partition_key)?;
    let sensors = SensorsSection {
        topic_template: args.topic_template.clone(),
        schema: Some("none".to_owned()),
        ..SensorsSection::default()
    };
    let records = processor(&sensors, None)?;
    let origin = match &args.topic {
        Some(topic) => Origin::topic(topic),
        None => Origin::default(),
    };
    let report = args
        .report
        .report(&args.from, READINGS, strategy.as_ref(), |line| {
            if line.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            Some(
                records
                    .reading(line, origin)
                    .map(Value::Object)
                    .map_err(|_| ()),
            )
        })?;
    args.report.print(&report)?;
    Ok(ExitCode::SUCCESS)
}
