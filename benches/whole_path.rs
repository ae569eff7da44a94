//! The whole data path as users run it, one table: the release binaries on
//! generated input, beside the straightforward baseline program on the same
//! input, in the same run, interleaved round by round.
//!
//! `cargo xtask bench` (builds the release binaries, then runs this).
//!
//! Cases, each run `SHARDLINE_BENCH_ROUNDS` times (default 5), every case
//! once per round so that the machine's drift is shared:
//! - Apache combined, `SHARDLINE_BENCH_LINES` lines (default 250,000): the
//!   regex + serde_json baseline and `log-streamer --sink stdout --once`,
//!   pinned to one core and on all cores; log-streamer into the wire-speed
//!   Kinesis endpoint without and with `--aggregate` (the official SDK signs
//!   and sends every request over HTTP);
//! - JSON application logs, the same count: the serde_json baseline and
//!   log-streamer to stdout (one core), and log-streamer into the endpoint,
//!   aggregated;
//! - a Java service's log with stack traces, the same count of lines:
//!   log-streamer to stdout (one core) shipping each line as a text record,
//!   and joining the stack traces into events (`"multi_line": "java"`);
//! - syslog (RFC 3164 and 5424 in turn) and CSV with quoted fields, the
//!   same count, log-streamer to stdout (one core);
//! - Debezium change events on stdin, the same count: cdc-forwarder to
//!   stdout and into the endpoint, aggregated.
//!
//! `SHARDLINE_BENCH_ONLY=TEXT` runs only the cases whose label holds TEXT
//! (and skips the output comparison), e.g. under `perf record`.
//!
//! Each figure is the median of the rounds; "× baseline" is the median of
//! the per-round ratios of the baseline's wall time to the case's, on the
//! same input and cores. CPU is user + system of the measured process only
//! (`wait4`); the endpoint runs in this process. Before measuring, the
//! outputs of log-streamer and the baseline are compared byte for byte, and
//! every run into the endpoint must end with every line accounted for.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use shardline_benches::corpus;
use shardline_harness::measure::{self, Measured};
use shardline_harness::{AwsEndpoints, WireSpeedKinesis};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The shards the wire-speed endpoint reports (the keys spread over them,
/// as over a real stream's).
const SHARDS: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cores {
    One,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Apache,
    Json,
    Debezium,
    /// A Java service's log, each line a text record.
    JavaLines,
    /// The same log, its stack traces joined (the `java` preset).
    JavaEvents,
    /// Syslog, RFC 3164 and RFC 5424 lines in turn.
    Syslog,
    /// CSV with quoted fields.
    Csv,
}

impl Input {
    fn label(self) -> &'static str {
        match self {
            Input::Apache => "Apache combined",
            Input::Json => "JSON application logs",
            Input::Debezium => "Debezium changes (stdin)",
            Input::JavaLines => "Java log, text, line by line",
            Input::JavaEvents => "Java log, text, multi-line (java)",
            Input::Syslog => "syslog (RFC 3164 and 5424)",
            Input::Csv => "CSV, quoted fields",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Program {
    Baseline,
    LogStreamer,
    CdcForwarder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Stdout,
    Wire { aggregate: bool },
}

#[derive(Debug, Clone, Copy)]
struct Case {
    input: Input,
    program: Program,
    sink: Sink,
    cores: Cores,
}

impl Case {
    fn label(&self) -> String {
        let program = match self.program {
            Program::Baseline => "baseline (regex/serde_json)",
            Program::LogStreamer => "log-streamer",
            Program::CdcForwarder => "cdc-forwarder",
        };
        let sink = match self.sink {
            Sink::Stdout => "stdout",
            Sink::Wire { aggregate: false } => "Kinesis, not aggregated",
            Sink::Wire { aggregate: true } => "Kinesis, aggregated",
        };
        let cores = match self.cores {
            Cores::One => "1 core",
            Cores::All => "2 cores",
        };
        format!("{program} → {sink}, {cores}")
    }
}

const CASES: &[Case] = &[
    Case {
        input: Input::Apache,
        program: Program::Baseline,
        sink: Sink::Stdout,
        cores: Cores::One,
    },
    Case {
        input: Input::Apache,
        program: Program::LogStreamer,
        sink: Sink::Stdout,
        cores: Cores::One,
    },
    Case {
        input: Input::Apache,
        program: Program::Baseline,
        sink: Sink::Stdout,
        cores: Cores::All,
    },
    Case {
        input: Input::Apache,
        program: Program::LogStreamer,
        sink: Sink::Stdout,
        cores: Cores::All,
    },
    Case {
        input: Input::Apache,
        program: Program::LogStreamer,
        sink: Sink::Wire { aggregate: false },
        cores: Cores::All,
    },
    Case {
        input: Input::Apache,
        program: Program::LogStreamer,
        sink: Sink::Wire { aggregate: true },
        cores: Cores::All,
    },
    Case {
        input: Input::Json,
        program: Program::Baseline,
        sink: Sink::Stdout,
        cores: Cores::One,
    },
    Case {
        input: Input::Json,
        program: Program::LogStreamer,
        sink: Sink::Stdout,
        cores: Cores::One,
    },
    Case {
        input: Input::Json,
        program: Program::LogStreamer,
        sink: Sink::Wire { aggregate: true },
        cores: Cores::All,
    },
    Case {
        input: Input::JavaLines,
        program: Program::LogStreamer,
        sink: Sink::Stdout,
        cores: Cores::One,
    },
    Case {
        input: Input::JavaEvents,
        program: Program::LogStreamer,
        sink: Sink::Stdout,
        cores: Cores::One,
    },
    Case {
        input: Input::Syslog,
        program: Program::LogStreamer,
        sink: Sink::Stdout,
        cores: Cores::One,
    },
    Case {
        input: Input::Csv,
        program: Program::LogStreamer,
        sink: Sink::Stdout,
        cores: Cores::One,
    },
    Case {
        input: Input::Debezium,
        program: Program::CdcForwarder,
        sink: Sink::Stdout,
        cores: Cores::All,
    },
    Case {
        input: Input::Debezium,
        program: Program::CdcForwarder,
        sink: Sink::Wire { aggregate: true },
        cores: Cores::All,
    },
];

/// Where the release binaries are: `SHARDLINE_BIN_DIR`, or the profile
/// directory this bench was built into (`target/release/deps/..`).
fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SHARDLINE_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| "cannot tell the target directory from this bench's path".into())
}

struct Setup {
    bins: PathBuf,
    dir: tempfile::TempDir,
    lines: u64,
    endpoint: WireSpeedKinesis,
    env: Vec<(String, String)>,
}

impl Setup {
    fn input_path(&self, input: Input) -> PathBuf {
        self.dir.path().join(match input {
            Input::Apache => "apache.log",
            Input::Json => "application.log",
            Input::Debezium => "debezium.ndjson",
            Input::JavaLines | Input::JavaEvents => "java.log",
            Input::Syslog => "syslog.log",
            Input::Csv => "access.csv",
        })
    }

    fn command(&self, case: &Case, run: usize, out: &Path) -> Result<Command> {
        let mut command = match case.cores {
            Cores::One => {
                let mut c = Command::new("taskset");
                c.args(["-c", "0"]);
                c
            }
            Cores::All => Command::new("env"),
        };
        let input = self.input_path(case.input);
        let state = self.dir.path().join(format!("run-{run}"));
        match case.program {
            Program::Baseline => {
                command.arg(self.bins.join("examples/regex_baseline"));
                if case.input == Input::Json {
                    command.arg("--json");
                }
                command.arg(&input);
            }
            Program::LogStreamer => {
                let files = match case.input {
                    Input::Json => serde_json::json!([{"path": input, "type": "application"}]),
                    Input::JavaLines => serde_json::json!([{"path": input, "type": "text"}]),
                    Input::JavaEvents => {
                        serde_json::json!([{"path": input, "type": "text", "multi_line": "java"}])
                    }
                    Input::Syslog => serde_json::json!([{"path": input, "type": "syslog"}]),
                    Input::Csv => serde_json::json!([
                        {"path": input, "type": "csv", "columns": corpus::CSV_COLUMNS}
                    ]),
                    _ => serde_json::json!([{"path": input, "type": "apache"}]),
                }
                .to_string();
                command
                    .arg(self.bins.join("log-streamer"))
                    .args(["--log-files", &files]);
            }
            Program::CdcForwarder => {
                command
                    .arg(self.bins.join("cdc-forwarder"))
                    .args(["--input", "debezium", "--from", "-"])
                    .stdin(std::fs::File::open(&input)?);
            }
        }
        if case.program != Program::Baseline {
            command
                .args(["--once", "--stats-interval", "0"])
                .arg("--checkpoint-file")
                .arg(state.with_extension("checkpoint.json"))
                .arg("--dead-letter-file")
                .arg(state.with_extension("dead-letters.ndjson"));
            match case.sink {
                Sink::Stdout => {
                    command.args(["--sink", "stdout"]);
                }
                Sink::Wire { aggregate } => {
                    command.args(["--stream-name", "bench"]);
                    if aggregate {
                        command.arg("--aggregate");
                    }
                }
            }
        }
        command
            .envs(self.env.iter().cloned())
            .stdout(std::fs::File::create(out)?)
            .stderr(std::fs::File::create(out.with_extension("stderr"))?);
        Ok(command)
    }
}

/// One run of `case`; checks that it succeeded and, into the endpoint, that
/// the endpoint took what the program says it sent.
fn run_case(setup: &Setup, case: &Case, run: usize) -> Result<(Measured, PathBuf)> {
    let out = setup.dir.path().join(format!("out-{run}.ndjson"));
    let before = setup.endpoint.counts();
    let measured = measure::run(&mut setup.command(case, run, &out)?)?;
    if !measured.status.success() {
        let stderr = std::fs::read_to_string(out.with_extension("stderr")).unwrap_or_default();
        return Err(format!("{}: {}\n{stderr}", case.label(), measured.status).into());
    }
    if let Sink::Wire { aggregate } = case.sink {
        let after = setup.endpoint.counts();
        let records = after.records - before.records;
        let expected_records = if aggregate {
            1..=setup.lines
        } else {
            setup.lines..=setup.lines
        };
        if !expected_records.contains(&records) || after.refused != before.refused {
            return Err(format!(
                "{}: the endpoint took {records} records, refused {} requests, for {} lines",
                case.label(),
                after.refused - before.refused,
                setup.lines
            )
            .into());
        }
        let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)?;
        let sent = summary
            .get("total_sent")
            .and_then(serde_json::Value::as_u64);
        if sent != Some(setup.lines) {
            return Err(format!(
                "{}: the summary says {sent:?} records sent, not {}: {summary:#}",
                case.label(),
                setup.lines
            )
            .into());
        }
    }
    Ok((measured, out))
}

fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut bytes = 0;
    for line in lines {
        bytes += line.len() as u64 + 1;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(bytes)
}

/// `n` Debezium change events: the fixture's first event with a new
/// primary key and name each.
fn debezium(n: usize) -> Result<impl Iterator<Item = String>> {
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cdc/debezium.ndjson"),
    )?;
    let template: serde_json::Value =
        serde_json::from_str(fixture.lines().next().ok_or("an empty Debezium fixture")?)?;
    Ok((0..n).map(move |i| {
        let mut event = template.clone();
        if let Some(after) = event.pointer_mut("/after") {
            after["id"] = serde_json::Value::from(1_000_000 + i);
            after["first_name"] = serde_json::Value::from(format!("name-{i}"));
        }
        event.to_string()
    }))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n => values.get(n / 2).copied().unwrap_or(f64::NAN),
    }
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let env_number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let lines = env_number("SHARDLINE_BENCH_LINES", 250_000);
    let rounds = env_number("SHARDLINE_BENCH_ROUNDS", 5).max(1) as usize;
    let bins = bin_dir()?;
    for needed in ["log-streamer", "cdc-forwarder", "examples/regex_baseline"] {
        if !bins.join(needed).is_file() {
            return Err(format!(
                "{} is not built: run `cargo xtask bench`, which builds the release binaries first",
                bins.join(needed).display()
            )
            .into());
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let endpoint = runtime.block_on(WireSpeedKinesis::start(SHARDS))?;
    let env = AwsEndpoints {
        kinesis: Some(endpoint.endpoint()),
        ..AwsEndpoints::default()
    }
    .env();
    let setup = Setup {
        bins,
        dir: tempfile::tempdir()?,
        lines,
        endpoint,
        env,
    };
    let n = usize::try_from(lines)?;
    let apache = write_lines(
        &setup.input_path(Input::Apache),
        corpus::apache_combined_lines(n),
    )?;
    let json = write_lines(&setup.input_path(Input::Json), corpus::application_lines(n))?;
    let cdc = write_lines(&setup.input_path(Input::Debezium), debezium(n)?)?;
    let java = write_lines(&setup.input_path(Input::JavaLines), corpus::java_lines(n))?;
    let syslog = write_lines(&setup.input_path(Input::Syslog), corpus::syslog_lines(n))?;
    let csv = write_lines(&setup.input_path(Input::Csv), corpus::csv_lines(n))?;
    println!(
        "input: {lines} lines each; Apache {:.1} MB, JSON {:.1} MB, Debezium {:.1} MB, Java {:.1} MB, syslog {:.1} MB, CSV {:.1} MB; {rounds} rounds",
        apache as f64 / 1e6,
        json as f64 / 1e6,
        cdc as f64 / 1e6,
        java as f64 / 1e6,
        syslog as f64 / 1e6,
        csv as f64 / 1e6
    );

    let only = std::env::var("SHARDLINE_BENCH_ONLY").ok();
    let chosen: Vec<bool> = CASES
        .iter()
        .map(|case| {
            only.as_deref()
                .is_none_or(|text| case.label().contains(text) || case.input.label().contains(text))
        })
        .collect();
    // The same output from log-streamer and the baseline, before timing.
    let inputs = if only.is_some() {
        &[][..]
    } else {
        &[Input::Apache, Input::Json][..]
    };
    for (n, &input) in inputs.iter().enumerate() {
        let on_one_core = |program| Case {
            input,
            program,
            sink: Sink::Stdout,
            cores: Cores::One,
        };
        let (_, a) = run_case(&setup, &on_one_core(Program::Baseline), 1_000 + 2 * n)?;
        let (_, b) = run_case(&setup, &on_one_core(Program::LogStreamer), 1_001 + 2 * n)?;
        if std::fs::read(&a)? != std::fs::read(&b)? {
            return Err(format!(
                "{}: log-streamer's output differs from the baseline's",
                input.label()
            )
            .into());
        }
    }

    let mut results: Vec<Vec<Measured>> = vec![Vec::with_capacity(rounds); CASES.len()];
    for round in 0..rounds {
        for (i, case) in CASES.iter().enumerate() {
            if !chosen.get(i).copied().unwrap_or(false) {
                continue;
            }
            let (measured, _) = run_case(&setup, case, round * CASES.len() + i)?;
            if let Some(runs) = results.get_mut(i) {
                runs.push(measured);
            }
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }

    println!("{}", table(&results, lines));
    let counts = setup.endpoint.counts();
    println!(
        "wire-speed endpoint: {} puts, {} Kinesis records, {:.1} MB of data, {} refused",
        counts.puts,
        counts.records,
        counts.data_bytes as f64 / 1e6,
        counts.refused
    );
    Ok(())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The results as a Markdown table.
fn table(results: &[Vec<Measured>], lines: u64) -> String {
    let mut out = String::from(
        "| input | run | median wall | lines/s | CPU-s per M lines | × baseline (same cores) | peak RSS |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (i, case) in CASES.iter().enumerate() {
        let runs = results.get(i).map(Vec::as_slice).unwrap_or_default();
        if runs.is_empty() {
            continue;
        }
        let wall = median(&mut runs.iter().map(|m| secs(m.wall)).collect::<Vec<_>>());
        let cpu = median(&mut runs.iter().map(|m| secs(m.cpu())).collect::<Vec<_>>());
        let rss = median(
            &mut runs
                .iter()
                .map(|m| m.peak_rss_kib as f64 / 1024.0)
                .collect::<Vec<_>>(),
        );
        let baseline = CASES.iter().position(|c| {
            c.program == Program::Baseline && c.input == case.input && c.cores == case.cores
        });
        let ratio = match baseline {
            Some(b) if b != i => {
                let base = results.get(b).map(Vec::as_slice).unwrap_or_default();
                let mut ratios: Vec<f64> = base
                    .iter()
                    .zip(runs)
                    .map(|(b, c)| secs(b.wall) / secs(c.wall))
                    .collect();
                if ratios.is_empty() {
                    String::new()
                } else {
                    format!("{:.2}×", median(&mut ratios))
                }
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} s | {:.0} | {:.2} | {} | {:.0} MiB |",
            case.input.label(),
            case.label(),
            wall,
            lines as f64 / wall,
            cpu / lines as f64 * 1e6,
            ratio,
            rss
        );
    }
    out
}
