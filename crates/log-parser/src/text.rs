//! A text field as the server logged it: borrowed from the line, its escapes
//! undone only when someone asks for the value.
//!
//! Most fields hold no escapes, and of those that do, most hold only `\"`
//! and `\\` (a quote in a referer or user agent). Such text is already the
//! body of a JSON string, so the JSON writer copies it as logged; nothing is
//! decoded, allocated or escaped again for it.

use std::borrow::Cow;
use std::fmt;

use crate::field::unescape;
use crate::json;

/// A text field of an access-log record, as logged.
///
/// [`Text::decoded`] is the value (escapes undone); [`Text::as_logged`] is
/// the text between the field's delimiters. Records compare and serialize
/// by their decoded values.
///
/// ```
/// use shardline_log_parser::{LogParser, LogRecord};
///
/// let parser = LogParser::apache();
/// let line = r#"::1 - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 200 - "-" "say \"hi\"""#;
/// let LogRecord::Access(record) = parser.parse(line)? else {
///     return Err("an access-log parser makes access records".into());
/// };
/// let agent = record.user_agent().ok_or("the line has a user agent")?;
/// assert_eq!(agent.as_logged(), r#"say \"hi\""#);
/// assert_eq!(agent.decoded(), r#"say "hi""#);
/// assert_eq!(agent, r#"say "hi""#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct Text<'a> {
    logged: &'a str,
    form: Form,
}

/// What a text holds, as far as decoding it and writing it as JSON go.
/// Found while the parser looks for the field's end, at no extra pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// No escapes and nothing JSON escapes: as logged, it is the value and
    /// the body of its JSON string.
    Plain,
    /// Escapes, all of them `\"` or `\\`, and no control bytes: the value
    /// differs, but as logged it is already the body of its JSON string.
    JsonEscapes,
    /// Other escapes (`\xhh`, `\t`, an unknown one), or escapes beside
    /// control bytes: decoded, then escaped for JSON.
    Escaped,
    /// No escapes, but bytes JSON escapes (a control byte; `"` or `\` in an
    /// unquoted field): the value as logged, escaped for JSON.
    Unescaped,
}

impl<'a> Text<'a> {
    pub(crate) fn new(logged: &'a str, form: Form) -> Self {
        Text { logged, form }
    }

    /// A part of this text cut at spaces (a request line's method, path or
    /// protocol), in the whole's form. A space is never what a backslash
    /// escapes in [`Form::JsonEscapes`] text, so no `\"` or `\\` is cut in
    /// two; in the other forms, any part is decoded and escaped correctly.
    pub(crate) fn part(self, logged: &'a str) -> Self {
        Text {
            logged,
            form: self.form,
        }
    }

    /// The text between the field's delimiters, escapes and all.
    pub fn as_logged(&self) -> &'a str {
        self.logged
    }

    /// Whether the text holds escapes to undo: if not, [`Text::decoded`]
    /// borrows [`Text::as_logged`].
    pub fn is_escaped(&self) -> bool {
        matches!(self.form, Form::JsonEscapes | Form::Escaped)
    }

    /// The value: `\"`, `\\`, `\n`, `\r`, `\t`, `\v`, `\b`, `\f` and `\xhh`
    /// undone; an unknown escape is kept as written. Borrows from the line
    /// unless there was something to undo. When bytes from `\xhh` do not
    /// form UTF-8 (cp1251 in a referer, a TLS handshake sent to port 80),
    /// the value is the text as logged ([`Text::is_utf8`] is false), from
    /// which [`crate::recover_bytes`] gets the bytes back.
    pub fn decoded(&self) -> Cow<'a, str> {
        if self.is_escaped() {
            unescape(self.logged).unwrap_or(Cow::Borrowed(self.logged))
        } else {
            Cow::Borrowed(self.logged)
        }
    }

    /// Whether the value is text: false when its `\xhh` escapes stand for
    /// bytes that are not UTF-8, and the value is kept as logged.
    pub fn is_utf8(&self) -> bool {
        self.form != Form::Escaped || unescape(self.logged).is_some()
    }

    /// Appends the value as a JSON string: inline where it is a copy (the
    /// common case), out of line where it is escaped.
    #[inline(always)]
    pub(crate) fn write_json(&self, buf: &mut Vec<u8>) {
        match self.form {
            Form::Plain | Form::JsonEscapes => json::verbatim(buf, self.logged),
            Form::Unescaped | Form::Escaped => self.write_json_escaped(buf),
        }
    }

    #[inline(never)]
    fn write_json_escaped(&self, buf: &mut Vec<u8>) {
        match self.form {
            Form::Escaped => match unescape(self.logged) {
                Some(value) => json::string(buf, &value),
                None => json::string(buf, self.logged),
            },
            _ => json::string(buf, self.logged),
        }
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.decoded(), f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.decoded())
    }
}

impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        (self.logged == other.logged && self.form == other.form)
            || self.decoded() == other.decoded()
    }
}

impl Eq for Text<'_> {}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        self.decoded() == other
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.decoded() == *other
    }
}

impl serde::Serialize for Text<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.decoded())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_writes_the_json_of_its_value() {
        let cases = [
            ("plain text", Form::Plain),
            (r#"a \"quote\" and a \\ backslash"#, Form::JsonEscapes),
            (r"\x16\x03\x01 and \t and \q", Form::Escaped),
            ("a \u{1} control byte and \"", Form::Unescaped),
        ];
        for (logged, form) in cases {
            let text = Text::new(logged, form);
            let mut ours = Vec::new();
            text.write_json(&mut ours);
            let theirs = serde_json::to_vec(&text.decoded()).unwrap_or_default();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{logged}"
            );
            assert_eq!(text.is_escaped(), text.decoded() != logged, "{logged}");
        }
    }

    #[test]
    fn texts_compare_by_value() {
        let escaped = Text::new(r#"\"hi\""#, Form::JsonEscapes);
        assert_eq!(escaped, r#""hi""#);
        assert_eq!(escaped, Text::new(r"\x22hi\x22", Form::Escaped));
        assert_ne!(escaped, Text::new(r#"\"hi\""#, Form::Plain));
        assert_eq!(escaped.to_string(), r#""hi""#);
        assert_eq!(format!("{escaped:?}"), r#""\"hi\"""#);
    }
}
