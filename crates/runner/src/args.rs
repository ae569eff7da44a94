//! The flags every binary takes.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use shardline_partition_key::{ShardMap, ShardReport};

/// Destination, files, statistics, metrics and producer tuning: flattened
/// into each binary's own flags.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// Kinesis data stream to send to.
    #[arg(long)]
    pub stream_name: Option<String>,
    /// Firehose delivery stream to send to instead.
    #[arg(long, conflicts_with = "stream_name")]
    pub delivery_stream: Option<String>,
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Endpoint of the service (a local emulator); the SDK also reads
    /// AWS_ENDPOINT_URL_KINESIS / AWS_ENDPOINT_URL_FIREHOSE.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// A TOML file holding every setting (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `stdout`: print each record's data, one per line, and send nothing.
    #[arg(long, value_parser = ["stdout", "kinesis", "firehose"])]
    pub sink: Option<String>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Default: $XDG_STATE_HOME/shardline/<binary>/<stream>.checkpoint.json.
    #[arg(long)]
    pub checkpoint_file: Option<PathBuf>,
    /// Default: $XDG_STATE_HOME/shardline/<binary>/<stream>.dead-letters.ndjson.
    #[arg(long)]
    pub dead_letter_file: Option<PathBuf>,
    /// Seconds between statistics lines (0: none).
    #[arg(long)]
    pub stats_interval: Option<f64>,
    /// Serve Prometheus metrics on this address (`HOST:PORT`, `:PORT`;
    /// loopback unless a host is given).
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Publish the seeds' CloudWatch metrics under this namespace (e.g.
    /// `Shardline`); the SDK also reads AWS_ENDPOINT_URL_CLOUDWATCH.
    #[arg(long)]
    pub cloudwatch_namespace: Option<String>,
    /// KPL aggregation (Kinesis).
    #[arg(long)]
    pub aggregate: bool,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seconds a batch may wait to fill.
    #[arg(long)]
    pub batch_timeout: Option<f64>,
    #[arg(long)]
    pub queue_maxsize: Option<usize>,
}

impl CommonArgs {
    /// The config file of `--config` ([`crate::load_config`]), or the
    /// defaults without one.
    pub fn config<S: serde::de::DeserializeOwned + Default>(
        &self,
    ) -> anyhow::Result<(crate::CommonConfig, S)> {
        match &self.config {
            Some(path) => crate::load_config(path),
            None => Ok((crate::CommonConfig::default(), S::default())),
        }
    }
}

/// The flags of a `keys` subcommand (the shard report), flattened into
/// each binary's own.
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
    #[arg(long)]
    pub json: bool,
}

impl ReportArgs {
    /// The shard layout to report on: `--shards` even hash-key ranges.
    pub fn shard_map(&self) -> anyhow::Result<ShardMap> {
        if self.shards == 0 {
            anyhow::bail!("--shards must be at least 1");
        }
        Ok(ShardMap::even(self.shards))
    }

    /// At most `--sample` lines of `from`, a file or `-` for stdin.
    pub fn sample(&self, from: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
        let reader: Box<dyn BufRead> = if from.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?,
            ))
        };
        reader
            .split(b'\n')
            .take(self.sample)
            .map(|line| line.with_context(|| format!("reading {}", from.display())))
            .collect()
    }

    /// Prints the report of the sample in `from`: `items` of what was read
    /// (e.g. `changes`), `left_out` lines that could not be keyed and why.
    pub fn print(
        &self,
        from: &Path,
        items: (&str, usize),
        left_out: (&str, u64),
        report: &ShardReport,
    ) -> anyhow::Result<()> {
        let (noun, count) = items;
        let (why, skipped) = left_out;
        if self.json {
            let mut out = serde_json::Map::new();
            out.insert("input".into(), serde_json::json!(from));
            out.insert(noun.into(), count.into());
            out.insert(format!("{why}_lines"), skipped.into());
            out.insert("report".into(), serde_json::to_value(report)?);
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            let skipped = if skipped > 0 {
                format!(", {skipped} lines {}", why.replace('_', " "))
            } else {
                String::new()
            };
            println!("== {} ({count} {noun}{skipped})", from.display());
            print!("{}", report.to_text());
        }
        Ok(())
    }
}
