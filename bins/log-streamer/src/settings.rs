//! Settings: the TOML config file, overridden by flags.

use anyhow::Context;
use serde::Deserialize;
use shardline_tail::{MultiLine, Preset};
use shardline_validate::MaskRule;
use std::collections::BTreeMap;

/// The log types of `--log-files` (each entry's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogKind {
    Apache,
    Nginx,
    Application,
    /// Any text, shipped as logged: `{"message", "timestamp", "log_type"}`.
    /// The default for multi-line events.
    Text,
    /// Syslog, RFC 5424 or RFC 3164 (told from each line).
    Syslog,
    /// CSV or TSV: `columns`, and optionally `delimiter` and `quote`.
    Csv,
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
            LogKind::Text => "text",
            LogKind::Syslog => "syslog",
            LogKind::Csv => "csv",
            LogKind::Custom => "custom",
        }
    }
}

/// One entry of `--log-files` / `[[log_files]]`, checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "LogFileEntry")]
pub(crate) struct LogFile {
    /// A path or a glob pattern.
    pub(crate) path: String,
    pub(crate) kind: LogKind,
    /// The directive text of a `custom` format.
    pub(crate) format: Option<String>,
    /// The source name in statistics and dead letters (default: the type).
    pub(crate) name: Option<String>,
    /// Partition-key strategy (`shardline_partition_key::KeySpec`: `web`,
    /// `field:<path>`, `fixed:<key>`, `random`, …; default: `web` for
    /// access logs, `field:request_id` for application logs,
    /// `field:hostname` for syslog, `random` for text and CSV).
    pub(crate) key: Option<String>,
    /// Validation: `builtin` (default; nothing to check for text, syslog
    /// and CSV), `strict` (application logs: a
    /// `timestamp`, `level` and `message` required), `none`, or a JSON
    /// Schema file.
    pub(crate) schema: Option<String>,
    /// How lines are joined into events, if they are.
    pub(crate) multi_line: Option<MultiLine>,
    /// `csv`: the column names, and the delimiter and quote characters.
    pub(crate) csv: Option<CsvSettings>,
}

/// A `csv` entry's `columns`, `delimiter` (default `,`) and `quote`
/// (default `"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CsvSettings {
    pub(crate) columns: Vec<String>,
    pub(crate) delimiter: char,
    pub(crate) quote: char,
}

/// One entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogFileEntry {
    path: String,
    /// Required, except with multi-line events: `text` then.
    #[serde(rename = "type")]
    kind: Option<LogKind>,
    format: Option<String>,
    name: Option<String>,
    key: Option<String>,
    schema: Option<String>,
    /// A line matching this regular expression starts a new event
    /// (Kinesis Agent's `multiLineStartPattern`).
    multi_line_start_pattern: Option<String>,
    /// A preset instead of a pattern: `java`, `python` or `go`.
    multi_line: Option<String>,
    /// An event is handed out after this long without a new line of its
    /// file (default 1000).
    multi_line_flush_ms: Option<u64>,
    /// `csv`: the field names, in order.
    columns: Option<Vec<String>>,
    /// `csv`: one character (default `,`; `"\t"` for TSV).
    delimiter: Option<String>,
    /// `csv`: one character (default `"`).
    quote: Option<String>,
}

impl TryFrom<LogFileEntry> for LogFile {
    type Error = String;

