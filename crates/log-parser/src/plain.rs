//! Plain text logs (`"type": "text"`): a line, or a multi-line event (a
//! log4j pattern-layout line and the stack trace under it), shipped as it
//! is, with the time it starts with.

use serde::ser::{SerializeMap, Serializer};

use crate::time::Timestamp;
use crate::time::loose::{leading_time, now};
use crate::{LogType, json};

/// A line or event of a plain text log.
///
/// Its JSON is `{"message": <the text as logged>, "timestamp": <RFC 3339>,
/// "log_type": "text"}`. The time is the one the text starts with when it
/// starts with one (`2024-01-15 10:30:45,123 ERROR …`; UTC when it names
/// no zone), else the time it was read.
///
/// ```
/// use shardline_log_parser::{LogParser, LogRecord};
///
/// let parser = LogParser::text();
/// let event = "2024-01-15 10:30:46,001 ERROR [main] c.e.App - Order failed\n\
///              java.lang.IllegalStateException: stock is negative\n\
///              \tat com.example.Stock.take(Stock.java:42)";
/// let LogRecord::Text(record) = parser.parse(event)? else {
///     return Err("a text parser makes text records".into());
/// };
/// assert_eq!(record.message(), event);
/// assert!(record.time_from_text());
/// assert_eq!(record.timestamp().to_string(), "2024-01-15T10:30:46.001+00:00");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRecord<'a> {
    message: &'a str,
    timestamp: Timestamp,
    time_from_text: bool,
}

impl<'a> TextRecord<'a> {
    pub(crate) fn parse(text: &'a str) -> Self {
        match leading_time(text) {
            Some(timestamp) => TextRecord {
                message: text,
                timestamp,
                time_from_text: true,
            },
            None => TextRecord {
                message: text,
                timestamp: now(),
                time_from_text: false,
            },
        }
    }

    /// The text as logged (the lines of an event joined with `\n`).
    pub fn message(&self) -> &'a str {
        self.message
    }

    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// Whether the time was read from the start of the text (else it is
    /// the time the text was read).
    pub fn time_from_text(&self) -> bool {
        self.time_from_text
    }

    /// Appends the record's JSON: the same bytes as its `Serialize`
    /// implementation gives `serde_json`.
    pub(crate) fn write_json(&self, buf: &mut Vec<u8>) {
        buf.push(b'{');
        json::key(buf, true, "message");
        json::string(buf, self.message);
        json::key(buf, false, "timestamp");
        self.timestamp.write_json(buf);
        buf.extend_from_slice(LogType::Text.json_tail());
    }
}

impl serde::Serialize for TextRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("message", self.message)?;
        map.serialize_entry("timestamp", &self.timestamp)?;
        map.serialize_entry("log_type", &LogType::Text)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_times_of_common_loggers_are_read() {
        let cases = [
            // log4j / logback `%d`, Python logging's default.
            (
                "2024-01-15 10:30:45,123 ERROR [main] c.e.App - failed",
                Some("2024-01-15T10:30:45.123+00:00"),
            ),
            // Go's log package.
            (
                "2024/01/15 10:30:45 listening on :8080",
                Some("2024-01-15T10:30:45+00:00"),
            ),
            // RFC 3339 with its zone, in brackets (Monolog).
            (
                "[2024-01-15T10:30:45.123456+09:00] app.WARNING: slow",
                Some("2024-01-15T10:30:45.123456+09:00"),
            ),
            (
                "2024-01-15T10:30:45Z GET /",
                Some("2024-01-15T10:30:45+00:00"),
            ),
            (
                "2024-01-15 10:30:45-0500 msg",
                Some("2024-01-15T10:30:45-05:00"),
            ),
            // A sign that starts no zone stays in the text.
            (
                "2024-01-15 10:30:45 - worker 3 up",
                Some("2024-01-15T10:30:45+00:00"),
            ),
            ("2024-01-15 10:30:45", Some("2024-01-15T10:30:45+00:00")),
            // Not a time at the start: read time.
            ("Exception in thread \"main\" java.lang.Error", None),
            ("2024-01-15 is the date", None),
            ("2024-01-15 10:30 no seconds", None),
            ("2024-13-15 10:30:45 month 13", None),
            ("2024-01-15 10:30:45abc", None),
            ("2024-01/15 10:30:45 mixed", None),
            ("", None),
        ];
        for (line, want) in cases {
            let got = leading_time(line).map(|t| t.to_string());
            assert_eq!(got.as_deref(), want, "{line:?}");
        }
    }

    #[test]
    fn a_text_without_a_time_gets_the_time_it_was_read() {
        let before = now();
        let record = TextRecord::parse("\tat com.example.Stock.take(Stock.java:42)");
        let after = now();
        assert!(!record.time_from_text());
        let key = |t: Timestamp| t.to_string();
        assert!(key(before) <= key(record.timestamp()) && key(record.timestamp()) <= key(after));
        assert_eq!(record.timestamp().offset_minutes, 0);
        assert_eq!(record.timestamp().fraction_digits, 3);
    }

    #[test]
    fn the_json_writer_matches_serde() {
        for text in [
            "2024-01-15 10:30:46,001 ERROR failed\n\tat a.B(B.java:1)\n\t... 3 more",
            "plain \"quoted\" \\ back\u{1}slash é 日本",
            "no time",
        ] {
            let record = TextRecord::parse(text);
            let mut buf = Vec::new();
            record.write_json(&mut buf);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                serde_json::to_string(&record).unwrap()
            );
            let value: serde_json::Value = serde_json::to_value(record).unwrap();
            assert_eq!(value["message"], text);
            assert_eq!(value["log_type"], "text");
        }
    }
}
