//! Zero-copy parsers for web-server and application logs.
//!
//! shardline's first step for log files: a line of an Apache or Nginx access
//! log, a JSON application log, or a log in a server's own custom format
//! becomes a record that serializes to the JSON documented in
//! `docs/log-schema.md` (`timestamp`,
//! `ip_address`, `method`, `path`, `protocol`, `status_code`,
//! `response_size`, `referer`, `user_agent`, `log_type`, …).
//!
//! - Records borrow from the line, escapes and all: a [`Text`] field's
//!   escapes (`\"`, `\\`, `\xhh`) are undone only when its value is asked
//!   for. Text whose only escapes are `\"` and `\\` is copied into the JSON
//!   as logged.
//! - The parsers are nom `complete` parsers and never panic: a line that
//!   does not match is a [`ParseError`] with the byte offset, what was
//!   expected and a short snippet — the reason a caller dead-letters it with.
//! - Custom formats are compiled once from the server's own directive text
//!   ([`LogParser::apache_format`], [`LogParser::nginx_format`]); the
//!   built-in formats are compiled the same way, so both run the same code.
//! - [`LogRecord::write_json`] writes into a buffer the caller reuses.
//!
//! Lines are `&str`: Apache and Nginx escape every byte that is not
//! printable ASCII, so a line that is not UTF-8 is not one they wrote; the
//! caller decides (log-streamer dead-letters it).
//!
//! # Example
//!
//! ```
//! use shardline_log_parser::LogParser;
//!
//! let parser = LogParser::apache();
//! let line = r#"192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "GET /index.html HTTP/1.1" 200 2435 "-" "curl/8.5.0""#;
//! let record = parser.parse(line)?;
//!
//! let mut json = Vec::new();
//! record.write_json(&mut json)?;
//! assert_eq!(
//!     std::str::from_utf8(&json)?,
//!     r#"{"timestamp":"2024-01-15T10:30:45+00:00","ip_address":"192.168.1.100","method":"GET","path":"/index.html","protocol":"HTTP/1.1","status_code":200,"response_size":2435,"referer":null,"user_agent":"curl/8.5.0","log_type":"apache_access"}"#
//! );
//!
//! // A server's own format, compiled once at start-up.
//! let timed = LogParser::nginx_format(r#"$remote_addr [$time_iso8601] "$request" $status $request_time"#)?;
//! let record = timed.parse(r#"2001:db8::1 [2024-01-15T19:30:45+09:00] "GET /health HTTP/2.0" 204 0.004"#)?;
//! let shardline_log_parser::LogRecord::Access(access) = record else {
//!     return Err("an access-log parser makes access records".into());
//! };
//! assert_eq!(access.ip_address(), Some("2001:db8::1"));
//! assert_eq!(access.timestamp().map(|t| t.to_string()).as_deref(), Some("2024-01-15T19:30:45+09:00"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod access;
mod application;
mod delimited;
mod error;
mod field;
mod format;
mod json;
mod nom_error;
mod not_utf8;
mod plain;
#[cfg(feature = "records")]
mod records;
mod scan;
mod syslog;
mod text;
mod time;

pub use access::{AccessRecord, FieldValue};
pub use application::{
    AppRecord, ORIGINAL_LOG_TYPE_KEY, ORIGINAL_TIMESTAMP_KEY, RECOGNISED_KEYS, TIME_KEYS,
};
pub use delimited::{CsvFormat, CsvRecord};
pub use error::{FormatError, ParseError};
pub use not_utf8::{NOT_UTF8_KEY, recover_bytes};
pub use plain::TextRecord;
#[cfg(feature = "records")]
pub use records::{DEFAULT_MAX_LINE_BYTES, LogRecords};
pub use syslog::{SdElement, SyslogFormat, SyslogRecord};
pub use text::Text;
pub use time::Timestamp;
pub use time::loose::{EPOCH_MICROSECONDS_BELOW, EPOCH_MILLISECONDS_BELOW, EPOCH_SECONDS_BELOW};

use format::AccessFormat;

/// What kind of log a record came from; its `log_type` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogType {
    /// An Apache access log (`apache_access`).
    ApacheAccess,
    /// An Nginx access log (`nginx_access`).
    NginxAccess,
    /// A JSON application log (`application`).
    Application,
    /// Plain text (`text`).
    Text,
    /// Syslog (`syslog`).
    Syslog,
    /// CSV or TSV (`csv`).
    Csv,
}

