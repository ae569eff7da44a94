//! Finding bytes in a line: sixteen at a time in a form the compiler
//! turns into vector compares, then the exact byte by integer arithmetic
//! on eight (SWAR: SIMD within a register).
//!
//! Most of an access line's fields are short — an address, `-`, a status —
//! and even its longest, the user agent, is about a hundred bytes. At these
//! lengths the set-up of a general vectorised search (`memchr`) costs more
//! than the search itself, and the crate uses no `unsafe` to reach vector
//! instructions directly. Two things need none: a branch-free "is any of
//! these sixteen bytes one of those" (`fold` over a `[u8; 16]`, which
//! LLVM compiles to SSE2 compares and a `pmovmskb` on x86-64), and, once a
//! chunk is known to hold one, the SWAR arithmetic below to say which.
//!
//! The arithmetic: for a byte `b` and `k <= 0x80`, the high bit of
//! `(b - k) & !b` is set when `b < k`; a byte equals `c` when `b ^ c` is
//! zero, i.e. below 1. Done on a whole word, a borrow can only run upwards
//! from a byte that is itself flagged, so the *lowest* flagged byte is
//! always exact — and the lowest is the only one used here.

/// A unit in every byte.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is zero (exact for the lowest).
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Whether JSON must escape `byte`: `"`, `\` or a control byte.
fn needs_escape(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// The high bit of each byte of `word` (little-endian) that JSON must
/// escape: `"`, `\` or below 0x20 (exact for the lowest).
fn escape_mask(word: u64) -> u64 {
    // See [`control_or_quote`]: one compare for two of the three.
    let flipped = word ^ (ONES * 0x02);
    let control_or_quote = flipped.wrapping_sub(ONES * 0x21) & !flipped & HIGHS;
    control_or_quote | zero_bytes(word ^ (ONES * u64::from(b'\\')))
}

/// Whether `byte` is a control byte or `"`. Flipping bit 1 moves `"`
/// (0x22) to 0x20 and keeps 0x00-0x1f among themselves, while every other
/// byte lands at 0x21 or above: so one compare tests both.
fn control_or_quote(byte: u8) -> bool {
    (byte ^ 0x02) < 0x21
}

