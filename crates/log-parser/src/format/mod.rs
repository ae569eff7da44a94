//! Compiling a server's own format directive — an Apache `LogFormat` string
//! or an Nginx `log_format` string — into the items the access-log parser
//! walks. The built-in formats are compiled the same way from their
//! well-known directives, so built-in and custom formats share one parser.

mod lex;

use crate::LogType;
use crate::error::FormatError;
use lex::{lex_apache, lex_nginx, strip_apache_directive, strip_nginx_directive};

/// What a field's value becomes in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `ip_address`.
    Client,
    /// `ident` (Apache `%l`).
    Ident,
    /// `remote_user`.
    RemoteUser,
    /// `timestamp` from Apache `%t`, brackets included: `[15/Jan/2024:…]`.
    TimeBracketed,
    /// `timestamp` from Nginx `$time_local`: `15/Jan/2024:10:30:45 +0000`.
    TimeClf,
    /// `timestamp` from Nginx `$time_iso8601`.
    TimeIso,
    /// `method`, `path`, `protocol` (and `request` when malformed).
    Request,
    Method,
    Path,
    Protocol,
    /// `status_code`.
    Status,
    /// `response_size` (`-`: null).
    Size,
    Referer,
    UserAgent,
    /// Another field, an integer (`-`: null).
    Int,
    /// Another field, a decimal number (`-`: null).
    Float,
    /// Another field, a string (`-`: null).
    Str,
}

impl Kind {
    /// The record slot this kind fills, if it is one of the fixed fields.
    fn slot(self) -> Option<Kind> {
        match self {
            Kind::Int | Kind::Float | Kind::Str => None,
            Kind::TimeBracketed | Kind::TimeClf | Kind::TimeIso => Some(Kind::TimeClf),
            other => Some(other),
        }
    }
}

/// How the parser finds where a field's value ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delim {
    /// Inside `"…"`: up to the first unescaped `"`.
    Quoted,
    /// `[…]`, brackets included.
    Bracketed,
    /// Up to the next occurrence of this byte (the next literal's first).
    UpTo(u8),
    /// The rest of the line.
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub(crate) kind: Kind,
    /// The key of a field that is not one of the fixed ones.
    pub(crate) name: String,
    /// The directive as written, for messages.
    pub(crate) directive: String,
    pub(crate) delim: Delim,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    Literal(String),
    Field(Field),
}

/// A compiled access-log format.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccessFormat {
    pub(crate) items: Vec<Item>,
    /// A line may end before this item (the fields from here on are then
    /// absent): how `apache` reads both common and combined lines. Always
    /// a literal.
    pub(crate) optional_from: Option<usize>,
    pub(crate) log_type: LogType,
    /// The items as the parser walks them.
    pub(crate) walk: Walk,
}

/// The items regrouped for the parser: the text before the first field,
/// then one step per field with the text that follows it. A line is one
/// loop over the steps, with no separate turn for each literal.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Walk {
    pub(crate) lead: Literal,
    pub(crate) steps: Vec<Step>,
}

/// A field and the literal text after it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    pub(crate) field: Field,
    pub(crate) after: Literal,
    /// The line may end this many bytes into `after` (0: right after the
    /// value); the fields after it are then absent (from
    /// [`AccessFormat::optional_from`]).
    pub(crate) line_may_end: Option<usize>,
}

/// Literal text between fields, with its first eight bytes packed into a
/// word so that it is checked with one compare.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Literal {
    pub(crate) text: String,
    /// The first `min(len, 8)` bytes, little-endian.
    word: u64,
    /// Which bits of `word` are the literal's.
    mask: u64,
}

