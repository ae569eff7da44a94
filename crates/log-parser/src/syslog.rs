//! Syslog lines (`"type": "syslog"`): RFC 5424, and RFC 3164 — the BSD
//! form, with or without its `<PRI>`, as `/var/log/syslog` and
//! `/var/log/messages` hold it. Which one a line is, is told from the line.

use std::borrow::Cow;

use nom::Parser;
use nom::character::complete::char;
use serde::ser::{SerializeMap, Serializer};

use crate::LogType;
use crate::error::ParseError;
use crate::nom_error::{Expect, PResult, expecting, fail};
use crate::time::{Timestamp, clock, iso8601, loose::now, month_name};

/// Facility names by number (RFC 5424, table 1; the names rsyslog uses).
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
/// Severity names by number (RFC 5424, table 2).
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];
/// The largest `<PRI>`: facility 23, severity 7.
const MAX_PRI: u32 = 191;

/// Which syslog form a line is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogFormat {
    /// RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.
    Rfc5424,
    /// RFC 3164 (BSD): `<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`.
    Rfc3164,
}

impl SyslogFormat {
    /// The name in the JSON (`rfc5424`, `rfc3164`).
    pub fn as_str(self) -> &'static str {
        match self {
            SyslogFormat::Rfc5424 => "rfc5424",
            SyslogFormat::Rfc3164 => "rfc3164",
        }
    }
}

/// One structured-data element of RFC 5424: its id and its parameters,
/// values unescaped (`\"`, `\\`, `\]`).
pub type SdElement<'a> = (&'a str, Vec<(&'a str, Cow<'a, str>)>);

/// A syslog message.
///
/// Its JSON: `timestamp` (RFC 3339), `hostname`, `app_name`, `procid`,
/// `msgid`, `facility` and `severity` (names: `auth`, `err`),
/// `structured_data` (an object of objects: `{"exampleSDID@32473":
/// {"iut": "3"}}`), `message`, `syslog_format` (`rfc5424` or `rfc3164`),
/// `log_type: "syslog"`. A field the line does not have, or has as `-`, is
/// `null`.
///
/// ```
/// use shardline_log_parser::{LogParser, LogRecord};
///
/// let parser = LogParser::syslog();
/// let line = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event"#;
/// let LogRecord::Syslog(record) = parser.parse(line)? else {
///     return Err("a syslog record".into());
/// };
/// assert_eq!(record.hostname(), Some("mymachine.example.com"));
/// assert_eq!(record.severity(), Some("notice"));
/// assert_eq!(record.message(), "An application event");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogRecord<'a> {
    format: SyslogFormat,
    pri: Option<u8>,
    timestamp: Option<Timestamp>,
    hostname: Option<&'a str>,
    app_name: Option<&'a str>,
    procid: Option<&'a str>,
    msgid: Option<&'a str>,
    structured_data: Option<Vec<SdElement<'a>>>,
    message: &'a str,
}

