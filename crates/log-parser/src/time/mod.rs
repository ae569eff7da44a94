//! Log timestamps: Apache/Nginx `[15/Jan/2024:10:30:45 +0000]` and ISO 8601,
//! written out as RFC 3339 with the log's own offset.

use std::fmt;

use nom::Parser;
use nom::bytes::complete::take;
use nom::character::complete::char;

use crate::nom_error::{PResult, expecting, fail};

mod fixed;
pub(crate) mod loose;

use fixed::{CLF_LEN, ISO_LEN, clf_fixed, iso_fixed};

/// A wall-clock time with the UTC offset the log wrote it in.
///
/// Kept as the log wrote it — never converted to UTC — and serialized as
/// RFC 3339, e.g. `2024-01-15T10:30:45+00:00` or
/// `2024-01-15T19:30:45.120+09:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// The year.
    pub year: u16,
    /// The month, 1 to 12.
    pub month: u8,
    /// The day of the month, 1 to 31.
    pub day: u8,
    /// The hour, 0 to 23.
    pub hour: u8,
    /// The minute, 0 to 59.
    pub minute: u8,
    /// The second, 0 to 60 (a leap second).
    pub second: u8,
    /// Fractional seconds as logged: `fraction` in units of
    /// 10^-`fraction_digits` s (0 digits: none logged).
    pub fraction: u32,
    /// How many digits the fraction had.
    pub fraction_digits: u8,
    /// Minutes east of UTC.
    pub offset_minutes: i16,
}

/// The longest RFC 3339 form written: `YYYY-MM-DDTHH:MM:SS.fffffffff+HH:MM`.
const RFC3339_MAX: usize = 35;
/// Fractional digits kept (nanoseconds).
const MAX_FRACTION_DIGITS: usize = 9;

