//! Inner parsers for the values inside an access-log line: escapes in
//! quoted strings, numbers, `-`, and the request line.

use std::borrow::Cow;

/// Undoes the escapes Apache and Nginx write inside log fields:
/// `\"`, `\\`, `\n`, `\r`, `\t`, `\v`, `\b`, `\f` and `\xhh`. Bytes from
/// `\xhh` that do not form UTF-8 (a TLS handshake sent to port 80) become
/// U+FFFD; an unknown escape is kept as written.
pub(crate) fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some(pos) = memchr::memchr(b'\\', rest) {
        bytes.extend_from_slice(rest.get(..pos).unwrap_or_default());
        let after = rest.get(pos + 1..).unwrap_or_default();
        let (decoded, used): (Option<u8>, usize) = match after.first() {
            Some(b'"') => (Some(b'"'), 1),
            Some(b'\\') => (Some(b'\\'), 1),
            Some(b'n') => (Some(b'\n'), 1),
            Some(b'r') => (Some(b'\r'), 1),
            Some(b't') => (Some(b'\t'), 1),
            Some(b'v') => (Some(0x0b), 1),
            Some(b'b') => (Some(0x08), 1),
            Some(b'f') => (Some(0x0c), 1),
            Some(b'x') | Some(b'X') => match after.get(1..3).and_then(hex_byte) {
                Some(byte) => (Some(byte), 3),
                None => (None, 0),
            },
            _ => (None, 0),
        };
        match decoded {
            Some(byte) => bytes.push(byte),
            None => bytes.push(b'\\'),
        }
        rest = after.get(used..).unwrap_or_default();
    }
    bytes.extend_from_slice(rest);
    Cow::Owned(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
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
    pub(crate) method: Option<Cow<'a, str>>,
    pub(crate) path: Option<Cow<'a, str>>,
    pub(crate) protocol: Option<Cow<'a, str>>,
    /// The whole request line, set when it is not `METHOD PATH PROTOCOL`
    /// (so nothing that was logged is lost).
    pub(crate) raw: Option<Cow<'a, str>>,
}

/// Splits a request line (`%r`, `$request`), already unescaped.
///
/// - `GET /index.html HTTP/1.1` → method, path, protocol;
/// - `-` (nothing was received) → all absent;
/// - `GET /` (HTTP/0.9, or a line cut short) → method and path, no protocol,
///   and the raw line;
/// - anything else (TLS handshake bytes sent to a plain-HTTP port, a bare
///   word) → only the raw line.
///
/// A path with spaces in it (a broken client) stays whole: the method is
/// the first word, the protocol the last when it starts with `HTTP/`.
pub(crate) fn request_line(line: Cow<'_, str>) -> RequestParts<'_> {
    if line == "-" || line.is_empty() {
        return RequestParts::default();
    }
    let parts = split_request(&line);
    match parts {
        Some((method, path, Some(protocol))) => match line {
            Cow::Borrowed(text) => {
                let (m, p, v) = slices(text, method, path, protocol);
                RequestParts {
                    method: Some(Cow::Borrowed(m)),
                    path: Some(Cow::Borrowed(p)),
                    protocol: Some(Cow::Borrowed(v)),
                    raw: None,
                }
            }
            Cow::Owned(ref text) => {
                let (m, p, v) = slices(text, method, path, protocol);
                RequestParts {
                    method: Some(Cow::Owned(m.to_owned())),
                    path: Some(Cow::Owned(p.to_owned())),
                    protocol: Some(Cow::Owned(v.to_owned())),
                    raw: None,
                }
            }
        },
        Some((method, path, None)) => {
            let m = line.get(method.0..method.1).unwrap_or_default().to_owned();
            let p = line.get(path.0..path.1).unwrap_or_default().to_owned();
            RequestParts {
                method: Some(Cow::Owned(m)),
                path: Some(Cow::Owned(p)),
                protocol: None,
                raw: Some(line),
            }
        }
        None => RequestParts {
            raw: Some(line),
            ..RequestParts::default()
        },
    }
}

type Span = (usize, usize);

fn slices(text: &str, m: Span, p: Span, v: Span) -> (&str, &str, &str) {
    (
        text.get(m.0..m.1).unwrap_or_default(),
        text.get(p.0..p.1).unwrap_or_default(),
        text.get(v.0..v.1).unwrap_or_default(),
    )
}

/// Byte spans of method, path and (if present) protocol.
fn split_request(line: &str) -> Option<(Span, Span, Option<Span>)> {
    let first_space = memchr::memchr(b' ', line.as_bytes())?;
    let method = line.get(..first_space)?;
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return None;
    }
    let after_method = first_space + 1;
    let rest = line.get(after_method..)?;
    if rest.is_empty() {
        return None;
    }
    match memchr::memrchr(b' ', rest.as_bytes()) {
        Some(last_space) => {
            let protocol = rest.get(last_space + 1..)?;
            if protocol.starts_with("HTTP/") && last_space > 0 {
                let path = (after_method, after_method + last_space);
                let version = (after_method + last_space + 1, line.len());
                Some(((0, first_space), path, Some(version)))
            } else {
                // No protocol at the end: a path cut short or with spaces.
                Some(((0, first_space), (after_method, line.len()), None))
            }
        }
        None => Some(((0, first_space), (after_method, line.len()), None)),
    }
}

/// An HTTP token character (RFC 9110 `tchar`): what a method is made of.
fn is_tchar(b: u8) -> bool {
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
            (r"\xff", "\u{fffd}"),
            (r"odd \q escape", r"odd \q escape"),
            (r"\xZZ", r"\xZZ"),
            ("trailing \\", "trailing \\"),
        ];
        for (input, want) in cases {
            assert_eq!(unescape(input), want, "{input}");
        }
        assert!(matches!(unescape("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn request_line_table() {
        type Want = (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            bool,
        );
        let cases: [(&str, Want); 9] = [
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
        ];
        for (input, (method, path, protocol, raw)) in cases {
            let parts = request_line(Cow::Borrowed(input));
            assert_eq!(parts.method.as_deref(), method, "{input}");
            assert_eq!(parts.path.as_deref(), path, "{input}");
            assert_eq!(parts.protocol.as_deref(), protocol, "{input}");
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
