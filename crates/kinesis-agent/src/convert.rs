//! A flow's `dataProcessingOptions`: each record through each option in
//! order, as the agent converts it before sending.

use std::fmt::Write;

use regex::Regex;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json;
use crate::patterns::LogFormat;

/// The agent's line separator: records keep it at their end.
const NEW_LINE: char = '\n';

/// One entry of `dataProcessingOptions`, as written in `agent.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawOption")]
pub enum ProcessingOption {
    /// `SINGLELINE`: the record's lines trimmed and joined into one.
    SingleLine {
        /// `NO_TRIM` keeps each line's spaces; `ESCAPE_NEW_LINE` joins the
        /// lines with the text `\\n` instead of nothing.
        parse_options: Vec<SingleLineOption>,
    },
    /// `CSVTOJSON`: delimited columns into a JSON object.
    CsvToJson {
        /// The keys, in order; a missing column is `null`, extra columns
        /// are dropped.
        custom_field_names: Vec<String>,
        /// A regular expression (as in Java's `String.split`); default `,`.
        delimiter: Option<String>,
        /// `COMPACT` (default) or `PRETTYPRINT`.
        json_format: JsonFormat,
    },
    /// `LOGTOJSON`: a log line into a JSON object of its fields.
    LogToJson {
        /// Which format (and, without `matchPattern`, which fields).
        log_format: LogFormat,
        /// A regular expression of one group per field, instead of the
        /// format's own; needs `customFieldNames`.
        match_pattern: Option<String>,
        /// The keys, replacing the format's.
        custom_field_names: Option<Vec<String>>,
        /// `COMPACT` (default) or `PRETTYPRINT`.
        json_format: JsonFormat,
    },
    /// `ADDMETADATA`: `{"ts": ..., "metadata": ..., "data": "<record>"}`.
    AddMetadata {
        /// Any JSON value, as compact JSON text in the file's key order.
        metadata: Option<String>,
        /// Add `ts`, the time of processing in UTC with milliseconds.
        timestamp: bool,
        /// Only `COMPACT`: a pretty-printed nested value is not supported.
        json_format: JsonFormat,
    },
}

/// An option as read: every key any option takes, checked against its
/// `optionName` when turned into a [`ProcessingOption`]. (An internally
/// tagged enum would buffer the entry and lose `metadata`'s key order.)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    #[serde(rename = "optionName")]
    option_name: String,
    #[serde(default, rename = "parseOptions")]
    parse_options: Option<Vec<SingleLineOption>>,
    #[serde(default, rename = "customFieldNames")]
    custom_field_names: Option<Vec<String>>,
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default, rename = "jsonFormat")]
    json_format: Option<JsonFormat>,
    #[serde(default, rename = "logFormat")]
    log_format: Option<LogFormat>,
    #[serde(default, rename = "matchPattern")]
    match_pattern: Option<String>,
    #[serde(default)]
    metadata: Option<Box<RawValue>>,
    #[serde(default)]
    timestamp: Option<Flag>,
}

impl TryFrom<RawOption> for ProcessingOption {
    type Error = String;

    fn try_from(raw: RawOption) -> Result<Self, String> {
        let name = raw.option_name.as_str();
        let given = [
            ("parseOptions", raw.parse_options.is_some()),
            ("customFieldNames", raw.custom_field_names.is_some()),
            ("delimiter", raw.delimiter.is_some()),
            ("jsonFormat", raw.json_format.is_some()),
            ("logFormat", raw.log_format.is_some()),
            ("matchPattern", raw.match_pattern.is_some()),
            ("metadata", raw.metadata.is_some()),
            ("timestamp", raw.timestamp.is_some()),
        ];
        let takes: &[&str] = match name {
            "SINGLELINE" => &["parseOptions"],
            "CSVTOJSON" => &["customFieldNames", "delimiter", "jsonFormat"],
            "LOGTOJSON" => &[
                "logFormat",
                "matchPattern",
                "customFieldNames",
                "jsonFormat",
            ],
            "ADDMETADATA" => &["metadata", "timestamp", "jsonFormat"],
            "ADDEC2METADATA" | "ADDBRACKETS" | "USINGPLUGGIN" => {
                return Err(format!("optionName {name} is not supported by shardline"));
            }
            other => {
                return Err(format!(
                    "unknown optionName `{other}` (SINGLELINE, CSVTOJSON, LOGTOJSON, ADDMETADATA)"
                ));
            }
        };
        if let Some((key, _)) = given.iter().find(|(key, set)| *set && !takes.contains(key)) {
            return Err(format!(
                "{name} does not take `{key}` (it takes {})",
                takes.join(", ")
            ));
        }
        let json_format = raw.json_format.unwrap_or_default();
        Ok(match name {
            "SINGLELINE" => ProcessingOption::SingleLine {
                parse_options: raw.parse_options.unwrap_or_default(),
            },
            "CSVTOJSON" => ProcessingOption::CsvToJson {
                custom_field_names: raw
                    .custom_field_names
                    .ok_or("CSVTOJSON needs customFieldNames")?,
                delimiter: raw.delimiter,
                json_format,
            },
            "LOGTOJSON" => ProcessingOption::LogToJson {
                log_format: raw.log_format.ok_or("LOGTOJSON needs logFormat")?,
                match_pattern: raw.match_pattern,
                custom_field_names: raw.custom_field_names,
                json_format,
            },
            _ => ProcessingOption::AddMetadata {
                metadata: raw.metadata.map(|m| json::compact(m.get())),
                timestamp: raw.timestamp.is_some_and(Flag::is_set),
                json_format,
            },
        })
    }
}

