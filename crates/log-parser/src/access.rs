//! Access-log records (Apache, Nginx, custom formats) and the parser that
//! walks a compiled format over a line.

use serde::ser::{SerializeMap, Serializer};
use smallvec::SmallVec;

use crate::error::ParseError;
use crate::field::{dash_or, number, request_line, status};
use crate::format::{AccessFormat, Delim, Field, Kind, Step};
use crate::json;
use crate::not_utf8::NOT_UTF8_KEY;
use crate::scan;
use crate::text::{Form, Text};
use crate::time::{Timestamp, clf, iso};
use crate::{LogRecord, LogType};

/// How many of a custom format's other fields a record holds without
/// allocating: Nginx `main` has one (`http_x_forwarded_for`), typical
/// timing formats one or two.
const INLINE_EXTRAS: usize = 2;

/// A field of a custom format that is not one of the fixed record fields.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// Text, as logged.
    Str(Text<'a>),
    /// A whole number.
    Int(u64),
    /// A number with a fraction.
    Float(f64),
    /// The server logged `-`.
    Null,
}

impl serde::Serialize for FieldValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldValue::Str(text) => text.serialize(serializer),
            FieldValue::Int(n) => serializer.serialize_u64(*n),
            FieldValue::Float(x) => serializer.serialize_f64(*x),
            FieldValue::Null => serializer.serialize_none(),
        }
    }
}

/// One access-log line, borrowing from it: text fields are [`Text`], whose
/// escapes are undone only when asked for.
///
/// Serializes to the record of `docs/log-schema.md`: `timestamp`,
/// `ip_address`, `method`, `path`, `protocol`, `status_code`,
/// `response_size`, `referer`, `user_agent`, `log_type` always (null where
/// the line had `-` or the format lacks the field); `ident`, `remote_user`
/// only when logged and not `-`; `request` only when the request line is
/// not `METHOD PATH PROTOCOL`; then a custom format's other fields.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessRecord<'a> {
    timestamp: Option<Timestamp>,
    ip_address: Option<Text<'a>>,
    ident: Option<Text<'a>>,
    remote_user: Option<Text<'a>>,
    method: Option<Text<'a>>,
    path: Option<Text<'a>>,
    protocol: Option<Text<'a>>,
    request: Option<Text<'a>>,
    status_code: Option<u16>,
    response_size: Option<u64>,
    referer: Option<Text<'a>>,
    user_agent: Option<Text<'a>>,
    /// A custom format's other fields, in format order: the first few
    /// inline, so that a line does not allocate for them.
    extra: SmallVec<[(&'a str, FieldValue<'a>); INLINE_EXTRAS]>,
    log_type: LogType,
    /// Some field holds escapes other than `\"` and `\\` (`\xhh`): only
    /// then may one hold bytes that are not UTF-8 (`not_utf8`).
    escaped: bool,
}

impl<'a> AccessRecord<'a> {
    fn empty(log_type: LogType) -> Self {
        AccessRecord {
            timestamp: None,
            ip_address: None,
            ident: None,
            remote_user: None,
            method: None,
            path: None,
            protocol: None,
            request: None,
            status_code: None,
            response_size: None,
            referer: None,
            user_agent: None,
            extra: SmallVec::new(),
            log_type,
            escaped: false,
        }
    }

