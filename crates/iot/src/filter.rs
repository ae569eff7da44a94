//! `--filter`: the WHERE clause of an IoT Core rule, in a small form.
//!
//! ```text
//! filter     := or
//! or         := and (("||" | "OR") and)*
//! and        := not (("&&" | "AND") not)*
//! not        := ("!" | "NOT") not | "(" filter ")" | comparison
//! comparison := operand op operand
//! op         := "==" | "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//! operand    := number | 'text' | "text" | true | false | null | field
//! field      := a dotted path of letters, digits and `_` (`reading.temperature`)
//! ```
//!
//! `AND`, `OR` and `NOT` may be written in any case. Logic is SQL's, three
//! valued as in IoT Core: a comparison with a missing field, a null, or
//! values of different types is *unknown*; `unknown && false` is false,
//! `unknown || true` is true, `!unknown` is unknown; a reading passes only
//! when the whole filter is true. Numbers compare as numbers, text as text
//! (by code point), `true`/`false` only with `==` and `!=`.

use std::cmp::Ordering;
use std::fmt;

use nom::branch::alt;
use nom::bytes::complete::{is_not, tag, tag_no_case, take_while1};
use nom::character::complete::{char, multispace0};
use nom::combinator::{all_consuming, map, not, opt, peek, value};
use nom::multi::fold_many0;
use nom::number::complete::recognize_float;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};
use serde_json::Value;

/// The longest filter accepted, in bytes: a rule, not a program.
pub const MAX_FILTER_BYTES: usize = 1024;
/// The deepest nesting accepted: parentheses inside parentheses, and
/// negations in all. Bounds the parser's recursion (its stack).
pub const MAX_FILTER_NESTING: usize = 32;

/// A filter that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The filter is empty.
    #[error("filter is empty")]
    Empty,
    /// The filter is longer than `MAX_FILTER_BYTES` (its length).
    #[error("filter is {0} bytes long; at most {MAX_FILTER_BYTES}")]
    TooLong(usize),
    /// The filter nests deeper than `MAX_FILTER_NESTING` (its depth).
    #[error("filter nests {0} levels deep (parentheses, negations); at most {MAX_FILTER_NESTING}")]
    TooDeep(usize),
    /// The filter cannot be read.
    #[error("filter {filter:?}: cannot read it from byte {offset} ({rest:?}): {expected}")]
    Syntax {
        /// The filter as written.
        filter: String,
        /// Where reading stopped, in bytes.
        offset: usize,
        /// The text from there.
        rest: String,
        /// What was expected there.
        expected: &'static str,
    },
}

/// A parsed filter: [`Filter::matches`] is true when a reading passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    text: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, Op, Operand),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Field(Vec<String>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Filter {
    /// Parses a filter such as `temperature > 0 && temperature < 100`.
    ///
    /// ```
    /// use shardline_iot::Filter;
    /// use serde_json::json;
    ///
    /// let filter = Filter::parse("temperature > 0 AND temperature < 100")?;
    /// assert!(filter.matches(&json!({"temperature": 25.5})));
    /// assert!(!filter.matches(&json!({"temperature": 120})));
    /// // A reading without the field is neither in nor out: not sent.
    /// assert!(!filter.matches(&json!({"humidity": 60})));
    /// # Ok::<(), shardline_iot::FilterError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        if text.trim().is_empty() {
            return Err(FilterError::Empty);
        }
        if text.len() > MAX_FILTER_BYTES {
            return Err(FilterError::TooLong(text.len()));
        }
        let depth = nesting(text);
        if depth > MAX_FILTER_NESTING {
            return Err(FilterError::TooDeep(depth));
        }
        match all_consuming(delimited(multispace0, or, multispace0)).parse(text) {
            Ok((_, expr)) => Ok(Filter {
                text: text.to_owned(),
                expr,
            }),
            Err(e) => {
                let rest = match &e {
                    nom::Err::Error(e) | nom::Err::Failure(e) => e.input,
                    nom::Err::Incomplete(_) => "",
                };
                let offset = text.len() - rest.len();
                Err(FilterError::Syntax {
                    filter: text.to_owned(),
                    offset,
                    rest: rest.chars().take(24).collect(),
                    expected: if rest.is_empty() {
                        "the filter ends too early"
                    } else {
                        "a comparison (field op value), a parenthesis, NOT, AND or OR"
                    },
                })
            }
        }
    }

    /// Whether `record` passes: the filter is true (not false, not unknown).
    pub fn matches(&self, record: &Value) -> bool {
        self.expr.eval(record) == Some(true)
    }

    /// The filter as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// How deep the parser will recurse at most: the deepest parenthesis, or
