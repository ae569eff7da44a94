//! One log line → one record: parse, check, mask, key — the
//! [`Process`] step of every log pipeline (feature `records`).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde_json::Value;
use shardline_core::{Origin, Process, Processed, Record, SourceName};
use shardline_partition_key::{Fields, PartitionKey, PartitionKeyStrategy, RandomKey};
use shardline_validate::{Builtin, Masker, Validator};

use crate::{AccessRecord, AppRecord, FieldValue, LogParser, LogRecord, LogType};

/// The longest line kept by default, in bytes: one Kinesis record's 1 MiB
/// (data and key; `shardline-producer`'s limits) is the most a line may
/// become.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// Parses, checks, masks and keys log lines into records.
///
/// ```
/// use shardline_log_parser::{LogParser, LogRecords};
/// use shardline_partition_key::WebLogKey;
/// use shardline_core::{Origin, Process, Processed, SourceName};
///
/// let records = LogRecords::new(LogParser::apache(), SourceName::new("web_logs"), Box::new(WebLogKey::default()));
/// let line = br#"203.0.113.10 - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8""#;
/// assert!(matches!(records.process(line, Origin::default()), Processed::Record(_)));
/// ```
pub struct LogRecords {
    parser: LogParser,
    source: SourceName,
    key: Box<dyn PartitionKeyStrategy>,
    validator: Option<Validator>,
    masker: Option<Masker>,
    max_line_bytes: usize,
}

impl std::fmt::Debug for LogRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRecords")
            .field("log_type", &self.parser.log_type().as_str())
            .field("source", &self.source)
            .field("key", &self.key.name())
            .field("validator", &self.validator.as_ref().map(Validator::name))
            .field("masker", &self.masker.is_some())
            .field("max_line_bytes", &self.max_line_bytes)
            .finish()
    }
}

impl LogRecords {
    /// Lines parsed by `parser`, keyed by `key`, unchecked and unmasked.
    pub fn new(parser: LogParser, source: SourceName, key: Box<dyn PartitionKeyStrategy>) -> Self {
        LogRecords {
            parser,
            source,
            key,
            validator: None,
            masker: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }

    /// Check each record against a schema; a failing one is rejected.
    pub fn validator(mut self, validator: Option<Validator>) -> Self {
        self.validator = validator;
        self
    }

    /// Mask fields before keying and sending: the key is made from the
    /// masked record (`docs/validation.md`).
    pub fn masker(mut self, masker: Option<Masker>) -> Self {
        self.masker = masker;
        self
    }

    /// A line this long may have been cut by the reader: rejected.
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    fn key(&self, fields: &dyn Fields) -> PartitionKey {
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

/// A parsed line's fields by name, as the key strategies read them: text
/// borrowed from the line where the line holds it as it is; the time
/// written without allocating.
impl Fields for LogRecord<'_> {
    fn text(&self, path: &str) -> Option<Cow<'_, str>> {
        match self {
            LogRecord::Access(access) => match path {
                "timestamp" => access.timestamp().map(|t| Cow::Owned(t.to_string())),
                "ip_address" => access.ip_address().map(Cow::Borrowed),
                "ident" => access.ident().map(Cow::Borrowed),
                "remote_user" => access.remote_user().map(|t| t.decoded()),
                "method" => access.method().map(|t| t.decoded()),
                "path" => access.path().map(|t| t.decoded()),
                "protocol" => access.protocol().map(|t| t.decoded()),
                "request" => access.request().map(|t| t.decoded()),
                "status_code" => access.status_code().map(|s| Cow::Owned(s.to_string())),
                "response_size" => access.response_size().map(|s| Cow::Owned(s.to_string())),
                "referer" => access.referer().map(|t| t.decoded()),
                "user_agent" => access.user_agent().map(|t| t.decoded()),
                "log_type" => Some(Cow::Borrowed(access.log_type().as_str())),
                other => access.extra(other).and_then(extra_text),
            },
            LogRecord::Application(app) => app.get(path).and_then(json_text),
            LogRecord::Syslog(syslog) => match path {
                "timestamp" => syslog.timestamp().map(|t| Cow::Owned(t.to_string())),
                "hostname" => syslog.hostname().map(Cow::Borrowed),
                "app_name" => syslog.app_name().map(Cow::Borrowed),
                "procid" => syslog.procid().map(Cow::Borrowed),
                "msgid" => syslog.msgid().map(Cow::Borrowed),
                "facility" => syslog.facility().map(Cow::Borrowed),
                "severity" => syslog.severity().map(Cow::Borrowed),
                "message" => Some(Cow::Borrowed(syslog.message())),
                "syslog_format" => Some(Cow::Borrowed(syslog.format().as_str())),
                "log_type" => Some(Cow::Borrowed(LogType::Syslog.as_str())),
                _ => None,
            },
            LogRecord::Csv(csv) => match path {
                "log_type" => Some(Cow::Borrowed(LogType::Csv.as_str())),
                column => csv.get(column).map(Cow::Borrowed),
            },
            LogRecord::Text(text) => match path {
                "message" => Some(Cow::Borrowed(text.message())),
                "timestamp" => Some(Cow::Owned(text.timestamp().to_string())),
                "log_type" => Some(Cow::Borrowed(LogType::Text.as_str())),
                _ => None,
            },
        }
    }

    fn write_text(&self, path: &str, out: &mut dyn fmt::Write) -> bool {
        match (self, path) {
            (LogRecord::Access(access), "timestamp") => match access.timestamp() {
                Some(time) => write!(out, "{time}").is_ok(),
                None => false,
            },
            _ => match self.text(path) {
                Some(text) => out.write_str(&text).is_ok(),
                None => false,
            },
        }
    }
}

/// A custom format's extra field as text, as its JSON value reads.
fn extra_text<'a>(value: &FieldValue<'a>) -> Option<Cow<'a, str>> {
    match value {
        FieldValue::Str(text) => Some(text.decoded()),
        FieldValue::Int(n) => Some(Cow::Owned(n.to_string())),
        FieldValue::Float(f) => serde_json::Number::from_f64(*f).map(|n| Cow::Owned(n.to_string())),
        FieldValue::Null => None,
    }
}

