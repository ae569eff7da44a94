//! Arbitrary directive text compiled as Apache and Nginx formats, then a
//! line parsed with whatever compiled: no panic anywhere. The input is split
//! at its first newline into directive and line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardline_log_parser::LogParser;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (directive, line) = text.split_once('\n').unwrap_or((text, ""));
    for parser in [
        LogParser::apache_format(directive),
        LogParser::nginx_format(directive),
    ]
    .into_iter()
    .flatten()
    {
        if let Ok(record) = parser.parse(line) {
            let mut buf = Vec::new();
            assert!(record.write_json(&mut buf).is_ok());
        }
    }
});
