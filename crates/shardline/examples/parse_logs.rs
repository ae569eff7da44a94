//! Parsing logs with no AWS dependency: each line of an access log or an
//! application log becomes one line of JSON; a line that does not parse is
//! reported with its number and why, and the rest go on.
//!
//! ```text
//! cargo run -p shardline --no-default-features --features logs --example parse_logs -- apache fixtures/logs/apache_access.log
//! ```
//!
//! Types: `apache`, `nginx`, `json` (application logs), `syslog`, `text`.

use std::io::{BufRead, BufReader, Write};

use shardline::logs::LogParser;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(kind), Some(path)) = (args.next(), args.next()) else {
        return Err("usage: parse_logs apache|nginx|json|syslog|text FILE".into());
    };
    let parser = match kind.as_str() {
        "apache" => LogParser::apache(),
        "nginx" => LogParser::nginx(),
        "json" => LogParser::application(),
        "syslog" => LogParser::syslog(),
        "text" => LogParser::text(),
        other => return Err(format!("unknown log type {other:?}").into()),
    };
    let file = BufReader::new(std::fs::File::open(&path)?);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut json = Vec::new();
    let mut bad = 0;
    for (number, line) in file.lines().enumerate() {
        let line = line?;
        match parser.parse(&line) {
            Ok(record) => {
                json.clear();
                record.write_json(&mut json)?;
                out.write_all(&json)?;
                out.write_all(b"\n")?;
            }
            Err(e) => {
                bad += 1;
                eprintln!("{path}:{}: {e}", number + 1);
            }
        }
    }
    out.flush()?;
    if bad > 0 {
        eprintln!("{bad} line(s) did not parse");
    }
    Ok(())
}
