//! The cases real access logs carry, each with the exact JSON it becomes.

use std::error::Error;

use serde_json::{Value, json};
use shardline_log_parser::{LogParser, LogRecord, LogType};

type TestResult = Result<(), Box<dyn Error>>;

fn to_json(parser: &LogParser, line: &str) -> Result<Value, Box<dyn Error>> {
    let record = parser.parse(line)?;
    let mut buf = Vec::new();
    record.write_json(&mut buf)?;
    Ok(serde_json::from_slice(&buf)?)
}

/// The record every test starts from: a typical combined-format line.
fn base() -> Value {
    json!({
        "timestamp": "2024-01-15T10:30:45+00:00",
        "ip_address": "192.168.1.100",
        "method": "GET",
        "path": "/index.html",
        "protocol": "HTTP/1.1",
        "status_code": 200,
        "response_size": 2435,
        "referer": null,
        "user_agent": "Mozilla/5.0",
        "log_type": "apache_access"
    })
}

fn with(changes: Value) -> Value {
    let mut value = base();
    if let (Some(target), Some(changes)) = (value.as_object_mut(), changes.as_object()) {
        for (k, v) in changes {
            target.insert(k.clone(), v.clone());
        }
    }
    value
}

#[test]
fn typical_lines_give_the_documented_record() -> TestResult {
    let line = r#"192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "GET /index.html HTTP/1.1" 200 2435 "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36""#;
    assert_eq!(
        to_json(&LogParser::apache(), line)?,
        with(json!({"user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"}))
    );
    // A common-format line: no referer or agent.
    let common =
        r#"192.168.1.1 - - [26/May/2024:10:30:45 +0000] "GET /api/users HTTP/1.1" 200 1234"#;
    assert_eq!(
        to_json(&LogParser::apache(), common)?,
        json!({
            "timestamp": "2024-05-26T10:30:45+00:00", "ip_address": "192.168.1.1",
            "method": "GET", "path": "/api/users", "protocol": "HTTP/1.1",
            "status_code": 200, "response_size": 1234, "referer": null,
            "user_agent": null, "log_type": "apache_access"
        })
    );
    let nginx = r#"203.0.113.10 - - [15/Jan/2024:10:31:01 +0000] "DELETE /api/orders/123 HTTP/1.1" 204 0 "-" "axios/0.21.1""#;
    assert_eq!(
        to_json(&LogParser::nginx(), nginx)?,
        json!({
            "timestamp": "2024-01-15T10:31:01+00:00", "ip_address": "203.0.113.10",
            "method": "DELETE", "path": "/api/orders/123", "protocol": "HTTP/1.1",
            "status_code": 204, "response_size": 0, "referer": null,
            "user_agent": "axios/0.21.1", "log_type": "nginx_access"
        })
    );
    Ok(())
}

#[test]
fn ipv6_and_hostname_clients() -> TestResult {
    let parser = LogParser::apache();
    for client in [
        "2001:db8::8a2e:370:7334",
        "::1",
        "crawl-66-249-66-1.googlebot.com",
    ] {
        let line = format!(
            r#"{client} - - [15/Jan/2024:10:30:45 +0000] "GET /index.html HTTP/1.1" 200 2435 "-" "Mozilla/5.0""#
        );
        assert_eq!(
            to_json(&parser, &line)?,
            with(json!({"ip_address": client}))
        );
    }
    Ok(())
}

#[test]
fn dashes_are_null() -> TestResult {
    let line = r#"192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "GET /index.html HTTP/1.1" 200 - "-" "-""#;
    assert_eq!(
        to_json(&LogParser::apache(), line)?,
        with(json!({"response_size": null, "user_agent": null}))
    );
    Ok(())
}