impl Timestamp {
    /// Writes the RFC 3339 form into `buf` and returns it.
    pub fn write_rfc3339<'b>(&self, buf: &'b mut [u8; RFC3339_MAX]) -> &'b str {
        let len = self.rfc3339_bytes(buf).len();
        // Only ASCII digits and punctuation were written.
        std::str::from_utf8(buf.get(..len).unwrap_or_default()).unwrap_or_default()
    }

    /// The RFC 3339 form as ASCII bytes written into `buf`: whole fixed
    /// parts at a time rather than byte by byte (this is on every access
    /// line's path to JSON).
    fn rfc3339_bytes<'b>(&self, buf: &'b mut [u8; RFC3339_MAX]) -> &'b [u8] {
        let (date_time, rest) = buf.split_at_mut(DATE_TIME_LEN);
        date_time.copy_from_slice(&self.date_time());
        let mut len = DATE_TIME_LEN;
        let digits = usize::from(self.fraction_digits).min(MAX_FRACTION_DIGITS);
        if digits > 0
            && let Some((dot, fraction)) = rest
                .get_mut(..=digits)
                .and_then(|part| part.split_first_mut())
        {
            *dot = b'.';
            let mut value = self.fraction;
            for slot in fraction.iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
            len += 1 + digits;
        }
        let zone = self.zone();
        if let Some(slot) = buf.get_mut(len..len + zone.len()) {
            slot.copy_from_slice(&zone);
            len += zone.len();
        }
        buf.get(..len).unwrap_or_default()
    }

    /// Appends the RFC 3339 form as a JSON string. A time without
    /// fractional seconds — every Apache and Nginx `[…]` time — is one
    /// fixed-size write.
    pub(crate) fn write_json(&self, buf: &mut Vec<u8>) {
        if self.fraction_digits == 0 {
            let mut text = [b'"'; DATE_TIME_LEN + ZONE_LEN + 2];
            let (date_time, rest) = text.split_at_mut(1 + DATE_TIME_LEN);
            date_time
                .get_mut(1..)
                .unwrap_or_default()
                .copy_from_slice(&self.date_time());
            rest.get_mut(..ZONE_LEN)
                .unwrap_or_default()
                .copy_from_slice(&self.zone());
            buf.extend_from_slice(&text);
        } else {
            let mut text = [0u8; RFC3339_MAX];
            buf.push(b'"');
            buf.extend_from_slice(self.rfc3339_bytes(&mut text));
            buf.push(b'"');
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS`, a digit pair at a time.
    fn date_time(&self) -> [u8; DATE_TIME_LEN] {
        let [year0, year1] = two_digits_ascii((self.year / 100 % 100) as u8);
        let [year2, year3] = two_digits_ascii((self.year % 100) as u8);
        let [month0, month1] = two_digits_ascii(self.month);
        let [day0, day1] = two_digits_ascii(self.day);
        let [hour0, hour1] = two_digits_ascii(self.hour);
        let [minute0, minute1] = two_digits_ascii(self.minute);
        let [second0, second1] = two_digits_ascii(self.second);
        [
            year0, year1, year2, year3, b'-', month0, month1, b'-', day0, day1, b'T', hour0, hour1,
            b':', minute0, minute1, b':', second0, second1,
        ]
    }

    /// `+HH:MM` or `-HH:MM`.
    fn zone(&self) -> [u8; ZONE_LEN] {
        let offset = self.offset_minutes;
        let abs = offset.unsigned_abs();
        let [hour0, hour1] = two_digits_ascii((abs / 60 % 100) as u8);
        let [minute0, minute1] = two_digits_ascii((abs % 60) as u8);
        let sign = if offset < 0 { b'-' } else { b'+' };
        [sign, hour0, hour1, b':', minute0, minute1]
    }
}

/// `+HH:MM`.
const ZONE_LEN: usize = 6;

/// `YYYY-MM-DDTHH:MM:SS`.
const DATE_TIME_LEN: usize = 19;

/// The last two decimal digits of `value` in ASCII.
fn two_digits_ascii(value: u8) -> [u8; 2] {
    DIGIT_PAIRS
        .get(usize::from(value % 100))
        .copied()
        .unwrap_or([b'0'; 2])
}

/// `00` to `99` in ASCII: one load for two digits.
#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of range fails the build, never a run"
)]
const DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0u8; 2]; 100];
    let mut value = 0;
    while value < 100 {
        pairs[value] = [b'0' + (value / 10) as u8, b'0' + (value % 10) as u8];
        value += 1;
    }
    pairs
};

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; RFC3339_MAX];
        f.write_str(self.write_rfc3339(&mut buf))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; RFC3339_MAX];
        serializer.serialize_str(self.write_rfc3339(&mut buf))
    }
}

/// Exactly `n` ASCII digits as a number.
fn digits(n: usize) -> impl FnMut(&str) -> PResult<'_, u32> {
    move |input: &str| {
        let (rest, text) = take(n).parse(input)?;
        let mut value = 0u32;
        for b in text.bytes() {
            if !b.is_ascii_digit() {
                return fail(input, "a digit");
            }
            value = value * 10 + u32::from(b - b'0');
        }
        Ok((rest, value))
    }
}

fn in_range(value: u32, low: u32, high: u32) -> Option<u8> {
    (low..=high)
        .contains(&value)
        .then(|| u8::try_from(value).ok())
        .flatten()
}

/// A bounded two-digit field.
fn two_digits<'a>(
    low: u32,
    high: u32,
    what: &'static str,
) -> impl FnMut(&'a str) -> PResult<'a, u8> {
    move |input: &'a str| {
        let (rest, value) = digits(2)(input)?;
        match in_range(value, low, high) {
            Some(v) => Ok((rest, v)),
            None => fail(input, what),
        }
    }
}

/// An English three-letter month abbreviation, as `%t` and `$time_local`
/// write it whatever the server's locale.
pub(crate) fn month_name(input: &str) -> PResult<'_, u8> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let bytes = input.as_bytes();
    let Some(name) = bytes.get(..3) else {
        return fail(input, "a month name (Jan..Dec)");
    };
    match MONTHS.iter().position(|m| m.as_slice() == name) {
        Some(index) => {
            let month = u8::try_from(index + 1).unwrap_or(1);
            Ok((input.get(3..).unwrap_or_default(), month))
        }
        None => fail(input, "a month name (Jan..Dec)"),
    }
}

/// A numeric UTC offset `+hhmm` / `-hhmm`, or with `colon`, `+hh:mm`.
fn offset(colon: bool) -> impl FnMut(&str) -> PResult<'_, i16> {
    move |input: &str| {
        let sign: i16 = match input.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return fail(input, "a UTC offset (+hhmm)"),
        };
        let rest = input.get(1..).unwrap_or_default();
        let (rest, hours) = expecting("offset hours (00-23)", two_digits(0, 23, ""))(rest)?;
        let rest = if colon {
            char(':').parse(rest)?.0
        } else {
            rest
        };
        let (rest, minutes) = expecting("offset minutes (00-59)", two_digits(0, 59, ""))(rest)?;
        Ok((rest, sign * (i16::from(hours) * 60 + i16::from(minutes))))
    }
}

/// Common Log Format time that is the whole of `value`:
/// `15/Jan/2024:10:30:45 +0000` (no brackets). An error is the offset in
/// `value` where it went wrong and what was expected there.
///
/// Every such time is 26 bytes in one fixed layout, read by
/// [`clf_fixed`]; anything else goes to the combinator parser
/// [`clf_checked`], which says what is wrong and where.
pub(crate) fn clf(value: &str) -> Result<Timestamp, (usize, &'static str)> {
    fixed_or_whole(value, CLF_LEN, clf_fixed, clf_checked)
}

/// ISO 8601 time that is the whole of `value`, as Nginx's `$time_iso8601`
/// writes it (`2024-01-15T10:30:45+09:00`) or with fractional seconds or
/// `Z`. An error is the offset in `value` where it went wrong and what was
/// expected there.
///
/// Nginx always writes the 25-byte form, read by [`iso_fixed`]; anything
/// else goes to the combinator parser [`iso8601`].
pub(crate) fn iso(value: &str) -> Result<Timestamp, (usize, &'static str)> {
    fixed_or_whole(value, ISO_LEN, iso_fixed, iso8601)
}

/// A time of one fixed layout `len` bytes long, read by the straight-line
/// `fixed`; any other value goes to the combinator parser `checked`, which
/// reads the other forms or says what is wrong. Unit and property tests
/// hold each pair to the same answers.
#[inline(always)]
fn fixed_or_whole(
    value: &str,
    len: usize,
    fixed: impl Fn(&[u8]) -> Option<Timestamp>,
    checked: fn(&str) -> PResult<'_, Timestamp>,
) -> Result<Timestamp, (usize, &'static str)> {
    match fixed(value.as_bytes()) {
        Some(timestamp) if value.len() == len => Ok(timestamp),
        _ => whole(checked, value),
    }
}

/// Runs a time parser that must consume the whole value; an error carries
/// the offset in `value` where it stopped and what was expected there.
/// Out of line: the fixed layouts read nearly every time.
#[cold]
#[inline(never)]
fn whole(
    parser: fn(&str) -> PResult<'_, Timestamp>,
    value: &str,
) -> Result<Timestamp, (usize, &'static str)> {
    match parser(value) {
        Ok(("", timestamp)) => Ok(timestamp),
        Ok((rest, _)) => Err((value.len() - rest.len(), "the end of the time")),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
            Err((value.len() - e.input.len(), e.expected))
        }
        Err(nom::Err::Incomplete(_)) => Err((value.len(), "a complete time")),
    }
}

/// The combinator parser for CLF time, used when the fixed layout does not
/// match: it reads the same times and reports the first thing it did not
/// expect.
fn clf_checked(input: &str) -> PResult<'_, Timestamp> {
    let (rest, day) = two_digits(1, 31, "a day (01-31)")(input)?;
    let (rest, _) = expecting("`/`", char('/')).parse(rest)?;
    let (rest, month) = month_name(rest)?;
    let (rest, _) = expecting("`/`", char('/')).parse(rest)?;
    let (rest, year) = expecting("a four-digit year", digits(4))(rest)?;
    let (rest, _) = expecting("`:`", char(':')).parse(rest)?;
    let (rest, (hour, minute, second)) = clock(rest)?;
    let (rest, _) = expecting("a space before the offset", char(' ')).parse(rest)?;
    let (rest, offset_minutes) = offset(false)(rest)?;
    Ok((
        rest,
        Timestamp {
            year: u16::try_from(year).unwrap_or_default(),
            month,
            day,
            hour,
            minute,
            second,
            fraction: 0,
            fraction_digits: 0,
            offset_minutes,
        },
    ))
}

/// `HH:MM:SS` (a leap second `60` allowed).
pub(crate) fn clock(input: &str) -> PResult<'_, (u8, u8, u8)> {
    let (rest, hour) = two_digits(0, 23, "an hour (00-23)")(input)?;
    let (rest, _) = expecting("`:`", char(':')).parse(rest)?;
    let (rest, minute) = two_digits(0, 59, "minutes (00-59)")(rest)?;
    let (rest, _) = expecting("`:`", char(':')).parse(rest)?;
    let (rest, second) = two_digits(0, 60, "seconds (00-60)")(rest)?;
    Ok((rest, (hour, minute, second)))
}

/// ISO 8601 / RFC 3339 time as Nginx's `$time_iso8601` writes it:
/// `2024-01-15T10:30:45+00:00`, also with fractional seconds or `Z`.
pub(crate) fn iso8601(input: &str) -> PResult<'_, Timestamp> {
    let (rest, year) = expecting("a four-digit year", digits(4))(input)?;
    let (rest, _) = expecting("`-`", char('-')).parse(rest)?;
    let (rest, month) = two_digits(1, 12, "a month (01-12)")(rest)?;
    let (rest, _) = expecting("`-`", char('-')).parse(rest)?;
    let (rest, day) = two_digits(1, 31, "a day (01-31)")(rest)?;
    let (rest, _) = expecting("`T`", char('T')).parse(rest)?;
    let (rest, (hour, minute, second)) = clock(rest)?;
    let (rest, fraction, fraction_digits) = match rest.strip_prefix('.') {
        Some(after_dot) => {
            let count = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            if count == 0 {
                return fail(after_dot, "fractional seconds");
            }
            let kept = count.min(MAX_FRACTION_DIGITS);
            let (_, value) = digits(kept)(after_dot)?;
            let digits = u8::try_from(kept).unwrap_or_default();
            (after_dot.get(count..).unwrap_or_default(), value, digits)
        }
        None => (rest, 0, 0),
    };
    let (rest, offset_minutes) = match rest.strip_prefix('Z') {
        Some(after) => (after, 0),
        None => offset(true)(rest)?,
    };
    Ok((
        rest,
        Timestamp {
            year: u16::try_from(year).unwrap_or_default(),
            month,
            day,
            hour,
            minute,
            second,
            fraction,
            fraction_digits,
            offset_minutes,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_table() {
        let cases = [
            ("15/Jan/2024:10:30:45 +0000", "2024-01-15T10:30:45+00:00"),
            ("26/May/2024:10:30:45 +0900", "2024-05-26T10:30:45+09:00"),
            ("01/Dec/1999:23:59:60 -0530", "1999-12-01T23:59:60-05:30"),
        ];
        for (input, want) in cases {
            let ts = clf(input).unwrap();
            assert_eq!(ts.to_string(), want, "{input}");
        }
    }

    #[test]
    fn fast_and_checked_clf_agree() {
        let cases = [
            "15/Jan/2024:10:30:45 +0000",
            "01/Dec/1999:23:59:60 -0530",
            "31/Feb/2024:00:00:00 +2359",
            "15/Jan/2024:10:30:45 +0000] \"GET",
            "15/jan/2024:10:30:45 +0000",
            "00/Jan/2024:10:30:45 +0000",
            "15/Jan/2024:10:30:45 *0000",
            "15/Jan/2024:10:3a:45 +0000",
            "15/Jan/2024:10:30:45 +0060",
            "15/Jan/2024:10:30:45 +000",
        ];
        for input in cases {
            let fast = clf_fixed(input.as_bytes());
            let checked = clf_checked(input).ok().map(|(_, ts)| ts);
            assert_eq!(fast, checked, "{input}");
        }
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_is_written_as_format_would(
            year in 0u16..=9999, month in 1u8..=12, day in 1u8..=31,
            hour in 0u8..=23, minute in 0u8..=59, second in 0u8..=60,
            fraction_digits in 0u8..=12, fraction in 0u32..1_000_000_000,
            offset_minutes in -1439i16..=1439,
        ) {
            let digits = u32::from(fraction_digits.min(9));
            let fraction = fraction % 10u32.pow(digits);
            let ts = Timestamp {
                year, month, day, hour, minute, second, fraction, fraction_digits, offset_minutes,
            };
            let sign = if offset_minutes < 0 { '-' } else { '+' };
            let abs = offset_minutes.unsigned_abs();
            let fraction_text = if digits == 0 {
                String::new()
            } else {
                format!(".{fraction:0width$}", width = digits as usize)
            };
            let want = format!(
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction_text}{sign}{:02}:{:02}",
                abs / 60,
                abs % 60
            );
            proptest::prop_assert_eq!(ts.to_string(), want);
        }

        #[test]
        fn fast_and_checked_clf_agree_on_near_misses(
            input in "[0-3/][0-9:]/(Jan|Feb|Dec|jan|Foo)/[0-9]{3}[0-9/:a ]:[0-9]{2}:[0-9][0-9/:]:[0-9]{2} [-+*][0-9]{3}[0-9/:]{1,2}.{0,3}"
        ) {
            let fast = clf_fixed(input.as_bytes());
            let checked = clf_checked(&input).ok().map(|(_, ts)| ts);
            proptest::prop_assert_eq!(fast, checked);
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_and_checked_iso_agree_on_near_misses(
            year in 0u16..=9999, month in 0u8..=13, day in 0u8..=32,
            hour in 0u8..=25, minute in 0u8..=61, second in 0u8..=61,
            sign in "[-+*Z]", offset_hours in 0u8..=24, offset_minutes in 0u8..=60,
            damage in proptest::option::of((0usize..25, "[-+:T 0-9a.Z]")),
        ) {
            let mut input = format!(
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}\
                 {sign}{offset_hours:02}:{offset_minutes:02}"
            );
            if let Some((at, with)) = damage {
                input.replace_range(at..=at, &with);
            }
            if let Some(fast) = iso_fixed(input.as_bytes()) {
                let checked = iso8601(&input).ok().map(|(_, ts)| ts);
                proptest::prop_assert_eq!(Some(fast), checked);
            }
            proptest::prop_assert_eq!(iso(&input), whole(iso8601, &input));
        }
    }

    #[test]
    fn clf_errors_say_what_was_expected() {
        let cases = [
            ("15/Foo/2024:10:30:45 +0000", "a month name (Jan..Dec)", 3),
            ("32/Jan/2024:10:30:45 +0000", "a day (01-31)", 0),
            ("15/Jan/2024:24:30:45 +0000", "an hour (00-23)", 12),
            ("15/Jan/2024:10:30:45 0000", "a UTC offset (+hhmm)", 21),
            ("15/Jan/2024:10:30:45", "a space before the offset", 20),
            ("15/Jan/24:10:30:45 +0000", "a four-digit year", 7),
        ];
        for (input, expected, offset) in cases {
            assert_eq!(clf(input), Err((offset, expected)), "{input}");
        }
    }

    /// The fixed layout reads what it reads as the combinator parser does,
    /// and [`iso`] answers as the combinator parser alone would.
    #[test]
    fn fast_and_checked_iso_agree() {
        // (input, whether the fixed layout reads it)
        let cases = [
            ("2024-01-15T10:30:45+00:00", true),
            ("2024-01-15T19:30:45+09:00", true),
            ("1999-12-31T23:59:60-05:30", true),
            ("0000-02-31T00:00:00+23:59", true),
            ("2024-01-15T10:30:45Z", false),
            ("2024-01-15T10:30:45.123+00:00", false),
            ("2024-00-15T10:30:45+00:00", false),
            ("2024-13-15T10:30:45+00:00", false),
            ("2024-01-32T10:30:45+00:00", false),
            ("2024-01-15 10:30:45+00:00", false),
            ("2024-01-15T24:30:45+00:00", false),
            ("2024-01-15T10:30:45*00:00", false),
            ("2024-01-15T10:30:45+0000", false),
            ("2024-01-15T10:30:45+00:60", false),
            ("2024-01-15T10:3a:45+00:00", false),
            ("2024-01-15T10:30:45+00:00 tail", true),
        ];
        for (input, fixed) in cases {
            let fast = iso_fixed(input.as_bytes());
            assert_eq!(fast.is_some(), fixed, "{input}");
            if fast.is_some() {
                assert_eq!(fast, iso8601(input).ok().map(|(_, ts)| ts), "{input}");
            }
            assert_eq!(iso(input), whole(iso8601, input), "{input}");
        }
    }

    #[test]
    fn iso8601_table() {
        let cases = [
            ("2024-01-15T10:30:45+00:00", "2024-01-15T10:30:45+00:00"),
            ("2024-01-15T10:30:45Z", "2024-01-15T10:30:45+00:00"),
            ("2024-01-15T10:30:45.123Z", "2024-01-15T10:30:45.123+00:00"),
            ("2024-01-15T19:30:45.5-03:30", "2024-01-15T19:30:45.5-03:30"),
            (
                "2024-01-15T10:30:45.1234567891Z",
                "2024-01-15T10:30:45.123456789+00:00",
            ),
        ];
        for (input, want) in cases {
            let (rest, ts) = iso8601(input).unwrap();
            assert_eq!(rest, "");
            assert_eq!(ts.to_string(), want, "{input}");
        }
        assert!(iso8601("2024-13-15T10:30:45Z").is_err());
        assert!(iso8601("2024-01-15 10:30:45Z").is_err());
        assert!(iso8601("2024-01-15T10:30:45.Z").is_err());
    }

    #[test]
    fn month_names() {
        assert_eq!(month_name("Dec/"), Ok(("/", 12)));
        assert!(month_name("dec").is_err());
        assert!(month_name("De").is_err());
    }

    #[test]
    fn serializes_as_a_json_string() {
        let ts = clf("15/Jan/2024:10:30:45 +0000").unwrap();
        assert_eq!(
            serde_json::to_string(&ts).unwrap(),
            "\"2024-01-15T10:30:45+00:00\""
        );
    }
}
