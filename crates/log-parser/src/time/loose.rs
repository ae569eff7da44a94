//! Times as JSON logs write them, for a record's `timestamp`: RFC 3339; ISO
//! 8601 with a space for the `T`, a comma for the decimal point, minutes
//! only, or no zone; or a count since the Unix epoch (a JSON number or a
//! string of digits) in seconds, milliseconds, microseconds or nanoseconds,
//! told apart by its magnitude.

use super::{MAX_FRACTION_DIGITS, Timestamp};

/// Epoch counts below this are seconds (1e11 s is the year 5138) ...
pub const EPOCH_SECONDS_BELOW: u128 = 100_000_000_000;
/// ... below this milliseconds (1e14 ms: also the year 5138) ...
pub const EPOCH_MILLISECONDS_BELOW: u128 = 100_000_000_000_000;
/// ... below this microseconds; nanoseconds from here on.
pub const EPOCH_MICROSECONDS_BELOW: u128 = 100_000_000_000_000_000;

/// What a JSON value holding a time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonTime {
    /// A string already in RFC 3339 form: kept as it is.
    Rfc3339,
    /// Another form, read as this time (UTC when it named no zone).
    Read(Timestamp),
}

/// Reads the raw JSON of a value as a time; `None` if it is not one of the
/// forms this module reads.
pub(crate) fn json_time(raw: &str) -> Option<JsonTime> {
    match raw.as_bytes().first()? {
        b'"' => {
            let inner = raw.get(1..raw.len().checked_sub(1)?)?;
            if inner.contains('\\') {
                let text: String = serde_json::from_str(raw).ok()?;
                string_time(&text)
            } else {
                string_time(inner)
            }
        }
        b'0'..=b'9' => epoch(raw).map(JsonTime::Read),
        _ => None,
    }
}

fn string_time(text: &str) -> Option<JsonTime> {
    if is_rfc3339(text.as_bytes()) {
        return Some(JsonTime::Rfc3339);
    }
    if text.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && let Some(time) = iso_loose(text.as_bytes())
    {
        return Some(JsonTime::Read(time));
    }
    epoch(text).map(JsonTime::Read)
}

/// Whether `text` is a time [`super::iso`] reads (RFC 3339:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`), checked in a straight line
/// without building it: nearly every JSON log line's time is one, and is
/// kept as it is.
fn is_rfc3339(text: &[u8]) -> bool {
    let Some(head) = text.get(..19) else {
        return false;
    };
    let two = |at: usize, high: u8| -> Option<u8> {
        let (a, b) = (*head.get(at)?, *head.get(at + 1)?);
        (a.is_ascii_digit() && b.is_ascii_digit())
            .then(|| (a - b'0') * 10 + (b - b'0'))
            .filter(|v| *v <= high)
    };
    let date_time = head
        .get(..4)
        .is_some_and(|y| y.iter().all(u8::is_ascii_digit))
        && head.get(4) == Some(&b'-')
        && two(5, 12).is_some_and(|m| m >= 1)
        && head.get(7) == Some(&b'-')
        && two(8, 31).is_some_and(|d| d >= 1)
        && head.get(10) == Some(&b'T')
        && two(11, 23).is_some()
        && head.get(13) == Some(&b':')
        && two(14, 59).is_some()
        && head.get(16) == Some(&b':')
        && two(17, 60).is_some();
    if !date_time {
        return false;
    }
    let mut rest = text.get(19..).unwrap_or_default();
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let digits = after_dot.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = after_dot.get(digits..).unwrap_or_default();
    }
    match rest {
        [b'Z'] => true,
        [b'+' | b'-', h0, h1, b':', m0, m1] => {
            let pair = |a: u8, b: u8, high: u8| {
                a.is_ascii_digit() && b.is_ascii_digit() && (a - b'0') * 10 + (b - b'0') <= high
            };
            pair(*h0, *h1, 23) && pair(*m0, *m1, 59)
        }
        _ => false,
    }
}