impl<'a> SyslogRecord<'a> {
    pub(crate) fn parse(line: &'a str) -> Result<Self, ParseError> {
        let (rest, pri) = if line.starts_with('<') {
            let (rest, pri) = pri(line).map_err(|e| to_error(line, e))?;
            (rest, Some(pri))
        } else {
            (line, None)
        };
        // RFC 5424 has a version after its PRI: `<165>1 `.
        let version = rest
            .split_once(' ')
            .filter(|(v, _)| pri.is_some() && (1..=3).contains(&v.len()))
            .filter(|(v, _)| v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0'));
        let record = match version {
            Some((_, after)) => rfc5424(after, pri),
            None => rfc3164(rest, pri),
        };
        record.map_err(|e| to_error(line, e))
    }

    /// Which format the line is in.
    pub fn format(&self) -> SyslogFormat {
        self.format
    }
    /// The time the line carries, if any (`-` in RFC 5424).
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.timestamp
    }
    /// The host, if any.
    pub fn hostname(&self) -> Option<&'a str> {
        self.hostname
    }
    /// The application (RFC 3164: the tag), if any.
    pub fn app_name(&self) -> Option<&'a str> {
        self.app_name
    }
    /// The process id, if any.
    pub fn procid(&self) -> Option<&'a str> {
        self.procid
    }
    /// The message id (RFC 5424), if any.
    pub fn msgid(&self) -> Option<&'a str> {
        self.msgid
    }
    /// The facility's name (`auth`, `local0`), from the line's `<PRI>`.
    pub fn facility(&self) -> Option<&'static str> {
        self.pri
            .and_then(|p| FACILITIES.get(usize::from(p / 8)).copied())
    }
    /// The severity's name (`err`, `notice`), from the line's `<PRI>`.
    pub fn severity(&self) -> Option<&'static str> {
        self.pri
            .and_then(|p| SEVERITIES.get(usize::from(p % 8)).copied())
    }
    /// The structured data elements (RFC 5424), if any.
    pub fn structured_data(&self) -> Option<&[SdElement<'a>]> {
        self.structured_data.as_deref()
    }
    /// The message.
    pub fn message(&self) -> &'a str {
        self.message
    }
}

fn to_error(line: &str, e: nom::Err<Expect<'_>>) -> ParseError {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => {
            ParseError::at(line, line.len() - e.input.len(), e.expected)
        }
        nom::Err::Incomplete(_) => ParseError::at(line, line.len(), "more input"),
    }
}

fn expected<'a>(input: &'a str, what: &'static str) -> nom::Err<Expect<'a>> {
    nom::Err::Error(Expect {
        input,
        expected: what,
    })
}

/// `<PRI>`: 1 to 3 digits, at most 191.
fn pri(input: &str) -> PResult<'_, u8> {
    let (rest, _) = expecting("`<`", char('<')).parse(input)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let value: Option<u32> = rest.get(..digits).and_then(|d| d.parse().ok());
    match value.filter(|v| (1..=3).contains(&digits) && *v <= MAX_PRI) {
        Some(value) => {
            let (rest, _) = expecting("`>` after the priority", char('>'))
                .parse(rest.get(digits..).unwrap_or_default())?;
            Ok((rest, u8::try_from(value).unwrap_or_default()))
        }
        None => fail(rest, "a priority (0-191)"),
    }
}

/// A field up to the next space; `-` is no value.
fn word(input: &str) -> (&str, Option<&str>) {
    let end = input.find(' ').unwrap_or(input.len());
    let (word, rest) = input.split_at(end);
    (rest, (word != "-").then_some(word))
}

