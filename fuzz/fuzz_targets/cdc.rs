//! Arbitrary lines through every CDC decoder (Debezium, DMS, Maxwell,
//! wal2json, shardline's own): no panic, and every change that decodes
//! encodes as both outputs (normalized and Debezium). The first byte picks the decoder; the rest is the
//! line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardline_cdc::{Decoded, Decoder, Format};

const FORMATS: [Format; 5] = [
    Format::Debezium,
    Format::Dms,
    Format::Maxwell,
    Format::Wal2json,
    Format::Shardline,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, line)) = data.split_first() else {
        return;
    };
    let format = FORMATS[usize::from(pick) % FORMATS.len()];
    let mut decoder = Decoder::new(format);
    // Twice: a decoder carries a transaction from line to line.
    for _ in 0..2 {
        if let Ok(Decoded::Change(event)) = decoder.decode(line) {
            let normalized = shardline_cdc::encode::to_json(&event);
            assert!(serde_json::from_slice::<serde_json::Value>(&normalized).is_ok());
            let debezium = shardline_cdc::encode::to_debezium(&event);
            assert!(serde_json::to_vec(&debezium).is_ok());
        }
    }
});