/// `YYYY-MM-DD(T|t| )HH:MM[:SS][(.|,)fraction][Z|z|±HH[:][MM]]`; UTC when
/// no zone is written.
fn iso_loose(text: &[u8]) -> Option<Timestamp> {
    let mut at = Cursor { text, at: 0 };
    let time = iso_at(&mut at, Ends::Whole)?;
    at.peek().is_none().then_some(time)
}

/// The time a plain log line starts with, for a text record's `timestamp`:
/// `YYYY-MM-DD` or `YYYY/MM/DD` (Go's `log` package), then `T` or a space,
/// `HH:MM:SS`, an optional fraction after `.` or `,` (log4j, Python's
/// `logging`), and an optional zone right after it (`Z`, `±HH:MM`,
/// `±HHMM`); it may sit in `[…]`. UTC when no zone is written. The time
/// must end the line or be followed by a byte that is not a letter or a
/// digit.
///
/// ```text
/// 2024-01-15 10:30:45,123 ERROR [main] c.e.App - Order failed
/// 2024/01/15 10:30:45 listening on :8080
/// [2024-01-15T10:30:45.123+09:00] worker.WARNING: slow
/// ```
pub(crate) fn leading_time(line: &str) -> Option<Timestamp> {
    let text = line.as_bytes();
    let mut at = Cursor {
        text,
        at: usize::from(text.first() == Some(&b'[')),
    };
    let time = iso_at(&mut at, Ends::Prefix)?;
    match at.peek() {
        Some(b) if b.is_ascii_alphanumeric() => None,
        _ => Some(time),
    }
}

/// Whether a time is the whole text or the start of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// The whole of a JSON value: minutes without seconds are allowed, and
    /// anything after the time that is not a zone fails it.
    Whole,
    /// The start of a line: seconds are required, the date may use `/`, and
    /// the time ends where a zone does not follow.
    Prefix,
}

fn iso_at(at: &mut Cursor<'_>, ends: Ends) -> Option<Timestamp> {
    let year = at.number(4)?;
    let separator = at
        .next()
        .filter(|b| *b == b'-' || (ends == Ends::Prefix && *b == b'/'))?;
    let month = at.number(2).filter(|m| (1..=12).contains(m))?;
    at.byte(separator)?;
    let day = at.number(2).filter(|d| (1..=31).contains(d))?;
    match at.next()? {
        b'T' | b't' | b' ' => {}
        _ => return None,
    }
    let hour = at.number(2).filter(|h| *h <= 23)?;
    at.byte(b':')?;
    let minute = at.number(2).filter(|m| *m <= 59)?;
    let second = if at.peek() == Some(b':') {
        at.next();
        at.number(2).filter(|s| *s <= 60)?
    } else if ends == Ends::Prefix {
        return None;
    } else {
        0
    };
    let (mut fraction, mut fraction_digits) = (0u32, 0u8);
    if matches!(at.peek(), Some(b'.' | b',')) {
        at.next();
        let mut count = 0usize;
        while let Some(digit) = at.peek().filter(u8::is_ascii_digit) {
            at.next();
            if count < MAX_FRACTION_DIGITS {
                fraction = fraction * 10 + u32::from(digit - b'0');
                fraction_digits += 1;
            }
            count += 1;
        }
        if count == 0 {
            return None;
        }
    }
    let offset_minutes = match ends {
        Ends::Whole => zone(at)?,
        // A sign not followed by an hour is the line's text, not a zone.
        Ends::Prefix => {
            let before = at.at;
            zone(at).unwrap_or_else(|| {
                at.at = before;
                0
            })
        }
    };
    Some(Timestamp {
        year: u16::try_from(year).ok()?,
        month: u8::try_from(month).ok()?,
        day: u8::try_from(day).ok()?,
        hour: u8::try_from(hour).ok()?,
        minute: u8::try_from(minute).ok()?,
        second: u8::try_from(second).ok()?,
        fraction,
        fraction_digits,
        offset_minutes,
    })
}