fn space<'a>(what: &'static str) -> impl FnMut(&'a str) -> PResult<'a, char> {
    expecting(what, char(' '))
}

/// `TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
/// STRUCTURED-DATA [SP MSG]`, after `<PRI>VERSION SP`.
fn rfc5424(input: &str, pri: Option<u8>) -> Result<SyslogRecord<'_>, nom::Err<Expect<'_>>> {
    let (rest, timestamp) = match input.strip_prefix("- ") {
        Some(rest) => (rest, None),
        None => {
            let (rest, time) = iso8601(input)?;
            let (rest, _) = space("a space after the time")(rest)?;
            (rest, Some(time))
        }
    };
    let (rest, hostname) = word(rest);
    let (rest, _) = space("a space after the host name")(rest)?;
    let (rest, app_name) = word(rest);
    let (rest, _) = space("a space after the app name")(rest)?;
    let (rest, procid) = word(rest);
    let (rest, _) = space("a space after the process id")(rest)?;
    let (rest, msgid) = word(rest);
    let (rest, _) = space("a space after the message id")(rest)?;
    let (rest, structured_data) = match rest.strip_prefix('-') {
        Some(rest) => (rest, None),
        None => {
            let (rest, elements) = structured_data(rest)?;
            (rest, Some(elements))
        }
    };
    let message = match rest.strip_prefix(' ') {
        Some(message) => message.strip_prefix('\u{feff}').unwrap_or(message),
        None if rest.is_empty() => "",
        None => return Err(expected(rest, "a space before the message")),
    };
    Ok(SyslogRecord {
        format: SyslogFormat::Rfc5424,
        pri,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        message,
    })
}

/// One or more `[SD-ID *(SP PARAM-NAME="PARAM-VALUE")]`.
fn structured_data(mut input: &str) -> PResult<'_, Vec<SdElement<'_>>> {
    let mut elements = Vec::new();
    while input.starts_with('[') {
        let (rest, element) = sd_element(input)?;
        elements.push(element);
        input = rest;
    }
    if elements.is_empty() {
        return fail(input, "structured data (`[id …]` or `-`)");
    }
    Ok((input, elements))
}

/// An SD-NAME: 1 to 32 printable ASCII bytes but `=`, space, `]` and `"`.
fn sd_name<'a>(input: &'a str, what: &'static str) -> PResult<'a, &'a str> {
    let len = input
        .bytes()
        .take_while(|b| (33..=126).contains(b) && !matches!(b, b'=' | b']' | b'"'))
        .count();
    if len == 0 || len > 32 {
        return fail(input, what);
    }
    let (name, rest) = input.split_at(len);
    Ok((rest, name))
}

fn sd_element(input: &str) -> PResult<'_, SdElement<'_>> {
    let (rest, _) = expecting("`[`", char('[')).parse(input)?;
    let (mut rest, id) = sd_name(rest, "a structured-data id")?;
    let mut params = Vec::new();
    while let Some(after) = rest.strip_prefix(' ') {
        let (after, name) = sd_name(after, "a parameter name")?;
        let (after, _) = expecting("`=`", char('=')).parse(after)?;
        let (after, _) = expecting("`\"`", char('"')).parse(after)?;
        let (after, value) = param_value(after)?;
        params.push((name, value));
        rest = after;
    }
    let (rest, _) = expecting("`]` or a parameter", char(']')).parse(rest)?;
    Ok((rest, (id, params)))
}

/// A PARAM-VALUE up to its closing `"`, with `\"`, `\\` and `\]` undone
/// (a backslash before anything else is kept, RFC 5424 section 6.3.3).
fn param_value(input: &str) -> PResult<'_, Cow<'_, str>> {
    let bytes = input.as_bytes();
    let mut owned: Option<String> = None;
    let mut copied = 0;
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'"' => {
                let value = match owned {
                    Some(mut text) => {
                        text.push_str(input.get(copied..at).unwrap_or_default());
                        Cow::Owned(text)
                    }
                    None => Cow::Borrowed(input.get(..at).unwrap_or_default()),
                };
                return Ok((input.get(at + 1..).unwrap_or_default(), value));
            }
            b'\\' if matches!(bytes.get(at + 1), Some(b'"' | b'\\' | b']')) => {
                let text = owned.get_or_insert_with(String::new);
                text.push_str(input.get(copied..at).unwrap_or_default());
                copied = at + 1;
                at += 2;
            }
            _ => at += 1,
        }
    }
    fail(input, "a closing `\"`")
}

