//! Writing records as JSON straight into the caller's buffer.
//!
//! The records also implement `serde::Serialize`; this writer produces the
//! same bytes as `serde_json::to_writer` (a property test holds it to that)
//! several times faster, because it knows its keys need no escaping, copies
//! text the parser saw nothing to escape in as it is, and scans other text
//! sixteen bytes at a time ([`crate::scan`]) for the few bytes that do.

use crate::scan;

/// Appends `text` as a JSON string, escaped exactly as `serde_json` does:
/// `"` `\` and control characters; everything else, UTF-8 included, as is.
pub(crate) fn string(buf: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    let mut rest = bytes;
    while let Some(at) = scan::first_to_escape(rest) {
        buf.extend_from_slice(rest.get(..at).unwrap_or_default());
        let byte = rest.get(at).copied().unwrap_or_default();
        match escape_for(byte) {
            Some(Escape::Short(short)) => buf.extend_from_slice(&[b'\\', short]),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0'));
                buf.push(HEX.get(usize::from(byte & 0xf)).copied().unwrap_or(b'0'));
            }
        }
        rest = rest.get(at + 1..).unwrap_or_default();
    }
    buf.extend_from_slice(rest);
    buf.push(b'"');
}

enum Escape {
    Short(u8),
    Unicode,
}

fn escape_for(byte: u8) -> Option<Escape> {
    match byte {
        b'"' => Some(Escape::Short(b'"')),
        b'\\' => Some(Escape::Short(b'\\')),
        b'\n' => Some(Escape::Short(b'n')),
        b'\r' => Some(Escape::Short(b'r')),
        b'\t' => Some(Escape::Short(b't')),
        0x08 => Some(Escape::Short(b'b')),
        0x0c => Some(Escape::Short(b'f')),
        0x00..=0x1f => Some(Escape::Unicode),
        _ => None,
    }
}

/// Appends an HTTP status code: three digits, written as one fixed-size
/// copy (the parser admits only 100 to 999; anything else goes the
/// general way).
pub(crate) fn status(buf: &mut Vec<u8>, code: u16) {
    if (100..=999).contains(&code) {
        let digit = |value: u16| b'0' + (value % 10) as u8;
        buf.extend_from_slice(&[digit(code / 100), digit(code / 10), digit(code)]);
    } else {
        unsigned(buf, u64::from(code));
    }
}

/// Appends an unsigned integer.
pub(crate) fn unsigned(buf: &mut Vec<u8>, value: u64) {
    let mut itoa = itoa::Buffer::new();
    buf.extend_from_slice(itoa.format(value).as_bytes());
}

/// Appends `"key":` for a key that needs no escaping (the record's own).
pub(crate) fn key(buf: &mut Vec<u8>, first: bool, key: &str) {
    if !first {
        buf.push(b',');
    }
    buf.push(b'"');
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\":");
}

/// Appends text the caller knows holds nothing JSON escapes (or only
/// escapes JSON writes the same way) as a JSON string, copied as it is.
#[inline(always)]
pub(crate) fn verbatim(buf: &mut Vec<u8>, text: &str) {
    buf.reserve(text.len() + 2);
    buf.push(b'"');
    buf.extend_from_slice(text.as_bytes());
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_match_serde_json() {
        for code in [0, 7, 42, 100, 200, 404, 999, 1000, u16::MAX] {
            let mut ours = Vec::new();
            status(&mut ours, code);
            assert_eq!(ours, serde_json::to_vec(&code).unwrap(), "{code}");
        }
    }

    #[test]
    fn strings_match_serde_json() {
        let cases = [
            "",
            "plain ascii that is longer than eight bytes",
            "quote \" and backslash \\ inside",
            "\u{0}\u{1}\u{8}\u{c}\n\r\t\u{1f}\u{7f}",
            "é € 😀 and \"unicode\"",
            "12345678\"",
            "1234567\\",
            "\u{16}\u{3}\u{1}",
        ];
        for text in cases {
            let mut ours = Vec::new();
            string(&mut ours, text);
            let theirs = serde_json::to_vec(text).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{text:?}"
            );
        }
    }
}
