//! Writing records as JSON straight into the caller's buffer.
//!
//! The records also implement `serde::Serialize`; this writer produces the
//! same bytes as `serde_json::to_writer` (a property test holds it to that)
//! several times faster, because it knows its keys need no escaping and
//! scans strings eight bytes at a time for the few bytes that do.

/// Appends `text` as a JSON string, escaped exactly as `serde_json` does:
/// `"` `\` and control characters; everything else, UTF-8 included, as is.
pub(crate) fn string(buf: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    let mut rest = bytes;
    while let Some(at) = first_to_escape(rest) {
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

/// The position of the first byte that needs escaping, checking eight
/// bytes at a time.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if needs_escape_word(u64::from_le_bytes(word)) {
            return chunk
                .iter()
                .position(|&b| escape_for(b).is_some())
                .map(|i| offset + i);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| escape_for(b).is_some())
        .map(|i| offset + i)
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

/// Whether any of the eight bytes is `"`, `\` or below 0x20 (SWAR: a byte
/// `b` gives a set high bit in `(b - k) & !b & 0x80` exactly when `b < k`,
/// for `k <= 0x80`, and equality is "`b ^ c` is zero").
fn needs_escape_word(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let has_quote = quote.wrapping_sub(ONES) & !quote & HIGHS;
    let has_backslash = backslash.wrapping_sub(ONES) & !backslash & HIGHS;
    (below_space | has_quote | has_backslash) != 0
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

/// Appends a string or `null`; with `verbatim`, the caller knows the text
/// holds nothing to escape and it is copied as is.
pub(crate) fn opt_string_as(buf: &mut Vec<u8>, value: Option<&str>, verbatim: bool) {
    match value {
        Some(text) if verbatim => {
            buf.reserve(text.len() + 2);
            buf.push(b'"');
            buf.extend_from_slice(text.as_bytes());
            buf.push(b'"');
        }
        _ => opt_string(buf, value),
    }
}

/// Whether any byte is a control byte (below 0x20), which JSON escapes.
/// Sixteen bytes at a time without branching, so the compiler can use
/// vector compares.
pub(crate) fn has_control_bytes(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(16);
    let mut found = false;
    for chunk in &mut chunks {
        found |= chunk.iter().fold(false, |any, &b| any | (b < 0x20));
    }
    found || chunks.remainder().iter().any(|&b| b < 0x20)
}

/// Appends a string or `null`.
pub(crate) fn opt_string(buf: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(text) => string(buf, text),
        None => buf.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_first_byte_to_escape_is_found_at_every_position_and_length() {
        for len in 0..50 {
            assert_eq!(first_to_escape(&vec![b'a'; len]), None);
            for position in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    bytes[position] = special;
                    // A later special byte does not change the answer.
                    if position + 1 < len {
                        bytes[len - 1] = b'"';
                    }
                    assert_eq!(first_to_escape(&bytes), Some(position), "{len} {position}");
                }
            }
        }
    }

    #[test]
    fn control_bytes_are_found_anywhere() {
        for len in 0..40 {
            assert!(!has_control_bytes(&vec![b' '; len]));
            for position in 0..len {
                for control in [0x00, 0x09, 0x1f] {
                    let mut bytes = vec![0x7f; len];
                    bytes[position] = control;
                    assert!(has_control_bytes(&bytes), "{len} {position}");
                }
            }
        }
    }

    #[test]
    fn swar_check_finds_every_special_byte_in_every_position() {
        for position in 0..8 {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                let mut word = [b'a'; 8];
                word[position] = special;
                assert!(needs_escape_word(u64::from_le_bytes(word)));
            }
            for plain in [b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
                let mut word = [b'a'; 8];
                word[position] = plain;
                assert!(!needs_escape_word(u64::from_le_bytes(word)), "{plain}");
            }
        }
    }
}
