//! Arbitrary bytes through a CSV parser of three columns: no panic, and
//! every record that parses serializes to JSON with one key per column.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardline_log_parser::{CsvFormat, LogParser};

fuzz_target!(|data: &[u8]| {
    let columns = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
    let Ok(format) = CsvFormat::new(columns, ',', '"') else {
        return;
    };
    let parser = LogParser::csv(format);
    if let Ok(record) = parser.parse_bytes(data) {
        let mut buf = Vec::new();
        assert!(record.write_json(&mut buf).is_ok());
        let value: serde_json::Value = serde_json::from_slice(&buf).expect("JSON");
        assert_eq!(value.as_object().map(|o| o.len()), Some(4));
    }
});