/// A `SINGLELINE` parse option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SingleLineOption {
    /// Keep each line's leading and trailing spaces.
    #[serde(rename = "NO_TRIM")]
    NoTrim,
    /// Join the lines with `\\n` (three characters) rather than nothing.
    #[serde(rename = "ESCAPE_NEW_LINE")]
    EscapeNewLine,
}

/// How JSON records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum JsonFormat {
    /// One line.
    #[default]
    #[serde(rename = "COMPACT")]
    Compact,
    /// Jackson's default pretty printer: two spaces, `"key" : value`.
    #[serde(rename = "PRETTYPRINT")]
    PrettyPrint,
}

/// A boolean the agent reads from a string (`"true"`); a JSON boolean is
/// taken too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Flag {
    /// `true` / `false`.
    Bool(bool),
    /// `"true"` (any case) is true, anything else false, as Java's
    /// `Boolean.valueOf`.
    Text(#[serde(deserialize_with = "java_boolean")] bool),
}

fn java_boolean<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let text = String::deserialize(d)?;
    Ok(text.eq_ignore_ascii_case("true"))
}

impl Flag {
    fn is_set(self) -> bool {
        match self {
            Flag::Bool(b) | Flag::Text(b) => b,
        }
    }
}

/// A `dataProcessingOptions` list that cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionError {
    /// A regular expression does not compile.
    #[error("{what} `{pattern}` is not a regular expression shardline can run: {reason}")]
    Pattern {
        /// `matchPattern` or `delimiter`.
        what: &'static str,
        /// The expression.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// `matchPattern` without `customFieldNames`, or field names that do
    /// not fit the pattern's groups.
    #[error("LOGTOJSON: {0}")]
    Fields(String),
    /// A combination the agent accepts but shardline does not support.
    #[error("{0}")]
    Unsupported(String),
}

/// Why a record was not converted. The agent drops such a record without
/// a word; shardline dead-letters it with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LOGTOJSON: the record does not match the {format} pattern")]
pub struct NoMatch {
    /// The format's name in `agent.json`.
    pub format: &'static str,
}

/// One step, ready to run.
#[derive(Debug)]
enum Step {
    SingleLine {
        trim: bool,
        joiner: &'static str,
    },
    Csv {
        fields: Vec<String>,
        delimiter: Regex,
        format: JsonFormat,
    },
    Log {
        pattern: Regex,
        fields: Vec<String>,
        dash_is_missing: bool,
        format: JsonFormat,
        name: &'static str,
    },
    Metadata {
        metadata: Option<String>,
        timestamp: bool,
    },
}

/// A flow's processing options, checked and compiled.
///
/// ```
/// use shardline_kinesis_agent::Processing;
///
/// let options = r#"[{"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG"}]"#;
/// let processing = Processing::from_json(options).unwrap();
/// let line = b"10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326\n";
/// assert_eq!(
///     processing.convert(line).unwrap(),
///     b"{\"host\":\"10.0.0.1\",\"ident\":null,\"authuser\":\"frank\",\
///       \"datetime\":\"10/Oct/2000:13:55:36 -0700\",\"request\":\"GET / HTTP/1.0\",\
///       \"response\":\"200\",\"bytes\":\"2326\"}\n"
/// );
/// ```
#[derive(Debug, Default)]
pub struct Processing {
    steps: Vec<Step>,
}

