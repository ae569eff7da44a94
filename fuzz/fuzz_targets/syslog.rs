//! Arbitrary bytes through the syslog parser (RFC 5424 and RFC 3164): no
//! panic, and every record that parses serializes to JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardline_log_parser::LogParser;

fuzz_target!(|data: &[u8]| {
    let parser = LogParser::syslog();
    if let Ok(record) = parser.parse_bytes(data) {
        let mut buf = Vec::new();
        assert!(record.write_json(&mut buf).is_ok());
    }
});
