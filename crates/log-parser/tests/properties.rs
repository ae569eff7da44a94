//! Properties of every parser: well-formed records survive format → parse,
//! arbitrary input never panics, and whatever parses serializes to the
//! documented schema.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use shardline_log_parser::{CsvFormat, LogParser};

/// The keys every access record has.
const ACCESS_KEYS: [&str; 10] = [
    "timestamp",
    "ip_address",
    "method",
    "path",
    "protocol",
    "status_code",
    "response_size",
    "referer",
    "user_agent",
    "log_type",
];

/// The keys every application record has.
const APP_KEYS: [&str; 7] = [
    "timestamp",
    "level",
    "logger",
    "message",
    "user_id",
    "request_id",
    "log_type",
];

const MONTHS: [(usize, &str); 12] = [
    (1, "Jan"),
    (2, "Feb"),
    (3, "Mar"),
    (4, "Apr"),
    (5, "May"),
    (6, "Jun"),
    (7, "Jul"),
    (8, "Aug"),
    (9, "Sep"),
    (10, "Oct"),
    (11, "Nov"),
    (12, "Dec"),
];

#[derive(Debug, Clone)]
struct Time {
    year: u16,
    month: (usize, &'static str),
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    offset: i16,
}

impl Time {
    fn clf(&self) -> String {
        let sign = if self.offset < 0 { '-' } else { '+' };
        let abs = self.offset.unsigned_abs();
        format!(
            "{:02}/{}/{:04}:{:02}:{:02}:{:02} {sign}{:02}{:02}",
            self.day,
            self.month.1,
            self.year,
            self.hour,
            self.minute,
            self.second,
            abs / 60,
            abs % 60
        )
    }

    fn rfc3339(&self) -> String {
        let sign = if self.offset < 0 { '-' } else { '+' };
        let abs = self.offset.unsigned_abs();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
            self.year,
            self.month.0,
            self.day,
            self.hour,
            self.minute,
            self.second,
            abs / 60,
            abs % 60
        )
    }
}

fn time() -> impl Strategy<Value = Time> {
    (
        1970u16..=2099,
        proptest::sample::select(&MONTHS[..]),
        1u8..=28,
        0u8..24,
        0u8..60,
        0u8..60,
        -(23 * 60 + 59)..=(23i16 * 60 + 59),
    )
        .prop_map(|(year, month, day, hour, minute, second, offset)| Time {
            year,
            month,
            day,
            hour,
            minute,
            second,
            offset,
        })
}

fn client() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
        any::<[u16; 8]>().prop_map(|s| {
            s.iter()
                .map(|x| format!("{x:x}"))
                .collect::<Vec<_>>()
                .join(":")
        }),
        "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
    ]
}

/// Text a client may send in a header: any printable characters, including
/// quotes, backslashes, spaces and non-ASCII (never exactly `-`).
fn header_text() -> impl Strategy<Value = String> {
    "[ -~é€😀]{0,60}".prop_filter("`-` means no value", |s| s != "-")
}

