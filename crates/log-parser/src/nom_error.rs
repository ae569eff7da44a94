//! The nom error type of the inner parsers: where parsing stopped and what
//! was expected there, turned into a [`crate::ParseError`] at the top.

use nom::error::{ErrorKind, ParseError as NomParseError};
use nom::{IResult, Parser};

/// A nom error: the remaining input where parsing failed and a short
/// description of what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expect<'a> {
    pub(crate) input: &'a str,
    pub(crate) expected: &'static str,
}

impl<'a> NomParseError<&'a str> for Expect<'a> {
    fn from_error_kind(input: &'a str, kind: ErrorKind) -> Self {
        let expected = match kind {
            ErrorKind::Char => "a particular character",
            ErrorKind::Eof => "more input",
            _ => "valid input",
        };
        Expect { input, expected }
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

/// The result type of every inner parser.
pub(crate) type PResult<'a, O> = IResult<&'a str, O, Expect<'a>>;

/// A recoverable error at `input`, expecting `expected`.
pub(crate) fn fail<'a, O>(input: &'a str, expected: &'static str) -> PResult<'a, O> {
    Err(nom::Err::Error(Expect { input, expected }))
}

/// Runs `parser`; if it fails, the error points at the start of its input
/// and says it expected `what`.
pub(crate) fn expecting<'a, O>(
    what: &'static str,
    mut parser: impl Parser<&'a str, Output = O, Error = Expect<'a>>,
) -> impl FnMut(&'a str) -> PResult<'a, O> {
    move |input: &'a str| {
        parser.parse(input).map_err(|e| {
            e.map(|_| Expect {
                input,
                expected: what,
            })
        })
    }
}
