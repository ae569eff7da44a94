//! Bytes that are not UTF-8, kept so that they can be had back.
//!
//! A JSON string holds text, not bytes. Where a log holds bytes that are not
//! UTF-8 — cp1251 in a referer that Apache escaped as `\xe4\xe5`, a binary
//! line in a plain text log — the record keeps them escaped, never replaced
//! by U+FFFD, and names the field under [`NOT_UTF8_KEY`]:
//!
//! - an access-log field whose `\xhh` escapes do not form UTF-8 is written
//!   **as logged**, every escape left as the server wrote it;
//! - a text log's line that is not UTF-8 is written with each byte that is
//!   not part of UTF-8 as `\xhh`, and each backslash as `\\`.
//!
//! [`recover_bytes`] undoes both, giving the original bytes back.

use crate::field::{Decoded, escape_after};

/// The key listing the fields written escaped because they held bytes that
/// are not UTF-8: `"not_utf8": ["referer"]`. Absent when there are none.
pub const NOT_UTF8_KEY: &str = "not_utf8";

/// The bytes a field named under [`NOT_UTF8_KEY`] stands for: `\xhh` is
/// the byte `hh`; `\"`, `\\`, `\n`, `\r`, `\t`, `\v`, `\b` and `\f` are
/// their characters (the escapes Apache and Nginx write); any other
/// backslash is itself.
///
/// ```
/// use shardline_log_parser::{LogParser, LogRecord, recover_bytes};
///
/// let line = r#"203.0.113.7 - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 200 12 "http://example.ru/?q=\xe4\xe5" "curl/8""#;
/// let parser = LogParser::apache();
/// let LogRecord::Access(record) = parser.parse(line)? else {
///     return Err("an access record".into());
/// };
/// let referer = record.referer().ok_or("a referer")?;
/// assert!(!referer.is_utf8());
/// assert_eq!(referer.decoded(), r"http://example.ru/?q=\xe4\xe5"); // as logged
/// assert_eq!(record.not_utf8_fields(), ["referer"]);
/// assert_eq!(recover_bytes(&referer.decoded()), b"http://example.ru/?q=\xe4\xe5");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn recover_bytes(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, after)) = rest.split_first() {
        if first != b'\\' {
            bytes.push(first);
            rest = after;
            continue;
        }
        let (decoded, used) = match escape_after(after) {
            Some((Decoded::Char(byte) | Decoded::Byte(byte), used)) => (byte, used),
            None => (b'\\', 0),
        };
        bytes.push(decoded);
        rest = after.get(used..).unwrap_or_default();
    }
    bytes
}

/// `Ok`: `bytes` are UTF-8, the text as it is. `Err`: they are not, and
/// this is them escaped: UTF-8 as it is but each backslash written `\\`,
/// each byte that is not part of UTF-8 written `\xhh`.
pub(crate) fn escape_not_utf8(bytes: &[u8]) -> Result<&str, String> {
    let first = match std::str::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(e) => e,
    };
    let mut out = String::with_capacity(bytes.len() + 16);
    let (valid, mut rest) = bytes.split_at(first.valid_up_to());
    push_escaping_backslashes(&mut out, valid);
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                push_escaping_backslashes(&mut out, text.as_bytes());
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                push_escaping_backslashes(&mut out, valid);
                let bad = e.error_len().unwrap_or(after.len());
                for byte in after.get(..bad).unwrap_or_default() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
                rest = after.get(bad..).unwrap_or_default();
            }
        }
    }
    Err(out)
}

/// Appends `valid` (UTF-8) with each backslash doubled.
fn push_escaping_backslashes(out: &mut String, valid: &[u8]) {
    let text = std::str::from_utf8(valid).unwrap_or_default();
    for (i, part) in text.split('\\').enumerate() {
        if i > 0 {
            out.push_str("\\\\");
        }
        out.push_str(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn escaped_bytes_are_recovered(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            match escape_not_utf8(&bytes) {
                Ok(text) => proptest::prop_assert_eq!(text.as_bytes(), &bytes[..]),
                Err(text) => proptest::prop_assert_eq!(recover_bytes(&text), bytes),
            }
        }
    }

    #[test]
    fn escaping_table() {
        assert_eq!(escape_not_utf8(b"plain \\ text"), Ok("plain \\ text"));
        let cases: [(&[u8], &str); 4] = [
            (b"\xff", r"\xff"),
            (b"caf\xe9 \\ \xe4\xe5", r"caf\xe9 \\ \xe4\xe5"),
            (b"\xd0\xb0\xd0", r"а\xd0"),
            (b"a\\x41\x80", r"a\\x41\x80"),
        ];
        for (bytes, want) in cases {
            assert_eq!(escape_not_utf8(bytes), Err(want.to_owned()));
            assert_eq!(recover_bytes(want), bytes);
        }
    }
}
