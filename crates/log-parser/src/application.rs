//! JSON application logs: one object per line.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;

use crate::LogType;
use crate::error::ParseError;
use crate::json;
use crate::time::loose::JsonTime;

/// The keys the application-log schema names, written first and as
/// `null` when a line lacks them.
pub const RECOGNISED_KEYS: [&str; 6] = [
    "timestamp",
    "level",
    "logger",
    "message",
    "user_id",
    "request_id",
];

/// An input key that would clash with the `log_type` shardline adds is kept
/// under this name instead.
pub const ORIGINAL_LOG_TYPE_KEY: &str = "original_log_type";

/// Where a record's `timestamp` comes from: the first of these keys the
/// line has (the names JSON loggers use: Logstash and Elastic's
/// `@timestamp`, zap's `ts`, logrus's `time`).
pub const TIME_KEYS: [&str; 5] = ["timestamp", "@timestamp", "time", "ts", "datetime"];

/// A line's own `timestamp`, when it is rewritten as RFC 3339 (an epoch
/// count, a time without a zone), is kept under this name. A line that
/// has a key of this name already keeps its `timestamp` as it is.
pub const ORIGINAL_TIMESTAMP_KEY: &str = "timestamp_original";

/// Above this many keys, duplicate keys are found with a hash map rather
/// than by scanning.
const LINEAR_DEDUP_MAX: usize = 32;

/// One JSON application-log line: its keys in order, each value kept as the
/// raw JSON text it was (numbers, nesting and all), borrowed from the line.
#[derive(Debug, Clone)]
pub struct AppRecord<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl PartialEq for AppRecord<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.fields.len() == other.fields.len()
            && self
                .fields
                .iter()
                .zip(&other.fields)
                .all(|((ka, va), (kb, vb))| ka == kb && va.get() == vb.get())
    }
}

impl<'a> AppRecord<'a> {
    /// Parses one line holding one JSON object.
    pub(crate) fn parse(line: &'a str) -> Result<Self, ParseError> {
        let mut deserializer = serde_json::Deserializer::from_str(line);
        let parsed = deserializer
            .deserialize_map(PairsVisitor)
            .and_then(|fields| deserializer.end().map(|()| fields));
        match parsed {
            Ok(fields) => Ok(AppRecord {
                fields: dedup_last_wins(fields),
            }),
            Err(e) => {
                use serde_json::error::Category;
                let offset = match e.classify() {
                    Category::Eof => line.len(),
                    _ => e.column().saturating_sub(1).min(line.len()),
                };
                let expected = match e.classify() {
                    Category::Data => "a JSON object",
                    Category::Eof => "the rest of the JSON object",
                    Category::Syntax | Category::Io => "valid JSON (one object per line)",
                };
                Err(ParseError::at(line, offset, expected))
            }
        }
    }

    /// The raw JSON of a key's value, e.g. `"INFO"` or `12345`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.raw(key).map(RawValue::get)
    }

    fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The keys in the order the line had them.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_ref())
    }

    /// Whether the record's `timestamp` is a string that passes `rule`
    /// (on its raw JSON) or a time written as RFC 3339.
    #[cfg(feature = "records")]
    pub(crate) fn writes_time_as_string(&self, rule: &dyn Fn(&str) -> bool) -> bool {
        match self.time() {
            TimeField::Missing => false,
            TimeField::Raw(raw) => rule(raw.get()),
            TimeField::Read { .. } => true,
        }
    }

    /// What the record's `timestamp` is: the first of [`TIME_KEYS`] the
    /// line has, as RFC 3339 when it is a time in another form.
    fn time(&self) -> TimeField<'a> {
        let Some((key, raw)) = TIME_KEYS
            .iter()
            .find_map(|key| Some((*key, self.raw(key)?)))
        else {
            return TimeField::Missing;
        };
        let own = key == "timestamp";
        if own && self.raw(ORIGINAL_TIMESTAMP_KEY).is_some() {
            return TimeField::Raw(raw);
        }
        match crate::time::loose::json_time(raw.get()) {
            Some(JsonTime::Rfc3339) => TimeField::Raw(raw),
            Some(JsonTime::Read(time)) => TimeField::Read {
                time,
                original: own.then_some(raw),
            },
            // A `timestamp` that is no time is kept as the line had it;
            // another key's stays under that key.
            None if own => TimeField::Raw(raw),
            None => TimeField::Missing,
        }
    }
}