    /// When the request was received, with the log's own offset.
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.timestamp
    }

    /// The client's address (or host name) as logged.
    pub fn ip_address(&self) -> Option<&'a str> {
        self.ip_address.map(|text| text.as_logged())
    }

    /// The `identd` name (Apache `%l`), when logged and not `-`.
    pub fn ident(&self) -> Option<&'a str> {
        self.ident.map(|text| text.as_logged())
    }

    /// The authenticated user, when logged and not `-`.
    pub fn remote_user(&self) -> Option<Text<'a>> {
        self.remote_user
    }

    /// The request's method, when the request line had one.
    pub fn method(&self) -> Option<Text<'a>> {
        self.method
    }

    /// The request's path (with its query string).
    pub fn path(&self) -> Option<Text<'a>> {
        self.path
    }

    /// The request's protocol (`HTTP/1.1`, `HTTP/2.0`, ...).
    pub fn protocol(&self) -> Option<Text<'a>> {
        self.protocol
    }

    /// The request line as logged, kept only when it is not
    /// `METHOD PATH PROTOCOL` (so nothing that was logged is lost).
    pub fn request(&self) -> Option<Text<'a>> {
        self.request
    }

    /// The HTTP status code.
    pub fn status_code(&self) -> Option<u16> {
        self.status_code
    }

    /// The response size in bytes; `None` where the server logged `-`.
    pub fn response_size(&self) -> Option<u64> {
        self.response_size
    }

    /// The `Referer` header, when logged and not `-`.
    pub fn referer(&self) -> Option<Text<'a>> {
        self.referer
    }

    /// The `User-Agent` header, when logged and not `-`.
    pub fn user_agent(&self) -> Option<Text<'a>> {
        self.user_agent
    }

    /// `apache_access` or `nginx_access`.
    pub fn log_type(&self) -> LogType {
        self.log_type
    }

    /// A custom format's other fields (keys and values), in format order.
    pub fn extras(&self) -> &[(&'a str, FieldValue<'a>)] {
        &self.extra
    }

    /// The value of a custom field by its key.
    pub fn extra(&self, key: &str) -> Option<&FieldValue<'a>> {
        self.extra.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

impl serde::Serialize for AccessRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("timestamp", &self.timestamp)?;
        map.serialize_entry("ip_address", &self.ip_address)?;
        if let Some(ident) = &self.ident {
            map.serialize_entry("ident", ident)?;
        }
        if let Some(user) = &self.remote_user {
            map.serialize_entry("remote_user", user)?;
        }
        map.serialize_entry("method", &self.method)?;
        map.serialize_entry("path", &self.path)?;
        map.serialize_entry("protocol", &self.protocol)?;
        if let Some(request) = &self.request {
            map.serialize_entry("request", request)?;
        }
        map.serialize_entry("status_code", &self.status_code)?;
        map.serialize_entry("response_size", &self.response_size)?;
        map.serialize_entry("referer", &self.referer)?;
        map.serialize_entry("user_agent", &self.user_agent)?;
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        let not_utf8 = self.not_utf8_fields();
        if !not_utf8.is_empty() {
            map.serialize_entry(NOT_UTF8_KEY, &not_utf8)?;
        }
        map.serialize_entry("log_type", &self.log_type)?;
        map.end()
    }
}

/// Appends a text field's JSON, or `null`.
fn opt_text(buf: &mut Vec<u8>, text: Option<Text<'_>>) {
    match text {
        Some(text) => text.write_json(buf),
        None => buf.extend_from_slice(b"null"),
    }
}

impl<'a> AccessRecord<'a> {
    /// Appends the record's JSON to `buf`: the same bytes as its `Serialize`
    /// implementation gives `serde_json`, written directly.
    pub(crate) fn write_json(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"{\"timestamp\":");
        match &self.timestamp {
            Some(timestamp) => timestamp.write_json(buf),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b",\"ip_address\":");
        opt_text(buf, self.ip_address);
        if let Some(ident) = self.ident {
            buf.extend_from_slice(b",\"ident\":");
            ident.write_json(buf);
        }
        if let Some(user) = self.remote_user {
            buf.extend_from_slice(b",\"remote_user\":");
            user.write_json(buf);
        }
        buf.extend_from_slice(b",\"method\":");
        opt_text(buf, self.method);
        buf.extend_from_slice(b",\"path\":");
        opt_text(buf, self.path);
        buf.extend_from_slice(b",\"protocol\":");
        opt_text(buf, self.protocol);
        if let Some(request) = self.request {
            buf.extend_from_slice(b",\"request\":");
            request.write_json(buf);
        }
        buf.extend_from_slice(b",\"status_code\":");
        match self.status_code {
            Some(code) => json::status(buf, code),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b",\"response_size\":");
        match self.response_size {
            Some(size) => json::unsigned(buf, size),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b",\"referer\":");
        opt_text(buf, self.referer);
        buf.extend_from_slice(b",\"user_agent\":");
        opt_text(buf, self.user_agent);
        for (key, value) in &self.extra {
            buf.push(b',');
            json::string(buf, key);
            buf.push(b':');
            match value {
                FieldValue::Str(text) => text.write_json(buf),
                FieldValue::Int(n) => json::unsigned(buf, *n),
                FieldValue::Float(x) => {
                    // serde_json's float formatting (ryu), for identical output.
                    if serde_json::to_writer(&mut *buf, x).is_err() {
                        buf.extend_from_slice(b"null");
                    }
                }
                FieldValue::Null => buf.extend_from_slice(b"null"),
            }
        }
        // Only a field with `\xhh` escapes can hold bytes that are not
        // UTF-8: nearly every line has none, and pays one test here.
        if self.escaped {
            let not_utf8 = self.not_utf8_fields();
            if let Some((first, rest)) = not_utf8.split_first() {
                buf.extend_from_slice(b",\"not_utf8\":[");
                json::string(buf, first);
                for name in rest {
                    buf.push(b',');
                    json::string(buf, name);
                }
                buf.push(b']');
            }
        }
        buf.extend_from_slice(self.log_type.json_tail());
    }

    /// Every text field with its name, in the order the JSON has them.
    fn texts(&self) -> impl Iterator<Item = (&'a str, Text<'a>)> + '_ {
        let named = [
            ("ip_address", self.ip_address),
            ("ident", self.ident),
            ("remote_user", self.remote_user),
            ("method", self.method),
            ("path", self.path),
            ("protocol", self.protocol),
            ("request", self.request),
            ("referer", self.referer),
            ("user_agent", self.user_agent),
        ];
        named
            .into_iter()
            .filter_map(|(name, text)| Some((name, text?)))
            .chain(self.extra.iter().filter_map(|(name, value)| match value {
                FieldValue::Str(text) => Some((*name, *text)),
                _ => None,
            }))
    }

    /// The fields kept as logged because their escapes stand for bytes
    /// that are not UTF-8 (`crate::not_utf8`).
    pub fn not_utf8_fields(&self) -> Vec<&'a str> {
        self.texts()
            .filter(|(_, text)| !text.is_utf8())
            .map(|(name, _)| name)
            .collect()
    }
}