/// the number of negations (`!`, `NOT`), outside quotes.
fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest, mut negations) = (0usize, 0usize, 0usize);
    let mut quote = None;
    let mut chars = text.char_indices().peekable();
    let mut previous_is_word = false;
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ')') => depth = depth.saturating_sub(1),
            (None, '!') if chars.peek().is_none_or(|&(_, next)| next != '=') => negations += 1,
            (None, 'n' | 'N') if !previous_is_word => {
                let word: String = text
                    .get(i..)
                    .unwrap_or_default()
                    .chars()
                    .take_while(|&c| is_field_char(c))
                    .collect();
                if word.eq_ignore_ascii_case("not") {
                    negations += 1;
                }
            }
            _ => {}
        }
        previous_is_word = is_field_char(c);
    }
    deepest.max(negations)
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Expr {
    /// Kleene logic: `None` is unknown.
    fn eval(&self, record: &Value) -> Option<bool> {
        match self {
            Expr::Or(a, b) => match (a.eval(record), b.eval(record)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::And(a, b) => match (a.eval(record), b.eval(record)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Not(a) => a.eval(record).map(|b| !b),
            Expr::Compare(left, op, right) => compare(left.get(record)?, *op, right.get(record)?),
        }
    }
}

impl Operand {
    fn get<'a>(&'a self, record: &'a Value) -> Option<&'a Value> {
        match self {
            Operand::Literal(Value::Null) => None,
            Operand::Literal(value) => Some(value),
            Operand::Field(path) => {
                let mut value = record;
                for part in path {
                    value = value.get(part)?;
                }
                (!value.is_null()).then_some(value)
            }
        }
    }
}

fn compare(left: &Value, op: Op, right: &Value) -> Option<bool> {
    let ordering = match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?)?,
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) => match op {
            Op::Eq => return Some(a == b),
            Op::Ne => return Some(a != b),
            _ => return None,
        },
        _ => return None,
    };
    Some(match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Ne => ordering != Ordering::Equal,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
    })
}

fn ws<'a, O>(
    inner: impl Parser<&'a str, Output = O, Error = nom::error::Error<&'a str>>,
) -> impl Parser<&'a str, Output = O, Error = nom::error::Error<&'a str>> {
    delimited(multispace0, inner, multispace0)
}

/// A keyword not followed by a field character (`ORDER` is a field).
fn keyword<'a>(
    word: &'static str,
) -> impl Parser<&'a str, Output = &'a str, Error = nom::error::Error<&'a str>> {
    nom::sequence::terminated(tag_no_case(word), not(peek(take_while1(is_field_char))))
}

fn is_field_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn or(input: &str) -> IResult<&str, Expr> {
    let (input, first) = and(input)?;
    fold_many0(
        preceded(ws(alt((tag("||"), keyword("or")))), and),
        move || first.clone(),
        |left, right| Expr::Or(Box::new(left), Box::new(right)),
    )
    .parse(input)
}

fn and(input: &str) -> IResult<&str, Expr> {
    let (input, first) = negation(input)?;
    fold_many0(
        preceded(ws(alt((tag("&&"), keyword("and")))), negation),
        move || first.clone(),
        |left, right| Expr::And(Box::new(left), Box::new(right)),
    )
    .parse(input)
}

