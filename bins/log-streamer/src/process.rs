//! One log line → one record: parse, validate, mask, key.

use anyhow::{Context, bail};
use serde_json::Value;
use shardline_log_parser::{LogParser, LogRecord};
use shardline_partition_key::{
    FieldKey, FixedKey, PartitionKey, PartitionKeyStrategy, RandomKey, WebLogKey,
};
use shardline_producer::{Record, SourceName};
use shardline_source::{Origin, Process, Processed};
use shardline_validate::{Masker, Validator};

use crate::settings::{LogFile, LogKind};

/// Parses, validates, masks and keys the lines of one `--log-files` entry.
pub(crate) struct LogProcessor {
    parser: LogParser,
    source: SourceName,
    key: Box<dyn PartitionKeyStrategy>,
    validator: Option<Validator>,
    masker: Option<Masker>,
    max_line_bytes: usize,
    /// End each record with a newline (Firehose).
    newline: bool,
}

/// The parser a `--log-files` entry asks for.
pub(crate) fn parser_for(file: &LogFile) -> anyhow::Result<LogParser> {
    Ok(match (file.kind, file.format.as_deref()) {
        (LogKind::Apache, None) => LogParser::apache(),
        (LogKind::Nginx, None) => LogParser::nginx(),
        (LogKind::Application, None) => LogParser::application(),
        (LogKind::Apache, Some(format)) => LogParser::apache_format(format)?,
        (LogKind::Nginx, Some(format)) => LogParser::nginx_format(format)?,
        (LogKind::Custom, Some(format)) if format.contains('$') && !format.contains('%') => {
            LogParser::nginx_format(format)?
        }
        (LogKind::Custom, Some(format)) => LogParser::apache_format(format)?,
        (LogKind::Custom, None) => bail!("{}: type \"custom\" needs a \"format\"", file.path),
        (LogKind::Application, Some(_)) => {
            bail!(
                "{}: application logs are JSON; \"format\" does not apply",
                file.path
            )
        }
    })
}

/// The key strategy of an entry: `web`, `field:<path>`, `fixed:<key>`,
/// `random`.
pub(crate) fn key_for(file: &LogFile) -> anyhow::Result<Box<dyn PartitionKeyStrategy>> {
    let default = match file.kind {
        LogKind::Application => "field:request_id",
        _ => "web",
    };
    let spec = file.key.as_deref().unwrap_or(default);
    Ok(match spec.split_once(':') {
        None if spec == "web" => Box::new(WebLogKey::default()),
        None if spec == "random" => Box::new(RandomKey),
        Some(("field", path)) if !path.is_empty() => Box::new(FieldKey(path.to_owned())),
        Some(("fixed", key)) => Box::new(FixedKey(
            PartitionKey::new(key).with_context(|| format!("key {spec:?}"))?,
        )),
        _ => bail!("unknown key strategy {spec:?}: use web, field:<path>, fixed:<key> or random"),
    })
}

/// The validator of an entry: `builtin` (default), `none`, or a schema file.
pub(crate) fn validator_for(file: &LogFile) -> anyhow::Result<Option<Validator>> {
    let spec = file.schema.as_deref().unwrap_or("builtin");
    Ok(match spec {
        "none" => None,
        "builtin" => Some(match file.kind {
            LogKind::Application => Validator::application_log()?,
            _ => Validator::web_log()?,
        }),
        path => Some(Validator::from_file(std::path::Path::new(path))?),
    })
}

impl LogProcessor {
    pub(crate) fn new(
        file: &LogFile,
        masker: Option<Masker>,
        max_line_bytes: usize,
    ) -> anyhow::Result<Self> {
        Ok(LogProcessor {
            parser: parser_for(file)?,
            source: SourceName::new(&file.source_name()),
            key: key_for(file)?,
            validator: validator_for(file)?,
            masker,
            max_line_bytes,
            newline: false,
        })
    }

    /// End each record with `\n`, so the objects Firehose writes to S3 hold
    /// one JSON document per line (as Kinesis Agent's lines do).
    pub(crate) fn newline_delimited(mut self, on: bool) -> Self {
        self.newline = on;
        self
    }

    fn key(&self, fields: &dyn shardline_partition_key::Fields) -> PartitionKey {
        match self.key.key(fields) {
            Ok(choice) => choice.partition_key,
            // A line without the key's field still goes: spread at random.
            Err(_) => RandomKey
                .key(fields)
                .map(|c| c.partition_key)
                .unwrap_or_else(|_| PartitionKey::new_or_hashed("-")),
        }
    }
}