impl AccessFormat {
    /// Parses `line` (without its line ending) against this format.
    pub(crate) fn parse<'a>(&'a self, line: &'a str) -> Result<LogRecord<'a>, ParseError> {
        // Built where it is returned and filled in place (`fill` inlined):
        // the record is a few hundred bytes, and each move of it is a copy.
        let mut parsed = Ok(LogRecord::Access(AccessRecord::empty(self.log_type)));
        if let Ok(LogRecord::Access(record)) = &mut parsed
            && let Err(error) = self.fill(line, record)
        {
            parsed = Err(error);
        }
        parsed
    }

    /// Parses `line` into `record`, fresh from [`AccessRecord::empty`].
    #[inline(always)]
    fn fill<'a>(&'a self, line: &'a str, record: &mut AccessRecord<'a>) -> Result<(), ParseError> {
        let bytes = line.as_bytes();
        let walk = &self.walk;
        if !walk.lead.is_at(bytes, 0) {
            return Err(ParseError::at(line, 0, format!("`{}`", walk.lead.text)));
        }
        let mut at = walk.lead.len();
        for step in &walk.steps {
            let start = at;
            let (end, form) = value_end(bytes, start, step)
                .map_err(|(offset, expected)| ParseError::at(line, offset, expected))?;
            // Fields end at ASCII delimiters: always character boundaries.
            let value = line.get(start..end).unwrap_or_default();
            record.escaped |= form == Form::Escaped;
            store(record, &step.field, Text::new(value, form))
                .map_err(|(within, expected)| ParseError::at(line, start + within, expected))?;
            if let Some(within) = step.line_may_end
                && end + within == bytes.len()
                && bytes.get(end..) == step.after.text.as_bytes().get(..within)
            {
                return Ok(());
            }
            if !step.after.is_at(bytes, end) {
                return Err(ParseError::at(line, end, format!("`{}`", step.after.text)));
            }
            at = end + step.after.len();
        }
        if at != bytes.len() {
            return Err(ParseError::at(line, at, "the end of the line"));
        }
        Ok(())
    }
}