fn compile(what: &'static str, pattern: &str, whole: bool) -> Result<Regex, OptionError> {
    let text = if whole {
        format!("^(?:{pattern})$")
    } else {
        pattern.to_owned()
    };
    Regex::new(&text).map_err(|e| OptionError::Pattern {
        what,
        pattern: pattern.to_owned(),
        reason: e.to_string(),
    })
}

impl Processing {
    /// The options of `dataProcessingOptions` (a JSON list).
    pub fn from_json(options: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let options: Vec<ProcessingOption> = serde_json::from_str(options)?;
        Ok(Processing::new(&options)?)
    }

    /// Checks and compiles `options`.
    pub fn new(options: &[ProcessingOption]) -> Result<Self, OptionError> {
        let steps = options
            .iter()
            .map(Processing::step)
            .collect::<Result<_, _>>()?;
        Ok(Processing { steps })
    }

    fn step(option: &ProcessingOption) -> Result<Step, OptionError> {
        Ok(match option {
            ProcessingOption::SingleLine { parse_options } => Step::SingleLine {
                trim: !parse_options.contains(&SingleLineOption::NoTrim),
                joiner: if parse_options.contains(&SingleLineOption::EscapeNewLine) {
                    "\\\\n"
                } else {
                    ""
                },
            },
            ProcessingOption::CsvToJson {
                custom_field_names,
                delimiter,
                json_format,
            } => Step::Csv {
                fields: custom_field_names.clone(),
                delimiter: compile("delimiter", delimiter.as_deref().unwrap_or(","), false)?,
                format: *json_format,
            },
            ProcessingOption::LogToJson {
                log_format,
                match_pattern,
                custom_field_names,
                json_format,
            } => {
                let (own, own_fields) = log_format.pattern();
                let (pattern, fields) = match (match_pattern, custom_field_names) {
                    (Some(_), None) => {
                        return Err(OptionError::Fields(
                            "matchPattern needs customFieldNames, one per group".into(),
                        ));
                    }
                    (Some(pattern), Some(fields)) => {
                        (compile("matchPattern", pattern, true)?, fields.clone())
                    }
                    (None, Some(fields)) if fields.len() != own_fields.len() => {
                        return Err(OptionError::Fields(format!(
                            "{} has {} fields ({}); customFieldNames names {}",
                            format_name(*log_format),
                            own_fields.len(),
                            own_fields.join(", "),
                            fields.len()
                        )));
                    }
                    (None, fields) => (
                        compile("logFormat", &own, true)?,
                        fields.clone().unwrap_or_else(|| {
                            own_fields.iter().map(|f| (*f).to_owned()).collect()
                        }),
                    ),
                };
                let groups = pattern.captures_len() - 1;
                if groups != fields.len() {
                    return Err(OptionError::Fields(format!(
                        "matchPattern has {groups} groups; customFieldNames names {}",
                        fields.len()
                    )));
                }
                Step::Log {
                    pattern,
                    fields,
                    dash_is_missing: log_format.dash_is_missing(),
                    format: *json_format,
                    name: format_name(*log_format),
                }
            }
            ProcessingOption::AddMetadata {
                metadata,
                timestamp,
                json_format,
            } => {
                if *json_format == JsonFormat::PrettyPrint {
                    return Err(OptionError::Unsupported(
                        "ADDMETADATA with jsonFormat PRETTYPRINT is not supported: use COMPACT"
                            .into(),
                    ));
                }
                Step::Metadata {
                    metadata: metadata.clone(),
                    timestamp: *timestamp,
                }
            }
        })
    }

    /// Whether there is nothing to do: records go as read.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The record the agent would send for `record` (a line or multi-line
    /// event, with its trailing newline as read), or why it would drop it.
    pub fn convert(&self, record: &[u8]) -> Result<Vec<u8>, NoMatch> {
        let mut data = record.to_vec();
        for step in &self.steps {
            data = step.convert(&data)?.into_bytes();
        }
        Ok(data)
    }
}