impl LogType {
    /// The JSON value: `apache_access`, `nginx_access`, `application` or
    /// `text`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogType::ApacheAccess => "apache_access",
            LogType::NginxAccess => "nginx_access",
            LogType::Application => "application",
            LogType::Text => "text",
            LogType::Syslog => "syslog",
            LogType::Csv => "csv",
        }
    }

    /// `,"log_type":"…"}`: how every record's JSON ends, as one constant.
    pub(crate) fn json_tail(self) -> &'static [u8] {
        match self {
            LogType::ApacheAccess => br#","log_type":"apache_access"}"#,
            LogType::NginxAccess => br#","log_type":"nginx_access"}"#,
            LogType::Application => br#","log_type":"application"}"#,
            LogType::Text => br#","log_type":"text"}"#,
            LogType::Syslog => br#","log_type":"syslog"}"#,
            LogType::Csv => br#","log_type":"csv"}"#,
        }
    }
}

/// A parser for one log format, built once and used for every line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogParser {
    inner: Inner,
}

#[derive(Debug, Clone, PartialEq)]
enum Inner {
    Access(AccessFormat),
    Application,
    Text,
    Syslog,
    Csv(CsvFormat),
}

impl LogParser {
    /// Apache access logs in the common (`%h %l %u %t "%r" %>s %b`) or
    /// combined (`… "%{Referer}i" "%{User-agent}i"`) format; a common line
    /// has `referer` and `user_agent` null.
    pub fn apache() -> Self {
        Self::builtin(AccessFormat::apache_builtin())
    }

    /// Nginx access logs in the predefined `combined` format or the stock
    /// `main` format (`combined` + `"$http_x_forwarded_for"`, which becomes
    /// the field `http_x_forwarded_for`).
    pub fn nginx() -> Self {
        Self::builtin(AccessFormat::nginx_builtin())
    }

    /// JSON application logs: one object per line.
    pub fn application() -> Self {
        LogParser {
            inner: Inner::Application,
        }
    }

    /// Plain text: each line or multi-line event is one record holding it
    /// as logged ([`TextRecord`]).
    pub fn text() -> Self {
        LogParser { inner: Inner::Text }
    }

    /// Syslog: RFC 5424 or RFC 3164, told from each line
    /// ([`SyslogRecord`]).
    pub fn syslog() -> Self {
        LogParser {
            inner: Inner::Syslog,
        }
    }

    /// CSV or TSV lines, split as `format` says ([`CsvRecord`]).
    pub fn csv(format: CsvFormat) -> Self {
        LogParser {
            inner: Inner::Csv(format),
        }
    }

    /// A parser for an Apache `LogFormat` string (or a whole `LogFormat
    /// "…" nickname` line). Errors name the directive it cannot read.
    pub fn apache_format(directive: &str) -> Result<Self, FormatError> {
        AccessFormat::apache(directive).map(|format| LogParser {
            inner: Inner::Access(format),
        })
    }

    /// A parser for an Nginx `log_format` string (or a whole `log_format
    /// name '…' '…';` directive). Every `$variable` not known to the record
    /// becomes a string field of that name.
    pub fn nginx_format(directive: &str) -> Result<Self, FormatError> {
        AccessFormat::nginx(directive).map(|format| LogParser {
            inner: Inner::Access(format),
        })
    }

    fn builtin(format: Result<AccessFormat, FormatError>) -> Self {
        match format {
            Ok(format) => LogParser {
                inner: Inner::Access(format),
            },
            // The built-in directives are constants the unit tests compile;
            // should one ever fail, every line is reported rather than a
            // panic here.
            Err(_) => LogParser {
                inner: Inner::Access(AccessFormat {
                    items: Vec::new(),
                    optional_from: None,
                    log_type: LogType::ApacheAccess,
                    walk: format::Walk::default(),
                }),
            },
        }
    }

    /// The `log_type` of the records this parser makes.
    pub fn log_type(&self) -> LogType {
        match &self.inner {
            Inner::Access(format) => format.log_type,
            Inner::Application => LogType::Application,
            Inner::Text => LogType::Text,
            Inner::Syslog => LogType::Syslog,
            Inner::Csv(_) => LogType::Csv,
        }
    }