/// `Z`, `z`, `±HH`, `±HHMM` or `±HH:MM` at the cursor, in minutes east of
/// UTC; nothing there (the end, or another byte, left unread) is UTC.
fn zone(at: &mut Cursor<'_>) -> Option<i16> {
    match at.peek() {
        Some(b'Z' | b'z') => {
            at.next();
            Some(0)
        }
        Some(sign @ (b'+' | b'-')) => {
            at.next();
            let hours = at.number(2).filter(|h| *h <= 23)?;
            if at.peek() == Some(b':') {
                at.next();
            }
            let minutes = if at.peek().is_some_and(|b| b.is_ascii_digit()) {
                at.number(2).filter(|m| *m <= 59)?
            } else {
                0
            };
            let total = i16::try_from(hours * 60 + minutes).ok()?;
            Some(if sign == b'-' { -total } else { total })
        }
        _ => Some(0),
    }
}

/// The time now, in UTC to the millisecond: a text record's `timestamp`
/// when its line starts with no time.
pub(crate) fn now() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    from_unix_nanos(since.as_millis() * 1_000_000, 3).unwrap_or(Timestamp {
        year: 1970,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        fraction: 0,
        fraction_digits: 0,
        offset_minutes: 0,
    })
}

struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Exactly `digits` ASCII digits.
    fn number(&mut self, digits: usize) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..digits {
            let digit = self.next().filter(u8::is_ascii_digit)?;
            value = value * 10 + u32::from(digit - b'0');
        }
        Some(value)
    }
}