/// Where the value of `step` that starts at `start` ends, and its
/// [`Form`]: whether it holds escapes to undo or bytes JSON escapes. An
/// error is (offset, what was expected).
fn value_end(
    bytes: &[u8],
    start: usize,
    step: &Step,
) -> Result<(usize, Form), (usize, &'static str)> {
    let rest = bytes.get(start..).unwrap_or_default();
    let unquoted = |clean: bool| if clean { Form::Plain } else { Form::Unescaped };
    match step.field.delim {
        Delim::Quoted => match scan::quoted(bytes, start) {
            Some(body) => {
                let form = match (body.escaped, body.other_escapes || body.control) {
                    (false, false) => Form::Plain,
                    (false, true) => Form::Unescaped,
                    (true, false) => Form::JsonEscapes,
                    (true, true) => Form::Escaped,
                };
                Ok((body.end, form))
            }
            None => Err((start, "a closing `\"`")),
        },
        Delim::Bracketed => {
            if rest.first() != Some(&b'[') {
                return Err((start, "`[` opening the time"));
            }
            match scan::find_byte(b']', rest) {
                Some(close) => Ok((start + close + 1, Form::Unescaped)),
                None => Err((start, "`]` closing the time")),
            }
        }
        Delim::UpTo(byte) => match scan::find_byte_noting_escapes(byte, rest) {
            (Some(found), clean) => Ok((start + found, unquoted(clean))),
            (None, clean) if step.line_may_end == Some(0) => Ok((bytes.len(), unquoted(clean))),
            (None, _) => Err((start, delimiter_name(byte))),
        },
        Delim::End => Ok((bytes.len(), Form::Unescaped)),
    }
}

fn delimiter_name(byte: u8) -> &'static str {
    match byte {
        b' ' => "a space after the field",
        b'"' => "`\"` after the field",
        b']' => "`]` after the field",
        b'[' => "`[` after the field",
        b'\t' => "a tab after the field",
        b',' => "`,` after the field",
        b'|' => "`|` after the field",
        b':' => "`:` after the field",
        _ => "the separator after the field",
    }
}

/// Converts a field's text and stores it in the record. An error says
/// where in the value it stopped and what it expected.
fn store<'a>(
    record: &mut AccessRecord<'a>,
    field: &'a Field,
    text: Text<'a>,
) -> Result<(), (usize, &'static str)> {
    let value = text.as_logged();
    let at_start = |expected: &'static str| (0, expected);
    let unless_dash = || dash_or(value, |_| text);
    match field.kind {
        Kind::Client => {
            // A value that ends at a space cannot hold one: no second look.
            let may_hold_space = field.delim != Delim::UpTo(b' ');
            if value.is_empty()
                || (may_hold_space && scan::find_byte(b' ', value.as_bytes()).is_some())
            {
                return Err(at_start("a client address"));
            }
            record.ip_address = Some(text);
        }
        Kind::Ident => record.ident = unless_dash(),
        Kind::RemoteUser => record.remote_user = unless_dash(),
        Kind::TimeBracketed => {
            let inner = value
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .ok_or(at_start("a time in brackets"))?;
            record.timestamp = Some(clf(inner).map_err(|(within, what)| (within + 1, what))?);
        }
        Kind::TimeClf => record.timestamp = Some(clf(value)?),
        Kind::TimeIso => record.timestamp = Some(iso(value)?),
        Kind::Request => {
            let parts = request_line(text);
            record.method = parts.method;
            record.path = parts.path;
            record.protocol = parts.protocol;
            record.request = parts.raw;
        }
        Kind::Method => record.method = unless_dash(),
        Kind::Path => record.path = unless_dash(),
        Kind::Protocol => record.protocol = unless_dash(),
        Kind::Status => record.status_code = Some(status(value).map_err(at_start)?),
        Kind::Size => {
            record.response_size = dash_or(value, |v| number(v, "a size in bytes or `-`"))
                .transpose()
                .map_err(at_start)?;
        }
        Kind::Referer => record.referer = unless_dash(),
        Kind::UserAgent => record.user_agent = unless_dash(),
        Kind::Int => {
            let parsed = dash_or(value, |v| number(v, "a whole number or `-`"))
                .transpose()
                .map_err(at_start)?;
            record.extra.push((
                &field.name,
                parsed.map_or(FieldValue::Null, FieldValue::Int),
            ));
        }
        Kind::Float => {
            let parsed = dash_or(value, |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or("a number or `-`")
            })
            .transpose()
            .map_err(at_start)?;
            record.extra.push((
                &field.name,
                parsed.map_or(FieldValue::Null, FieldValue::Float),
            ));
        }
        Kind::Str => {
            let value = unless_dash().map_or(FieldValue::Null, FieldValue::Str);
            record.extra.push((&field.name, value));
        }
    }
    Ok(())
}
