//! Settings: the TOML config file, overridden by flags.

use anyhow::Context;
use serde::Deserialize;
use shardline_validate::MaskRule;
use std::collections::BTreeMap;

/// The log types of `--log-files` (each entry's `type`).
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
    /// Partition-key strategy (`shardline_partition_key::KeySpec`: `web`,
    /// `field:<path>`, `fixed:<key>`, `random`, …; default: `web` for
    /// access logs, `field:request_id` for application logs).
    pub(crate) key: Option<String>,
    /// Validation: `builtin` (default), `strict` (application logs: a
    /// `timestamp`, `level` and `message` required), `none`, or a JSON
    /// Schema file.
    pub(crate) schema: Option<String>,
}

impl LogFile {
    pub(crate) fn source_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.kind.as_str().to_owned())
    }
}

/// `[tail]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TailSection {
    pub(crate) poll_interval: Option<f64>,
    pub(crate) rotate_wait: Option<f64>,
    /// Seconds a glob's idle file stays open.
    pub(crate) close_inactive: Option<f64>,
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

/// log-streamer's own keys of the config file; the shared ones
/// (destination, `[producer]`, `[metrics]`, …) are the runner's
/// [`shardline_cli::CommonConfig`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) log_files: Vec<LogFile>,
    #[serde(default)]
    pub(crate) tail: TailSection,
    #[serde(default)]
    pub(crate) masking: MaskingSection,
}

/// Parses `--log-files` (a JSON list of files).
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
    fn log_files_and_config_sections_parse() {
        let files = parse_log_files(
            r#"[{"path": "/tmp/streaming-logs/apache/access.log", "type": "apache"},
                {"path": "/tmp/a.log", "type": "custom", "format": "%h %t \"%r\" %>s"}]"#,
        )
        .unwrap();
        assert_eq!(files[0].kind, LogKind::Apache);
        assert_eq!(files[1].format.as_deref(), Some("%h %t \"%r\" %>s"));
        let config: ConfigFile = toml::from_str(
            "[[log_files]]\npath = \"/tmp/a.log\"\ntype = \"apache\"\n\
             [masking.fields]\nip_address = \"truncate_ip\"\n",
        )
        .unwrap();
        assert_eq!(config.log_files[0].kind, LogKind::Apache);
        assert_eq!(config.masking.fields["ip_address"], MaskRule::TruncateIp);
        assert!(toml::from_str::<ConfigFile>("log_filez = []").is_err());
    }
}
