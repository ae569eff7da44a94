//! Inner parsers for the values inside an access-log line: escapes in
//! quoted strings, numbers, `-`, and the request line.

use std::borrow::Cow;

use crate::scan;
use crate::text::Text;

/// Undoes the escapes Apache and Nginx write inside log fields:
/// `\"`, `\\`, `\n`, `\r`, `\t`, `\v`, `\b`, `\f` and `\xhh`; an unknown
/// escape is kept as written. `None` when bytes from `\xhh` do not form
/// UTF-8 (cp1251 in a referer, a TLS handshake sent to port 80): the text
/// cannot hold them, and the caller keeps the field as logged, from which
/// [`crate::recover_bytes`] gets them back.
///
/// The text between escapes is already UTF-8 and is copied as it is; only
/// each run of `\xhh` bytes is decoded (a run cannot combine with the text
/// around it: that text starts and ends on whole characters).
pub(crate) fn unescape(raw: &str) -> Option<Cow<'_, str>> {
    let bytes = raw.as_bytes();
    let Some(mut backslash) = scan::find_byte(b'\\', bytes) else {
        return Some(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    // Bytes from a run of `\xhh` escapes, decoded when the run ends.
    let mut run: Vec<u8> = Vec::new();
    let mut copied_to = 0;
    loop {
        if backslash > copied_to {
            flush_run(&mut out, &mut run)?;
            out.push_str(raw.get(copied_to..backslash).unwrap_or_default());
        }
        let after = bytes.get(backslash + 1..).unwrap_or_default();
        let used = match escape_after(after) {
            Some((Decoded::Byte(byte), used)) => {
                run.push(byte);
                used
            }
            Some((Decoded::Char(c), used)) => {
                flush_run(&mut out, &mut run)?;
                out.push(char::from(c));
                used
            }
            None => {
                flush_run(&mut out, &mut run)?;
                out.push('\\');
                0
            }
        };
        copied_to = backslash + 1 + used;
        match bytes
            .get(copied_to..)
            .and_then(|rest| scan::find_byte(b'\\', rest))
        {
            Some(next) => backslash = copied_to + next,
            None => break,
        }
    }
    flush_run(&mut out, &mut run)?;
    out.push_str(raw.get(copied_to..).unwrap_or_default());
    Some(Cow::Owned(out))
}

/// What the escape after a backslash stands for (the bytes after it are
/// `after`), and how many of those bytes it takes; `None` when they start
/// no escape, and the backslash stands for itself.
pub(crate) fn escape_after(after: &[u8]) -> Option<(Decoded, usize)> {
    let short = |c: u8| Some((Decoded::Char(c), 1));
    match after.first()? {
        b'"' => short(b'"'),
        b'\\' => short(b'\\'),
        b'n' => short(b'\n'),
        b'r' => short(b'\r'),
        b't' => short(b'\t'),
        b'v' => short(0x0b),
        b'b' => short(0x08),
        b'f' => short(0x0c),
        b'x' | b'X' => after
            .get(1..3)
            .and_then(hex_byte)
            .map(|byte| (Decoded::Byte(byte), 3)),
        _ => None,
    }
}

/// What one escape stands for.
pub(crate) enum Decoded {
    /// An ASCII character (`\"`, `\n`, …).
    Char(u8),
    /// A byte (`\xhh`), part of a run decoded as UTF-8.
    Byte(u8),
}

/// Appends a run of `\xhh` bytes as text; `None` if they are not UTF-8.
fn flush_run(out: &mut String, run: &mut Vec<u8>) -> Option<()> {
    if !run.is_empty() {
        out.push_str(std::str::from_utf8(run).ok()?);
        run.clear();
    }
    Some(())
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(pair).ok()?;
    u8::from_str_radix(text, 16).ok()
}

/// `None` for the `-` a server logs for "no value".
pub(crate) fn dash_or<'v, T>(value: &'v str, f: impl FnOnce(&'v str) -> T) -> Option<T> {
    (!matches!(value.as_bytes(), [b'-'])).then(|| f(value))
}

/// A decimal number that fits in `u64`.
pub(crate) fn number(input: &str, what: &'static str) -> Result<u64, &'static str> {
    if input.is_empty() || !input.bytes().all(|b| b.is_ascii_digit()) {
        return Err(what);
    }
    input.parse().map_err(|_| what)
}

/// An HTTP status code: three digits, 100 to 999.
pub(crate) fn status(input: &str) -> Result<u16, &'static str> {
    const WHAT: &str = "a three-digit status code";
    let bytes = input.as_bytes();
    if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_digit) || bytes.first() == Some(&b'0') {
        return Err(WHAT);
    }
    input.parse().map_err(|_| WHAT)
}