fn negation(input: &str) -> IResult<&str, Expr> {
    alt((
        map(
            preceded(
                ws(alt((
                    nom::sequence::terminated(tag("!"), not(peek(char('=')))),
                    keyword("not"),
                ))),
                negation,
            ),
            |e| Expr::Not(Box::new(e)),
        ),
        delimited(ws(char('(')), or, ws(char(')'))),
        comparison,
    ))
    .parse(input)
}

fn comparison(input: &str) -> IResult<&str, Expr> {
    let (input, left) = ws(operand).parse(input)?;
    let (input, op) = ws(alt((
        value(Op::Eq, tag("==")),
        value(Op::Ne, tag("!=")),
        value(Op::Ne, tag("<>")),
        value(Op::Le, tag("<=")),
        value(Op::Ge, tag(">=")),
        value(Op::Lt, tag("<")),
        value(Op::Gt, tag(">")),
        value(Op::Eq, tag("=")),
    )))
    .parse(input)?;
    let (input, right) = ws(operand).parse(input)?;
    Ok((input, Expr::Compare(left, op, right)))
}

fn operand(input: &str) -> IResult<&str, Operand> {
    alt((
        map(number, Operand::Literal),
        map(text('\''), |s| Operand::Literal(Value::String(s))),
        map(text('"'), |s| Operand::Literal(Value::String(s))),
        value(Operand::Literal(Value::Bool(true)), keyword("true")),
        value(Operand::Literal(Value::Bool(false)), keyword("false")),
        value(Operand::Literal(Value::Null), keyword("null")),
        field,
    ))
    .parse(input)
}

fn number(input: &str) -> IResult<&str, Value> {
    let (rest, digits) = recognize_float(input)?;
    // `recognize_float` takes a lone sign or dot too: only a real number.
    match digits.parse::<f64>() {
        Ok(n) if n.is_finite() && digits.chars().any(|c| c.is_ascii_digit()) => {
            let value = serde_json::Number::from_f64(n).map(Value::Number);
            match value {
                Some(value) => Ok((rest, value)),
                None => Err(nom::Err::Error(nom::error::Error::new(
                    input,
                    nom::error::ErrorKind::Float,
                ))),
            }
        }
        _ => Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Float,
        ))),
    }
}

/// Text between `quote`s; no escapes (a filter compares device names and
/// states, not prose).
fn text<'a>(
    quote: char,
) -> impl Parser<&'a str, Output = String, Error = nom::error::Error<&'a str>> {
    let other: &'static str = if quote == '\'' { "'" } else { "\"" };
    delimited(
        char(quote),
        map(opt(is_not(other)), |s: Option<&str>| {
            s.unwrap_or_default().to_owned()
        }),
        char(quote),
    )
}

