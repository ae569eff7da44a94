//! Golden files: every line of every log in `fixtures/logs/` against the
//! reviewed output in `<name>.expected.ndjson` beside it — the record's JSON,
//! or `ERROR <message>` for a line that must be rejected, `SKIP` for a blank
//! line.
//!
//! After an intended change of the output, regenerate with
//! `SHARDLINE_BLESS=1 cargo test -p shardline-log-parser --test fixtures`
//! and review the diff before committing it.

use std::error::Error;
use std::path::{Path, PathBuf};

use shardline_log_parser::{CsvFormat, LogParser};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/logs")
}

/// The output for each line of `log`, one line each.
fn render(parser: &LogParser, log: &[u8]) -> String {
    let mut out = String::new();
    let mut buf = Vec::new();
    for line in log.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            out.push_str("SKIP\n");
            continue;
        }
        match parser.parse_bytes(line) {
            Ok(record) => {
                buf.clear();
                match record.write_json(&mut buf) {
                    Ok(()) => out.push_str(&String::from_utf8_lossy(&buf)),
                    Err(e) => out.push_str(&format!("ERROR writing JSON: {e}")),
                }
            }
            Err(e) => out.push_str(&format!("ERROR {e}")),
        }
        out.push('\n');
    }
    out
}

fn check(name: &str, parser: &LogParser) -> Result<(), Box<dyn Error>> {
    check_with(name, parser, |out| out)
}

/// [`check`], with the output passed through `normalise` first.
fn check_with(
    name: &str,
    parser: &LogParser,
    normalise: impl Fn(String) -> String,
) -> Result<(), Box<dyn Error>> {
    let log_path = fixtures().join(format!("{name}.log"));
    let log = std::fs::read(&log_path)?;
    // The file's final newline does not start another line.
    let log = log.strip_suffix(b"\n").unwrap_or(&log);
    let got = normalise(render(parser, log));
    let expected_path = fixtures().join(format!("{name}.expected.ndjson"));
    if std::env::var_os("SHARDLINE_BLESS").is_some() {
        std::fs::write(&expected_path, &got)?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_path)?;
    for (number, (got, want)) in got.lines().zip(expected.lines()).enumerate() {
        assert_eq!(got, want, "{name}.log line {}", number + 1);
    }
    assert_eq!(
        got.lines().count(),
        expected.lines().count(),
        "{name}: line count"
    );
    Ok(())
}

#[test]
fn apache_sample_lines() -> Result<(), Box<dyn Error>> {
    check("apache_access", &LogParser::apache())
}

#[test]
fn nginx_sample_lines() -> Result<(), Box<dyn Error>> {
    check("nginx_access", &LogParser::nginx())
}

#[test]
fn application_sample_lines() -> Result<(), Box<dyn Error>> {
    check("app", &LogParser::application())
}

/// Lines in the shapes JSON loggers write (Logstash's encoder, zap,
/// logrus, bunyan, pino, python-json-logger, a nested access record with
/// an epoch-millisecond time): every key kept, `timestamp` read from the
/// first time key and written as RFC 3339.
#[test]
fn json_logger_lines() -> Result<(), Box<dyn Error>> {
    check("json_loggers", &LogParser::application())
}

#[test]
fn apache_edge_cases() -> Result<(), Box<dyn Error>> {
    check("apache_edge_cases", &LogParser::apache())
}

#[test]
fn nginx_edge_cases() -> Result<(), Box<dyn Error>> {
    check("nginx_edge_cases", &LogParser::nginx())
}

#[test]
fn syslog_lines_of_both_forms() -> Result<(), Box<dyn Error>> {
    // A BSD time has no year: it is this year's, or last year's for a
    // month still ahead. Those two years are written YYYY here; the RFC
    // 3339 times in the file are from years long past.
    // January is never ahead: its year is this year.
    let syslog = LogParser::syslog();
    let january = syslog.parse("Jan  1 00:00:00 h x: y")?;
    let this_year = serde_json::to_value(&january)?["timestamp"]
        .as_str()
        .and_then(|t| t.get(..4))
        .and_then(|y| y.parse::<i32>().ok())
        .ok_or("no year")?;
    check_with("syslog", &syslog, |out| {
        let mut out = out;
        for year in [this_year, this_year - 1] {
            out = out.replace(&format!("\"timestamp\":\"{year}-"), "\"timestamp\":\"YYYY-");
        }
        out
    })
}

#[test]
fn csv_lines_with_quotes_and_embedded_delimiters() -> Result<(), Box<dyn Error>> {
    let columns = ["time", "client", "method", "path", "status", "user_agent"]
        .map(String::from)
        .to_vec();
    check("csv", &LogParser::csv(CsvFormat::new(columns, ',', '"')?))
}