/// A record's `timestamp`.
enum TimeField<'a> {
    /// None of [`TIME_KEYS`]: `null`.
    Missing,
    /// As the line had it.
    Raw(&'a RawValue),
    /// Read from another form and written as RFC 3339; the line's own
    /// `timestamp`, if that is where it came from, kept beside it.
    Read {
        time: crate::time::Timestamp,
        original: Option<&'a RawValue>,
    },
}

/// Keeps one entry per key — the last value, at the first key's position —
/// as JSON parsers that build a map do.
fn dedup_last_wins<'a>(
    mut fields: Vec<(Cow<'a, str>, &'a RawValue)>,
) -> Vec<(Cow<'a, str>, &'a RawValue)> {
    if fields.len() <= LINEAR_DEDUP_MAX {
        // The usual line has no duplicate: it is kept as it is.
        let duplicated = fields.iter().enumerate().any(|(i, (key, _))| {
            fields
                .get(..i)
                .is_some_and(|before| before.iter().any(|(k, _)| k == key))
        });
        if !duplicated {
            return fields;
        }
        let mut out: Vec<(Cow<'a, str>, &'a RawValue)> = Vec::with_capacity(fields.len());
        for (key, value) in fields {
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => out.push((key, value)),
            }
        }
        return out;
    }
    let mut position: HashMap<Cow<'a, str>, usize> = HashMap::with_capacity(fields.len());
    let mut out: Vec<(Cow<'a, str>, &'a RawValue)> = Vec::with_capacity(fields.len());
    for (key, value) in fields.drain(..) {
        match position.get(&key) {
            Some(&at) => {
                if let Some(slot) = out.get_mut(at) {
                    slot.1 = value;
                }
            }
            None => {
                position.insert(key.clone(), out.len());
                out.push((key, value));
            }
        }
    }
    out
}

impl AppRecord<'_> {
    /// Appends the record's JSON to `buf`: the same bytes as its `Serialize`
    /// implementation gives `serde_json`, written directly.
    pub(crate) fn write_json(&self, buf: &mut Vec<u8>) {
        buf.push(b'{');
        let time = self.time();
        json::key(buf, true, "timestamp");
        match &time {
            TimeField::Missing => buf.extend_from_slice(b"null"),
            TimeField::Raw(raw) => buf.extend_from_slice(raw.get().as_bytes()),
            TimeField::Read { time, .. } => time.write_json(buf),
        }
        for key in RECOGNISED_KEYS.iter().skip(1) {
            json::key(buf, false, key);
            match self.raw(key) {
                Some(raw) => buf.extend_from_slice(raw.get().as_bytes()),
                None => buf.extend_from_slice(b"null"),
            }
        }
        if let TimeField::Read {
            original: Some(original),
            ..
        } = time
        {
            json::key(buf, false, ORIGINAL_TIMESTAMP_KEY);
            buf.extend_from_slice(original.get().as_bytes());
        }
        for (key, value) in &self.fields {
            if RECOGNISED_KEYS.contains(&key.as_ref()) {
                continue;
            }
            buf.push(b',');
            if key == "log_type" {
                json::string(buf, ORIGINAL_LOG_TYPE_KEY);
            } else {
                json::string(buf, key);
            }
            buf.push(b':');
            buf.extend_from_slice(value.get().as_bytes());
        }
        buf.extend_from_slice(LogType::Application.json_tail());
    }
}

impl serde::Serialize for AppRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let time = self.time();
        match &time {
            TimeField::Missing => map.serialize_entry("timestamp", &())?,
            TimeField::Raw(raw) => map.serialize_entry("timestamp", raw)?,
            TimeField::Read { time, .. } => map.serialize_entry("timestamp", time)?,
        }
        for key in RECOGNISED_KEYS.iter().skip(1) {
            map.serialize_entry(key, &self.raw(key))?;
        }
        if let TimeField::Read {
            original: Some(original),
            ..
        } = time
        {
            map.serialize_entry(ORIGINAL_TIMESTAMP_KEY, original)?;
        }
        for (key, value) in &self.fields {
            if RECOGNISED_KEYS.contains(&key.as_ref()) {
                continue;
            }
            let key = if key == "log_type" {
                ORIGINAL_LOG_TYPE_KEY
            } else {
                key.as_ref()
            };
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry("log_type", &LogType::Application)?;
        map.end()
    }
}

struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            fields.push((key, value));
        }
        Ok(fields)
    }
}

/// A key, borrowed from the line unless it had escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(line: &str) -> String {
        serde_json::to_string(&AppRecord::parse(line).unwrap()).unwrap()
    }

    #[test]
    fn sample_lines() {
        assert_eq!(
            json(
                r#"{"timestamp": "2024-01-15T10:30:45.123Z", "level": "INFO", "logger": "com.example.UserService", "message": "User login successful", "user_id": 12345, "request_id": "req-001"}"#
            ),
            r#"{"timestamp":"2024-01-15T10:30:45.123Z","level":"INFO","logger":"com.example.UserService","message":"User login successful","user_id":12345,"request_id":"req-001","log_type":"application"}"#
        );
        assert_eq!(
            json(
                r#"{"timestamp": "2024-01-15T10:30:46.456Z", "level": "WARN", "logger": "com.example.OrderService", "message": "Order processing delayed", "order_id": 67890, "request_id": "req-002"}"#
            ),
            r#"{"timestamp":"2024-01-15T10:30:46.456Z","level":"WARN","logger":"com.example.OrderService","message":"Order processing delayed","user_id":null,"request_id":"req-002","order_id":67890,"log_type":"application"}"#
        );
    }

    #[test]
    fn other_keys_nesting_escapes_and_clashes() {
        assert_eq!(
            json(r#"{"a\"b": {"x": [1, 2]}, "log_type": "mine", "level": "x"}"#),
            r#"{"timestamp":null,"level":"x","logger":null,"message":null,"user_id":null,"request_id":null,"a\"b":{"x": [1, 2]},"original_log_type":"mine","log_type":"application"}"#
        );
    }

    /// The two ways of writing a record agree when the time is rewritten
    /// too (`tests/fixtures.rs` holds the output to the golden file).
    #[test]
    fn time_keys_are_written_the_same_both_ways() {
        let lines = [
            r#"{"timestamp": 1446252053399, "x": {"y": 1}}"#,
            r#"{"@timestamp": "2024-01-15T10:30:45.123Z", "level": "INFO"}"#,
            r#"{"ts": 1705314645.25, "msg": "m"}"#,
            r#"{"time": "2024-01-15 10:30:45"}"#,
            r#"{"timestamp": "nope", "time": 5}"#,
            r#"{"timestamp": 5, "timestamp_original": "mine"}"#,
            r#"{"message": "no time"}"#,
        ];
        for line in lines {
            let record = AppRecord::parse(line).unwrap();
            let mut written = Vec::new();
            record.write_json(&mut written);
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&record).unwrap(),
                "{line}"
            );
        }
        assert!(json(r#"{"timestamp": 1446252053399}"#).starts_with(
            r#"{"timestamp":"2015-10-31T00:40:53.399+00:00","level":null,"logger":null,"message":null,"user_id":null,"request_id":null,"timestamp_original":1446252053399,"#
        ));
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let record = AppRecord::parse(r#"{"level":"a","x":1,"level":"b"}"#).unwrap();
        assert_eq!(record.get("level"), Some(r#""b""#));
        assert_eq!(record.keys().collect::<Vec<_>>(), ["level", "x"]);
        let many: String = (0..100).map(|i| format!("\"k{}\":{i},", i % 50)).collect();
        let line = format!("{{{}\"end\":0}}", many);
        let record = AppRecord::parse(&line).unwrap();
        assert_eq!(record.keys().count(), 51);
        assert_eq!(record.get("k0"), Some("50"));
    }

    #[test]
    fn errors_point_into_the_line() {
        let cases = [
            ("[1,2]", 0, "a JSON object"),
            (r#"{"a": 1"#, 7, "the rest of the JSON object"),
            (
                r#"{"a": 1} trailing"#,
                9,
                "valid JSON (one object per line)",
            ),
            (r#"{"a": tru}"#, 9, "valid JSON (one object per line)"),
            ("plain text", 0, "valid JSON (one object per line)"),
        ];
        for (line, offset, expected) in cases {
            let err = AppRecord::parse(line).unwrap_err();
            assert_eq!(
                (err.offset, err.expected.as_ref()),
                (offset, expected),
                "{line}"
            );
        }
    }
}
