//! JSON written as the agent writes it (Jackson's `ObjectMapper`, compact):
//! keys in insertion order, `null` for a missing value, every value a
//! string, and Jackson's escapes — `\"`, `\\`, `\b`, `\t`, `\n`, `\f`,
//! `\r`, and `\u00XX` with upper-case hex for the other control characters;
//! everything else, non-ASCII included, as it is.

use std::fmt::Write;

/// Appends `text` as a JSON string.
pub(crate) fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0C}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An object of string (or missing) values, in the order given.
pub(crate) fn object<'a>(fields: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(&mut out, key);
        out.push(':');
        match value {
            Some(value) => write_string(&mut out, value),
            None => out.push_str("null"),
        }
    }
    out.push('}');
    out
}

/// A JSON value from the configuration, written compactly with its keys in
/// the file's order (Jackson reads a config object into an ordered map and
/// writes it back as read). Strings keep their text as written.
pub(crate) fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_jackson_s() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c\u{1}\u{1f}\t\n\r\u{8}\u{c}é/\u{7f}");
        let expected = "\"a\\\"b\\\\c\\u0001\\u001F\\t\\n\\r\\b\\fé/\u{7f}\"";
        assert_eq!(out, expected);
    }

    #[test]
    fn objects_keep_their_order_and_nulls() {
        assert_eq!(
            object([("z", Some("1")), ("a", None)]),
            r#"{"z":"1","a":null}"#
        );
    }

    #[test]
    fn config_values_are_compacted_in_file_order() {
        assert_eq!(
            compact("{ \"key\" : \"a value\", \"foo\": {\"bar\": [1, 2]} }"),
            r#"{"key":"a value","foo":{"bar":[1,2]}}"#
        );
        assert_eq!(
            compact(r#""a \" quoted { string""#),
            r#""a \" quoted { string""#
        );
    }
}
