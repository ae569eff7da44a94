//! The `keys` subcommand every binary has: how a key strategy would spread
//! sample input over N shards, before anything is sent.

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use clap::Args;
use shardline_partition_key::{Fields, PartitionKeyStrategy, ShardMap, ShardReport, shard_report};

/// The flags of a `keys` subcommand, flattened into each binary's own.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Shards to spread over (evenly split hash-key ranges, as
    /// CreateStream makes them).
    #[arg(long, default_value_t = 4)]
    pub shards: usize,
    /// Lines read at most (from the start of each input).
    #[arg(long, default_value_t = 100_000)]
    pub sample: usize,
    /// Hottest keys listed.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What one sample is made of: its items' name (`changes`) and the name of
/// the lines left out (`undecodable`).
#[derive(Debug, Clone, Copy)]
pub struct SampleKind {
    /// What the sample's items are called (`changes`).
    pub items: &'static str,
    /// What the lines left out are called (`undecodable`).
    pub left_out: &'static str,
}

/// How a strategy spreads one input's sample.
#[derive(Debug)]
pub struct SampleReport {
    input: String,
    kind: SampleKind,
    items: usize,
    left_out: u64,
    report: ShardReport,
}

impl ReportArgs {
    /// The shard layout to report on: `--shards` even hash-key ranges.
    pub fn shard_map(&self) -> anyhow::Result<ShardMap> {
        if self.shards == 0 {
            anyhow::bail!("--shards must be at least 1");
        }
        Ok(ShardMap::even(self.shards))
    }

    /// Reads at most `--sample` lines of `from` (a file, or `-` for stdin),
    /// turns each into the fields a key is made of with `fields` (`None`:
    /// nothing to key, such as a blank line or a transaction's end;
    /// `Some(Err(()))`: left out), and reports how `strategy` spreads them.
    pub fn report<F: Fields>(
        &self,
        from: &Path,
        kind: SampleKind,
        strategy: &dyn PartitionKeyStrategy,
        mut fields: impl FnMut(&[u8]) -> Option<Result<F, ()>>,
    ) -> anyhow::Result<SampleReport> {
        let map = self.shard_map()?;
        let reader: Box<dyn BufRead> = if from.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?,
            ))
        };
        let mut items = Vec::new();
        let mut left_out = 0u64;
        for line in reader.split(b'\n').take(self.sample) {
            let line = line.with_context(|| format!("reading {}", from.display()))?;
            match fields(&line) {
                Some(Ok(item)) => items.push(item),
                Some(Err(())) => left_out += 1,
                None => {}
            }
        }
        let report = shard_report(
            strategy,
            items.iter().map(|item| item as &dyn Fields),
            &map,
            self.top,
        );
        Ok(SampleReport {
            input: from.display().to_string(),
            kind,
            items: items.len(),
            left_out,
            report,
        })
    }

    /// Prints one report: as text, or as a JSON object with `--json`.
    pub fn print(&self, report: &SampleReport) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report.to_json()?)?);
        } else {
            print!("{}", report.to_text());
        }
        Ok(())
    }

    /// Prints several reports: as text one after another, or as a JSON
    /// list with `--json`.
    pub fn print_all(&self, reports: &[SampleReport]) -> anyhow::Result<()> {
        if self.json {
            let all = reports
                .iter()
                .map(SampleReport::to_json)
                .collect::<Result<Vec<_>, _>>()?;
            println!("{}", serde_json::to_string_pretty(&all)?);
        } else {
            for report in reports {
                print!("{}", report.to_text());
            }
        }
        Ok(())
    }
}

impl SampleReport {
    fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        let mut out = serde_json::Map::new();
        out.insert("input".into(), self.input.clone().into());
        out.insert(self.kind.items.into(), self.items.into());
        out.insert(
            format!("{}_lines", self.kind.left_out),
            self.left_out.into(),
        );
        out.insert("report".into(), serde_json::to_value(&self.report)?);
        Ok(serde_json::Value::Object(out))
    }

    fn to_text(&self) -> String {
        let left_out = if self.left_out > 0 {
            format!(
                ", {} lines {}",
                self.left_out,
                self.kind.left_out.replace('_', " ")
            )
        } else {
            String::new()
        };
        format!(
            "== {} ({} {}{left_out})\n{}",
            self.input,
            self.items,
            self.kind.items,
            self.report.to_text()
        )
    }
}
