//! Log parsers: shardline's nom parsers against a straightforward `regex`
//! parser of the same format producing the same JSON, in the same run.
//!
//! `cargo bench -p shardline-benches --bench log_parsers`
//!
//! Each benchmark parses a corpus of 10,000 generated lines per iteration;
//! criterion reports lines/s (`elem/s`). `docs/benchmarks.md` has the
//! figures and the MB/s they correspond to.
//!
//! Criterion measures one benchmark after another, so on a shared machine
//! whose load drifts the two parsers can be timed under different loads.
//! Before criterion's runs, each format is therefore also timed
//! *interleaved*: [`ROUNDS`] passes over the corpus, shardline and the
//! baseline alternately, parse + JSON; the median of the per-round ratios
//! is the comparison the load cannot skew.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shardline_benches::corpus;
use shardline_benches::regex_baseline::{self, RegexParser};
use shardline_log_parser::LogParser;

const LINES: usize = 10_000;
/// Passes of the interleaved comparison, each parser once per round.
const ROUNDS: usize = 31;

/// Times shardline and the baseline alternately (parse + JSON) and prints
/// each one's median throughput and the median per-round ratio.
fn interleaved(
    name: &str,
    lines: &[String],
    ours: &LogParser,
    theirs: &impl Fn(&str, &mut Vec<u8>) -> bool,
) {
    let mut buf = Vec::with_capacity(1024);
    let mut pass = |run: &mut dyn FnMut(&str, &mut Vec<u8>)| {
        let start = Instant::now();
        for line in lines {
            buf.clear();
            run(black_box(line), &mut buf);
            black_box(&buf);
        }
        lines.len() as f64 / start.elapsed().as_secs_f64()
    };
    let mut rounds: Vec<(f64, f64)> = (0..ROUNDS)
        .map(|_| {
            let shardline = pass(&mut |line, buf| {
                if let Ok(record) = ours.parse(line) {
                    let _ = record.write_json(buf);
                }
            });
            let baseline = pass(&mut |line, buf| {
                theirs(line, buf);
            });
            (shardline, baseline)
        })
        .collect();
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    let mut ratios: Vec<f64> = rounds.iter().map(|(a, b)| a / b).collect();
    let mut shardline: Vec<f64> = rounds.iter().map(|r| r.0).collect();
    let mut baseline: Vec<f64> = rounds.drain(..).map(|r| r.1).collect();
    eprintln!(
        "{name}: interleaved parse+json over {ROUNDS} rounds: shardline {:.2} M lines/s, \
         regex {:.3} M lines/s (medians), median ratio {:.2}x",
        median(&mut shardline) / 1e6,
        median(&mut baseline) / 1e6,
        median(&mut ratios),
    );
}

/// Checks that both parsers write identical JSON for every line, so the
/// comparison is of equal work.
fn assert_same_json(
    name: &str,
    lines: &[String],
    ours: &LogParser,
    theirs: impl Fn(&str, &mut Vec<u8>) -> bool,
) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for line in lines {
        a.clear();
        b.clear();
        let parsed = ours.parse(line).map(|r| r.write_json(&mut a));
        assert!(
            matches!(parsed, Ok(Ok(()))),
            "{name}: shardline failed on {line}"
        );
        assert!(theirs(line, &mut b), "{name}: baseline failed on {line}");
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "{name}: different JSON for {line}"
        );
    }
}

fn bench_format(
    c: &mut Criterion,
    name: &str,
    lines: &[String],
    ours: &LogParser,
    theirs: impl Fn(&str, &mut Vec<u8>) -> bool,
    theirs_parse_only: impl Fn(&str) -> bool,
) {
    assert_same_json(name, lines, ours, &theirs);
    eprintln!(
        "{name}: {} lines, mean {:.1} bytes",
        lines.len(),
        corpus::mean_len(lines)
    );
    interleaved(name, lines, ours, &theirs);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("shardline/parse", |b| {
        b.iter(|| {
            for line in lines {
                let _ = black_box(ours.parse(black_box(line)));
            }
        });
    });
    group.bench_function("shardline/parse+json", |b| {
        let mut buf = Vec::with_capacity(1024);
        b.iter(|| {
            for line in lines {
                buf.clear();
                if let Ok(record) = ours.parse(black_box(line)) {
                    let _ = record.write_json(&mut buf);
                }
                black_box(&buf);
            }
        });
    });
    group.bench_function("regex/parse", |b| {
        b.iter(|| {
            for line in lines {
                black_box(theirs_parse_only(black_box(line)));
            }
        });
    });
    group.bench_function("regex/parse+json", |b| {
        let mut buf = Vec::with_capacity(1024);
        b.iter(|| {
            for line in lines {
                buf.clear();
                black_box(theirs(black_box(line), &mut buf));
            }
        });
    });
    group.finish();
}

fn access_formats(c: &mut Criterion) {
    let cases = [
        (
            "apache_combined",
            corpus::apache_combined(LINES),
            LogParser::apache(),
            RegexParser::apache_combined(),
        ),
        (
            "nginx_main",
            corpus::nginx_main(LINES),
            LogParser::nginx(),
            RegexParser::nginx_main(),
        ),
        (
            "nginx_custom",
            corpus::nginx_custom(LINES),
            LogParser::nginx_format(corpus::NGINX_CUSTOM_FORMAT).unwrap_or_else(|e| {
                eprintln!("the corpus format does not compile: {e}");
                std::process::exit(1)
            }),
            RegexParser::nginx_custom(),
        ),
    ];
    for (name, lines, ours, theirs) in cases {
        let theirs = theirs.unwrap_or_else(|e| {
            eprintln!("the baseline regex does not compile: {e}");
            std::process::exit(1)
        });
        bench_format(
            c,
            name,
            &lines,
            &ours,
            |line, buf| theirs.parse_to_json(line, buf),
            |line| theirs.parse(line).is_some(),
        );
    }
}

fn application(c: &mut Criterion) {
    let lines = corpus::application(LINES);
    bench_format(
        c,
        "application_json",
        &lines,
        &LogParser::application(),
        regex_baseline::application_to_json,
        |line| serde_json::from_str::<serde_json::Value>(line).is_ok(),
    );
}

criterion_group!(benches, access_formats, application);
criterion_main!(benches);
