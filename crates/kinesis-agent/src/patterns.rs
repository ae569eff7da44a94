//! The log formats of `LOGTOJSON`, as the agent matches them: grok-style
//! building blocks (the ones Logstash made common) assembled into one
//! pattern per format, with the agent's field names.
//!
//! Java's regular expressions are ASCII by default (`\w`, `\d`, `\s`,
//! `\b`) and `.` stops at any line terminator; the blocks below say so
//! explicitly, so that the Rust `regex` engine matches the same lines and
//! captures the same text.

/// Java's `.`: anything but a line terminator.
const ANY: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]";
/// Java's `\s`.
const SPACE: &str = r"[ \t\n\x0B\f\r]";
/// Java's `\w`.
const WORD_CHAR: &str = r"[a-zA-Z0-9_]";

const INT: &str = "(?:[+-]?(?:[0-9]+))";

const POSINT: &str = "(?:[1-9][0-9]*)";
const NONNEGINT: &str = "(?:[0-9]+)";
const NOQUOTE: &str = "[^\"]+";
const IP: &str = r"(?:[0-9.]+)";
const USER: &str = "(?:[a-zA-Z0-9._-]+)";
const MONTHDAY: &str = "(?:(?:0[1-9])|(?:[12][0-9])|(?:3[01])|[1-9])";
const DAY: &str = "(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)";
const MONTH: &str = r"(?-u:\b)(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|Sep(?:tember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)(?-u:\b)";
const YEAR: &str = "(?:[1-9][0-9]*)";
const HOUR: &str = "(?:2[0123]|[01]?[0-9])";
const MINUTE: &str = "(?:[0-5][0-9])";
const SECOND: &str = "(?:(?:[0-5]?[0-9]|60)(?:[:.,][0-9]+)?)";

const HOSTNAME: &str = r"(?:[a-zA-Z0-9_-]+)(?:\.(?:[a-zA-Z0-9_-]+))*(?:\.?|(?-u:\b))";

fn ip_or_host() -> String {
    format!("(?:{HOSTNAME}|{IP})")
}

fn uri_host() -> String {
    format!("(?:{}(?::{POSINT})?)", ip_or_host())
}

fn time() -> String {
    format!("(?:{HOUR}:{MINUTE}:{SECOND})")
}

fn http_date() -> String {
    format!("(?:{MONTHDAY}/{MONTH}/{YEAR}:{}{SPACE}{INT})", time())
}

fn error_log_timestamp() -> String {
    format!(
        "(?:{DAY}{SPACE}+{MONTH}{SPACE}+{MONTHDAY}{SPACE}+{}{SPACE}+{YEAR})",
        time()
    )
}

fn syslog_timestamp() -> String {
    format!("(?:{MONTH}{SPACE}+{MONTHDAY}{SPACE}+{})", time())
}

const RFC3339: &str = r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?)(?:Z|(?:[-+][0-9]{2}:[0-9]{2}))";

fn syslog_facility() -> String {
    format!("<{NONNEGINT}.{NONNEGINT}>")
}

fn syslog_program() -> String {
    format!(r"([a-zA-Z0-9_._/%-]+)(?:\[({POSINT})\])?")
}

/// Apache's common log format: `%h %l %u %t "%r" %>s %b`.
fn common_apache() -> String {
    format!(
        r#"^({host}) ({USER}) ({USER}) \[({date})\] "({NOQUOTE})" ({INT}|\-) ({INT}|\-)"#,
        host = ip_or_host(),
        date = http_date(),
    )
}

/// The combined format: the common one and `"%{Referer}i" "%{User-agent}i"`.
fn combined_apache() -> String {
    format!(r#"{} "({NOQUOTE})" "({NOQUOTE})""#, common_apache())
}

fn apache_error() -> String {
    format!(
        r"^\[({ts})\] \[(?:({WORD_CHAR}+):)?({WORD_CHAR}+)\] \[pid ({NONNEGINT})(?::tid ({NONNEGINT}))?\] \[client ({client})\] ({ANY}*)",
        ts = error_log_timestamp(),
        client = uri_host()
    )
}

fn syslog_with(timestamp: &str) -> String {
    format!(
        "^({timestamp}) (?:{facility} )?({USER}) {program}: ({ANY}*)",
        facility = syslog_facility(),
        program = syslog_program()
    )
}

/// A `logFormat` of `LOGTOJSON`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum LogFormat {
    /// `COMMONAPACHELOG`: host, ident, authuser, datetime, request,
    /// response, bytes (anything after them is ignored).
    #[serde(rename = "COMMONAPACHELOG")]
    CommonApache,
    /// `COMBINEDAPACHELOG`: the common fields, then referer and agent.
    #[serde(rename = "COMBINEDAPACHELOG")]
    CombinedApache,
    /// `APACHEERRORLOG`: timestamp, module, severity, processid, threadid,
    /// client, message.
    #[serde(rename = "APACHEERRORLOG")]
    ApacheError,
    /// `SYSLOG` (RFC 3164 time stamps): timestamp, hostname, program,
    /// processid, message.
    #[serde(rename = "SYSLOG")]
    Syslog,
    /// `RFC3339SYSLOG`: the same fields, an RFC 3339 time stamp.
    #[serde(rename = "RFC3339SYSLOG")]
    Rfc3339Syslog,
}

impl LogFormat {
    /// The pattern a whole record must match, and the name of each group.
    pub(crate) fn pattern(self) -> (String, &'static [&'static str]) {
        const COMMON: &[&str] = &[
            "host", "ident", "authuser", "datetime", "request", "response", "bytes",
        ];
        const COMBINED: &[&str] = &[
            "host", "ident", "authuser", "datetime", "request", "response", "bytes", "referer",
            "agent",
        ];
        const ERROR: &[&str] = &[
            "timestamp",
            "module",
            "severity",
            "processid",
            "threadid",
            "client",
            "message",
        ];
        const SYSLOG: &[&str] = &["timestamp", "hostname", "program", "processid", "message"];
        match self {
            // The Apache access formats ignore what follows their fields.
            LogFormat::CommonApache => (format!("{}{ANY}*", common_apache()), COMMON),
            LogFormat::CombinedApache => (format!("{}{ANY}*", combined_apache()), COMBINED),
            LogFormat::ApacheError => (apache_error(), ERROR),
            LogFormat::Syslog => (syslog_with(&syslog_timestamp()), SYSLOG),
            LogFormat::Rfc3339Syslog => (syslog_with(RFC3339), SYSLOG),
        }
    }

    /// Whether a field shown as `-` is missing (`null`): the Apache
    /// formats say so; syslog keeps the text.
    pub(crate) fn dash_is_missing(self) -> bool {
        matches!(
            self,
            LogFormat::CommonApache | LogFormat::CombinedApache | LogFormat::ApacheError
        )
    }
}