#[test]
fn ident_and_remote_user_appear_when_logged() -> TestResult {
    let line = r#"192.168.1.100 ident42 alice [15/Jan/2024:10:30:45 +0000] "GET /index.html HTTP/1.1" 200 2435 "-" "Mozilla/5.0""#;
    let parser = LogParser::apache();
    assert_eq!(
        to_json(&parser, line)?,
        with(json!({"ident": "ident42", "remote_user": "alice"}))
    );
    // Key order: ident and remote_user follow ip_address.
    let mut raw = Vec::new();
    parser.parse(line)?.write_json(&mut raw)?;
    let raw = String::from_utf8(raw)?;
    assert!(
        raw.starts_with(r#"{"timestamp":"2024-01-15T10:30:45+00:00","ip_address":"192.168.1.100","ident":"ident42","remote_user":"alice","method""#),
        "{raw}"
    );
    Ok(())
}

#[test]
fn escaped_quotes_and_backslashes_are_unescaped() -> TestResult {
    let line = r#"192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "GET /search?q=\"rust\" HTTP/1.1" 200 2435 "https://example.com/a\\b" "Mozilla/5.0 \"quoted\" agent""#;
    assert_eq!(
        to_json(&LogParser::apache(), line)?,
        with(json!({
            "path": "/search?q=\"rust\"",
            "referer": "https://example.com/a\\b",
            "user_agent": "Mozilla/5.0 \"quoted\" agent"
        }))
    );
    // Nginx escapes the same characters as \x22 and \x5C, and UTF-8 bytes
    // as \xHH.
    let nginx = r#"10.0.0.1 - - [15/Jan/2024:10:30:45 +0000] "GET /\xD0\xB0 HTTP/1.1" 200 2435 "-" "agent \x22x\x22 \x5C""#;
    let value = to_json(&LogParser::nginx(), nginx)?;
    assert_eq!(value["path"], "/а");
    assert_eq!(value["user_agent"], "agent \"x\" \\");
    Ok(())
}

#[test]
fn request_lines_that_are_not_method_path_protocol() -> TestResult {
    let parser = LogParser::apache();
    let line = |request: &str| {
        format!(
            r#"192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "{request}" 400 226 "-" "Mozilla/5.0""#
        )
    };
    let bad = |extra: Value| {
        let mut value = with(json!({"status_code": 400, "response_size": 226}));
        if let (Some(target), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                target.insert(k.clone(), v.clone());
            }
        }
        value
    };
    // Nothing received.
    assert_eq!(
        to_json(&parser, &line("-"))?,
        bad(json!({"method": null, "path": null, "protocol": null}))
    );
    // HTTP/0.9 has no version.
    assert_eq!(
        to_json(&parser, &line("GET /"))?,
        bad(json!({"method": "GET", "path": "/", "protocol": null, "request": "GET /"}))
    );
    // A TLS handshake sent to port 80, escaped by Apache: \xfc is not
    // UTF-8, so the request is kept as logged, and said to be.
    let handshake = r"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    let value = to_json(&parser, &line(handshake))?;
    assert_eq!(
        value,
        bad(json!({
            "method": null, "path": null, "protocol": null,
            "request": handshake, "not_utf8": ["request"]
        }))
    );
    assert_eq!(
        shardline_log_parser::recover_bytes(value["request"].as_str().unwrap_or_default()),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    );
    // An over-long request line, cut off by the server before the protocol.
    let long_path = format!("/{}", "a".repeat(8190));
    let value = to_json(&parser, &line(&format!("GET {long_path}")))?;
    assert_eq!(value["method"], "GET");
    assert_eq!(value["path"], long_path.as_str());
    assert_eq!(value["protocol"], Value::Null);
    Ok(())
}

#[test]
fn non_utc_offsets_http2_and_unusual_methods() -> TestResult {
    let parser = LogParser::apache();
    let line = r#"192.168.1.100 - - [15/Jan/2024:19:30:45 +0900] "PROPFIND /dav/ HTTP/2.0" 207 2435 "-" "Mozilla/5.0""#;
    assert_eq!(
        to_json(&parser, line)?,
        with(json!({
            "timestamp": "2024-01-15T19:30:45+09:00", "method": "PROPFIND",
            "path": "/dav/", "protocol": "HTTP/2.0", "status_code": 207
        }))
    );
    let line = r#"192.168.1.100 - - [15/Jan/2024:05:00:45 -0530] "M-SEARCH * HTTP/1.1" 200 2435 "-" "Mozilla/5.0""#;
    assert_eq!(
        to_json(&parser, line)?,
        with(json!({
            "timestamp": "2024-01-15T05:00:45-05:30", "method": "M-SEARCH", "path": "*"
        }))
    );
    Ok(())
}

