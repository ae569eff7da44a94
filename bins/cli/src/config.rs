//! The settings every binary shares, in its TOML config file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use shardline_metrics::AlarmConfig;

/// `[producer]`: batching, retries, memory and shutdown.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSection {
    /// Records per batch (default: 500).
    pub batch_size: Option<usize>,
    /// Seconds a batch may wait to fill (default: 5 for logs).
    pub batch_timeout: Option<f64>,
    /// Records held in the producer at most (default: 1000).
    pub queue_maxsize: Option<usize>,
    /// The producer's memory cap in bytes: records held plus the copies
    /// requests in flight make (default: 8 MiB of records plus one full
    /// request's copies).
    pub queue_max_bytes: Option<usize>,
    /// Threads parsing at once (default: 4).
    pub parse_workers: Option<usize>,
    /// Batch requests in flight at once.
    pub max_in_flight: Option<usize>,
    /// KPL aggregation (Kinesis).
    pub aggregate: Option<bool>,
    /// The largest aggregate in bytes, as the KPL's `AggregationMaxSize`
    /// (default 51,200); only with aggregation on.
    pub aggregate_max_bytes: Option<usize>,
    /// Firehose packing of newline-delimited records.
    pub pack: Option<bool>,
    /// Retries after the first attempt; `-1`: unlimited.
    pub max_retries: Option<i64>,
    /// Seconds: the cap on the wait before the first retry.
    pub retry_initial_delay: Option<f64>,
    /// Seconds: the cap on any wait between retries.
    pub retry_max_delay: Option<f64>,
    /// Seconds a record may keep failing with transient errors before it
    /// is dead-lettered; `0`: as soon as its retries are used up. Unset:
    /// never for inputs that can be read again (the input pauses instead),
    /// 300 s for stdin.
    pub dead_letter_after: Option<f64>,
    /// Keep each partition key's records in order through retries.
    pub strict_ordering: Option<bool>,
    /// Send each shard at most this percentage of its capacity (Kinesis).
    pub rate_limit_percent: Option<u32>,
    /// Pace each shard that throttles (Kinesis; default true).
    pub adaptive_shard_rate: Option<bool>,
    /// Keep fewer requests in flight while the service is slow (default
    /// true).
    pub adaptive_concurrency: Option<bool>,
    /// Seconds given to deliver what is queued at shutdown.
    pub shutdown_timeout: Option<f64>,
}

/// `[metrics]`: Prometheus, CloudWatch and alarm thresholds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve Prometheus metrics here (`HOST:PORT`, `:PORT`).
    pub address: Option<String>,
    /// Publish to CloudWatch under this namespace.
    pub cloudwatch_namespace: Option<String>,
    /// Alarm thresholds (default: warn below 95% success, critical below
    /// 90%).
    #[serde(default)]
    pub alarms: AlarmConfig,
}

/// The top-level keys of [`CommonConfig`]; every other key of a config
/// file belongs to the binary.
pub const COMMON_KEYS: &[&str] = &[
    "stream_name",
    "delivery_stream",
    "region",
    "endpoint_url",
    "sink",
    "checkpoint_file",
    "dead_letter_file",
    "stats_interval",
    "producer",
    "metrics",
];

/// The settings every binary's config file may hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonConfig {
    /// The Kinesis data stream to send to.
    pub stream_name: Option<String>,
    /// The Firehose delivery stream to send to instead.
    pub delivery_stream: Option<String>,
    /// The AWS region.
    pub region: Option<String>,
    /// One endpoint for every AWS service (a local emulator).
    pub endpoint_url: Option<String>,
    /// `kinesis` / `firehose` (by which name is set) or `stdout`.
    pub sink: Option<String>,
    /// Where settled positions are saved.
    pub checkpoint_file: Option<PathBuf>,
    /// Where records that cannot be delivered are written.
    pub dead_letter_file: Option<PathBuf>,
    /// Seconds between statistics lines.
    pub stats_interval: Option<f64>,
    /// `[producer]`: batching, retries, memory.
    #[serde(default)]
    pub producer: ProducerSection,
    /// `[metrics]`: Prometheus, CloudWatch, alarms.
    #[serde(default)]
    pub metrics: MetricsSection,
}

/// Reads a config file: the [`COMMON_KEYS`] into [`CommonConfig`], every
/// other key into the binary's own `S`. Both refuse keys they do not know,
/// so a misspelt setting is an error, never silently ignored.
pub fn load_config<S: DeserializeOwned>(path: &Path) -> anyhow::Result<(CommonConfig, S)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    parse_config(&text).with_context(|| format!("config file {}", path.display()))
}

pub(crate) fn parse_config<S: DeserializeOwned>(text: &str) -> anyhow::Result<(CommonConfig, S)> {
    let mut own: toml::Table = toml::from_str(text)?;
    let mut common = toml::Table::new();
    for key in COMMON_KEYS {
        if let Some(value) = own.remove(*key) {
            common.insert((*key).to_owned(), value);
        }
    }
    let common = CommonConfig::deserialize(common)?;
    let own = S::deserialize(own)?;
    Ok((common, own))
}

/// Seconds from a setting, checked: a negative, infinite or NaN number,
/// or one too large for a duration, is an error that names the setting.
pub fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    if !value.is_finite() || value < 0.0 {
        bail!("{name} must be a non-negative number of seconds, not {value}");
    }
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{name} = {value} seconds is too long"))
}

/// The retry count from `max_retries`: `-1` is unlimited (`None`); any
/// other negative number, or one past `u32::MAX`, is an error.
pub(crate) fn retries(value: i64) -> anyhow::Result<Option<u32>> {
    if value == -1 {
        return Ok(None);
    }
    u32::try_from(value).map(Some).map_err(|_| {
        anyhow::anyhow!(
            "max_retries must be -1 (unlimited) or a count from 0 to {}, not {value}",
            u32::MAX
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Own {
        #[serde(default)]
        files: Vec<String>,
    }

    #[test]
    fn common_and_own_keys_split_and_typos_are_refused() {
        let (common, own): (CommonConfig, Own) = parse_config(
            "stream_name = \"s\"\nfiles = [\"a\"]\n[producer]\nbatch_size = 500\n\
             [metrics]\naddress = \":9100\"\n[metrics.alarms]\nwarning_below = 99\n",
        )
        .unwrap();
        assert_eq!(common.stream_name.as_deref(), Some("s"));
        assert_eq!(common.producer.batch_size, Some(500));
        assert_eq!(common.metrics.alarms.warning_below, 99.0);
        assert_eq!(common.metrics.alarms.critical_below, 90.0);
        assert_eq!(own.files, ["a"]);
        let typo = parse_config::<Own>("batch_sise = 3").unwrap_err();
        assert!(typo.to_string().contains("batch_sise"), "{typo}");
        let nested = parse_config::<Own>("[producer]\nbatch_sise = 3").unwrap_err();
        assert!(nested.to_string().contains("batch_sise"), "{nested}");
        assert!(seconds("x", -1.0).is_err());
        assert!(seconds("x", f64::NAN).is_err());
        assert_eq!(seconds("x", 1.5).unwrap(), Duration::from_millis(1500));
    }
}