/// The parts of a request line, as far as they could be made out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestParts<'a> {
    pub(crate) method: Option<Text<'a>>,
    pub(crate) path: Option<Text<'a>>,
    pub(crate) protocol: Option<Text<'a>>,
    /// The whole request line, set when it is not `METHOD PATH PROTOCOL`
    /// (so nothing that was logged is lost).
    pub(crate) raw: Option<Text<'a>>,
}

/// Splits a request line (`%r`, `$request`) at its spaces as logged: the
/// servers escape no space, so these are the request's own.
///
/// - `GET /index.html HTTP/1.1` → method, path, protocol;
/// - `-` (nothing was received) → all absent;
/// - `GET /` (HTTP/0.9, or a line cut short) → method and path, no protocol,
///   and the raw line;
/// - anything else (TLS handshake bytes sent to a plain-HTTP port, a bare
///   word, a method with escapes in it) → only the raw line.
///
/// A path with spaces in it (a broken client) stays whole: the method is
/// the first word, the protocol the last when it starts with `HTTP/`.
pub(crate) fn request_line(line: Text<'_>) -> RequestParts<'_> {
    let logged = line.as_logged();
    if logged == "-" || logged.is_empty() {
        return RequestParts::default();
    }
    match split_request(logged) {
        Some((method, path, protocol)) => RequestParts {
            method: Some(line.part(method)),
            path: Some(line.part(path)),
            protocol: protocol.map(|protocol| line.part(protocol)),
            raw: protocol.is_none().then_some(line),
        },
        None => RequestParts {
            raw: Some(line),
            ..RequestParts::default()
        },
    }
}

/// Method, path and (if present) protocol.
#[inline(always)]
fn split_request(line: &str) -> Option<(&str, &str, Option<&str>)> {
    let first_space = scan::find_byte(b' ', line.as_bytes())?;
    let method = line.get(..first_space)?;
    let token = method.bytes().fold(true, |all, b| all & is_tchar(b));
    if method.is_empty() || !token {
        return None;
    }
    let rest = line.get(first_space + 1..)?;
    if rest.is_empty() {
        return None;
    }
    if let Some(last_space) = last_space(rest.as_bytes())
        && last_space > 0
        && let Some(protocol) = rest.get(last_space + 1..)
        && protocol.starts_with("HTTP/")
    {
        return Some((method, rest.get(..last_space)?, Some(protocol)));
    }
    // No protocol at the end: a path cut short or with spaces.
    Some((method, rest, None))
}

/// The last space in `bytes`. Nearly every request line ends in
/// ` HTTP/1.1` or ` HTTP/2.0`, checked in place; others are searched.
fn last_space(bytes: &[u8]) -> Option<usize> {
    const VERSION_LEN: usize = "HTTP/1.1".len();
    if let Some(at) = bytes.len().checked_sub(VERSION_LEN + 1)
        && bytes.get(at) == Some(&b' ')
        && let Some(version) = bytes.get(at + 1..)
        && !version.iter().fold(false, |any, &b| any | (b == b' '))
    {
        return Some(at);
    }
    memchr::memrchr(b' ', bytes)
}

/// An HTTP token character (RFC 9110 `tchar`): what a method is made of.
fn is_tchar(b: u8) -> bool {
    TCHAR.get(usize::from(b)).copied().unwrap_or(false)
}

/// [`is_tchar_slow`] for every byte, looked up rather than compared.
#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of range fails the build, never a run"
)]
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = is_tchar_slow(byte as u8);
        byte += 1;
    }
    table
};

