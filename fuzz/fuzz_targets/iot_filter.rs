//! Arbitrary filter text compiled, then matched against an arbitrary JSON
//! reading: no panic, and a filter that compiles always answers. The input
//! is split at its first NUL byte into filter and reading.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardline_iot::Filter;

fuzz_target!(|data: &[u8]| {
    let (filter, reading) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(filter) = std::str::from_utf8(filter) else {
        return;
    };
    let Ok(filter) = Filter::parse(filter) else {
        return;
    };
    if let Ok(reading) = serde_json::from_slice::<serde_json::Value>(reading) {
        let _ = filter.matches(&reading);
    }
});
