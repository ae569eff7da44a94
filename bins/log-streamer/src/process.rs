//! A `--log-files` entry → its parser, key strategy, schema, and the
//! records step (`shardline_log_parser::LogRecords`).

use anyhow::bail;
use shardline_core::SourceName;
use shardline_log_parser::{CsvFormat, LogParser, LogRecords};
use shardline_partition_key::{KeySpec, PartitionKeyStrategy};
use shardline_validate::{Masker, Validator};

use crate::settings::{LogFile, LogKind};

/// The records step of one `--log-files` entry.
pub(crate) fn records_for(
    file: &LogFile,
    masker: Option<Masker>,
    max_line_bytes: usize,
) -> anyhow::Result<LogRecords> {
    Ok(LogRecords::new(
        parser_for(file)?,
        SourceName::new(&file.source_name()),
        key_for(file)?,
    )
    .validator(validator_for(file)?)
    .masker(masker)
    .max_line_bytes(max_line_bytes))
}

/// The parser a `--log-files` entry asks for.
pub(crate) fn parser_for(file: &LogFile) -> anyhow::Result<LogParser> {
    Ok(match (file.kind, file.format.as_deref()) {
        (LogKind::Apache, None) => LogParser::apache(),
        (LogKind::Nginx, None) => LogParser::nginx(),
        (LogKind::Application, None) => LogParser::application(),
        (LogKind::Text, None) => LogParser::text(),
        (LogKind::Syslog, None) => LogParser::syslog(),
        (LogKind::Csv, None) => {
            let Some(csv) = &file.csv else {
                bail!("{}: type \"csv\" needs \"columns\"", file.path)
            };
            LogParser::csv(CsvFormat::new(
                csv.columns.clone(),
                csv.delimiter,
                csv.quote,
            )?)
        }
        (LogKind::Apache, Some(format)) => LogParser::apache_format(format)?,
        (LogKind::Nginx, Some(format)) => LogParser::nginx_format(format)?,
        (LogKind::Custom, Some(format)) if format.contains('$') && !format.contains('%') => {
            LogParser::nginx_format(format)?
        }
        (LogKind::Custom, Some(format)) => LogParser::apache_format(format)?,
        (LogKind::Custom, None) => bail!("{}: type \"custom\" needs a \"format\"", file.path),
        (LogKind::Text | LogKind::Syslog | LogKind::Csv, Some(_)) => {
            bail!(
                "{}: \"format\" is for types apache, nginx and custom",
                file.path
            )
        }
        (LogKind::Application, Some(_)) => {
            bail!(
                "{}: application logs are JSON; \"format\" does not apply",
                file.path
            )
        }
    })
}

/// The key strategy of an entry ([`KeySpec`]; by default `web` for
/// access logs, `field:request_id` for application logs, `field:hostname`
/// for syslog, `random` for text and CSV).
pub(crate) fn key_for(file: &LogFile) -> anyhow::Result<Box<dyn PartitionKeyStrategy>> {
    let spec = match (&file.key, file.kind) {
        (Some(spec), _) => spec.parse::<KeySpec>()?,
        (None, LogKind::Application) => KeySpec::Field("request_id".to_owned()),
        // Nothing in plain text or CSV to key on: spread evenly.
        (None, LogKind::Text | LogKind::Csv) => KeySpec::Random,
        // A host's messages stay in order.
        (None, LogKind::Syslog) => KeySpec::Field("hostname".to_owned()),
        (None, _) => KeySpec::Web,
    };
    Ok(spec.strategy())
}

/// The validator of an entry: `builtin` (default), `strict`, `none`, or a
/// schema file. The built-in application schema takes any JSON object;
/// `strict` asks for a time, a level and a message (access logs have one
/// built-in schema, which both names give).
pub(crate) fn validator_for(file: &LogFile) -> anyhow::Result<Option<Validator>> {
    let spec = file.schema.as_deref().unwrap_or("builtin");
    Ok(match spec {
        "none" => None,
        // Text, syslog and CSV records are whatever their lines held, in
        // the parser's shape: no built-in schema to check.
        "builtin" | "strict"
            if matches!(file.kind, LogKind::Text | LogKind::Syslog | LogKind::Csv) =>
        {
            None
        }
        "builtin" => Some(match file.kind {
            LogKind::Application => Validator::application_log()?,
            _ => Validator::web_log()?,
        }),
        "strict" => Some(match file.kind {
            LogKind::Application => Validator::application_log_strict()?,
            _ => Validator::web_log()?,
        }),
        path => Some(Validator::from_file(std::path::Path::new(path))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::parse_log_files;
    use serde_json::Value;
    use shardline_core::{Origin, Process, Processed};

    fn processor(json: &str) -> LogRecords {
        let file = parse_log_files(json).unwrap().remove(0);
        records_for(&file, None, 1024).unwrap()
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
        let app = processor(r#"[{"path": "a", "type": "application", "schema": "strict"}]"#);
        match app.process(
            br#"{"timestamp": "2024-01-15T10:30:45Z", "level": 3, "message": "m"}"#,
            Origin::default(),
        ) {
            Processed::Rejected(reason) => {
                assert!(
                    reason.starts_with("schema application_log_strict:"),
                    "{reason}"
                );
                assert!(reason.contains("type at \"/level\""), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match app.process(br#"{"timestamp": "2024-01-15T10:30:45.123Z", "level": "INFO", "logger": "x", "message": "m", "request_id": "req-1"}"#, Origin::default()) {
            Processed::Record(record) => assert_eq!(record.partition_key.as_str(), "req-1"),
            other => panic!("{other:?}"),
        }
    }

    /// Regression (issue 21): by default a JSON log line is taken whatever
    /// its keys, with an epoch-millisecond time read as one; the strict
    /// schema, by name, still refuses it.
    #[test]
    fn any_json_object_is_an_application_record_by_default() {
        let line = br#"{"timestamp": 1446252053399, "request": {"path": "/a"}, "status": 200}"#;
        let app = processor(r#"[{"path": "a", "type": "application"}]"#);
        match app.process(line, Origin::default()) {
            Processed::Record(record) => {
                let value: Value = serde_json::from_slice(&record.data).unwrap();
                assert_eq!(value["timestamp"], "2015-10-31T00:40:53.399+00:00");
                assert_eq!(value["timestamp_original"], 1446252053399u64);
                assert_eq!(value["request"]["path"], "/a");
                assert_eq!(value["level"], Value::Null);
            }
            other => panic!("{other:?}"),
        }
        let strict = processor(r#"[{"path": "a", "type": "application", "schema": "strict"}]"#);
        match strict.process(line, Origin::default()) {
            Processed::Rejected(reason) => {
                assert!(reason.contains("type at \"/level\""), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            app.process(b"[1, 2]", Origin::default()),
            Processed::Rejected(_)
        ));
    }
}