    /// Parses one line given as bytes. A line that is not UTF-8 is an error
    /// at its first invalid byte: Apache and Nginx escape every byte that is
    /// not printable ASCII, so such a line is corrupt or not theirs, and the
    /// caller dead-letters it whole rather than guessing at its text.
    pub fn parse_bytes<'a>(&'a self, line: &'a [u8]) -> Result<LogRecord<'a>, ParseError> {
        // The fast check first; std's says where a bad line goes wrong.
        if let Ok(text) = simdutf8::basic::from_utf8(line) {
            return self.parse(text);
        }
        match std::str::from_utf8(line) {
            Ok(text) => self.parse(text),
            // Plain text ships whatever it holds: bytes that are not UTF-8
            // are kept escaped (`recover_bytes`).
            Err(_) if matches!(self.inner, Inner::Text) => {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                Ok(LogRecord::Text(plain::TextRecord::parse_bytes(line)))
            }
            Err(e) => {
                let valid = e.valid_up_to();
                let text = line
                    .get(..valid)
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .unwrap_or_default();
                let mut error = ParseError::at(text, valid, "UTF-8 text");
                let bad = line.get(valid..).unwrap_or_default();
                error.snippet = bad.iter().take(8).map(|b| format!("\\x{b:02x}")).collect();
                Err(error)
            }
        }
    }

    /// Parses one line. A trailing `\n`, `\r\n` or `\r` is ignored. An
    /// empty line is an error (callers normally skip blank lines first).
    pub fn parse<'a>(&'a self, line: &'a str) -> Result<LogRecord<'a>, ParseError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return Err(ParseError::at(line, 0, "a log line, not an empty one"));
        }
        match &self.inner {
            Inner::Access(format) => format.parse(line),
            Inner::Application => application::AppRecord::parse(line).map(LogRecord::Application),
            Inner::Text => Ok(LogRecord::Text(plain::TextRecord::parse(line))),
            Inner::Syslog => syslog::SyslogRecord::parse(line).map(LogRecord::Syslog),
            Inner::Csv(format) => format.parse(line).map(LogRecord::Csv),
        }
    }
}

/// A parsed line.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "a record lives on the stack for one line; boxing the access variant would \
              allocate once per line on the hot path"
)]
pub enum LogRecord<'a> {
    /// An Apache or Nginx access-log line.
    Access(AccessRecord<'a>),
    /// A JSON application-log line.
    Application(AppRecord<'a>),
    /// A plain text line or multi-line event.
    Text(TextRecord<'a>),
    /// A syslog line (RFC 5424 or RFC 3164).
    Syslog(SyslogRecord<'a>),
    /// A CSV or TSV line.
    Csv(CsvRecord<'a>),
}

impl LogRecord<'_> {
    /// Appends the record's JSON to `buf` (clear it first to reuse it).
    ///
    /// The bytes are exactly what `serde_json::to_writer(buf, &record)`
    /// writes through the `Serialize` implementation, written directly
    /// (several times faster). Writing to a `Vec` cannot fail; the `Result`
    /// leaves room for writers that can.
    pub fn write_json(&self, buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        match self {
            LogRecord::Access(access) => access.write_json(buf),
            LogRecord::Application(app) => app.write_json(buf),
            LogRecord::Text(text) => text.write_json(buf),
            LogRecord::Syslog(syslog) => serde_json::to_writer(&mut *buf, syslog)?,
            LogRecord::Csv(csv) => serde_json::to_writer(&mut *buf, csv)?,
        }
        Ok(())
    }

    /// The record's `log_type`.
    pub fn log_type(&self) -> LogType {
        match self {
            LogRecord::Access(access) => access.log_type(),
            LogRecord::Application(_) => LogType::Application,
            LogRecord::Text(_) => LogType::Text,
            LogRecord::Syslog(_) => LogType::Syslog,
            LogRecord::Csv(_) => LogType::Csv,
        }
    }
}

impl serde::Serialize for LogRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            LogRecord::Access(access) => access.serialize(serializer),
            LogRecord::Application(app) => app.serialize(serializer),
            LogRecord::Text(text) => text.serialize(serializer),
            LogRecord::Syslog(syslog) => syslog.serialize(serializer),
            LogRecord::Csv(csv) => csv.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_formats_compile() {
        assert!(AccessFormat::apache_builtin().is_ok());
        assert!(AccessFormat::nginx_builtin().is_ok());
        assert_eq!(LogParser::apache().log_type(), LogType::ApacheAccess);
        assert_eq!(LogParser::nginx().log_type(), LogType::NginxAccess);
        for log_type in [
            LogType::ApacheAccess,
            LogType::NginxAccess,
            LogType::Application,
            LogType::Text,
            LogType::Syslog,
            LogType::Csv,
        ] {
            let tail = format!(r#","log_type":"{}"}}"#, log_type.as_str());
            assert_eq!(log_type.json_tail(), tail.as_bytes());
        }
    }
}