/// The index of the lowest byte flagged in a mask.
fn first_flagged(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// What a search looks for, in the two forms the search needs.
trait Needle {
    /// Whether any of the sixteen bytes is one (branch-free, vectorised).
    fn any(&self, chunk: &[u8; 16]) -> bool;
    /// The SWAR mask of the bytes that are (exact for the lowest).
    fn mask(&self, word: u64) -> u64;
    fn is(&self, byte: u8) -> bool;
}

/// One byte value.
struct Byte(u8);

impl Needle for Byte {
    #[inline(always)]
    fn any(&self, chunk: &[u8; 16]) -> bool {
        chunk.iter().fold(false, |any, &b| any | (b == self.0))
    }
    fn mask(&self, word: u64) -> u64 {
        zero_bytes(word ^ (ONES * u64::from(self.0)))
    }
    fn is(&self, byte: u8) -> bool {
        byte == self.0
    }
}

/// A byte JSON must escape.
struct Escape;

impl Needle for Escape {
    #[inline(always)]
    fn any(&self, chunk: &[u8; 16]) -> bool {
        // `|`, not `||`: no branch per byte, so it vectorises.
        chunk
            .iter()
            .fold(false, |any, &b| any | control_or_quote(b) | (b == b'\\'))
    }
    fn mask(&self, word: u64) -> u64 {
        escape_mask(word)
    }
    fn is(&self, byte: u8) -> bool {
        needs_escape(byte)
    }
}

/// One byte value, or a byte JSON must escape.
struct ByteOrEscape(u8);

impl Needle for ByteOrEscape {
    #[inline(always)]
    fn any(&self, chunk: &[u8; 16]) -> bool {
        chunk.iter().fold(false, |any, &b| {
            any | (b == self.0) | control_or_quote(b) | (b == b'\\')
        })
    }
    fn mask(&self, word: u64) -> u64 {
        zero_bytes(word ^ (ONES * u64::from(self.0))) | escape_mask(word)
    }
    fn is(&self, byte: u8) -> bool {
        byte == self.0 || needs_escape(byte)
    }
}

/// The first byte of `haystack` that `needle` looks for.
#[inline(always)]
fn find(needle: &impl Needle, haystack: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(chunk) = haystack.get(at..).and_then(<[u8]>::first_chunk::<16>) {
        if needle.any(chunk) {
            return locate(needle, chunk).map(|within| at + within);
        }
        at += 16;
    }
    // Fewer than sixteen bytes are left. When the haystack is longer, look
    // at its last sixteen: the bytes among them before `at` were searched
    // already and hold none, so a find is at or after `at`. A shorter
    // haystack is read the same way as one or two words.
    let len = haystack.len();
    if let Some(start) = len.checked_sub(16) {
        let chunk = haystack.get(start..).and_then(<[u8]>::first_chunk::<16>)?;
        if !needle.any(chunk) {
            return None;
        }
        return locate(needle, chunk).map(|within| start + within);
    }
    match haystack.first_chunk::<8>() {
        Some(head) => {
            let found = needle.mask(u64::from_le_bytes(*head));
            if found != 0 {
                return Some(first_flagged(found));
            }
            let start = len - 8;
            let tail = haystack.get(start..).and_then(<[u8]>::first_chunk::<8>)?;
            let found = needle.mask(u64::from_le_bytes(*tail));
            (found != 0).then(|| start + first_flagged(found))
        }
        None => haystack.iter().position(|&b| needle.is(b)),
    }
}

/// Which byte of a chunk known to hold one the needle looks for.
#[inline(always)]
fn locate(needle: &impl Needle, chunk: &[u8; 16]) -> Option<usize> {
    let (low, high) = chunk.split_at(8);
    let low = u64::from_le_bytes(low.try_into().ok()?);
    let high = u64::from_le_bytes(high.try_into().ok()?);
    let found = needle.mask(low);
    if found != 0 {
        return Some(first_flagged(found));
    }
    let found = needle.mask(high);
    (found != 0).then(|| 8 + first_flagged(found))
}

/// The position of the first `byte` in `haystack`.
#[inline]
pub(crate) fn find_byte(byte: u8, haystack: &[u8]) -> Option<usize> {
    find(&Byte(byte), haystack)
}

/// The position of the first `byte` in `haystack` and whether the bytes
/// before it are free of any JSON must escape (found in the same pass when
/// they are).
#[inline]
pub(crate) fn find_byte_noting_escapes(byte: u8, haystack: &[u8]) -> (Option<usize>, bool) {
    match find(&ByteOrEscape(byte), haystack) {
        Some(at) if haystack.get(at) == Some(&byte) => (Some(at), true),
        Some(at) => {
            let rest = haystack.get(at..).unwrap_or_default();
            (find_byte(byte, rest).map(|found| at + found), false)
        }
        None => (None, true),
    }
}

/// The position of the first byte JSON must escape in `bytes`.
#[inline]
pub(crate) fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    find(&Escape, bytes)
}

/// The body of a quoted field: where it ends and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quoted {
    /// The position of the closing `"`.
    pub(crate) end: usize,
    /// The body holds a backslash: it has escapes to undo.
    pub(crate) escaped: bool,
    /// The body holds an escape other than `\"` and `\\` (which JSON
    /// writes the same way).
    pub(crate) other_escapes: bool,
    /// The body holds a control byte (below 0x20), which JSON escapes.
    pub(crate) control: bool,
}