/// `TIMESTAMP SP HOSTNAME SP [TAG[PID]: ]MSG` after an optional `<PRI>`.
/// The time is `Mmm dd hh:mm:ss` (no year: this year, or last year for a
/// month still ahead; no zone: UTC), or RFC 3339 as rsyslog writes it in
/// its file format.
fn rfc3164(input: &str, pri: Option<u8>) -> Result<SyslogRecord<'_>, nom::Err<Expect<'_>>> {
    let (rest, timestamp) = if input.starts_with(|c: char| c.is_ascii_digit()) {
        iso8601(input)?
    } else {
        bsd_time(input)?
    };
    let (rest, _) = space("a space after the time")(rest)?;
    let (rest, hostname) = word(rest);
    if hostname.is_none() && rest.is_empty() {
        return Err(expected(rest, "a host name"));
    }
    let message = rest.strip_prefix(' ').unwrap_or(rest);
    let (app_name, procid, message) = tag(message);
    Ok(SyslogRecord {
        format: SyslogFormat::Rfc3164,
        pri,
        timestamp: Some(timestamp),
        hostname,
        app_name,
        procid,
        msgid: None,
        structured_data: None,
        message,
    })
}

/// `Mmm dd hh:mm:ss`, the day padded with a space (`Oct  1`).
fn bsd_time(input: &str) -> PResult<'_, Timestamp> {
    let (rest, month) = month_name(input)?;
    let (rest, _) = space("a space after the month")(rest)?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let day: Option<u8> = rest.get(..digits).and_then(|d| d.parse().ok());
    let Some(day) = day.filter(|d| (1..=2).contains(&digits) && (1..=31).contains(d)) else {
        return fail(rest, "a day of the month (1-31)");
    };
    let (rest, _) = space("a space after the day")(rest.get(digits..).unwrap_or_default())?;
    let (rest, (hour, minute, second)) = clock(rest)?;
    let today = now();
    // A month ahead of this one is from last year (December's lines read
    // in January).
    let year = if month > today.month {
        today.year.saturating_sub(1)
    } else {
        today.year
    };
    Ok((
        rest,
        Timestamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            fraction: 0,
            fraction_digits: 0,
            offset_minutes: 0,
        },
    ))
}

/// `TAG[PID]: MSG` or `TAG: MSG`: the program's name (up to 48 bytes of
/// letters, digits and `-_./@`), its process id, and the rest. A message
/// without such a tag is all message.
fn tag(message: &str) -> (Option<&str>, Option<&str>, &str) {
    let name_len = message
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'@'))
        .count();
    if name_len == 0 || name_len > 48 {
        return (None, None, message);
    }
    let (name, rest) = message.split_at(name_len);
    let (procid, rest) = match rest.strip_prefix('[') {
        Some(after) => match after.split_once(']') {
            Some((pid, rest)) if !pid.is_empty() && pid.len() <= 128 => (Some(pid), rest),
            _ => return (None, None, message),
        },
        None => (None, rest),
    };
    match rest.strip_prefix(':') {
        Some(rest) => (Some(name), procid, rest.strip_prefix(' ').unwrap_or(rest)),
        None => (None, None, message),
    }
}

impl serde::Serialize for SyslogRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Elements<'r, 'a>(&'r [SdElement<'a>]);
        impl serde::Serialize for Elements<'_, '_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (id, params) in self.0 {
                    map.serialize_entry(id, &Params(params))?;
                }
                map.end()
            }
        }
        struct Params<'r, 'a>(&'r [(&'a str, Cow<'a, str>)]);
        impl serde::Serialize for Params<'_, '_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (name, value) in self.0 {
                    map.serialize_entry(name, value)?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(11))?;
        map.serialize_entry("timestamp", &self.timestamp)?;
        map.serialize_entry("hostname", &self.hostname)?;
        map.serialize_entry("app_name", &self.app_name)?;
        map.serialize_entry("procid", &self.procid)?;
        map.serialize_entry("msgid", &self.msgid)?;
        map.serialize_entry("facility", &self.facility())?;
        map.serialize_entry("severity", &self.severity())?;
        map.serialize_entry(
            "structured_data",
            &self.structured_data.as_deref().map(Elements),
        )?;
        map.serialize_entry("message", self.message)?;
        map.serialize_entry("syslog_format", self.format.as_str())?;
        map.serialize_entry("log_type", &LogType::Syslog)?;
        map.end()
    }
}

#[cfg(test)]
mod tests;
