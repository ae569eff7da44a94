//! Settings: the TOML config file, overridden by flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use shardline_metrics::AlarmConfig;
use shardline_validate::MaskRule;

/// The log types of `--log-files` (the seed's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogKind {
    Apache,
    Nginx,
    Application,
    /// A server's own directive in `format`: Apache `LogFormat` text, or
    /// Nginx `log_format` text (told apart by `%` / `$`).
    Custom,
}

impl LogKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogKind::Apache => "apache",
            LogKind::Nginx => "nginx",
            LogKind::Application => "application",
            LogKind::Custom => "custom",
        }
    }
}

/// One entry of `--log-files` / `[[log_files]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogFile {
    /// A path or a glob pattern.
    pub(crate) path: String,
    #[serde(rename = "type")]
    pub(crate) kind: LogKind,
    /// The directive text of a `custom` format.
    pub(crate) format: Option<String>,
    /// The source name in statistics and dead letters (default: the type).
    pub(crate) name: Option<String>,
    /// Partition-key strategy: `web`, `field:<path>`, `fixed:<key>`,
    /// `random` (default: `web` for access logs, `field:request_id` for
    /// application logs).
    pub(crate) key: Option<String>,
    /// Validation: `builtin` (default), `none`, or a JSON Schema file.
    pub(crate) schema: Option<String>,
}

impl LogFile {
    pub(crate) fn source_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.kind.as_str().to_owned())
    }
}

/// `[producer]`: the seed's tuning names and the producer's own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProducerSection {
    /// Records per batch (seed: 500).
    pub(crate) batch_size: Option<usize>,
    /// Seconds a batch may wait to fill (seed: 5).
    pub(crate) batch_timeout: Option<f64>,
    /// Records held in the producer at most (seed: 1000).
    pub(crate) queue_maxsize: Option<usize>,
    pub(crate) queue_max_bytes: Option<usize>,
    /// Threads parsing at once (seed: 4).
    pub(crate) parse_workers: Option<usize>,
    pub(crate) max_in_flight: Option<usize>,
    /// KPL aggregation (Kinesis).
    pub(crate) aggregate: Option<bool>,
    /// Firehose packing of newline-delimited records.
    pub(crate) pack: Option<bool>,
    /// Retries after the first attempt; `-1`: unlimited.
    pub(crate) max_retries: Option<i64>,
    pub(crate) retry_initial_delay: Option<f64>,
    pub(crate) retry_max_delay: Option<f64>,
    pub(crate) strict_ordering: Option<bool>,
    pub(crate) rate_limit_percent: Option<u32>,
    /// Seconds given to deliver what is queued at shutdown.
    pub(crate) shutdown_timeout: Option<f64>,
}

/// `[tail]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TailSection {
    pub(crate) poll_interval: Option<f64>,
    pub(crate) rotate_wait: Option<f64>,
    pub(crate) max_line_bytes: Option<usize>,
    pub(crate) from_beginning: Option<bool>,
    pub(crate) checkpoint_interval: Option<f64>,
}

/// `[masking]`: field path → rule; the keyed-hash key comes from the
/// environment variable named by `key_env`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaskingSection {
    pub(crate) key_env: Option<String>,
    #[serde(default)]
    pub(crate) fields: BTreeMap<String, MaskRule>,
}

/// `[metrics]`: Prometheus, CloudWatch and alarm thresholds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsSection {
    /// Serve Prometheus metrics here (`HOST:PORT`, `:PORT`).
    pub(crate) address: Option<String>,
    /// Publish to CloudWatch under this namespace.
    pub(crate) cloudwatch_namespace: Option<String>,
    /// Alarm thresholds (default: the seeds').
    #[serde(default)]
    pub(crate) alarms: AlarmConfig,
}

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    pub(crate) stream_name: Option<String>,
    pub(crate) delivery_stream: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) endpoint_url: Option<String>,
    /// `kinesis` / `firehose` (by which name is set) or `stdout`.
    pub(crate) sink: Option<String>,
    pub(crate) checkpoint_file: Option<PathBuf>,
    pub(crate) dead_letter_file: Option<PathBuf>,
    /// Seconds between statistics lines.
    pub(crate) stats_interval: Option<f64>,
    #[serde(default)]
    pub(crate) log_files: Vec<LogFile>,
    #[serde(default)]
    pub(crate) producer: ProducerSection,
    #[serde(default)]
    pub(crate) tail: TailSection,
    #[serde(default)]
    pub(crate) masking: MaskingSection,
    #[serde(default)]
    pub(crate) metrics: MetricsSection,
}

impl ConfigFile {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
    }
}

/// Seconds from a config value, checked.
pub(crate) fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    if !value.is_finite() || value < 0.0 {
        bail!("{name} must be a non-negative number of seconds, not {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

/// Parses `--log-files` (the seed's JSON list).
pub(crate) fn parse_log_files(json: &str) -> anyhow::Result<Vec<LogFile>> {
    serde_json::from_str(json).context(
        "--log-files takes a JSON list like \
         '[{\"path\": \"/var/log/apache2/access.log\", \"type\": \"apache\"}]'",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_log_files_and_tuning_names_parse() {
        let files = parse_log_files(
            r#"[{"path": "/tmp/streaming-logs/apache/access.log", "type": "apache"},
                {"path": "/tmp/a.log", "type": "custom", "format": "%h %t \"%r\" %>s"}]"#,
        )
        .unwrap();
        assert_eq!(files[0].kind, LogKind::Apache);
        assert_eq!(files[1].format.as_deref(), Some("%h %t \"%r\" %>s"));
        let config: ConfigFile = toml::from_str(
            "stream_name = \"s\"\n[producer]\nbatch_size = 500\nbatch_timeout = 5\n\
             queue_maxsize = 1000\nparse_workers = 4\n[masking.fields]\nip_address = \"truncate_ip\"\n\
             [metrics]\naddress = \":9100\"\n[metrics.alarms]\nwarning_below = 99\n",
        )
        .unwrap();
        assert_eq!(config.producer.parse_workers, Some(4));
        assert_eq!(config.masking.fields["ip_address"], MaskRule::TruncateIp);
        assert_eq!(config.metrics.alarms.warning_below, 99.0);
        assert_eq!(config.metrics.alarms.critical_below, 90.0);
        assert!(toml::from_str::<ConfigFile>("batch_sise = 3").is_err());
    }
}