fn format_name(format: LogFormat) -> &'static str {
    match format {
        LogFormat::CommonApache => "COMMONAPACHELOG",
        LogFormat::CombinedApache => "COMBINEDAPACHELOG",
        LogFormat::ApacheError => "APACHEERRORLOG",
        LogFormat::Syslog => "SYSLOG",
        LogFormat::Rfc3339Syslog => "RFC3339SYSLOG",
    }
}

/// Java's `String.split(regex)` over the delimiter matches `found`
/// (start, end): the parts between them, trailing empty parts removed, no
/// empty first part for an empty match at the start; the whole text when
/// nothing matches.
fn java_split(text: &str, found: impl Iterator<Item = (usize, usize)>) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut last = 0;
    let mut matched = false;
    for (start, end) in found {
        if end == 0 {
            continue;
        }
        parts.push(text.get(last..start).unwrap_or_default());
        last = end;
        matched = true;
    }
    if !matched {
        return vec![text];
    }
    parts.push(text.get(last..).unwrap_or_default());
    while parts.last() == Some(&"") {
        parts.pop();
    }
    parts
}

/// Java's `String.trim`: every character up to U+0020 off both ends.
fn java_trim(text: &str) -> &str {
    text.trim_matches(|c: char| c <= ' ')
}

/// A map of string values as the agent's JSON printer writes it, with its
/// newline.
fn print(fields: &[(&str, Option<&str>)], format: JsonFormat) -> String {
    let mut out = match format {
        JsonFormat::Compact => json::object(fields.iter().copied()),
        JsonFormat::PrettyPrint => {
            if fields.is_empty() {
                "{ }".to_owned()
            } else {
                let mut out = String::from("{");
                for (i, (key, value)) in fields.iter().enumerate() {
                    out.push_str(if i == 0 { "\n  " } else { ",\n  " });
                    json::write_string(&mut out, key);
                    out.push_str(" : ");
                    match value {
                        Some(value) => json::write_string(&mut out, value),
                        None => out.push_str("null"),
                    }
                }
                out.push_str("\n}");
                out
            }
        }
    };
    out.push(NEW_LINE);
    out
}

impl Step {
    fn convert(&self, data: &[u8]) -> Result<String, NoMatch> {
        let text = String::from_utf8_lossy(data);
        let without_newline = text.strip_suffix(NEW_LINE).unwrap_or(&text);
        Ok(match self {
            Step::SingleLine { trim, joiner } => {
                let lines =
                    java_split(&text, text.match_indices(NEW_LINE).map(|(i, _)| (i, i + 1)));
                let lines: Vec<&str> = lines
                    .into_iter()
                    .map(|line| if *trim { java_trim(line) } else { line })
                    .collect();
                let mut out = lines.join(joiner);
                out.push(NEW_LINE);
                out
            }
            Step::Csv {
                fields,
                delimiter,
                format,
            } => {
                let found = delimiter
                    .find_iter(without_newline)
                    .map(|m| (m.start(), m.end()));
                let columns = java_split(without_newline, found);
                let pairs: Vec<(&str, Option<&str>)> = fields
                    .iter()
                    .enumerate()
                    .map(|(i, name)| (name.as_str(), columns.get(i).copied()))
                    .collect();
                print(&pairs, *format)
            }
            Step::Log {
                pattern,
                fields,
                dash_is_missing,
                format,
                name,
            } => {
                let captures = pattern
                    .captures(without_newline)
                    .ok_or(NoMatch { format: name })?;
                let pairs: Vec<(&str, Option<&str>)> = fields
                    .iter()
                    .enumerate()
                    .map(|(i, field)| {
                        let value = captures
                            .get(i + 1)
                            .map(|m| m.as_str())
                            .filter(|v| !(*dash_is_missing && *v == "-"));
                        (field.as_str(), value)
                    })
                    .collect();
                print(&pairs, *format)
            }
            Step::Metadata {
                metadata,
                timestamp,
            } => {
                let mut out = String::from("{");
                if *timestamp {
                    out.push_str("\"ts\":");
                    json::write_string(&mut out, &utc_millis_now());
                    out.push(',');
                }
                let _ = write!(
                    out,
                    "\"metadata\":{},",
                    metadata.as_deref().unwrap_or("null")
                );
                out.push_str("\"data\":");
                json::write_string(&mut out, without_newline);
                out.push('}');
                out.push(NEW_LINE);
                out
            }
        })
    }
}

/// Now as `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'` in UTC.
fn utc_millis_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}
