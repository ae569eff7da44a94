//! CDC decoding throughput per input format, and the whole pipeline step
//! (decode, classify, key, encode) that cdc-forwarder runs per change.
//!
//! `cargo bench -p shardline-benches --bench cdc_decode`
//!
//! Input: the change lines of `fixtures/cdc/<format>.ndjson` (the shapes
//! each tool documents), repeated to 1,000 lines.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shardline_cdc::{ChangeRecords, Classifier, Decoded, Decoder, Format, KeyBy};
use shardline_core::{Origin, Process, Processed};
use shardline_producer::SourceName;

const LINES: usize = 1_000;
const FORMATS: [Format; 4] = [
    Format::Debezium,
    Format::Dms,
    Format::Maxwell,
    Format::Wal2json,
];

/// The fixture's lines that decode to a change, repeated to `LINES`.
fn corpus(format: Format) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/cdc")
        .join(format!("{format}.ndjson"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut decoder = Decoder::new(format);
    let changes: Vec<Vec<u8>> = text
        .lines()
        .filter(|line| matches!(decoder.decode(line.as_bytes()), Ok(Decoded::Change(_))))
        .map(|line| line.as_bytes().to_vec())
        .collect();
    changes.iter().cycle().take(LINES).cloned().collect()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("cdc_decode");
    group.throughput(Throughput::Elements(LINES as u64));
    for format in FORMATS {
        let lines = corpus(format);
        let bytes: usize = lines.iter().map(Vec::len).sum();
        eprintln!(
            "{format}: {LINES} changes, {:.0} bytes each",
            bytes as f64 / LINES as f64
        );
        group.bench_function(format.to_string(), |b| {
            let mut decoder = Decoder::new(format)
                .classifier(Classifier::parse("public.accounts:balance").unwrap_or_default());
            b.iter(|| {
                for line in &lines {
                    let _ = black_box(decoder.decode(black_box(line)));
                }
            });
        });
    }
    group.finish();
}

fn records(c: &mut Criterion) {
    let mut group = c.benchmark_group("cdc_records");
    group.throughput(Throughput::Elements(LINES as u64));
    for format in FORMATS {
        let lines = corpus(format);
        let records = ChangeRecords::new(Decoder::new(format), SourceName::new("database_cdc"))
            .key_by(KeyBy::PrimaryKey);
        group.bench_function(format.to_string(), |b| {
            b.iter(|| {
                for line in &lines {
                    if let Processed::Record(record) =
                        records.process(black_box(line), Origin::default())
                    {
                        black_box(record);
                    }
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode, records);
criterion_main!(benches);