impl Literal {
    fn new(text: String) -> Self {
        let mut bytes = [0u8; 8];
        let len = text.len().min(8);
        bytes
            .iter_mut()
            .zip(text.as_bytes())
            .for_each(|(slot, &b)| *slot = b);
        let mask = if len == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * len)) - 1
        };
        Literal {
            word: u64::from_le_bytes(bytes),
            mask,
            text,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether `line` holds this literal at `at`.
    pub(crate) fn is_at(&self, line: &[u8], at: usize) -> bool {
        let rest = line.get(at..).unwrap_or_default();
        match rest.first_chunk::<8>() {
            Some(word) if self.text.len() <= 8 => {
                (u64::from_le_bytes(*word) ^ self.word) & self.mask == 0
            }
            _ => rest.starts_with(self.text.as_bytes()),
        }
    }
}

/// The keys of an access record's fixed fields; a custom field never takes
/// one of these names.
const RECORD_KEYS: [&str; 13] = [
    "timestamp",
    "ip_address",
    "ident",
    "remote_user",
    "method",
    "path",
    "protocol",
    "request",
    "status_code",
    "response_size",
    "referer",
    "user_agent",
    "log_type",
];

/// Apache's common log format.
pub(crate) const APACHE_COMMON: &str = r#"%h %l %u %t "%r" %>s %b"#;
/// The tail Apache's combined format adds to the common one.
pub(crate) const APACHE_COMBINED_TAIL: &str = r#" "%{Referer}i" "%{User-agent}i""#;
/// Nginx's predefined `combined` format.
pub(crate) const NGINX_COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
/// The tail the stock `nginx.conf` `main` format adds to `combined`.
pub(crate) const NGINX_MAIN_TAIL: &str = r#" "$http_x_forwarded_for""#;

impl AccessFormat {
    /// Compiles an Apache `LogFormat` string, e.g. `%h %l %u %t "%r" %>s %b`.
    /// A whole `LogFormat "…" nickname` line is accepted too.
    pub(crate) fn apache(directive: &str) -> Result<Self, FormatError> {
        let format = strip_apache_directive(directive);
        let items = lex_apache(&format)?;
        finish(items, None, LogType::ApacheAccess)
    }

    /// Compiles an Nginx `log_format` string, e.g.
    /// `$remote_addr - $remote_user [$time_local] "$request" …`. A whole
    /// `log_format name '…' '…';` directive is accepted too.
    pub(crate) fn nginx(directive: &str) -> Result<Self, FormatError> {
        let format = strip_nginx_directive(directive);
        let items = lex_nginx(&format)?;
        finish(items, None, LogType::NginxAccess)
    }

    /// Apache common or combined, told apart by where the line ends.
    pub(crate) fn apache_builtin() -> Result<Self, FormatError> {
        let head = lex_apache(APACHE_COMMON)?;
        let tail = lex_apache(APACHE_COMBINED_TAIL)?;
        let optional_from = Some(head.len());
        finish(
            head.into_iter().chain(tail).collect(),
            optional_from,
            LogType::ApacheAccess,
        )
    }

    /// Nginx combined or main, told apart by where the line ends.
    pub(crate) fn nginx_builtin() -> Result<Self, FormatError> {
        let head = lex_nginx(NGINX_COMBINED)?;
        let tail = lex_nginx(NGINX_MAIN_TAIL)?;
        let optional_from = Some(head.len());
        finish(
            head.into_iter().chain(tail).collect(),
            optional_from,
            LogType::NginxAccess,
        )
    }
}

