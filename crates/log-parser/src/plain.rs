//! Plain text logs (`"type": "text"`): a line, or a multi-line event (a
//! log4j pattern-layout line and the stack trace under it), shipped as it
//! is, with the time it starts with.

use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};

use crate::not_utf8::{NOT_UTF8_KEY, escape_not_utf8};
use crate::time::Timestamp;
use crate::time::loose::{leading_time, now};
use crate::{LogType, json};

/// A line or event of a plain text log.
///
/// Its JSON is `{"message": <the text as logged>, "timestamp": <RFC 3339>,
/// "log_type": "text"}`. The time is the one the text starts with when it
/// starts with one (`2024-01-15 10:30:45,123 ERROR …`; UTC when it names
/// no zone), else the time it was read. A text that is not UTF-8 is kept
/// with each byte that is not part of UTF-8 written `\xhh` and each
/// backslash `\\`, and the record says `"not_utf8": ["message"]`
/// ([`crate::recover_bytes`] gives the bytes back).
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRecord<'a> {
    message: Cow<'a, str>,
    timestamp: Timestamp,
    time_from_text: bool,
    /// The message is escaped: the text was not UTF-8.
    not_utf8: bool,
}

impl<'a> TextRecord<'a> {
    pub(crate) fn parse(text: &'a str) -> Self {
        Self::new(Cow::Borrowed(text), false)
    }

    /// A text given as bytes, escaped if they are not UTF-8.
    pub(crate) fn parse_bytes(bytes: &'a [u8]) -> Self {
        match escape_not_utf8(bytes) {
            Ok(text) => Self::new(Cow::Borrowed(text), false),
            Err(escaped) => Self::new(Cow::Owned(escaped), true),
        }
    }

    fn new(message: Cow<'a, str>, not_utf8: bool) -> Self {
        let (timestamp, time_from_text) = match leading_time(&message) {
            Some(timestamp) => (timestamp, true),
            None => (now(), false),
        };
        TextRecord {
            message,
            timestamp,
            time_from_text,
            not_utf8,
        }
    }

    /// The text as logged (the lines of an event joined with `\n`),
    /// escaped if it was not UTF-8 ([`TextRecord::is_utf8`]).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the text was UTF-8; if not, [`TextRecord::message`] holds
    /// it escaped.
    pub fn is_utf8(&self) -> bool {
        !self.not_utf8
    }

    /// The time at the start of the line, or when it was read.
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
        json::string(buf, &self.message);
        json::key(buf, false, "timestamp");
        self.timestamp.write_json(buf);
        if self.not_utf8 {
            buf.extend_from_slice(br#","not_utf8":["message"]"#);
        }
        buf.extend_from_slice(LogType::Text.json_tail());
    }
}

impl serde::Serialize for TextRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("message", &self.message)?;
        map.serialize_entry("timestamp", &self.timestamp)?;
        if self.not_utf8 {
            map.serialize_entry(NOT_UTF8_KEY, &["message"])?;
        }
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
    fn a_text_that_is_not_utf8_is_kept_escaped_and_said_so() {
        let bytes = b"2024-01-15 10:30:45 caf\xe9 C:\\temp \xff";
        let record = TextRecord::parse_bytes(bytes);
        assert!(!record.is_utf8());
        assert_eq!(
            record.message(),
            r"2024-01-15 10:30:45 caf\xe9 C:\\temp \xff"
        );
        assert!(record.time_from_text());
        let mut buf = Vec::new();
        record.write_json(&mut buf);
        assert_eq!(buf, serde_json::to_vec(&record).unwrap());
        let value: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(value["not_utf8"], serde_json::json!(["message"]));
        let message = value["message"].as_str().unwrap();
        assert_eq!(crate::recover_bytes(message), bytes);
        // UTF-8 is kept as it is, backslashes and all.
        let record = TextRecord::parse_bytes(br"C:\temp \x41");
        assert!(record.is_utf8());
        assert_eq!(record.message(), r"C:\temp \x41");
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
            let value: serde_json::Value = serde_json::to_value(&record).unwrap();
            assert_eq!(value["message"], text);
            assert_eq!(value["log_type"], "text");
        }
    }
}