/// Escapes text as Apache writes it inside quotes.
fn apache_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Escapes text as Nginx writes it (escape=default): `"`, `\` and every
/// byte outside printable ASCII as `\xHH`.
fn nginx_escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte) {
            out.push_str(&format!("\\x{byte:02X}"));
        } else {
            out.push(byte as char);
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Access {
    client: String,
    user: Option<String>,
    time: Time,
    method: String,
    path: String,
    protocol: String,
    status: u16,
    size: Option<u64>,
    referer: Option<String>,
    agent: Option<String>,
}

fn access() -> impl Strategy<Value = Access> {
    (
        client(),
        proptest::option::of("[a-z][a-z0-9_]{0,15}"),
        time(),
        "[A-Z][A-Z-]{0,11}",
        "/[!-~é]{0,80}",
        prop_oneof![
            Just("HTTP/1.0".to_owned()),
            Just("HTTP/1.1".to_owned()),
            Just("HTTP/2.0".to_owned())
        ],
        100u16..=599,
        proptest::option::of(any::<u64>()),
        proptest::option::of(header_text()),
        proptest::option::of(header_text()),
    )
        .prop_map(
            |(client, user, time, method, path, protocol, status, size, referer, agent)| Access {
                client,
                user,
                time,
                method,
                path,
                protocol,
                status,
                size,
                referer,
                agent,
            },
        )
}

impl Access {
    fn line(&self, escape: fn(&str) -> String) -> String {
        let or_dash = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), escape);
        format!(
            r#"{} - {} [{}] "{} {} {}" {} {} "{}" "{}""#,
            self.client,
            self.user.as_deref().unwrap_or("-"),
            self.time.clf(),
            self.method,
            escape(&self.path),
            self.protocol,
            self.status,
            self.size.map_or("-".to_owned(), |s| s.to_string()),
            or_dash(&self.referer),
            or_dash(&self.agent),
        )
    }

    fn expected(&self, log_type: &str) -> Value {
        let mut value = json!({
            "timestamp": self.time.rfc3339(),
            "ip_address": self.client,
            "method": self.method,
            "path": self.path,
            "protocol": self.protocol,
            "status_code": self.status,
            "response_size": self.size,
            "referer": self.referer,
            "user_agent": self.agent,
            "log_type": log_type,
        });
        if let (Some(user), Some(map)) = (&self.user, value.as_object_mut()) {
            map.insert("remote_user".into(), json!(user));
        }
        value
    }
}

/// Parses a line and returns its JSON, checking on the way that the fast
/// writer and `serde_json` through `Serialize` write the same bytes.
fn parse_to_json(parser: &LogParser, line: &str) -> Result<Value, String> {
    let record = parser.parse(line).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    record.write_json(&mut buf).map_err(|e| e.to_string())?;
    let through_serde = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    if buf != through_serde {
        return Err(format!(
            "write_json and serde_json differ:\n{}\n{}",
            String::from_utf8_lossy(&buf),
            String::from_utf8_lossy(&through_serde)
        ));
    }
    serde_json::from_slice(&buf).map_err(|e| e.to_string())
}

fn has_schema(value: &Value, keys: &[&str]) -> bool {
    value
        .as_object()
        .is_some_and(|map| keys.iter().all(|k| map.contains_key(*k)))
}

/// A directive of a custom format with a generator of its logged text and
/// the JSON it must become.
#[derive(Debug, Clone)]
struct Directive {
    apache: &'static str,
    nginx: &'static str,
    key: &'static str,
    quoted: bool,
}

const DIRECTIVES: [Directive; 9] = [
    Directive {
        apache: "%h",
        nginx: "$remote_addr",
        key: "ip_address",
        quoted: false,
    },
    Directive {
        apache: "%u",
        nginx: "$remote_user",
        key: "remote_user",
        quoted: false,
    },
    Directive {
        apache: "%t",
        nginx: "[$time_local]",
        key: "timestamp",
        quoted: false,
    },
    Directive {
        apache: "%>s",
        nginx: "$status",
        key: "status_code",
        quoted: false,
    },
    Directive {
        apache: "%b",
        nginx: "$body_bytes_sent",
        key: "response_size",
        quoted: false,
    },
    Directive {
        apache: "%{Referer}i",
        nginx: "$http_referer",
        key: "referer",
        quoted: true,
    },
    Directive {
        apache: "%{User-Agent}i",
        nginx: "$http_user_agent",
        key: "user_agent",
        quoted: true,
    },
    Directive {
        apache: "%{X-Trace}i",
        nginx: "$http_x_trace",
        key: "",
        quoted: true,
    },
    Directive {
        apache: "%D",
        nginx: "$request_length",
        key: "",
        quoted: false,
    },
];

/// A custom format built from a random choice and order of directives,
/// with one generated value per directive.
fn custom_case() -> impl Strategy<Value = (Vec<usize>, Access, String, u64, bool)> {
    (
        Just((0..DIRECTIVES.len()).collect::<Vec<_>>()).prop_shuffle(),
        1usize..=DIRECTIVES.len(),
        access(),
        header_text(),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(|(order, n, access, trace, number, nginx)| {
            (
                order.into_iter().take(n).collect(),
                access,
                trace,
                u64::from(number),
                nginx,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn apache_records_round_trip(record in access()) {
        let line = record.line(apache_escape);
        let parsed = parse_to_json(&LogParser::apache(), &line);
        prop_assert_eq!(parsed, Ok(record.expected("apache_access")), "{}", line);
    }

    #[test]
    fn nginx_records_round_trip(record in access()) {
        let line = record.line(nginx_escape);
        let parsed = parse_to_json(&LogParser::nginx(), &line);
        prop_assert_eq!(parsed, Ok(record.expected("nginx_access")), "{}", line);
    }

    #[test]
    fn custom_formats_round_trip((chosen, record, trace, number, nginx) in custom_case()) {
        let escape: fn(&str) -> String = if nginx { nginx_escape } else { apache_escape };
        let mut format = Vec::new();
        let mut line = Vec::new();
        let mut want = Map::new();
        for &i in &chosen {
            let d = &DIRECTIVES[i];
            let directive = if nginx { d.nginx } else { d.apache };
            let (text, json_value, key): (String, Value, String) = match i {
                0 => (record.client.clone(), json!(record.client), d.key.into()),
                1 => {
                    let user = record.user.clone();
                    let text = user.clone().unwrap_or_else(|| "-".into());
                    (text, json!(user), d.key.into())
                }
                2 => (format!("[{}]", record.time.clf()), json!(record.time.rfc3339()), d.key.into()),
                3 => (record.status.to_string(), json!(record.status), d.key.into()),
                4 => (record.size.map_or("-".into(), |s| s.to_string()), json!(record.size), d.key.into()),
                5 => (record.referer.as_deref().map_or("-".into(), escape), json!(record.referer), d.key.into()),
                6 => (record.agent.as_deref().map_or("-".into(), escape), json!(record.agent), d.key.into()),
                7 => (escape(&trace), json!(trace), if nginx { "http_x_trace".into() } else { "x_trace".into() }),
                _ => (number.to_string(), json!(number), if nginx { "request_length".into() } else { "request_time_us".into() }),
            };
            if d.quoted {
                format.push(format!("\"{directive}\""));
                line.push(format!("\"{text}\""));
            } else {
                format.push(directive.to_owned());
                line.push(text);
            }
            if !(key == "remote_user" && json_value.is_null()) {
                want.insert(key, json_value);
            }
        }
        let format = format.join(" ");
        let line = line.join(" ");
        let parser = if nginx {
            LogParser::nginx_format(&format)
        } else {
            LogParser::apache_format(&format)
        };
        let parser = parser.map_err(|e| TestCaseError::fail(format!("{format}: {e}")))?;
        let parsed = parse_to_json(&parser, &line)
            .map_err(|e| TestCaseError::fail(format!("{format} / {line}: {e}")))?;
        for (key, value) in &want {
            prop_assert_eq!(parsed.get(key), Some(value), "{} / {} / {}", format, line, key);
        }
        prop_assert!(has_schema(&parsed, &ACCESS_KEYS));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let parsers = [
            LogParser::apache(),
            LogParser::nginx(),
            LogParser::application(),
            LogParser::apache_format(r#"%v:%p %h "%r" %>s %D %{X-Id}i"#).map_err(|e| TestCaseError::fail(e.to_string()))?,
            LogParser::text(),
            LogParser::syslog(),
            LogParser::csv(
                CsvFormat::new(vec!["a".into(), "b".into(), "c".into()], ',', '"')
                    .map_err(|e| TestCaseError::fail(e.to_string()))?,
            ),
        ];
        for parser in &parsers {
            if let Ok(record) = parser.parse_bytes(&bytes) {
                let mut buf = Vec::new();
                prop_assert!(record.write_json(&mut buf).is_ok());
                let through_serde = serde_json::to_vec(&record)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&buf, &through_serde);
                let value: Value = serde_json::from_slice(&buf)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(value.get("log_type").is_some());
            }
        }
    }

    #[test]
    fn access_like_garbage_never_panics(
        // Unquoted fields may hold `"`, `\` and control bytes too, which
        // JSON must escape.
        line in r#"[0-9a-f:."\\\t]{0,12} [-a-z"\\\x01]{0,3} [-a-z"\\\x1f]{0,3} \[[0-9A-Za-z/: +-]{0,30}\] "[ -~\\\t]{0,30}" [0-9-]{0,4} [0-9-]{0,6}( "[ -~\\]{0,20}" "[ -~\\\x7f]{0,20}")?"#
    ) {
        for parser in [LogParser::apache(), LogParser::nginx()] {
            if let Ok(value) = parse_to_json(&parser, &line) {
                prop_assert!(has_schema(&value, &ACCESS_KEYS), "{}", value);
            }
        }
    }

    #[test]
    fn bytes_json_escapes_are_escaped_in_every_text_field(
        client in "[a-z0-9.:\"\\\\\t\x01]{1,8}",
        ident in "[a-z\"\\\\\x1f]{1,4}",
        user in "[a-z\"\\\\\t]{1,4}",
        request in "[a-z /\t\x01]{0,20}",
        agent in "[a-z /\t\x1f]{0,20}",
    ) {
        // The writer copies text it saw no such byte in as it is; these
        // lines hold them in every text field, quoted or not.
        let line = format!(
            "{client} {ident} {user} [15/Jan/2024:10:30:45 +0000] \"{request}\" 200 1 \"-\" \"{agent}\""
        );
        let parsed = parse_to_json(&LogParser::apache(), &line).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&parsed["ip_address"], &json!(client));
        prop_assert_eq!(&parsed["ident"], &json!(ident));
        prop_assert_eq!(&parsed["remote_user"], &json!(user));
        if !agent.is_empty() {
            prop_assert_eq!(&parsed["user_agent"], &json!(agent));
        }
    }

    /// Whatever bytes a referer or user agent held, Apache's escaping of
    /// them (printable ASCII as is, `"` and `\` backslashed, every other
    /// byte `\xhh`) and the record give them back: as text when they were
    /// UTF-8, through `recover_bytes` when the record names the field under
    /// `not_utf8`. Never U+FFFD.
    #[test]
    fn any_bytes_in_a_field_are_recovered_from_the_record(
        referer in proptest::collection::vec(any::<u8>(), 1..40),
        agent in proptest::collection::vec(prop_oneof![Just(0xe4u8), Just(0xd0), Just(0xb0), Just(b'\\'), Just(b'x'), Just(b'4'), any::<u8>()], 1..20),
    ) {
        let escape = |bytes: &[u8]| -> String {
            let mut out = String::new();
            for &byte in bytes {
                match byte {
                    b'"' => out.push_str("\\\""),
                    b'\\' => out.push_str("\\\\"),
                    0x20..=0x7e => out.push(byte as char),
                    _ => out.push_str(&format!("\\x{byte:02x}")),
                }
            }
            out
        };
        // "-" alone means no value.
        prop_assume!(referer != b"-" && agent != b"-");
        let line = format!(
            "10.0.0.1 - - [15/Jan/2024:10:30:45 +0000] \"GET / HTTP/1.1\" 200 1 \"{}\" \"{}\"",
            escape(&referer),
            escape(&agent)
        );
        let parsed = parse_to_json(&LogParser::apache(), &line).map_err(TestCaseError::fail)?;
        let flagged: Vec<&str> = parsed["not_utf8"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, bytes) in [("referer", &referer), ("user_agent", &agent)] {
            let text = parsed[name].as_str().ok_or_else(|| TestCaseError::fail(format!("{name}: {parsed}")))?;
            prop_assert!(!text.contains('\u{fffd}'), "U+FFFD in {}", name);
            let got = if flagged.contains(&name) {
                prop_assert!(std::str::from_utf8(bytes).is_err(), "{} flagged but UTF-8", name);
                shardline_log_parser::recover_bytes(text)
            } else {
                text.as_bytes().to_vec()
            };
            prop_assert_eq!(&got, bytes, "{}", name);
        }
    }

    /// Any line of a text log, UTF-8 or not, is had back from its record.
    #[test]
    fn any_text_line_is_recovered_from_its_record(
        line in proptest::collection::vec(prop_oneof![Just(b'\\'), Just(0xffu8), Just(0xe2), Just(0x82), any::<u8>()], 1..60)
            .prop_filter("one line, not blank", |l| !l.contains(&b'\n') && !l.ends_with(b"\r") && !l.iter().all(u8::is_ascii_whitespace)),
    ) {
        let parser = LogParser::text();
        let record = parser.parse_bytes(&line).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut buf = Vec::new();
        record.write_json(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&buf, &serde_json::to_vec(&record).map_err(|e| TestCaseError::fail(e.to_string()))?);
        let parsed: Value = serde_json::from_slice(&buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let message = parsed["message"].as_str().unwrap_or_default();
        let got = if parsed["not_utf8"] == json!(["message"]) {
            shardline_log_parser::recover_bytes(message)
        } else {
            prop_assert!(parsed.get("not_utf8").is_none());
            message.as_bytes().to_vec()
        };
        prop_assert_eq!(&got, &line);
    }

    /// Syslog-like and CSV-like lines (the shapes the parsers branch on,
    /// with quotes, brackets and escapes where they matter) never panic,
    /// and what parses writes the same JSON both ways.
    #[test]
    fn syslog_and_csv_like_lines_never_panic(
        syslog in r#"(<[0-9]{1,4}>)?([0-9] )?(-|[0-9T:.Z+-]{0,30}|(Jan|Oct) [ 0-9]{1,2} [0-9:]{0,8}) [a-z.-]{0,6} [a-z\[\]0-9:]{0,8} [a-zA-Z0-9 ="\\\]\[@-]{0,40}"#,
        csv in r#"([a-z ",]{0,6},){0,5}[a-z "]{0,6}"#,
    ) {
        let csv_parser = LogParser::csv(
            CsvFormat::new(vec!["a".into(), "b".into(), "c".into()], ',', '"')
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
        );
        for (parser, line) in [(LogParser::syslog(), &syslog), (csv_parser, &csv)] {
            if let Ok(record) = parser.parse(line) {
                let mut buf = Vec::new();
                prop_assert!(record.write_json(&mut buf).is_ok());
                let through_serde = serde_json::to_vec(&record)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&buf, &through_serde);
            }
        }
    }

    #[test]
    fn application_records_keep_every_key(
        fields in proptest::collection::btree_map("[a-z_]{1,12}", any::<i64>(), 0..12)
    ) {
        let line = serde_json::to_string(&fields).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parsed = parse_to_json(&LogParser::application(), &line)
            .map_err(TestCaseError::fail)?;
        prop_assert!(has_schema(&parsed, &APP_KEYS));
        for (key, value) in &fields {
            let out_key = if key == "log_type" { "original_log_type" } else { key.as_str() };
            prop_assert_eq!(parsed.get(out_key), Some(&json!(value)));
        }
    }
}