/// Sets each field's delimiter from its neighbours, turns a second field
/// for an already-filled slot into a named extra, and rejects formats whose
/// fields cannot be told apart.
fn finish(
    mut items: Vec<Item>,
    optional_from: Option<usize>,
    log_type: LogType,
) -> Result<AccessFormat, FormatError> {
    // Merge adjacent literals (e.g. from `%%`), but not across the point
    // where a line may end.
    let mut merged: Vec<Item> = Vec::with_capacity(items.len());
    let mut optional_from_merged = None;
    for (index, item) in items.drain(..).enumerate() {
        let boundary = optional_from == Some(index);
        if boundary {
            optional_from_merged = Some(merged.len());
        }
        match (merged.last_mut(), item) {
            (Some(Item::Literal(previous)), Item::Literal(next)) if !boundary => {
                previous.push_str(&next);
            }
            (_, item) => merged.push(item),
        }
    }
    let optional_from = optional_from_merged;
    if !merged.iter().any(|i| matches!(i, Item::Field(_))) {
        return Err(FormatError::Empty);
    }
    let mut filled: Vec<Kind> = Vec::new();
    let mut extra_keys: Vec<String> = Vec::new();
    let count = merged.len();
    for index in 0..count {
        let previous_literal = index
            .checked_sub(1)
            .and_then(|i| merged.get(i))
            .and_then(literal_text)
            .map(str::to_owned);
        let next = merged.get(index + 1).cloned();
        let Some(Item::Field(field)) = merged.get_mut(index) else {
            continue;
        };
        if let Some(slot) = field.kind.slot() {
            if filled.contains(&slot) {
                field.kind = Kind::Str;
            } else {
                filled.push(slot);
            }
        }
        if field.kind.slot().is_none() {
            // An extra key must not repeat a record key or another extra.
            let base = field.name.clone();
            let mut n = 1;
            while RECORD_KEYS.contains(&field.name.as_str()) || extra_keys.contains(&field.name) {
                n += 1;
                field.name = format!("{base}_{n}");
            }
            extra_keys.push(field.name.clone());
        }
        let quoted = previous_literal
            .as_deref()
            .is_some_and(|l| l.ends_with('"'))
            && next
                .as_ref()
                .and_then(literal_text)
                .is_some_and(|l| l.starts_with('"'));
        field.delim = if quoted {
            Delim::Quoted
        } else if field.kind == Kind::TimeBracketed {
            Delim::Bracketed
        } else {
            match &next {
                None => Delim::End,
                Some(Item::Literal(text)) => match text.bytes().next() {
                    Some(byte) => Delim::UpTo(byte),
                    None => Delim::End,
                },
                Some(Item::Field(second)) => {
                    return Err(FormatError::AdjacentFields {
                        first: field.directive.clone(),
                        second: second.directive.clone(),
                    });
                }
            }
        };
    }
    let walk = walk(&merged, optional_from);
    Ok(AccessFormat {
        items: merged,
        optional_from,
        log_type,
        walk,
    })
}

/// Regroups finished items into the parser's [`Walk`].
fn walk(items: &[Item], optional_from: Option<usize>) -> Walk {
    let mut lead = String::new();
    let mut steps: Vec<Step> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match item {
            Item::Literal(text) => match steps.last_mut() {
                Some(step) => {
                    if optional_from == Some(index) {
                        step.line_may_end = Some(step.after.len());
                    }
                    let mut joined = std::mem::take(&mut step.after.text);
                    joined.push_str(text);
                    step.after = Literal::new(joined);
                }
                None => lead.push_str(text),
            },
            Item::Field(field) => steps.push(Step {
                field: field.clone(),
                after: Literal::default(),
                line_may_end: None,
            }),
        }
    }
    Walk {
        lead: Literal::new(lead),
        steps,
    }
}