/// A parsed line's field by name, as the key strategies read it.
fn field(record: &LogRecord<'_>, path: &str) -> Option<String> {
    match record {
        LogRecord::Access(access) => match path {
            "ip_address" => access.ip_address.map(str::to_owned),
            "timestamp" => access.timestamp.map(|t| t.to_string()),
            "method" => access.method.as_deref().map(str::to_owned),
            "path" => access.path.as_deref().map(str::to_owned),
            "status_code" => access.status_code.map(|s| s.to_string()),
            "user_agent" => access.user_agent.as_deref().map(str::to_owned),
            "remote_user" => access.remote_user.as_deref().map(str::to_owned),
            other => access.extra(other).and_then(|v| {
                serde_json::to_value(v).ok().and_then(|v| match v {
                    Value::Null => None,
                    Value::String(s) => Some(s),
                    v => Some(v.to_string()),
                })
            }),
        },
        LogRecord::Application(app) => {
            let raw = app.get(path)?;
            match serde_json::from_str::<Value>(raw).ok()? {
                Value::Null => None,
                Value::String(s) => Some(s),
                v => Some(v.to_string()),
            }
        }
    }
}

impl Process for LogProcessor {
    fn process(&self, data: &[u8], _origin: Origin<'_>) -> Processed {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Processed::Skip;
        }
        // The tailer keeps at most `max_line_bytes` of a line: one that
        // reaches it was (or may have been) longer. Its dead letter keeps
        // those bytes; the context's `dropped_bytes` says how many more.
        if data.len() >= self.max_line_bytes {
            return Processed::Rejected(format!(
                "line reaches max_line_bytes ({}): longer than one record may be",
                self.max_line_bytes
            ));
        }
        let record = match self.parser.parse_bytes(data) {
            Ok(record) => record,
            Err(e) => {
                return Processed::Rejected(format!(
                    "not a {} line: {e}",
                    self.parser.log_type().as_str()
                ));
            }
        };
        let mut json = Vec::with_capacity(data.len() + 96);
        if let Err(e) = record.write_json(&mut json) {
            return Processed::Rejected(format!("cannot write the record as JSON: {e}"));
        }
        let key = if self.validator.is_none() && self.masker.is_none() {
            let fields = |path: &str| field(&record, path);
            self.key(&fields)
        } else {
            let mut value: Value = match serde_json::from_slice(&json) {
                Ok(value) => value,
                Err(e) => return Processed::Rejected(format!("record is not JSON: {e}")),
            };
            if let Some(validator) = &self.validator
                && let Err(violations) = validator.validate(&value)
            {
                return Processed::Rejected(validator.explain(&violations));
            }
            // Keyed before masking: the key may use a field masking hides
            // (the key itself is a hash).
            let key = self.key(&value);
            if let Some(masker) = &self.masker {
                masker.apply(&mut value);
                json.clear();
                if let Err(e) = serde_json::to_writer(&mut json, &value) {
                    return Processed::Rejected(format!("cannot write the record as JSON: {e}"));
                }
            }
            key
        };
        if self.newline {
            json.push(b'\n');
        }
        Processed::Record(Record::new(json, key, self.source.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::parse_log_files;

    fn processor(json: &str) -> LogProcessor {
        let file = parse_log_files(json).unwrap().remove(0);
        LogProcessor::new(&file, None, 1024).unwrap()
    }

    #[test]
    fn lines_become_records_rejections_or_nothing() {
        let apache = processor(r#"[{"path": "a", "type": "apache"}]"#);
        let line = br#"192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "GET /index.html HTTP/1.1" 200 2435 "-" "Mozilla/5.0""#;
        match apache.process(line, Origin::default()) {
            Processed::Record(record) => {
                let value: Value = serde_json::from_slice(&record.data).unwrap();
                assert_eq!(value["ip_address"], "192.168.1.100");
                assert_eq!(value["log_type"], "apache_access");
                assert_eq!(record.source.as_str(), "apache");
                // The web strategy: md5(ip) prefix and the hour.
                assert!(record.partition_key.as_str().ends_with(":2024-01-15T10"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            apache.process(b"   ", Origin::default()),
            Processed::Skip
        ));
        match apache.process(b"garbage \xff\xfe", Origin::default()) {
            Processed::Rejected(reason) => {
                assert!(reason.starts_with("not a apache_access line"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        match apache.process(&[b'x'; 2000], Origin::default()) {
            Processed::Rejected(reason) => {
                assert!(reason.contains("max_line_bytes (1024)"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn schema_failures_name_the_rule_and_path() {
        let app = processor(r#"[{"path": "a", "type": "application"}]"#);
        match app.process(
            br#"{"timestamp": "2024-01-15T10:30:45Z", "level": 3, "message": "m"}"#,
            Origin::default(),
        ) {
            Processed::Rejected(reason) => {
                assert!(reason.starts_with("schema application_log:"), "{reason}");
                assert!(reason.contains("type at \"/level\""), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match app.process(br#"{"timestamp": "2024-01-15T10:30:45.123Z", "level": "INFO", "logger": "x", "message": "m", "request_id": "req-1"}"#, Origin::default()) {
            Processed::Record(record) => assert_eq!(record.partition_key.as_str(), "req-1"),
            other => panic!("{other:?}"),
        }
    }
}
