//! CSV and TSV lines (`"type": "csv"`): each line's fields under the
//! configured column names, as Kinesis Agent's `CSVTOJSON` does.

use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};

use crate::LogType;
use crate::error::{FormatError, ParseError};

/// How the lines of a CSV or TSV log are split.
///
/// Fields are separated by `delimiter`; a field that starts with `quote`
/// runs to the next `quote` not doubled (RFC 4180: `"a ""b"", c"` is
/// `a "b", c`), and may hold the delimiter. A quote inside an unquoted
/// field is kept as it is. Values are strings, as CSV defines no types.
/// A line with fewer fields than columns has the rest `null`; a line with
/// more is an error. A quoted field cannot span lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFormat {
    columns: Vec<String>,
    delimiter: u8,
    quote: u8,
}

impl CsvFormat {
    /// Columns in the order the lines hold them; `delimiter` and `quote`
    /// are single ASCII characters (`','` and `'"'` for CSV, `'\t'` for
    /// TSV).
    pub fn new(columns: Vec<String>, delimiter: char, quote: char) -> Result<Self, FormatError> {
        let invalid = |reason: String| Err(FormatError::Csv(reason));
        if columns.is_empty() {
            return invalid("no columns: give the name of each field, in order".to_owned());
        }
        for (i, name) in columns.iter().enumerate() {
            if name.is_empty() {
                return invalid(format!("column {} has no name", i + 1));
            }
            if name == "log_type" {
                return invalid(
                    "a column cannot be named log_type: the record's own key".to_owned(),
                );
            }
            if columns.get(..i).unwrap_or_default().contains(name) {
                return invalid(format!("column {name:?} is named twice"));
            }
        }
        let ascii = |c: char, what: &str| match u8::try_from(c) {
            Ok(b) if c.is_ascii() && b != b'\n' && b != b'\r' => Ok(b),
            _ => Err(FormatError::Csv(format!(
                "the {what} must be one ASCII character other than a line end, not {c:?}"
            ))),
        };
        let delimiter = ascii(delimiter, "delimiter")?;
        let quote = ascii(quote, "quote")?;
        if delimiter == quote {
            return invalid("the delimiter and the quote must differ".to_owned());
        }
        Ok(CsvFormat {
            columns,
            delimiter,
            quote,
        })
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub(crate) fn parse<'a>(&'a self, line: &'a str) -> Result<CsvRecord<'a>, ParseError> {
        let bytes = line.as_bytes();
        let mut values: Vec<Cow<'a, str>> = Vec::with_capacity(self.columns.len());
        let mut at = 0;
        loop {
            let (value, end) = if bytes.get(at) == Some(&self.quote) {
                self.quoted(line, at)?
            } else {
                let end = bytes
                    .get(at..)
                    .and_then(|rest| memchr::memchr(self.delimiter, rest))
                    .map_or(line.len(), |i| at + i);
                (Cow::Borrowed(line.get(at..end).unwrap_or_default()), end)
            };
            values.push(value);
            if values.len() > self.columns.len() {
                return Err(ParseError::at(
                    line,
                    at,
                    format!(
                        "the end of the line after {} field(s), one per column",
                        self.columns.len()
                    ),
                ));
            }
            match bytes.get(end) {
                None => break,
                Some(b) if *b == self.delimiter => at = end + 1,
                Some(_) => {
                    return Err(ParseError::at(
                        line,
                        end,
                        "a delimiter or the end of the line after the closing quote",
                    ));
                }
            }
        }
        Ok(CsvRecord {
            columns: &self.columns,
            values,
        })
    }

    /// The quoted field starting at `start`; returns its value and the
    /// offset just past its closing quote.
    fn quoted<'a>(&self, line: &'a str, start: usize) -> Result<(Cow<'a, str>, usize), ParseError> {
        let bytes = line.as_bytes();
        let mut value: Option<String> = None;
        let mut from = start + 1;
        let mut at = from;
        loop {
            let Some(i) = bytes
                .get(at..)
                .and_then(|rest| memchr::memchr(self.quote, rest))
            else {
                return Err(ParseError::at(
                    line,
                    start,
                    "a closing quote for this field",
                ));
            };
            let quote_at = at + i;
            if bytes.get(quote_at + 1) == Some(&self.quote) {
                // A doubled quote: one quote in the value.
                let text = value.get_or_insert_with(String::new);
                text.push_str(line.get(from..=quote_at).unwrap_or_default());
                from = quote_at + 2;
                at = from;
                continue;
            }
            let last = line.get(from..quote_at).unwrap_or_default();
            let value = match value {
                Some(mut text) => {
                    text.push_str(last);
                    Cow::Owned(text)
                }
                None => Cow::Borrowed(last),
            };
            return Ok((value, quote_at + 1));
        }
    }
}