/// A JSON value's text: a string's contents, other values in JSON form;
/// `None` for null. A string without escapes is borrowed.
fn json_text(raw: &str) -> Option<Cow<'_, str>> {
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"'))
        && !inner.contains('\\')
    {
        return Some(Cow::Borrowed(inner));
    }
    match serde_json::from_str::<Value>(raw).ok()? {
        Value::Null => None,
        Value::String(text) => Some(Cow::Owned(text)),
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// The built-in web-log schema's rules (`Validator::web_log`), checked on
/// the parsed record: whether its JSON would pass. The parser's types make
/// most of them true by construction (a time is written as RFC 3339, a
/// size is a number or null, text is a string or null); what is left is
/// the presence of the required fields, a non-empty address and the
/// status code's range. A property test holds this to the schema.
pub(crate) fn passes_web_log(access: &AccessRecord<'_>) -> bool {
    access.timestamp().is_some()
        && access.ip_address().is_some_and(|ip| !ip.is_empty())
        && access
            .status_code()
            .is_some_and(|code| (100..=999).contains(&code))
        && matches!(
            access.log_type(),
            LogType::ApacheAccess | LogType::NginxAccess
        )
}

/// What [`LogRecords::make`] made of a line.
enum Made {
    /// A record, keyed; its JSON was appended to the buffer.
    Record(PartitionKey),
    Rejected(String),
    Skip,
}

impl LogRecords {
    /// Parses, checks, masks and keys one line. On a record, its JSON is
    /// appended to `json`; otherwise `json` is left as it was.
    fn make(&self, data: &[u8], json: &mut Vec<u8>) -> Made {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Made::Skip;
        }
        // The tailer keeps at most `max_line_bytes` of a line: one that
        // reaches it was (or may have been) longer. Its dead letter keeps
        // those bytes; the context's `dropped_bytes` says how many more.
        if data.len() >= self.max_line_bytes {
            return Made::Rejected(format!(
                "line reaches max_line_bytes ({}): longer than one record may be",
                self.max_line_bytes
            ));
        }
        // Matched by reference: taking the record out of the `Result` by
        // value would copy its few hundred bytes once more per line.
        let parsed = self.parser.parse_bytes(data);
        let record = match &parsed {
            Ok(record) => record,
            Err(e) => {
                return Made::Rejected(format!(
                    "not a {} line: {e}",
                    self.parser.log_type().as_str()
                ));
            }
        };
        let start = json.len();
        let reject = |json: &mut Vec<u8>, message: String| {
            json.truncate(start);
            Made::Rejected(message)
        };
        if let Err(e) = record.write_json(json) {
            return reject(json, format!("cannot write the record as JSON: {e}"));
        }
        // One pass: the built-in web-log checks run on the parsed record.
        // Only a user's schema, masking, or a record that fails the
        // built-in checks (to say why) reads the JSON back as a value.
        let checked = match (&self.validator, record) {
            (None, _) => true,
            (Some(validator), LogRecord::Access(access))
                if validator.builtin() == Some(Builtin::WebLog) =>
            {
                passes_web_log(access)
            }
            // The parser made an object and wrote its `log_type`: all the
            // default schema asks.
            (Some(validator), LogRecord::Application(_))
                if validator.builtin() == Some(Builtin::ApplicationLog) =>
            {
                true
            }
            (Some(validator), LogRecord::Application(app))
                if validator.builtin() == Some(Builtin::ApplicationLogStrict) =>
            {
                surely_passes_application_log(app)
            }
            _ => false,
        };
        if checked && self.masker.is_none() {
            return Made::Record(self.key(record));
        }
        let written = json.get(start..).unwrap_or_default();
        let mut value: Value = match serde_json::from_slice(written) {
            Ok(value) => value,
            Err(e) => return reject(json, format!("record is not JSON: {e}")),
        };
        if !checked
            && let Some(validator) = &self.validator
            && let Err(violations) = validator.validate(&value)
        {
            return reject(json, validator.explain(&violations));
        }
        // Masked before keying: a masked value never reaches a key
        // (a hash of a full IPv4 address is no secret: 2^32 guesses).
        if let Some(masker) = &self.masker {
            masker.apply(&mut value);
            json.truncate(start);
            if let Err(e) = serde_json::to_writer(&mut *json, &value) {
                return reject(json, format!("cannot write the record as JSON: {e}"));
            }
        }
        Made::Record(self.key(&value))
    }
}

