//! `sensor-forwarder keys`: how a key strategy spreads sample readings
//! over N shards.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;
use shardline_partition_key::{Fields, shard_report};
use shardline_source::Origin;

use crate::run::{SensorsSection, key_for, processor};

#[derive(Debug, Clone, Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    report: shardline_runner::ReportArgs,
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

pub(crate) fn run(args: &KeysArgs) -> anyhow::Result<ExitCode> {
    let map = args.report.shard_map()?;
    let strategy = key_for(&args.partition_key)?;
    let sensors = SensorsSection {
        topic_template: args.topic_template.clone(),
        schema: Some("none".to_owned()),
        ..SensorsSection::default()
    };
    let records = processor(&sensors, None, false)?;
    let origin = match &args.topic {
        Some(topic) => Origin::topic(topic),
        None => Origin::default(),
    };
    let mut readings: Vec<Value> = Vec::new();
    let mut unreadable = 0u64;
    for line in args.report.sample(&args.from)? {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match records.reading(&line, origin) {
            Ok(reading) => readings.push(Value::Object(reading)),
            Err(_) => unreadable += 1,
        }
    }
    let report = shard_report(
        strategy.as_ref(),
        readings.iter().map(|r| r as &dyn Fields),
        &map,
        args.report.top,
    );
    args.report.print(
        &args.from,
        ("readings", readings.len()),
        ("unreadable", unreadable),
        &report,
    )?;
    Ok(ExitCode::SUCCESS)
}