/// Scans a quoted field's body from `start` (just after its opening `"`)
/// to the first `"` not escaped by a backslash.
///
/// Apache escapes `"` and `\` inside quoted fields as `\"` and `\\` (and
/// other bytes as `\xhh`); Nginx writes `\x22` and `\x5C`. So a backslash
/// escapes the byte after it, and the first other `"` closes the field.
/// `None` when nothing closes it.
pub(crate) fn quoted(bytes: &[u8], start: usize) -> Option<Quoted> {
    let mut body = Quoted {
        end: start,
        escaped: false,
        other_escapes: false,
        control: false,
    };
    let mut at = start;
    loop {
        let position = at + first_to_escape(bytes.get(at..)?)?;
        match bytes.get(position) {
            Some(b'"') => {
                body.end = position;
                return Some(body);
            }
            Some(b'\\') => {
                body.escaped = true;
                body.other_escapes |= !matches!(bytes.get(position + 1), Some(b'"' | b'\\'));
                at = position + 2;
            }
            _ => {
                body.control = true;
                at = position + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_flagged_byte_is_the_first_special_one_whatever_follows() {
        for first in 0..8 {
            for later in first + 1..8 {
                for a in 0..=255u8 {
                    for b in [0x00, 0x1f, 0x20, b'"', b'\\', b'#', 0x80, 0xff] {
                        let mut word = [b'a'; 8];
                        word[first] = a;
                        word[later] = b;
                        let want = word.iter().position(|&x| needs_escape(x));
                        let mask = escape_mask(u64::from_le_bytes(word));
                        let got = (mask != 0).then(|| first_flagged(mask));
                        assert_eq!(got, want, "{word:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn one_compare_finds_control_bytes_and_quotes() {
        for byte in 0..=255u8 {
            assert_eq!(
                control_or_quote(byte),
                byte < 0x20 || byte == b'"',
                "{byte}"
            );
        }
    }

    #[test]
    fn bytes_are_found_at_every_position_and_length() {
        for len in 0..70 {
            assert_eq!(find_byte(b' ', &vec![b'a'; len]), None);
            assert_eq!(first_to_escape(&vec![b'a'; len]), None);
            for position in 0..len {
                for byte in [b' ', b']', 0x00, 0xff] {
                    let mut bytes = vec![b'a'; len];
                    bytes[position] = byte;
                    // A later one does not change the answer.
                    bytes[len - 1] = byte;
                    assert_eq!(find_byte(byte, &bytes), Some(position), "{len} {position}");
                }
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    bytes[position] = special;
                    bytes[len - 1] = b'"';
                    assert_eq!(first_to_escape(&bytes), Some(position), "{len} {position}");
                }
            }
        }
    }

    #[test]
    fn a_byte_is_found_noting_escapes_before_it() {
        // (haystack, byte, (where it is, whether nothing before it needs escaping))
        type Case = (&'static [u8], u8, (Option<usize>, bool));
        let cases: [Case; 7] = [
            (b"203.0.113.9 - -", b' ', (Some(11), true)),
            (b"we\\ird - -", b' ', (Some(6), false)),
            (b"tab\there x", b' ', (Some(8), false)),
            (b"quote\"d x", b' ', (Some(7), false)),
            (b"up to a quote\" x", b'"', (Some(13), true)),
            (b"no delimiter", b' ', (Some(2), true)),
            (b"nodelimiter\\", b' ', (None, false)),
        ];
        for (haystack, byte, want) in cases {
            assert_eq!(
                find_byte_noting_escapes(byte, haystack),
                want,
                "{}",
                String::from_utf8_lossy(haystack)
            );
        }
        assert_eq!(find_byte_noting_escapes(b' ', b"clean"), (None, true));
    }

    #[test]
    fn quoted_bodies_end_at_the_first_unescaped_quote() {
        // (input, (end, escaped, other escapes, control) or None when nothing
        // closes it)
        type Case = (&'static [u8], Option<(usize, bool, bool, bool)>);
        let cases: [Case; 11] = [
            (br#"GET / HTTP/1.1" 200"#, Some((14, false, false, false))),
            (br#"a \"b\" c" x"#, Some((9, true, false, false))),
            (br#"ends in \\" x"#, Some((10, true, false, false))),
            (br#"" empty"#, Some((0, false, false, false))),
            (br#"\x16\x03\x01" 400"#, Some((12, true, true, false))),
            (br#"\"quote\" then \t" x"#, Some((17, true, true, false))),
            (b"tab\there\" x", Some((8, false, false, true))),
            (b"\\\"\x01\" x", Some((3, true, false, true))),
            (b"no closing quote", None),
            (br#"escaped at end \""#, None),
            (br#"a backslash last \"#, None),
        ];
        for (input, want) in cases {
            let got = quoted(input, 0).map(|q| (q.end, q.escaped, q.other_escapes, q.control));
            assert_eq!(got, want, "{}", String::from_utf8_lossy(input));
        }
        // From an offset, at every alignment.
        for pad in 0..20 {
            let mut line = vec![b'x'; pad];
            line.extend_from_slice(br#"a long body with an \" escape inside it" tail"#);
            let q = quoted(&line, pad).unwrap();
            assert_eq!((q.end - pad, q.escaped), (39, true));
        }
    }
}