/// A typical record's JSON is the line's length plus this (the field
/// names): a record made alone gets room for that.
const JSON_OVERHEAD_BYTES: usize = 96;

/// A run's buffer starts with room for at most this many bytes (it grows
/// past it as needed): a run that starts with a 1 MiB line must not
/// reserve a thousand times that.
const RUN_BUFFER_START_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The strict application-log schema's rules
/// (`Validator::application_log_strict`), read off the raw JSON of the
/// parsed line: `true` only when its JSON surely passes. A `false` is not a
/// rejection: the schema then decides on the JSON (and says why it fails).
/// What is sure here: a `timestamp` that is a non-empty string or a time
/// the parser writes as RFC 3339, `level` a non-empty string, `message` a
/// string, `logger` and `request_id`
/// a string or absent or null, `user_id` a string, a plain integer, absent
/// or null; `log_type` is written by the parser. A property test holds this
/// to the schema.
pub(crate) fn surely_passes_application_log(app: &AppRecord<'_>) -> bool {
    let string = |raw: &str| raw.starts_with('"');
    let non_empty_string = |raw: &str| raw.starts_with('"') && raw.len() > 2;
    let null_or = |raw: Option<&str>, rule: &dyn Fn(&str) -> bool| {
        raw.is_none_or(|raw| raw == "null" || rule(raw))
    };
    let plain_integer = |raw: &str| {
        let digits = raw.strip_prefix('-').unwrap_or(raw);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    app.writes_time_as_string(&non_empty_string)
        && app.get("level").is_some_and(non_empty_string)
        && app.get("message").is_some_and(string)
        && null_or(app.get("logger"), &string)
        && null_or(app.get("request_id"), &string)
        && null_or(app.get("user_id"), &|raw| string(raw) || plain_integer(raw))
}

impl Process for LogRecords {
    fn process(&self, data: &[u8], _origin: Origin<'_>) -> Processed {
        let mut json = Vec::with_capacity(data.len() + JSON_OVERHEAD_BYTES);
        match self.make(data, &mut json) {
            Made::Record(key) => {
                Processed::Record(Record::from_source(self.source.clone(), key, json))
            }
            Made::Rejected(message) => Processed::Rejected(message),
            Made::Skip => Processed::Skip,
        }
    }

    /// Every record of the run is written into one buffer, and each
    /// record's data is a slice of it: one allocation per run instead of
    /// one per line. The buffer lives until the run's last record is
    /// delivered.
    fn process_run<'a>(
        &self,
        inputs: &mut dyn Iterator<Item = (&'a [u8], Origin<'a>)>,
        out: &mut Vec<Processed>,
    ) {
        let mut buffer = Vec::new();
        // What each line made, and where its JSON is in the buffer (empty
        // for a line that made no record).
        let (lines, _) = inputs.size_hint();
        let mut made = Vec::with_capacity(lines);
        let mut reserved = false;
        while let Some((data, _origin)) = inputs.next() {
            let start = buffer.len();
            let line = self.make(data, &mut buffer);
            made.push((line, start..buffer.len()));
            // The first record's JSON, a quarter more, for every line
            // left: the buffer is then rarely copied to grow.
            if !reserved && buffer.len() > start {
                reserved = true;
                let each = (buffer.len() - start).saturating_mul(5) / 4;
                let (left, _) = inputs.size_hint();
                buffer.reserve(left.saturating_mul(each).min(RUN_BUFFER_START_MAX_BYTES));
            }
        }
        let buffer = Bytes::from(buffer);
        out.extend(made.into_iter().map(|(line, span)| match line {
            Made::Record(key) => Processed::Record(Record::from_source(
                self.source.clone(),
                key,
                buffer.slice(span),
            )),
            Made::Rejected(message) => Processed::Rejected(message),
            Made::Skip => Processed::Skip,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_partition_key::WebLogKey;
    use shardline_validate::MaskRule;

    fn key_of(records: &LogRecords, line: &[u8]) -> (String, Value) {
        match records.process(line, Origin::default()) {
            Processed::Record(record) => (
                record.partition_key.as_str().to_owned(),
                serde_json::from_slice(&record.data).unwrap_or_default(),
            ),
            other => panic!("{other:?}"),
        }
    }

    /// Without a validator or masker, keys read the parsed record; with
    /// one, the JSON. Both must see the same value for every key.
    #[test]
    fn every_schema_key_reads_the_same_from_the_record_as_from_its_json() {
        use shardline_partition_key::Fields;
        let lines = [
            (
                LogParser::apache(),
                r#"::1 ident bob [15/Jan/2024:19:30:45 +0900] "GET /a\"b HTTP/2.0" 304 - "https://r/\x41" "say \"hi\"""#,
            ),
            (
                LogParser::apache(),
                r#"10.0.0.1 - - [15/Jan/2024:10:30:45 +0000] "\x16\x03\x01" 400 226 "-" "-""#,
            ),
            (
                LogParser::nginx(),
                r#"10.0.0.1 - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 200 5 "-" "curl" "203.0.113.9""#,
            ),
        ];
        for (parser, line) in lines {
            let record = parser.parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let mut json = Vec::new();
            record.write_json(&mut json).unwrap_or_default();
            let value: Value = serde_json::from_slice(&json).unwrap_or_default();
            let Value::Object(map) = &value else {
                panic!("{line}: not an object");
            };
            for key in map.keys() {
                let from_json = value.text(key).map(|t| t.into_owned());
                let from_record = record.text(key).map(|t| t.into_owned());
                assert_eq!(from_record, from_json, "{key} in {line}");
            }
        }
    }

    #[test]
    fn the_key_is_made_from_the_masked_record() {
        let records = || {
            LogRecords::new(
                LogParser::apache(),
                SourceName::new("web_logs"),
                Box::new(WebLogKey::default()),
            )
        };
        let masked = records().masker(Some(
            Masker::new(b"k".to_vec()).rule("ip_address", MaskRule::TruncateIp),
        ));
        let line = |ip: &str| {
            format!(r#"{ip} - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 200 1 "-" "curl""#)
        };
        let (key, sent) = key_of(&masked, line("203.0.113.77").as_bytes());
        assert_eq!(sent["ip_address"], "203.0.113.0");
        // The same key as the truncated address unmasked: the full address
        // never reached the key.
        let (plain, _) = key_of(&records(), line("203.0.113.0").as_bytes());
        assert_eq!(key, plain);
        let (other, _) = key_of(&records(), line("203.0.113.77").as_bytes());
        assert_ne!(key, other);
    }
}

#[cfg(test)]
mod web_log_rules {
    use super::*;
    use proptest::prelude::*;

    fn apache(format: &str) -> LogParser {
        LogParser::apache_format(format).unwrap_or_else(|e| panic!("{format}: {e}"))
    }

    /// What the schema says of a line's record, and what the typed checks
    /// say; `None` if the line does not parse.
    fn verdicts(parser: &LogParser, line: &str) -> Option<(bool, bool)> {
        let schema = Validator::web_log().unwrap_or_else(|e| panic!("{e}"));
        let Ok(LogRecord::Access(access)) = parser.parse(line) else {
            return None;
        };
        let mut json = Vec::new();
        LogRecord::Access(access.clone())
            .write_json(&mut json)
            .unwrap_or_default();
        let value: Value = serde_json::from_slice(&json).unwrap_or_default();
        Some((schema.validate(&value).is_ok(), passes_web_log(&access)))
    }

    #[test]
    fn each_rule_passes_and_fails_as_the_schema_does() {
        let cases = [
            (
                LogParser::apache(),
                r#"10.0.0.1 - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 200 5 "-" "a""#,
                true,
            ),
            (
                LogParser::apache(),
                r#"10.0.0.1 - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 999 - "-" "a""#,
                true,
            ),
            (apache("%h %>s %b"), "10.0.0.1 200 5", false),
            (
                apache(r#"%t "%r" %>s"#),
                r#"[15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 200"#,
                false,
            ),
            (
                apache(r#"%h %t "%r""#),
                r#"10.0.0.1 [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1""#,
                false,
            ),
            (
                apache(r#"%h %t %>s"#),
                "- [15/Jan/2024:10:30:45 +0000] 404",
                true,
            ),
        ];
        for (parser, line, valid) in cases {
            let (schema, typed) = verdicts(&parser, line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(schema, valid, "the schema on {line}");
            assert_eq!(typed, valid, "the typed checks on {line}");
        }
    }

    fn clf() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("15/Jan/2024:10:30:45 +0000".to_owned()),
            Just("31/Dec/0999:23:59:59 -1200".to_owned()),
            Just("01/Jan/0000:00:00:00 +0000".to_owned()),
            "[0-3][0-9]/(Jan|Feb|Dec)/[0-9]{4}:[0-2][0-9]:[0-5][0-9]:[0-6][0-9] [+-][0-9]{4}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The typed checks on a parsed record decide exactly what the
        /// web-log schema decides on its JSON, whatever the format leaves
        /// out and whatever the values.
        #[test]
        fn the_typed_checks_agree_with_the_schema(
            ip in prop_oneof!["10\\.0\\.0\\.[0-9]{1,3}", "[0-9a-f:]{2,12}", Just("-".to_owned())],
            time in clf(),
            iso in "[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](Z|[+-][01][0-9]:[0-5][0-9])",
            status in prop_oneof!["[0-9]{3}", Just("-".to_owned())],
            size in prop_oneof!["[0-9]{1,6}", Just("-".to_owned())],
        ) {
            let nginx_iso = LogParser::nginx_format(
                r#"$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent"#,
            ).unwrap_or_else(|e| panic!("{e}"));
            let lines = [
                (LogParser::apache(), format!(r#"{ip} - - [{time}] "GET /a HTTP/1.1" {status} {size} "-" "a""#)),
                (LogParser::nginx(), format!(r#"{ip} - - [{time}] "GET /a HTTP/1.1" {status} {size} "-" "a" "-""#)),
                (apache("%h %>s %b"), format!("{ip} {status} {size}")),
                (apache(r#"%t "%r" %>s"#), format!(r#"[{time}] "GET / HTTP/1.1" {status}"#)),
                (apache(r#"%h %t "%r""#), format!(r#"{ip} [{time}] "GET / HTTP/1.1""#)),
                (nginx_iso, format!(r#"{ip} [{iso}] "GET / HTTP/1.1" {status} {size}"#)),
            ];
            for (parser, line) in &lines {
                if let Some((schema, typed)) = verdicts(parser, line) {
                    prop_assert_eq!(schema, typed, "{}", line);
                }
            }
        }
    }
}

#[cfg(test)]
mod runs {
    use super::*;
    use shardline_partition_key::WebLogKey;

    fn records() -> LogRecords {
        LogRecords::new(
            LogParser::apache(),
            SourceName::new("web"),
            Box::new(WebLogKey::default()),
        )
    }

    /// A run gives the same records, in order, as one line at a time,
    /// whatever it holds: records, rejections, blank lines, and a first
    /// line far longer than the rest.
    #[test]
    fn a_run_gives_what_one_line_at_a_time_gives() {
        let long_agent = "a".repeat(600_000);
        let lines: Vec<String> = vec![
            format!(
                r#"10.0.0.1 - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 200 5 "-" "{long_agent}""#
            ),
            r#"10.0.0.2 - - [15/Jan/2024:10:30:46 +0000] "GET /a HTTP/1.1" 404 - "-" "curl""#
                .to_owned(),
            "not a log line".to_owned(),
            "   ".to_owned(),
            r#"10.0.0.3 - - [15/Jan/2024:11:00:00 +0000] "POST /b HTTP/1.1" 201 7 "-" "x""#
                .to_owned(),
        ];
        let processor = records();
        let mut run = Vec::new();
        processor.process_run(
            &mut lines.iter().map(|l| (l.as_bytes(), Origin::default())),
            &mut run,
        );
        assert_eq!(run.len(), lines.len());
        for (line, from_run) in lines.iter().zip(&run) {
            let alone = processor.process(line.as_bytes(), Origin::default());
            match (from_run, &alone) {
                (Processed::Record(a), Processed::Record(b)) => {
                    assert_eq!(a.data, b.data);
                    assert_eq!(a.partition_key, b.partition_key);
                }
                (Processed::Rejected(a), Processed::Rejected(b)) => assert_eq!(a, b),
                (Processed::Skip, Processed::Skip) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(run.first(), Some(Processed::Record(_))));
        assert!(matches!(run.get(2), Some(Processed::Rejected(_))));
        assert!(matches!(run.get(3), Some(Processed::Skip)));
    }
}

#[cfg(test)]
mod application_log_rules {
    use super::*;
    use crate::RECOGNISED_KEYS;
    use proptest::prelude::*;

    /// The schema's verdict on a line's JSON, and the typed check's.
    fn verdicts(line: &str) -> Option<(bool, bool)> {
        let schema = Validator::application_log_strict().unwrap_or_else(|e| panic!("{e}"));
        let parser = LogParser::application();
        let Ok(LogRecord::Application(app)) = parser.parse(line) else {
            return None;
        };
        let mut json = Vec::new();
        LogRecord::Application(app.clone())
            .write_json(&mut json)
            .unwrap_or_default();
        let value: Value = serde_json::from_slice(&json).unwrap_or_default();
        Some((
            schema.validate(&value).is_ok(),
            surely_passes_application_log(&app),
        ))
    }

    fn value() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some("null".to_owned())),
            Just(Some(r#""""#.to_owned())),
            Just(Some(r#""\u00e9""#.to_owned())),
            "\"[a-z ]{1,8}\"".prop_map(Some),
            "-?[1-9][0-9]{0,4}".prop_map(Some),
            Just(Some("0".to_owned())),
            Just(Some("1.5".to_owned())),
            Just(Some("2.0".to_owned())),
            Just(Some("1e3".to_owned())),
            Just(Some("true".to_owned())),
            Just(Some("[1]".to_owned())),
            Just(Some(r#"{"a":1}"#.to_owned())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the values, the typed check never passes a record the
        /// schema fails; on the usual shapes (strings, plain integers,
        /// null) it passes what the schema passes.
        #[test]
        fn the_typed_check_never_passes_what_the_schema_fails(
            fields in proptest::collection::vec(value(), 6),
        ) {
            let line = format!(
                "{{{}}}",
                RECOGNISED_KEYS
                    .iter()
                    .zip(&fields)
                    .filter_map(|(key, value)| value.as_ref().map(|v| format!("\"{key}\":{v}")))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let (schema, typed) = verdicts(&line).unwrap_or_else(|| panic!("{line}"));
            prop_assert!(schema || !typed, "typed passes, schema fails: {}", line);
            let usual = fields.iter().flatten().all(|v| {
                v == "null" || v.starts_with('"') || v.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit())
            });
            if usual {
                prop_assert_eq!(schema, typed, "{}", line);
            }
        }
    }

    #[test]
    fn the_documented_sample_passes_without_the_schema() {
        let line = r#"{"timestamp": "2024-01-15T10:30:45.123Z", "level": "INFO", "logger": "com.example.UserService", "message": "User login successful", "user_id": 12345, "request_id": "req-001"}"#;
        assert_eq!(verdicts(line), Some((true, true)));
        let missing_level = r#"{"timestamp": "2024-01-15T10:30:45.123Z", "message": "m"}"#;
        assert_eq!(verdicts(missing_level), Some((false, false)));
    }
}