fn literal_text(item: &Item) -> Option<&str> {
    match item {
        Item::Literal(text) => Some(text),
        Item::Field(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(format: &AccessFormat) -> Vec<String> {
        format
            .items
            .iter()
            .map(|item| match item {
                Item::Literal(text) => format!("lit {text:?}"),
                Item::Field(f) => format!("{} {:?} {:?} {}", f.directive, f.kind, f.delim, f.name),
            })
            .collect()
    }

    #[test]
    fn apache_common_compiles() {
        let format = AccessFormat::apache(APACHE_COMMON).unwrap();
        assert_eq!(
            shape(&format),
            [
                "%h Client UpTo(32) remote_host",
                "lit \" \"",
                "%l Ident UpTo(32) ident",
                "lit \" \"",
                "%u RemoteUser UpTo(32) remote_user",
                "lit \" \"",
                "%t TimeBracketed Bracketed timestamp",
                "lit \" \\\"\"",
                "%r Request Quoted request",
                "lit \"\\\" \"",
                "%>s Status UpTo(32) status_code",
                "lit \" \"",
                "%b Size End response_size",
            ]
        );
    }

    #[test]
    fn apache_logformat_line_and_conditions() {
        let format = AccessFormat::apache(
            r#"LogFormat "%v:%p %h \"%!200,304{Referer}i\" %{X-Forwarded-For}i %D" vhost"#,
        )
        .unwrap();
        let fields: Vec<String> = shape(&format)
            .into_iter()
            .filter(|s| !s.starts_with("lit"))
            .collect();
        assert_eq!(
            fields,
            [
                "%v Str UpTo(58) server_name",
                "%p Int UpTo(32) server_port",
                "%h Client UpTo(32) remote_host",
                "%!200,304{Referer}i Referer Quoted referer",
                "%{X-Forwarded-For}i Str UpTo(32) x_forwarded_for",
                "%D Int End request_time_us",
            ]
        );
    }

    #[test]
    fn apache_errors_name_the_directive() {
        let cases = [
            ("%h %{%Y}t", "%{%Y}t"),
            ("%h %Z", "%Z"),
            ("%h %{sec}t", "%{sec}t"),
        ];
        for (format, directive) in cases {
            match AccessFormat::apache(format) {
                Err(FormatError::UnsupportedDirective { directive: d, .. }) => {
                    assert_eq!(d, directive)
                }
                other => panic!("{format}: {other:?}"),
            }
        }
        assert!(matches!(
            AccessFormat::apache("%h%u"),
            Err(FormatError::AdjacentFields { .. })
        ));
        assert!(matches!(
            AccessFormat::apache("%h %{Referer"),
            Err(FormatError::Incomplete { .. })
        ));
        assert!(matches!(
            AccessFormat::apache("%h %"),
            Err(FormatError::Incomplete { .. })
        ));
        assert_eq!(AccessFormat::apache("just text"), Err(FormatError::Empty));
    }

    #[test]
    fn nginx_directive_text_and_braces() {
        let format = AccessFormat::nginx(
            "log_format timed '$remote_addr [${time_local}] \"$request\" '\n    '$status $request_time $upstream_response_time';",
        )
        .unwrap();
        let fields: Vec<String> = shape(&format)
            .into_iter()
            .filter(|s| !s.starts_with("lit"))
            .collect();
        assert_eq!(
            fields,
            [
                "$remote_addr Client UpTo(32) remote_addr",
                "$time_local TimeClf UpTo(93) time_local",
                "$request Request Quoted request",
                "$status Status UpTo(32) status",
                "$request_time Float UpTo(32) request_time",
                "$upstream_response_time Str End upstream_response_time",
            ]
        );
        assert!(matches!(
            AccessFormat::nginx("$remote_addr ${oops"),
            Err(FormatError::Incomplete { .. })
        ));
        assert!(matches!(
            AccessFormat::nginx("$remote_addr $-x"),
            Err(FormatError::UnsupportedDirective { .. })
        ));
    }

    #[test]
    fn a_second_field_for_a_filled_slot_becomes_an_extra() {
        let format = AccessFormat::apache("%h %a %s %>s").unwrap();
        let kinds: Vec<Kind> = format
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Field(f) => Some(f.kind),
                Item::Literal(_) => None,
            })
            .collect();
        assert_eq!(kinds, [Kind::Client, Kind::Str, Kind::Status, Kind::Str]);
        let names: Vec<&str> = format
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Field(f) if f.kind == Kind::Str => Some(f.name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["client_ip", "status_code_2"]);
        // A header named like a record key gets a name of its own.
        let format = AccessFormat::apache("%h %{Status-Code}i %{Status-Code}i").unwrap();
        let names: Vec<&str> = format
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Field(f) if f.kind == Kind::Str => Some(f.name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["status_code_2", "status_code_3"]);
    }

    #[test]
    fn builtins_compile_with_an_optional_tail() {
        let apache = AccessFormat::apache_builtin().unwrap();
        assert_eq!(apache.optional_from, Some(13));
        let nginx = AccessFormat::nginx_builtin().unwrap();
        assert!(nginx.optional_from.is_some());
    }
}