/// A count since the Unix epoch, `DIGITS[.DIGITS]`, in the unit its
/// magnitude says (see [`EPOCH_SECONDS_BELOW`] and the next two), as UTC.
/// Written with the unit's precision: milliseconds with three fractional
/// digits, and so on (nine at most).
fn epoch(text: &str) -> Option<Timestamp> {
    let (whole, part) = match text.split_once('.') {
        Some((whole, part)) => (whole, part),
        None => (text, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 30 || !all_digits(whole) || !all_digits(part) {
        return None;
    }
    let whole_value: u128 = whole.parse().ok()?;
    let unit_digits: u32 = if whole_value < EPOCH_SECONDS_BELOW {
        0
    } else if whole_value < EPOCH_MILLISECONDS_BELOW {
        3
    } else if whole_value < EPOCH_MICROSECONDS_BELOW {
        6
    } else {
        9
    };
    // Fractional digits past a nanosecond are dropped.
    let kept = part.len().min(9 - unit_digits as usize);
    let part = part.get(..kept).unwrap_or_default();
    let part_value: u128 = if part.is_empty() {
        0
    } else {
        part.parse().ok()?
    };
    let scale = 10u128.pow(9 - unit_digits - kept as u32);
    let nanos = whole_value
        .checked_mul(10u128.pow(9 - unit_digits))?
        .checked_add(part_value.checked_mul(scale)?)?;
    from_unix_nanos(nanos, unit_digits as usize + kept)
}

/// The UTC time `nanos` nanoseconds after the Unix epoch, written with
/// `digits` fractional digits (nine at most).
fn from_unix_nanos(nanos: u128, digits: usize) -> Option<Timestamp> {
    let seconds = i64::try_from(nanos / 1_000_000_000).ok()?;
    let sub = u32::try_from(nanos % 1_000_000_000).ok()?;
    let digits = digits.min(MAX_FRACTION_DIGITS);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    Some(Timestamp {
        year: u16::try_from(year).ok().filter(|y| *y <= 9999)?,
        month,
        day,
        hour: u8::try_from(of_day / 3600).ok()?,
        minute: u8::try_from(of_day / 60 % 60).ok()?,
        second: u8::try_from(of_day % 60).ok()?,
        fraction: sub / 10u32.pow(9 - digits as u32),
        fraction_digits: u8::try_from(digits).ok()?,
        offset_minutes: 0,
    })
}

/// The proleptic Gregorian date `days` days after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str) -> Option<String> {
        match json_time(raw)? {
            JsonTime::Rfc3339 => Some("as is".to_owned()),
            JsonTime::Read(time) => Some(time.to_string()),
        }
    }

    #[test]
    fn forms_json_logs_write() {
        let cases = [
            // Already RFC 3339: kept as it is.
            (r#""2024-01-15T10:30:45.123Z""#, Some("as is")),
            (r#""2024-01-15T19:30:45+09:00""#, Some("as is")),
            // ISO 8601 forms that are not RFC 3339.
            (
                r#""2024-01-15 10:30:45,123""#,
                Some("2024-01-15T10:30:45.123+00:00"),
            ),
            (
                r#""2024-01-15T10:30:45""#,
                Some("2024-01-15T10:30:45+00:00"),
            ),
            (r#""2024-01-15t10:30Z""#, Some("2024-01-15T10:30:00+00:00")),
            (
                r#""2024-01-15 10:30:45.5+0530""#,
                Some("2024-01-15T10:30:45.5+05:30"),
            ),
            (
                r#""2024-01-15T10:30:45-08""#,
                Some("2024-01-15T10:30:45-08:00"),
            ),
            // Epoch counts, by magnitude (the public log of issue 21).
            ("1446252053", Some("2015-10-31T00:40:53+00:00")),
            ("1446252053399", Some("2015-10-31T00:40:53.399+00:00")),
            ("1446252053399123", Some("2015-10-31T00:40:53.399123+00:00")),
            (
                "1446252053399123456",
                Some("2015-10-31T00:40:53.399123456+00:00"),
            ),
            ("1446252053.25", Some("2015-10-31T00:40:53.25+00:00")),
            (r#""1446252053399""#, Some("2015-10-31T00:40:53.399+00:00")),
            ("0", Some("1970-01-01T00:00:00+00:00")),
            // A leap year's last day.
            ("1709164800", Some("2024-02-29T00:00:00+00:00")),
            // Not times.
            (r#""yesterday""#, None),
            (r#""2024-13-01T00:00:00Z""#, None),
            (r#""2024-01-15T10:30:45 trailing""#, None),
            ("-1", None),
            ("1e12", None),
            ("null", None),
            ("{}", None),
            (r#""""#, None),
            // Past the year 9999.
            ("99999999999999999999999999", None),
        ];
        for (raw, want) in cases {
            assert_eq!(read(raw).as_deref(), want, "{raw}");
        }
    }

    /// The straight-line check says yes exactly where the RFC 3339 parser
    /// reads the whole text.
    #[test]
    fn the_rfc3339_check_agrees_with_the_parser() {
        let base = "2024-01-15T10:30:45.123+09:30";
        let mut cases: Vec<String> = vec![
            base.to_owned(),
            "2024-01-15T10:30:45Z".to_owned(),
            "2024-01-15T10:30:45.Z".to_owned(),
            "2024-01-15T10:30:45.123456789123Z".to_owned(),
            "2024-01-15T10:30:45+0930".to_owned(),
            "2024-01-15T10:30:45z".to_owned(),
            "2024-01-15T23:59:60-23:59".to_owned(),
            "2024-01-15T10:30:45".to_owned(),
            String::new(),
        ];
        // Every byte of the base replaced by each of a few others, and
        // every prefix of it.
        for at in 0..base.len() {
            for b in [
                "0", "1", "2", "3", "5", "6", "9", "T", "Z", ":", "-", "+", ".", " ",
            ] {
                let mut case = base.to_owned();
                case.replace_range(at..=at, b);
                cases.push(case);
            }
            cases.push(base.get(..at).unwrap_or_default().to_owned());
        }
        for case in cases {
            assert_eq!(
                is_rfc3339(case.as_bytes()),
                super::super::iso(&case).is_ok(),
                "{case:?}"
            );
        }
    }

    #[test]
    fn escaped_strings_are_read_unescaped() {
        assert_eq!(
            read(r#""2024-01-15\u002010:30:45""#).as_deref(),
            Some("2024-01-15T10:30:45+00:00")
        );
    }

    #[test]
    fn days_to_dates_agree_with_counting_days() {
        // Walk day by day from 1970 and compare.
        let mut date = (1970i64, 1u8, 1u8);
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        for days in 0..200_000i64 {
            assert_eq!(civil_from_days(days), date, "day {days}");
            let length = match date.1 {
                2 if leap(date.0) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            date = if date.2 < length {
                (date.0, date.1, date.2 + 1)
            } else if date.1 < 12 {
                (date.0, date.1 + 1, 1)
            } else {
                (date.0 + 1, 1, 1)
            };
        }
    }
}