fn field(input: &str) -> IResult<&str, Operand> {
    let (rest, first) = take_while1(is_field_char).parse(input)?;
    if first.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Alpha,
        )));
    }
    let mut path = vec![first.to_owned()];
    let mut rest = rest;
    while let Ok((after, part)) = preceded(
        char::<&str, nom::error::Error<&str>>('.'),
        take_while1(is_field_char),
    )
    .parse(rest)
    {
        path.push(part.to_owned());
        rest = after;
    }
    Ok((rest, Operand::Field(path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn passes(filter: &str, record: Value) -> bool {
        Filter::parse(filter).unwrap().matches(&record)
    }

    #[test]
    fn a_temperature_rule() {
        let rule = "temperature > 0 AND temperature < 100";
        assert!(passes(rule, json!({"temperature": 25.5})));
        assert!(!passes(rule, json!({"temperature": 0})));
        assert!(!passes(rule, json!({"temperature": 100})));
        assert!(!passes(rule, json!({"temperature": -3.5})));
        assert!(!passes(rule, json!({"temperature": "25"})));
        assert!(!passes(rule, json!({})));
        assert!(passes(
            "temperature > 0 && temperature < 100",
            json!({"temperature": 99.9})
        ));
    }

    #[test]
    fn operators_and_types() {
        let r = json!({"t": 5, "s": "factory-a", "on": true, "n": null, "a": {"b": 2}});
        assert!(passes("t == 5", r.clone()));
        assert!(passes("t = 5.0", r.clone()));
        assert!(passes("t != 4", r.clone()));
        assert!(passes("t <> 4", r.clone()));
        assert!(passes("t >= 5 && t <= 5", r.clone()));
        assert!(passes("5 > 4", r.clone()));
        assert!(passes("s == 'factory-a'", r.clone()));
        assert!(passes("s < \"factory-b\"", r.clone()));
        assert!(passes("on == true", r.clone()));
        assert!(!passes("on > false", r.clone()));
        assert!(passes("a.b == 2", r.clone()));
        assert!(passes("t == -5 || t == 5", r.clone()));
        assert!(passes("t > 1e0", r.clone()));
    }

    #[test]
    fn unknown_is_neither_true_nor_false() {
        let r = json!({"t": 5, "n": null});
        // A missing field or a null: unknown, and so is its negation.
        assert!(!passes("missing > 1", r.clone()));
        assert!(!passes("!(missing > 1)", r.clone()));
        assert!(!passes("n == null", r.clone()));
        // Unknown OR true is true; unknown AND false is false.
        assert!(passes("missing > 1 || t == 5", r.clone()));
        assert!(passes("NOT (missing > 1 and t == 4)", r.clone()));
        // Different types: unknown.
        assert!(!passes("t == '5'", r.clone()));
    }

    #[test]
    fn precedence_and_keywords() {
        let r = json!({"a": 1, "b": 2, "order": 3});
        // AND binds tighter than OR.
        assert!(passes("a == 1 || a == 2 && b == 3", r.clone()));
        assert!(!passes("(a == 1 || a == 2) && b == 3", r.clone()));
        assert!(passes("!a == 2", r.clone()));
        assert!(passes("not a == 2 and b == 2", r.clone()));
        // A field whose name begins with a keyword.
        assert!(passes("order == 3", r.clone()));
    }

    #[test]
    fn errors_say_where() {
        assert_eq!(Filter::parse("  "), Err(FilterError::Empty));
        for bad in [
            "temperature >",
            "temperature > 0 &&",
            "temperature 0",
            "(a == 1",
            "a == 1)",
            "a === 1",
            "1a == 1",
            "a == 'x",
        ] {
            let error = Filter::parse(bad).unwrap_err();
            assert!(
                matches!(error, FilterError::Syntax { .. }),
                "{bad}: {error}"
            );
        }
        match Filter::parse("temperature > 0 && humidity <") {
            Err(FilterError::Syntax { offset, .. }) => assert_eq!(offset, 16),
            other => panic!("{other:?}"),
        }
        let long = "a == 1 && ".repeat(200) + "a == 1";
        assert!(matches!(Filter::parse(&long), Err(FilterError::TooLong(_))));
        // As deep as allowed: parsed; deeper: refused, never a stack overflow.
        let deep = |n: usize| "(".repeat(n) + "a == 1" + &")".repeat(n);
        assert!(passes(&deep(MAX_FILTER_NESTING), json!({"a": 1})));
        assert_eq!(Filter::parse(&deep(500)), Err(FilterError::TooDeep(500)));
        let negated = |n: usize| "!".repeat(n) + "a == 1";
        assert!(passes(&negated(MAX_FILTER_NESTING), json!({"a": 1})));
        assert!(Filter::parse(&negated(1000)).is_err());
        assert!(Filter::parse(&"NOT ".repeat(200)).is_err());
        // Inside quotes nothing counts.
        let quoted = format!("s == '{}'", "(!".repeat(100));
        assert!(Filter::parse(&quoted).is_ok());
    }
}
