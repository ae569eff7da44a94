//! Lexing a directive: an Apache `LogFormat` or an Nginx `log_format`
//! into literal text and fields.

use super::{Delim, Field, Item, Kind};
use crate::error::FormatError;

/// Apache directives shardline reads, for the error message.
const APACHE_SUPPORTED: &str = "%h %a %A %l %u %t %r %m %U %q %H %>s %s %b %B %{Header}i \
    %{Header}o %{Var}e %{Name}C %{Note}n %D %T %{ms|us|s}T %v %V %p %{canonical|local|remote}p \
    %P %I %O %S %k %f %L %R %X %%, with optional status conditions like %!200,304{Referer}i";
/// What an Nginx format may hold, for the error message.
const NGINX_SUPPORTED: &str = "$variable or ${variable} of letters, digits and _";

type Lexed = Result<Vec<Item>, FormatError>;

/// A field as lexed, before its delimiter is known.
fn field(kind: Kind, name: &str, directive: &str) -> Item {
    Item::Field(Field {
        kind,
        name: name.to_owned(),
        directive: directive.to_owned(),
        delim: Delim::End,
    })
}

/// `LogFormat "…" nickname` → the format string, unescaped; anything else
/// is taken as the format itself.
pub(super) fn strip_apache_directive(text: &str) -> String {
    let trimmed = text.trim();
    let Some(rest) = trimmed.strip_prefix("LogFormat") else {
        return trimmed.to_owned();
    };
    let rest = rest.trim_start();
    let Some(body) = rest.strip_prefix('"') else {
        return rest.to_owned();
    };
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ ('"' | '\\')) => out.push(next),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            '"' => break,
            other => out.push(other),
        }
    }
    out
}

/// `log_format name [escape=…] '…' '…';` → the concatenated format;
/// anything else is taken as the format itself.
pub(super) fn strip_nginx_directive(text: &str) -> String {
    let trimmed = text.trim();
    let Some(rest) = trimmed.strip_prefix("log_format") else {
        return trimmed.to_owned();
    };
    let mut out = String::new();
    let mut rest = rest;
    while let Some(start) = rest.find(['\'', '"']) {
        let quote = rest
            .get(start..)
            .and_then(|r| r.chars().next())
            .unwrap_or('\'');
        let after = rest.get(start + 1..).unwrap_or_default();
        let Some(end) = after.find(quote) else {
            out.push_str(after);
            break;
        };
        out.push_str(after.get(..end).unwrap_or_default());
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out
}

pub(super) fn lex_apache(format: &str) -> Lexed {
    let mut items = Vec::new();
    let mut literal = String::new();
    let mut rest = format;
    while let Some(pos) = rest.find('%') {
        literal.push_str(rest.get(..pos).unwrap_or_default());
        let start = format.len() - rest.len() + pos;
        let after = rest.get(pos + 1..).unwrap_or_default();
        if let Some(after_percent) = after.strip_prefix('%') {
            literal.push('%');
            rest = after_percent;
            continue;
        }
        // Optional status condition (`!200,304`) and `<` / `>` modifiers.
        let skip = after
            .bytes()
            .take_while(|b| b.is_ascii_digit() || matches!(b, b'!' | b',' | b'<' | b'>'))
            .count();
        let after = after.get(skip..).unwrap_or_default();
        let (argument, after) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (
                    Some(inner.get(..end).unwrap_or_default()),
                    inner.get(end + 1..).unwrap_or_default(),
                ),
                None => return Err(FormatError::Incomplete { offset: start }),
            },
            None => (None, after),
        };
        let Some(letter) = after.chars().next() else {
            return Err(FormatError::Incomplete { offset: start });
        };
        let consumed = format.len() - after.len() + letter.len_utf8();
        let directive = format.get(start..consumed).unwrap_or_default();
        let item = apache_field(letter, argument, directive).ok_or_else(|| {
            FormatError::UnsupportedDirective {
                directive: directive.to_owned(),
                offset: start,
                supported: APACHE_SUPPORTED,
            }
        })?;
        if !literal.is_empty() {
            items.push(Item::Literal(std::mem::take(&mut literal)));
        }
        items.push(item);
        rest = after.get(letter.len_utf8()..).unwrap_or_default();
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        items.push(Item::Literal(literal));
    }
    Ok(items)
}

/// A header name as a JSON key: `X-Forwarded-For` → `x_forwarded_for`.
fn header_key(prefix: &str, header: &str) -> String {
    let mut key = String::from(prefix);
    key.extend(header.chars().map(|c| match c {
        '-' => '_',
        c => c.to_ascii_lowercase(),
    }));
    key
}