/// A CSV or TSV line's fields under their column names.
///
/// ```
/// use shardline_log_parser::{CsvFormat, LogParser, LogRecord};
///
/// let columns = ["time", "user", "action"].map(String::from).to_vec();
/// let parser = LogParser::csv(CsvFormat::new(columns, ',', '"')?);
/// let LogRecord::Csv(record) = parser.parse(r##"2024-01-15T10:30:45Z,"Lee, Ann","said ""hi""""##)? else {
///     return Err("a CSV record".into());
/// };
/// assert_eq!(record.get("user"), Some("Lee, Ann"));
/// assert_eq!(record.get("action"), Some(r#"said "hi""#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecord<'a> {
    columns: &'a [String],
    values: Vec<Cow<'a, str>>,
}

impl CsvRecord<'_> {
    /// The value of column `name`; `None` for an unknown column or one the
    /// line has no field for.
    pub fn get(&self, name: &str) -> Option<&str> {
        let index = self.columns.iter().position(|c| c == name)?;
        self.values.get(index).map(|v| v.as_ref())
    }
}

impl serde::Serialize for CsvRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.columns.len() + 1))?;
        for (i, name) in self.columns.iter().enumerate() {
            map.serialize_entry(name, &self.values.get(i))?;
        }
        map.serialize_entry("log_type", &LogType::Csv)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(columns: &[&str], delimiter: char) -> CsvFormat {
        CsvFormat::new(
            columns.iter().map(|c| c.to_string()).collect(),
            delimiter,
            '"',
        )
        .unwrap()
    }

    fn values(format: &CsvFormat, line: &str) -> Vec<Option<String>> {
        let record = format.parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        format
            .columns()
            .iter()
            .map(|c| record.get(c).map(str::to_owned))
            .collect()
    }

    #[test]
    fn quoted_fields_hold_delimiters_quotes_and_nothing() {
        let csv = format(&["a", "b", "c", "d"], ',');
        let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        let cases: [(&str, Vec<Option<String>>); 6] = [
            ("1,2,3,4", some(&["1", "2", "3", "4"])),
            (
                r#""x, y","say ""hi""",,"""""#,
                some(&["x, y", r#"say "hi""#, "", r#"""#]),
            ),
            (r#"a"b,"",c ,"#, some(&[r#"a"b"#, "", "c ", ""])),
            ("only", vec![Some("only".into()), None, None, None]),
            ("1,2", vec![Some("1".into()), Some("2".into()), None, None]),
            ("é,日本,😀,", some(&["é", "日本", "😀", ""])),
        ];
        for (line, want) in cases {
            assert_eq!(values(&csv, line), want, "{line}");
        }
        let tsv = format(&["time", "level", "message"], '\t');
        assert_eq!(
            values(&tsv, "2024-01-15\tWARN\tdisk, 91% full"),
            some(&["2024-01-15", "WARN", "disk, 91% full"])
        );
    }

    #[test]
    fn bad_lines_say_where() {
        let csv = format(&["a", "b"], ',');
        let cases = [
            (
                "1,2,3",
                4,
                "the end of the line after 2 field(s), one per column",
            ),
            (r#"1,"open"#, 2, "a closing quote for this field"),
            (
                r#""a"b,c"#,
                3,
                "a delimiter or the end of the line after the closing quote",
            ),
        ];
        for (line, offset, expected) in cases {
            let e = csv.parse(line).unwrap_err();
            assert_eq!(
                (e.offset, e.expected.as_ref()),
                (offset, expected),
                "{line}"
            );
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let new = |columns: &[&str], d: char, q: char| {
            CsvFormat::new(columns.iter().map(|c| c.to_string()).collect(), d, q)
                .unwrap_err()
                .to_string()
        };
        assert!(new(&[], ',', '"').contains("no columns"));
        assert!(new(&["a", "a"], ',', '"').contains("named twice"));
        assert!(new(&["log_type"], ',', '"').contains("log_type"));
        assert!(new(&["a"], '§', '"').contains("ASCII"));
        assert!(new(&["a"], ',', ',').contains("differ"));
    }
}
