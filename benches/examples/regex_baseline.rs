//! The baseline program shardline's end-to-end figures are compared with:
//! what a shipper written the straightforward way does with a log file —
//! a regex per Apache combined line (or a `serde_json::Value` per JSON
//! application-log line), owned strings, `serde_json` — reading the file
//! and writing each record's JSON to stdout, one per line.
//!
//! `cargo run --release -p shardline-benches --example regex_baseline -- [--json] FILE > out.ndjson`

use std::io::{BufRead, BufReader, BufWriter, Write};

use shardline_benches::regex_baseline::{RegexParser, application_to_json};

const USAGE: &str = "usage: regex_baseline [--json] FILE";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.first().is_some_and(|a| a == "--json");
    if json {
        args.remove(0);
    }
    let [path] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let parser = RegexParser::apache_combined()?;
    let input = BufReader::with_capacity(1 << 16, std::fs::File::open(path)?);
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let (mut written, mut rejected) = (0u64, 0u64);
    let mut buf = Vec::new();
    for line in input.lines() {
        let line = line?;
        buf.clear();
        let parsed = if json {
            application_to_json(&line, &mut buf)
        } else {
            parser.parse_to_json(&line, &mut buf)
        };
        if parsed {
            out.write_all(&buf)?;
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