#[test]
fn line_endings_and_empty_lines() -> TestResult {
    let parser = LogParser::apache();
    let line = r#"192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "GET /index.html HTTP/1.1" 200 2435 "-" "Mozilla/5.0""#;
    for ending in ["\r", "\n", "\r\n"] {
        assert_eq!(to_json(&parser, &format!("{line}{ending}"))?, base());
    }
    for empty in ["", "\n", "\r\n"] {
        let err = parser
            .parse(empty)
            .expect_err("an empty line is not a record");
        assert_eq!(err.offset, 0);
    }
    Ok(())
}

#[test]
fn bytes_that_are_not_utf8_are_an_error_at_their_offset() {
    let parser = LogParser::apache();
    let mut line = br#"192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "GET /"#.to_vec();
    let offset = line.len();
    line.extend_from_slice(b"\xff\xfe HTTP/1.1\" 200 1 \"-\" \"-\"");
    let err = parser.parse_bytes(&line).expect_err("not UTF-8");
    assert_eq!(err.offset, offset);
    assert_eq!(err.expected, "UTF-8 text");
    assert_eq!(err.snippet, r"\xff\xfe\x20\x48\x54\x54\x50\x2f");
    // Valid UTF-8 bytes parse as the text would.
    let ok = br#"::1 - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 200 1"#;
    assert!(parser.parse_bytes(ok).is_ok());
}

#[test]
fn errors_say_where_and_what() {
    let parser = LogParser::apache();
    let cases = [
        (
            r#"192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 2000 1"#,
            64,
            "a three-digit status code",
        ),
        (
            r#"192.168.1.100 - - [15/Jab/2024:10:30:45 +0000] "GET / HTTP/1.1" 200 1"#,
            22,
            "a month name (Jan..Dec)",
        ),
        (
            r#"192.168.1.100 - - 15/Jan/2024:10:30:45 +0000 "GET / HTTP/1.1" 200 1"#,
            18,
            "`[` opening the time",
        ),
        (
            r#"192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1 200 1"#,
            48,
            "a closing `\"`",
        ),
        (
            r#"192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "GET / HTTP/1.1" 200 1 "-" "ua" extra"#,
            78,
            "the end of the line",
        ),
        ("not a log line at all", 10, "`[` opening the time"),
        ("no-spaces-at-all", 0, "a space after the field"),
    ];
    for (line, offset, expected) in cases {
        let err = parser.parse(line).expect_err(line);
        assert_eq!(
            (err.offset, err.expected.as_ref()),
            (offset, expected),
            "{line}: {err}"
        );
        assert!(err.snippet.len() <= 32);
    }
}

#[test]
fn nginx_main_keeps_x_forwarded_for() -> TestResult {
    let line = r#"10.0.0.7 - bob [15/Jan/2024:10:31:00 +0000] "GET /api/orders HTTP/1.1" 200 1024 "https://app.example.com" "curl/7.68.0" "203.0.113.9, 10.0.0.1""#;
    assert_eq!(
        to_json(&LogParser::nginx(), line)?,
        json!({
            "timestamp": "2024-01-15T10:31:00+00:00", "ip_address": "10.0.0.7",
            "remote_user": "bob", "method": "GET", "path": "/api/orders",
            "protocol": "HTTP/1.1", "status_code": 200, "response_size": 1024,
            "referer": "https://app.example.com", "user_agent": "curl/7.68.0",
            "http_x_forwarded_for": "203.0.113.9, 10.0.0.1", "log_type": "nginx_access"
        })
    );
    Ok(())
}

#[test]
fn custom_apache_logformat_with_timing_and_vhost() -> TestResult {
    let parser = LogParser::apache_format(
        r#"LogFormat "%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\" %D" vhost_timed"#,
    )?;
    let line = r#"www.example.com:443 192.168.1.100 - - [15/Jan/2024:10:30:45 +0000] "GET /index.html HTTP/1.1" 200 2435 "-" "Mozilla/5.0" 5123"#;
    let value = to_json(&parser, line)?;
    assert_eq!(value["server_name"], "www.example.com");
    assert_eq!(value["server_port"], 443);
    assert_eq!(value["bytes_sent"], 2435);
    assert_eq!(value["request_time_us"], 5123);
    // %O is not %b: response_size stays null.
    assert_eq!(value["response_size"], Value::Null);
    assert_eq!(value["user_agent"], "Mozilla/5.0");
    Ok(())
}