/// The `tchar` rule as written in RFC 9110.
const fn is_tchar_slow(b: u8) -> bool {
    matches!(
        b,
        b'0'..=b'9'
            | b'a'..=b'z'
            | b'A'..=b'Z'
            | b'!'
            | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Form;
    use proptest::strategy::Strategy;

    /// Unescaping as first written: every escape decoded into one byte
    /// buffer, then the whole decoded as UTF-8.
    fn unescape_whole(raw: &str) -> Option<String> {
        String::from_utf8(crate::recover_bytes(raw)).ok()
    }

    proptest::proptest! {
        #[test]
        fn unescaping_runs_is_unescaping_the_whole(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    "[a-z /?=&\\\\]{0,6}",
                    proptest::string::string_regex("[éж😀]{1,2}").unwrap(),
                    // A backslash and any of the escape letters, or others.
                    r#"\\["\\nrtvbfxXq]"#,
                    proptest::strategy::Just(r"\xZZ".to_owned()),
                    (0u8..=255).prop_map(|b| format!(r"\x{b:02x}")),
                    proptest::strategy::Just(r"\xd0\xb0".to_owned()),
                    proptest::strategy::Just(r"\xe2\x82".to_owned()),
                ],
                0..12,
            ),
            trailing_backslash in proptest::bool::ANY,
        ) {
            let mut raw = parts.concat();
            if trailing_backslash {
                raw.push('\\');
            }
            proptest::prop_assert_eq!(unescape(&raw).map(Cow::into_owned), unescape_whole(&raw));
        }
    }

    #[test]
    fn unescape_table() {
        let cases = [
            ("plain", "plain"),
            (r#"say \"hi\""#, r#"say "hi""#),
            (r"back\\slash", r"back\slash"),
            (r"\x22quoted\x22", "\"quoted\""),
            (r"tab\there", "tab\there"),
            (r"\xd0\xb0", "а"),
            (r"\x16\x03\x01", "\u{16}\u{3}\u{1}"),
            (r"odd \q escape", r"odd \q escape"),
            (r"\xZZ", r"\xZZ"),
            ("trailing \\", "trailing \\"),
        ];
        for (input, want) in cases {
            assert_eq!(unescape(input).as_deref(), Some(want), "{input}");
        }
        assert!(matches!(unescape("plain"), Some(Cow::Borrowed(_))));
        // Bytes that are not UTF-8: no text holds them.
        for input in [r"\xff", r"ref \xe4\xe5 ok", r"\xd0", r"\xd0\x22"] {
            assert_eq!(unescape(input), None, "{input}");
        }
    }

    #[test]
    fn request_line_table() {
        type Want = (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            bool,
        );
        let cases: [(&str, Want); 11] = [
            (
                "GET /index.html HTTP/1.1",
                (Some("GET"), Some("/index.html"), Some("HTTP/1.1"), false),
            ),
            (
                "POST /api?a=1&b=2 HTTP/2.0",
                (Some("POST"), Some("/api?a=1&b=2"), Some("HTTP/2.0"), false),
            ),
            (
                "PROPFIND /dav/ HTTP/1.1",
                (Some("PROPFIND"), Some("/dav/"), Some("HTTP/1.1"), false),
            ),
            (
                "GET /a path with spaces HTTP/1.0",
                (
                    Some("GET"),
                    Some("/a path with spaces"),
                    Some("HTTP/1.0"),
                    false,
                ),
            ),
            ("GET /", (Some("GET"), Some("/"), None, true)),
            (
                "GET /truncated-because-too-lo",
                (Some("GET"), Some("/truncated-because-too-lo"), None, true),
            ),
            ("-", (None, None, None, false)),
            ("\u{16}\u{3}\u{1}\u{0}", (None, None, None, true)),
            ("hello", (None, None, None, true)),
            // Split at spaces as logged: an escaped one is not one.
            (r"GET\x20/a HTTP/1.1", (None, None, None, true)),
            (
                r"GET /a\x20b HTTP/1.1",
                (Some("GET"), Some(r"/a\x20b"), Some("HTTP/1.1"), false),
            ),
        ];
        for (input, (method, path, protocol, raw)) in cases {
            let parts = request_line(Text::new(input, Form::Escaped));
            let logged = |text: Option<Text<'static>>| text.map(|t| t.as_logged());
            assert_eq!(logged(parts.method), method, "{input}");
            assert_eq!(logged(parts.path), path, "{input}");
            assert_eq!(logged(parts.protocol), protocol, "{input}");
            assert_eq!(parts.raw.is_some(), raw, "{input}");
        }
    }

    #[test]
    fn status_and_numbers() {
        assert_eq!(status("200"), Ok(200));
        assert!(status("20").is_err());
        assert!(status("2000").is_err());
        assert!(status("099").is_err());
        assert!(status("-").is_err());
        assert_eq!(number("1234", "n"), Ok(1234));
        assert!(number("", "n").is_err());
        assert!(number("+1", "n").is_err());
        assert!(number("99999999999999999999999", "n").is_err());
        assert_eq!(dash_or("-", str::len), None);
        assert_eq!(dash_or("abc", str::len), Some(3));
    }
}
