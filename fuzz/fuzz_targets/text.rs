//! Arbitrary bytes through the text parser: no panic, every line becomes a
//! record, and the line's bytes come back from it (`recover_bytes` when it
//! was not UTF-8).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardline_log_parser::{LogParser, recover_bytes};

fuzz_target!(|data: &[u8]| {
    let parser = LogParser::text();
    let line = data.strip_suffix(b"\n").unwrap_or(data);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() || std::str::from_utf8(line).is_ok_and(|t| t.trim().is_empty()) {
        return;
    }
    let Ok(record) = parser.parse_bytes(data) else {
        return;
    };
    let mut buf = Vec::new();
    assert!(record.write_json(&mut buf).is_ok());
    let value: serde_json::Value = serde_json::from_slice(&buf).expect("JSON");
    let message = value["message"].as_str().expect("a message");
    let bytes = if value.get("not_utf8").is_some() {
        recover_bytes(message)
    } else {
        message.as_bytes().to_vec()
    };
    assert_eq!(bytes, line);
});