    fn try_from(entry: LogFileEntry) -> Result<Self, String> {
        let path = entry.path;
        let mut multi_line = match (entry.multi_line_start_pattern, entry.multi_line) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{path}: give multi_line_start_pattern or multi_line, not both"
                ));
            }
            (Some(pattern), None) => Some(
                MultiLine::start_pattern(&pattern)
                    .map_err(|e| format!("{path}: multi_line_start_pattern: {e}"))?,
            ),
            (None, Some(preset)) => Some(MultiLine::preset(
                preset
                    .parse::<Preset>()
                    .map_err(|e| format!("{path}: {e}"))?,
            )),
            (None, None) => None,
        };
        match (entry.multi_line_flush_ms, multi_line.as_mut()) {
            (Some(0), _) => return Err(format!("{path}: multi_line_flush_ms must be at least 1")),
            (Some(ms), Some(rule)) => rule.flush_after = std::time::Duration::from_millis(ms),
            (Some(_), None) => {
                return Err(format!(
                    "{path}: multi_line_flush_ms needs multi_line_start_pattern or multi_line"
                ));
            }
            (None, _) => {}
        }
        let kind = match (entry.kind, &multi_line) {
            (Some(kind), _) => kind,
            (None, Some(_)) => LogKind::Text,
            (None, None) => {
                return Err(format!(
                    "{path}: no \"type\": apache, nginx, application, text, syslog, csv or custom"
                ));
            }
        };
        let one_char = |value: Option<String>, what: &str, default: char| match value {
            None => Ok(default),
            Some(text) => {
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Ok(c),
                    _ => Err(format!(
                        "{path}: {what} must be one character, not {text:?}"
                    )),
                }
            }
        };
        let csv = match (kind, entry.columns) {
            (LogKind::Csv, Some(columns)) => Some(CsvSettings {
                columns,
                delimiter: one_char(entry.delimiter, "delimiter", ',')?,
                quote: one_char(entry.quote, "quote", '"')?,
            }),
            (LogKind::Csv, None) => {
                return Err(format!(
                    "{path}: type \"csv\" needs \"columns\": the name of each field, in order"
                ));
            }
            (_, columns) => {
                if columns.is_some() || entry.delimiter.is_some() || entry.quote.is_some() {
                    return Err(format!(
                        "{path}: \"columns\", \"delimiter\" and \"quote\" are for type \"csv\""
                    ));
                }
                None
            }
        };
        Ok(LogFile {
            path,
            kind,
            format: entry.format,
            name: entry.name,
            key: entry.key,
            schema: entry.schema,
            multi_line,
            csv,
        })
    }
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

    #[test]
    fn multi_line_entries_default_to_text_and_bad_ones_say_why() {
        let files = parse_log_files(
            r#"[{"path": "a.log", "multi_line_start_pattern": "^\\d{4}-"},
                {"path": "b.log", "type": "application", "multi_line": "python", "multi_line_flush_ms": 250},
                {"path": "c.log", "type": "apache"}]"#,
        )
        .unwrap();
        assert_eq!(files[0].kind, LogKind::Text);
        assert!(matches!(
            &files[0].multi_line,
            Some(MultiLine { start: shardline_tail::StartRule::Pattern(p), flush_after })
                if p.as_str() == "^\\d{4}-" && *flush_after == shardline_tail::DEFAULT_MULTI_LINE_FLUSH
        ));
        assert_eq!(files[1].kind, LogKind::Application);
        assert!(matches!(
            &files[1].multi_line,
            Some(MultiLine { start: shardline_tail::StartRule::Preset(Preset::Python), flush_after })
                if flush_after.as_millis() == 250
        ));
        assert!(files[2].multi_line.is_none());
        let refused = [
            (r#"[{"path": "x"}]"#, "x: no \"type\""),
            (
                r#"[{"path": "x", "multi_line": "java", "multi_line_start_pattern": "^a"}]"#,
                "not both",
            ),
            (
                r#"[{"path": "x", "multi_line": "cobol"}]"#,
                "java, python or go",
            ),
            (
                r#"[{"path": "x", "multi_line_start_pattern": "("}]"#,
                "multi_line_start_pattern",
            ),
            (
                r#"[{"path": "x", "type": "text", "multi_line_flush_ms": 5}]"#,
                "needs",
            ),
            (
                r#"[{"path": "x", "multi_line": "go", "multi_line_flush_ms": 0}]"#,
                "at least 1",
            ),
        ];
        for (json, reason) in refused {
            let error = format!("{:#}", parse_log_files(json).unwrap_err());
            assert!(error.contains(reason), "{json}: {error}");
        }
    }

    #[test]
    fn csv_entries_take_columns_a_delimiter_and_a_quote() {
        let files = parse_log_files(
            r#"[{"path": "a.csv", "type": "csv", "columns": ["time", "user"]},
                {"path": "b.tsv", "type": "csv", "columns": ["x"], "delimiter": "\t", "quote": "'"}]"#,
        )
        .unwrap();
        let csv = |i: usize| files[i].csv.clone().unwrap();
        assert_eq!(csv(0).columns, ["time", "user"]);
        assert_eq!((csv(0).delimiter, csv(0).quote), (',', '"'));
        assert_eq!((csv(1).delimiter, csv(1).quote), ('\t', '\''));
        let refused = [
            (r#"[{"path": "x", "type": "csv"}]"#, "needs \"columns\""),
            (
                r#"[{"path": "x", "type": "csv", "columns": ["a"], "delimiter": ";;"}]"#,
                "one character",
            ),
            (
                r#"[{"path": "x", "type": "syslog", "columns": ["a"]}]"#,
                "are for type \"csv\"",
            ),
        ];
        for (json, reason) in refused {
            let error = format!("{:#}", parse_log_files(json).unwrap_err());
            assert!(error.contains(reason), "{json}: {error}");
        }
    }
}
