//! The fast path: times in their servers' fixed layouts (CLF's 26 bytes,
//! Nginx's 25-byte ISO 8601) read a word at a time. Anything else goes to
//! the combinator parsers, which also explain errors.

use super::Timestamp;

/// The length of `dd/Mon/yyyy:HH:MM:SS +hhmm`.
pub(super) const CLF_LEN: usize = 26;

/// `dd/Mon/yyyy:HH:MM:SS +hhmm` as the words at 0, 8, 16 and 18.
const CLF_WORDS: [(usize, WordLayout); 4] = [
    (0, word_layout(b"99/???/9")),
    (8, word_layout(b"999:99:9")),
    (16, word_layout(b"9:99 ?99")),
    (18, word_layout(b"??????99")),
];

/// The fixed-layout reading of a CLF time, or `None` if anything is off.
pub(super) fn clf_fixed(bytes: &[u8]) -> Option<Timestamp> {
    let [first, second, third, fourth] = fixed_words(bytes, &CLF_WORDS)?;
    let month = match bytes.get(3..6)? {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    FixedFields {
        year: u16::from(lane(first, 7)) * 1000
            + u16::from(lane(second, 0)) * 100
            + u16::from(two(second, 1)),
        month,
        day: two(first, 0),
        hour: two(second, 4),
        minute: lane(second, 7) * 10 + lane(third, 0),
        second: two(third, 2),
        offset_sign: *bytes.get(21)?,
        offset_hours: two(third, 6),
        offset_minutes: two(fourth, 6),
    }
    .timestamp()
}

/// The length of `yyyy-mm-ddTHH:MM:SS+hh:mm`.
pub(super) const ISO_LEN: usize = 25;

/// `yyyy-mm-ddTHH:MM:SS+hh:mm` as the words at 0, 8, 16 and 17.
const ISO_WORDS: [(usize, WordLayout); 4] = [
    (0, word_layout(b"9999-99-")),
    (8, word_layout(b"99T99:99")),
    (16, word_layout(b":99?99:9")),
    (17, word_layout(b"??????99")),
];

/// The fixed-layout reading of an ISO 8601 time with a numeric offset and
/// no fractional seconds, or `None` if anything is off.
pub(super) fn iso_fixed(bytes: &[u8]) -> Option<Timestamp> {
    let [first, second, third, fourth] = fixed_words(bytes, &ISO_WORDS)?;
    FixedFields {
        year: u16::from(two(first, 0)) * 100 + u16::from(two(first, 2)),
        month: two(first, 5),
        day: two(second, 0),
        hour: two(second, 3),
        minute: two(second, 6),
        second: two(third, 1),
        offset_sign: *bytes.get(19)?,
        offset_hours: two(third, 4),
        offset_minutes: two(fourth, 6),
    }
    .timestamp()
}

/// The four words of a fixed-layout time, each with its digit places
/// turned into their values, or `None` if `bytes` is too short or a digit
/// or punctuation place is wrong.
///
/// Each word's places are checked at once: every digit place must hold
/// `0`-`9` (high nibble 3, and adding 6 to the low nibble does not carry)
/// and every punctuation place its character.
#[inline(always)]
fn fixed_words(bytes: &[u8], layout: &[(usize, WordLayout); 4]) -> Option<[u64; 4]> {
    let mut words = [0; 4];
    for (word, (at, places)) in words.iter_mut().zip(layout) {
        let raw = bytes.get(*at..).and_then(<[u8]>::first_chunk::<8>)?;
        *word = places.digits(u64::from_le_bytes(*raw))?;
    }
    Some(words)
}

/// Two digit values at lanes `tens` and `tens + 1` of a word, as a number.
fn two(word: u64, tens: u32) -> u8 {
    lane(word, tens) * 10 + lane(word, tens + 1)
}

/// The fields of a fixed-layout time as read, before their ranges are
/// checked.
struct FixedFields {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    /// `+` or `-` when well formed.
    offset_sign: u8,
    offset_hours: u8,
    offset_minutes: u8,
}

impl FixedFields {
    /// The timestamp, or `None` if a field is out of the range the
    /// combinator parsers accept.
    #[inline(always)]
    fn timestamp(self) -> Option<Timestamp> {
        let in_range = (1..=12).contains(&self.month)
            & (1..=31).contains(&self.day)
            & (self.hour <= 23)
            & (self.minute <= 59)
            & (self.second <= 60)
            & (self.offset_hours <= 23)
            & (self.offset_minutes <= 59);
        if !in_range {
            return None;
        }
        let magnitude = i16::from(self.offset_hours) * 60 + i16::from(self.offset_minutes);
        let offset_minutes = match self.offset_sign {
            b'+' => magnitude,
            b'-' => -magnitude,
            _ => return None,
        };
        Some(Timestamp {
            year: self.year,
            month: self.month,
            day: self.day,
            hour: self.hour,
            minute: self.minute,
            second: self.second,
            fraction: 0,
            fraction_digits: 0,
            offset_minutes,
        })
    }
}

/// The places of one eight-byte word of a fixed-layout time.
#[derive(Debug, Clone, Copy)]
struct WordLayout {
    /// `0xff` in each byte that is a digit.
    digits: u64,
    /// The punctuation expected, and `0xff` in each byte that has some.
    punctuation: u64,
    punctuation_mask: u64,
}

/// `9` for a digit, `?` for a byte checked elsewhere, anything else for
/// that character.
#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of range fails the build, never a run"
)]
const fn word_layout(pattern: &[u8; 8]) -> WordLayout {
    let mut layout = WordLayout {
        digits: 0,
        punctuation: 0,
        punctuation_mask: 0,
    };
    let mut i = 0;
    while i < 8 {
        let byte = pattern[i];
        let shift = 8 * i;
        if byte == b'9' {
            layout.digits |= 0xff << shift;
        } else if byte != b'?' {
            layout.punctuation |= (byte as u64) << shift;
            layout.punctuation_mask |= 0xff << shift;
        }
        i += 1;
    }
    layout
}

impl WordLayout {
    /// The word with each digit place turned into its value (other places
    /// zero), or `None` if a digit or punctuation place is wrong.
    fn digits(&self, word: u64) -> Option<u64> {
        const ZEROS: u64 = 0x3030_3030_3030_3030;
        const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
        const SIXES: u64 = 0x0606_0606_0606_0606;
        let ascii = (word & self.digits) | (ZEROS & !self.digits);
        let valid = (word ^ self.punctuation) & self.punctuation_mask == 0
            && ascii & HIGH_NIBBLES == ZEROS
            && ascii.wrapping_add(SIXES) & HIGH_NIBBLES == ZEROS;
        valid.then(|| ascii - ZEROS)
    }
}

/// Byte `index` (little-endian) of a word of digit values.
fn lane(word: u64, index: u32) -> u8 {
    (word >> (8 * index)) as u8
}
