//! One log line → one record: parse, check, mask, key — the
//! [`Process`] step of every log pipeline (feature `records`).

use serde_json::Value;
use shardline_core::{Origin, Process, Processed, Record, SourceName};
use shardline_partition_key::{PartitionKey, PartitionKeyStrategy, RandomKey};
use shardline_validate::{Masker, Validator};

use crate::{LogParser, LogRecord};

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
            "timestamp" => access.timestamp().map(|t| t.to_string()),
            "ip_address" => access.ip_address().map(str::to_owned),
            "ident" => access.ident().map(str::to_owned),
            "remote_user" => access.remote_user().map(|t| t.to_string()),
            "method" => access.method().map(|t| t.to_string()),
            "path" => access.path().map(|t| t.to_string()),
            "protocol" => access.protocol().map(|t| t.to_string()),
            "request" => access.request().map(|t| t.to_string()),
            "status_code" => access.status_code().map(|s| s.to_string()),
            "response_size" => access.response_size().map(|s| s.to_string()),
            "referer" => access.referer().map(|t| t.to_string()),
            "user_agent" => access.user_agent().map(|t| t.to_string()),
            "log_type" => Some(access.log_type().as_str().to_owned()),
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

impl Process for LogRecords {
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
        // Matched by reference: taking the record out of the `Result` by
        // value would copy its few hundred bytes once more per line.
        let parsed = self.parser.parse_bytes(data);
        let record = match &parsed {
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
            let fields = |path: &str| field(record, path);
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
            // Masked before keying: a masked value never reaches a key
            // (a hash of a full IPv4 address is no secret: 2^32 guesses).
            if let Some(masker) = &self.masker {
                masker.apply(&mut value);
                json.clear();
                if let Err(e) = serde_json::to_writer(&mut json, &value) {
                    return Processed::Rejected(format!("cannot write the record as JSON: {e}"));
                }
            }
            self.key(&value)
        };
        Processed::Record(Record::new(json, key, self.source.clone()))
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
                assert_eq!(field(&record, key), from_json, "{key} in {line}");
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
