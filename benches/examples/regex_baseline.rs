//! The baseline program log-streamer's end-to-end figures are compared
//! with: what a shipper written the straightforward way does with an
//! Apache combined log — a regex per line, owned strings, `serde_json` —
//! reading a file and writing each record's JSON to stdout, one per line.
//!
//! `cargo run --release -p shardline-benches --example regex_baseline -- FILE > out.ndjson`

use std::io::{BufRead, BufReader, BufWriter, Write};

use shardline_benches::regex_baseline::RegexParser;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: regex_baseline FILE")?;
    let parser = RegexParser::apache_combined()?;
    let input = BufReader::with_capacity(1 << 16, std::fs::File::open(&path)?);
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let (mut written, mut rejected) = (0u64, 0u64);
    let mut json = Vec::new();
    for line in input.lines() {
        let line = line?;
        json.clear();
        if parser.parse_to_json(&line, &mut json) {
            out.write_all(&json)?;
            out.write_all(b"\n")?;
            written += 1;
        } else {
            rejected += 1;
        }
    }
    out.flush()?;
    eprintln!("{written} records, {rejected} lines rejected");
    Ok(())
}
