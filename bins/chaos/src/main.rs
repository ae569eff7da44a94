//! `chaos`: runs the binaries through crashes, faults, outages, garbage
//! and a full disk against the harness's real services (kinesalite behind
//! the fault proxy, PostgreSQL with wal2json), then counts every input in
//! the stream and the dead-letter file, and prints one row per scenario:
//! records in, delivered, dead-lettered, lost, duplicates, crashes, time.
//!
//! `cargo xtask chaos` runs it at full size with the release binaries;
//! `cargo xtask test` runs `chaos --smoke` (small inputs, few kills) after
//! the tests. It exits non-zero when a scenario misses its goal: nothing
//! lost, at most one batch (500 records) repeated per crash, nothing
//! dead-lettered for a transient fault, counters that add up.

mod cdc;
mod count;
mod logs;
mod mqtt;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use count::Row;

const USAGE: &str = "\
usage: chaos [--smoke] [--only NAME,...] [--bin-dir DIR]

Scenarios: kills, faults, garbage, disk-full, cdc, cdc-8, mqtt.
--smoke    small inputs and few crashes (a minute in all)
--bin-dir  where log-streamer, cdc-forwarder and sensor-forwarder are
           (default: beside chaos)";

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    Smoke,
    Full,
}

/// The binaries under test.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) log_streamer: PathBuf,
    pub(crate) cdc_forwarder: PathBuf,
    pub(crate) sensor_forwarder: PathBuf,
}

type Scenario = fn(Size, &Binaries, &tokio::runtime::Runtime) -> anyhow::Result<Row>;

const SCENARIOS: [(&str, Scenario); 7] = [
    ("kills", logs::kills),
    ("faults", logs::faults),
    ("garbage", logs::garbage),
    ("disk-full", logs::disk_full),
    ("cdc", cdc::default_settings),
    ("cdc-8", cdc::eight_in_flight),
    ("mqtt", mqtt::broker_restarts),
];

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let mut size = Size::Full;
    let mut only: Option<Vec<String>> = None;
    let mut bin_dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => size = Size::Smoke,
            "--only" => {
                let names = args.next().ok_or_else(|| anyhow::anyhow!("{USAGE}"))?;
                only = Some(names.split(',').map(str::to_owned).collect());
            }
            "--bin-dir" => {
                bin_dir = Some(PathBuf::from(
                    args.next().ok_or_else(|| anyhow::anyhow!("{USAGE}"))?,
                ));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(true);
            }
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if let Some(names) = &only {
        for name in names {
            anyhow::ensure!(
                SCENARIOS.iter().any(|(n, _)| n == name),
                "no scenario {name:?}\n{USAGE}"
            );
        }
    }
    let bin_dir = match bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .ok_or_else(|| anyhow::anyhow!("no directory for the binaries"))?,
    };
    let binaries = Binaries {
        log_streamer: bin_dir.join("log-streamer"),
        cdc_forwarder: bin_dir.join("cdc-forwarder"),
        sensor_forwarder: bin_dir.join("sensor-forwarder"),
    };
    for binary in [
        &binaries.log_streamer,
        &binaries.cdc_forwarder,
        &binaries.sensor_forwarder,
    ] {
        anyhow::ensure!(
            binary.exists(),
            "{} is missing: build it first (cargo xtask chaos does)",
            binary.display()
        );
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let mut rows = Vec::new();
    for (name, scenario) in SCENARIOS {
        if only
            .as_ref()
            .is_some_and(|names| !names.iter().any(|n| n == name))
        {
            continue;
        }
        eprintln!("==> chaos: {name} ({size:?})");
        let started = Instant::now();
        let row = match scenario(size, &binaries, &runtime) {
            Ok(mut row) => {
                row.seconds = started.elapsed().as_secs_f64();
                row
            }
            Err(e) => Row::broken(name, started.elapsed().as_secs_f64(), format!("{e:#}")),
        };
        eprintln!("    {}", row.verdict());
        rows.push(row);
    }
    println!("{}", count::table(&rows));
    Ok(rows.iter().all(Row::passed))
}
