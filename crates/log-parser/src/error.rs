//! What can go wrong: a line that does not match its format, or a format
//! directive that cannot be compiled.

use std::borrow::Cow;

/// How many bytes of the input an error shows around the failing position.
const SNIPPET_BYTES: usize = 32;

/// A line that does not match its format.
///
/// Carries what a user needs to act — where in the line parsing stopped,
/// what was expected there, and a short snippet of what was found — never
/// the whole line (the caller has it, and dead-letters it with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: expected {expected}, found {snippet:?}")]
#[non_exhaustive]
pub struct ParseError {
    /// Byte offset in the line where parsing stopped.
    pub offset: usize,
    /// What the format expected at that offset.
    pub expected: Cow<'static, str>,
    /// Up to 32 bytes of the line from `offset` (cut at a character
    /// boundary), or `"<end of line>"`.
    pub snippet: String,
}

impl ParseError {
    /// An error at `offset` of `line`.
    pub(crate) fn at(line: &str, offset: usize, expected: impl Into<Cow<'static, str>>) -> Self {
        let rest = line.get(offset..).unwrap_or_default();
        let snippet = if rest.is_empty() {
            String::from("<end of line>")
        } else {
            let mut end = rest.len().min(SNIPPET_BYTES);
            while !rest.is_char_boundary(end) {
                end -= 1;
            }
            rest.get(..end).unwrap_or_default().to_owned()
        };
        ParseError {
            offset,
            expected: expected.into(),
            snippet,
        }
    }
}

/// A log format directive that cannot be compiled into a parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A directive shardline does not support, e.g. Apache `%{%Y}t`.
    #[error(
        "unsupported directive `{directive}` at byte {offset} of the format; supported: {supported}"
    )]
    UnsupportedDirective {
        /// The directive.
        directive: String,
        /// Where it is, in bytes from the start of the format.
        offset: usize,
        /// The directives that are supported.
        supported: &'static str,
    },
    /// Two fields with nothing between them: the parser could not tell
    /// where one ends, e.g. `%h%u`.
    #[error(
        "fields `{first}` and `{second}` have no literal text between them, so where one ends \
         cannot be known; put a space or other separator between them"
    )]
    AdjacentFields {
        /// The first field.
        first: String,
        /// The field right after it.
        second: String,
    },
    /// A `%` or `$` at the end of the format, or `%{` without `}`.
    #[error("incomplete directive at byte {offset} of the format")]
    Incomplete {
        /// Where it is, in bytes from the start of the format.
        offset: usize,
    },
    /// The format has no fields at all.
    #[error("the format has no fields")]
    Empty,
    /// CSV settings that cannot split a line: no columns, a column named
    /// twice, a delimiter that is not one ASCII character.
    #[error("csv: {0}")]
    Csv(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_is_short_and_cut_at_a_character_boundary() {
        let line = format!("abc{}", "é".repeat(40));
        let err = ParseError::at(&line, 3, "a digit");
        assert!(err.snippet.len() <= SNIPPET_BYTES);
        assert!(err.snippet.starts_with('é'));
        assert_eq!(err.offset, 3);
    }

    #[test]
    fn snippet_at_end_of_line() {
        let err = ParseError::at("abc", 3, "`]`");
        assert_eq!(err.snippet, "<end of line>");
        assert_eq!(
            err.to_string(),
            "at byte 3: expected `]`, found \"<end of line>\""
        );
    }
}