#[test]
fn custom_nginx_format_with_iso_time_and_upstream_times() -> TestResult {
    let parser = LogParser::nginx_format(
        "log_format upstream '$remote_addr - $remote_user [$time_iso8601] \"$request\" '\n                    '$status $body_bytes_sent $request_time \"$upstream_response_time\" $host';",
    )?;
    let line = r#"2001:db8::1 - - [2024-01-15T10:30:45+09:00] "POST /api HTTP/2.0" 201 15 0.012 "0.004, 0.008" api.example.com"#;
    let record = parser.parse(line)?;
    let LogRecord::Access(access) = &record else {
        return Err("expected an access record".into());
    };
    assert_eq!(access.log_type(), LogType::NginxAccess);
    let value = to_json(&parser, line)?;
    assert_eq!(value["timestamp"], "2024-01-15T10:30:45+09:00");
    assert_eq!(value["request_time"], 0.012);
    assert_eq!(value["upstream_response_time"], "0.004, 0.008");
    assert_eq!(value["host"], "api.example.com");
    assert_eq!(value["status_code"], 201);
    Ok(())
}

#[test]
fn unsupported_directives_are_configuration_errors_naming_them() {
    let err = LogParser::apache_format(r#"%h %{%d/%b/%Y}t "%r""#).expect_err("strftime time");
    let message = err.to_string();
    assert!(message.contains("`%{%d/%b/%Y}t`"), "{message}");
    assert!(message.contains("at byte 3"), "{message}");
}

#[test]
fn application_logs_from_the_seed() -> TestResult {
    let parser = LogParser::application();
    let line = r#"{"timestamp": "2024-01-15T10:30:45.123Z", "level": "INFO", "logger": "com.example.UserService", "message": "User login successful", "user_id": 12345, "request_id": "req-001"}"#;
    assert_eq!(
        to_json(&parser, line)?,
        json!({
            "timestamp": "2024-01-15T10:30:45.123Z", "level": "INFO",
            "logger": "com.example.UserService", "message": "User login successful",
            "user_id": 12345, "request_id": "req-001", "log_type": "application"
        })
    );
    Ok(())
}

/// Raw control bytes inside quoted fields (a server that does not escape
/// them) come out escaped in the JSON, exactly as `serde_json` writes them,
/// whether or not the field also held escapes.
#[test]
fn raw_control_bytes_in_quoted_fields_are_escaped_in_json() -> TestResult {
    let parser = LogParser::apache();
    let lines = [
        "1.2.3.4 - - [15/Jan/2024:10:30:45 +0000] \"GET /a\tb HTTP/1.1\" 200 5 \"-\" \"agent\"",
        "1.2.3.4 - - [15/Jan/2024:10:30:45 +0000] \"GET / HTTP/1.1\" 200 5 \"ref\u{1}\" \"agent\"",
        "1.2.3.4 - - [15/Jan/2024:10:30:45 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"a\tgent\"",
        "1.2.3.4 - - [15/Jan/2024:10:30:45 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"a\\\"b\tc\"",
    ];
    let expected = [
        ("path", "/a\tb"),
        ("referer", "ref\u{1}"),
        ("user_agent", "a\tgent"),
        ("user_agent", "a\"b\tc"),
    ];
    for (line, (key, value)) in lines.iter().zip(expected) {
        let record = parser.parse(line)?;
        let mut ours = Vec::new();
        record.write_json(&mut ours)?;
        assert_eq!(
            String::from_utf8(ours.clone())?,
            serde_json::to_string(&record)?,
            "{line:?}"
        );
        let parsed: Value = serde_json::from_slice(&ours)?;
        assert_eq!(parsed[key], value, "{line:?}");
    }
    Ok(())
}

/// A client address ends at a space in the built-in formats, so it never
/// holds one; in a custom format that quotes it, a space is an error.
#[test]
fn a_client_address_with_a_space_is_an_error() -> TestResult {
    let parser = LogParser::apache_format(r#""%h" %>s"#)?;
    assert!(parser.parse(r#""203.0.113.9" 200"#).is_ok());
    let err = parser
        .parse(r#""203.0.113.9 x" 200"#)
        .expect_err("a space in the address");
    assert_eq!((err.offset, err.expected.as_ref()), (1, "a client address"));
    Ok(())
}