fn apache_field(letter: char, argument: Option<&str>, directive: &str) -> Option<Item> {
    let item = |kind, name: &str| Some(field(kind, name, directive));
    match (letter, argument) {
        ('h', None) => item(Kind::Client, "remote_host"),
        ('a', None | Some("c")) => item(Kind::Client, "client_ip"),
        ('A', None) => item(Kind::Str, "local_ip"),
        ('l', None) => item(Kind::Ident, "ident"),
        ('u', None) => item(Kind::RemoteUser, "remote_user"),
        ('t', None) => item(Kind::TimeBracketed, "timestamp"),
        ('r', None) => item(Kind::Request, "request"),
        ('m', None) => item(Kind::Method, "method"),
        ('U', None) => item(Kind::Path, "path"),
        ('q', None) => item(Kind::Str, "query"),
        ('H', None) => item(Kind::Protocol, "protocol"),
        ('s', None) => item(Kind::Status, "status_code"),
        ('b', None) => item(Kind::Size, "response_size"),
        ('B', None) => item(Kind::Size, "bytes"),
        ('i', Some(header)) if header.eq_ignore_ascii_case("referer") => {
            item(Kind::Referer, "referer")
        }
        ('i', Some(header)) if header.eq_ignore_ascii_case("user-agent") => {
            item(Kind::UserAgent, "user_agent")
        }
        ('i', Some(header)) => item(Kind::Str, &header_key("", header)),
        ('o', Some(header)) => item(Kind::Str, &header_key("response_", header)),
        ('e', Some(var)) => item(Kind::Str, &header_key("env_", var)),
        ('C', Some(cookie)) => item(Kind::Str, &header_key("cookie_", cookie)),
        ('n', Some(note)) => item(Kind::Str, &header_key("note_", note)),
        ('D', None) => item(Kind::Int, "request_time_us"),
        ('T', None | Some("s")) => item(Kind::Int, "request_time_s"),
        ('T', Some("ms")) => item(Kind::Int, "request_time_ms"),
        ('T', Some("us")) => item(Kind::Int, "request_time_us"),
        ('v', None) => item(Kind::Str, "server_name"),
        ('V', None) => item(Kind::Str, "vhost"),
        ('p', None | Some("canonical")) => item(Kind::Int, "server_port"),
        ('p', Some("local")) => item(Kind::Int, "local_port"),
        ('p', Some("remote")) => item(Kind::Int, "remote_port"),
        ('P', None | Some("pid")) => item(Kind::Int, "pid"),
        ('P', Some("tid")) => item(Kind::Int, "tid"),
        ('I', None) => item(Kind::Int, "bytes_received"),
        ('O', None) => item(Kind::Int, "bytes_sent"),
        ('S', None) => item(Kind::Int, "bytes_transferred"),
        ('k', None) => item(Kind::Int, "keepalive_requests"),
        ('f', None) => item(Kind::Str, "filename"),
        ('L', None) => item(Kind::Str, "log_id"),
        ('R', None) => item(Kind::Str, "handler"),
        ('X', None) => item(Kind::Str, "connection_status"),
        _ => None,
    }
}

pub(super) fn lex_nginx(format: &str) -> Lexed {
    let mut items = Vec::new();
    let mut literal = String::new();
    let mut rest = format;
    while let Some(pos) = rest.find('$') {
        literal.push_str(rest.get(..pos).unwrap_or_default());
        let start = format.len() - rest.len() + pos;
        let after = rest.get(pos + 1..).unwrap_or_default();
        let (name, after) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (
                    inner.get(..end).unwrap_or_default(),
                    inner.get(end + 1..).unwrap_or_default(),
                ),
                None => return Err(FormatError::Incomplete { offset: start }),
            },
            None => {
                let len = after
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                (
                    after.get(..len).unwrap_or_default(),
                    after.get(len..).unwrap_or_default(),
                )
            }
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            let end = format.len() - after.len();
            return Err(FormatError::UnsupportedDirective {
                directive: format
                    .get(start..end.max(start + 1))
                    .unwrap_or("$")
                    .to_owned(),
                offset: start,
                supported: NGINX_SUPPORTED,
            });
        }
        let directive = format!("${name}");
        if !literal.is_empty() {
            items.push(Item::Literal(std::mem::take(&mut literal)));
        }
        items.push(nginx_field(name, &directive));
        rest = after;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        items.push(Item::Literal(literal));
    }
    Ok(items)
}

fn nginx_field(name: &str, directive: &str) -> Item {
    let kind = match name {
        "remote_addr" => Kind::Client,
        "remote_user" => Kind::RemoteUser,
        "time_local" => Kind::TimeClf,
        "time_iso8601" => Kind::TimeIso,
        "request" => Kind::Request,
        "request_method" => Kind::Method,
        "request_uri" | "uri" | "document_uri" => Kind::Path,
        "server_protocol" => Kind::Protocol,
        "status" => Kind::Status,
        "body_bytes_sent" => Kind::Size,
        "http_referer" => Kind::Referer,
        "http_user_agent" => Kind::UserAgent,
        "bytes_sent"
        | "request_length"
        | "connection"
        | "connection_requests"
        | "pid"
        | "server_port"
        | "remote_port"
        | "content_length" => Kind::Int,
        "request_time" | "msec" => Kind::Float,
        _ => Kind::Str,
    };
    field(kind, name, directive)
}
