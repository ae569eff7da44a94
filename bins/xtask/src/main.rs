//! The project's own commands, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml`), so the README's two commands need nothing but
//! cargo on a fresh machine.
//!
//! - `cargo xtask demo [--stream-name NAME] [--shards N]`: starts a local
//!   Kinesis-compatible endpoint, parses the sample logs, sends them through
//!   the producer, reads the stream back and shows the statistics.
//! - `cargo xtask test [--no-lint] [-- CARGO TEST ARGS]`: builds the
//!   workspace, installs the test services, then runs `cargo fmt --check`,
//!   `cargo clippy -D warnings` and every test. `.ci/run` runs exactly this.
//! - `cargo xtask chaos [ARGS]`: builds the release binaries and runs the
//!   chaos suite (`bins/chaos`): crashes, faults, an outage, garbage and a
//!   full disk, with a table of what was lost and repeated. `cargo xtask
//!   test` ends with its smoke size (`chaos --smoke`).
//! - `cargo xtask fuzz [--seconds N] [--keep] [TARGET...]`: builds the fuzz
//!   targets (`fuzz/`) with libFuzzer's coverage instrumentation on the
//!   stable toolchain and runs each for N seconds (default 600), from the
//!   corpus in `fuzz/corpus/TARGET`; `--keep` merges what found new
//!   coverage back into it. `cargo xtask test` runs each for 10 seconds.
//! - `cargo xtask bench`: builds the release binaries and the baseline
//!   program, then runs the whole-path bench (`benches/whole_path.rs`), which
//!   prints the table `docs/benchmarks.md` records.
//! - `cargo xtask scale-out`: builds the release binaries and runs the
//!   scale-out bench (`benches/scale_out.rs`): 1 to 8 log-streamer
//!   processes sharing one stream behind the shard-limit proxy, and a
//!   reshard. `cargo test` runs its smoke size (`benches/tests/scale_out_smoke.rs`).
//!
//! - `cargo xtask library [--verify] [--bless]`: the checks that the crates
//!   work as a library (`library.rs`): no AWS crate in a parsing-only build,
//!   `cargo package`, the public-API snapshots, and a crate outside the
//!   workspace built against the newest SDK. `cargo xtask test` runs it.
//! - `cargo xtask deb [--smoke]`: log-streamer's Debian package
//!   (`deb.rs`): built with cargo-deb (installed on first use), inspected,
//!   and as root installed, its unit verified, and purged. `cargo xtask
//!   test` runs it on the debug build (`--smoke`).
//!
//! Every step runs a cargo command over the whole workspace, so dependencies
//! are compiled once with one set of features.

mod deb;
mod library;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask demo [--stream-name NAME] [--shards N]
       cargo xtask test [--no-lint] [-- ARGS FOR cargo test]
       cargo xtask chaos [--smoke] [--only NAME,...]
       cargo xtask fuzz [--seconds N] [--keep] [TARGET...]
       cargo xtask bench
       cargo xtask scale-out
       cargo xtask library [--verify] [--bless]
       cargo xtask deb [--smoke]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => ("", &[][..]),
    };
    let result = match task {
        "demo" => demo(rest),
        "test" => test(rest),
        "bench" if rest.is_empty() => bench(),
        "scale-out" if rest.is_empty() => scale_out(),
        "chaos" => chaos(rest),
        "fuzz" => fuzz(rest),
        "library" => library::library(rest),
        "deb" => deb::deb(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// Runs one step, printing its name and how long it took.
fn step(name: &str, command: &mut Command) -> Result<(), String> {
    eprintln!("==> {name}");
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("running {command:?}: {e}"))?;
    eprintln!("    {name}: {status} in {:.1?}", started.elapsed());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn harness_binary() -> PathBuf {
    target_dir().join("debug/harness")
}

fn test(args: &[String]) -> Result<(), String> {
    let (flags, cargo_test_args) = match args.iter().position(|a| a == "--") {
        Some(split) => (
            args.get(..split).unwrap_or_default(),
            args.get(split + 1..).unwrap_or_default(),
        ),
        None => (args, &[][..]),
    };
    let mut lint = true;
    for flag in flags {
        match flag.as_str() {
            "--no-lint" => lint = false,
            other => return Err(format!("unknown flag `{other}`\n{USAGE}")),
        }
    }
    if lint {
        step(
            "cargo fmt --check",
            cargo().args(["fmt", "--all", "--", "--check"]),
        )?;
    }
    // Builds the test binaries — and, because the harness has integration
    // tests, its `harness` binary — with the features `cargo test
    // --workspace` uses, so the test run below reuses all of it.
    step(
        "cargo build (tests and harness)",
        cargo().args(["test", "--workspace", "--no-run", "--quiet"]),
    )?;
    step(
        "install test services",
        Command::new(harness_binary()).arg("install"),
    )?;
    if lint {
        step(
            "cargo clippy",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }
    step(
        "cargo test",
        cargo()
            .args(["test", "--workspace", "--no-fail-fast"])
            .args(cargo_test_args),
    )?;
    // `cargo test --workspace` built every binary of the workspace, the
    // chaos runner and the binaries it drives included.
    step(
        "chaos suite, smoke size",
        Command::new(target_dir().join("debug/chaos")).arg("--smoke"),
    )?;
    // The scale-out bench's smoke size is a test of `shardline-benches`
    // (`benches/tests/scale_out_smoke.rs`): built above, run by `cargo test`.
    // The .deb from the debug build `cargo test` made: built, installed,
    // checked and purged.
    deb::deb(&["--smoke".to_owned()])?;
    library::library(&[])?;
    run_fuzz(FUZZ_TARGETS, FUZZ_SMOKE_SECONDS, false)
}

/// Every fuzz target (`fuzz/Cargo.toml`).
const FUZZ_TARGETS: &[&str] = &[
    "apache",
    "nginx",
    "application",
    "custom_format",
    "cdc",
    "iot_filter",
    "syslog",
    "csv",
    "text",
];
/// Seconds each target runs in `cargo xtask test`.
const FUZZ_SMOKE_SECONDS: u64 = 10;
/// Seconds each target runs in `cargo xtask fuzz` unless told.
const FUZZ_DEFAULT_SECONDS: u64 = 600;
/// libFuzzer's coverage instrumentation, as cargo-fuzz asks rustc for it;
/// every flag is stable (only sanitizers would need nightly, and safe Rust
/// is what is fuzzed here). Debug assertions and overflow checks stay on.
const FUZZ_RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

fn fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = FUZZ_DEFAULT_SECONDS;
    let mut keep = false;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("--seconds needs a number\n{USAGE}"))?;
            }
            "--keep" => keep = true,
            target if FUZZ_TARGETS.contains(&target) => targets.push(target),
            other => {
                return Err(format!(
                    "unknown fuzz target or flag `{other}` (targets: {})\n{USAGE}",
                    FUZZ_TARGETS.join(", ")
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    run_fuzz(&targets, seconds, keep)
}

/// The host's target triple, as rustc names it.
fn host_triple() -> Result<String, String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("running rustc -vV: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV named no host".to_owned())
}

/// Builds the fuzz targets and runs each for `seconds`. New inputs go to
/// `target/fuzz/corpus/TARGET`; with `keep`, those that add coverage are
/// merged into `fuzz/corpus/TARGET`. A crash is written to
/// `target/fuzz/artifacts/TARGET/` and fails the run.
fn run_fuzz(targets: &[&str], seconds: u64, keep: bool) -> Result<(), String> {
    let fuzz_target = target_dir().join("fuzz");
    let flags: String = FUZZ_RUSTFLAGS
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // With the target named, RUSTFLAGS reach the targets' code only, not
    // build scripts and proc macros (which are not linked with libFuzzer).
    let host = host_triple()?;
    step(
        "build the fuzz targets",
        cargo()
            .args([
                "build",
                "--release",
                "--quiet",
                "--manifest-path",
                "fuzz/Cargo.toml",
            ])
            .args(["--target", &host])
            .arg("--target-dir")
            .arg(&fuzz_target)
            .env("RUSTFLAGS", flags),
    )?;
    for target in targets {
        let seeds = workspace_root().join("fuzz/corpus").join(target);
        let found = fuzz_target.join("corpus").join(target);
        let artifacts = fuzz_target.join("artifacts").join(target);
        for dir in [&seeds, &found, &artifacts] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let binary = fuzz_target.join(&host).join("release").join(target);
        // libFuzzer reports every new input: its output goes to a log, and
        // only the final statistics (or, on a crash, the end) are shown.
        let log_path = fuzz_target.join("logs").join(format!("{target}.log"));
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let result = step(
            &format!("fuzz {target} for {seconds} s"),
            Command::new(&binary)
                .arg(format!("-max_total_time={seconds}"))
                .arg(format!("-artifact_prefix={}/", artifacts.display()))
                .arg("-print_final_stats=1")
                .arg(&found)
                .arg(&seeds)
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log),
        );
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let shown: Vec<&str> = match &result {
            Ok(()) => lines
                .iter()
                .filter(|l| l.starts_with("stat::") || l.starts_with("Done "))
                .copied()
                .collect(),
            Err(_) => lines.iter().rev().take(40).rev().copied().collect(),
        };
        for line in shown {
            eprintln!("    {line}");
        }
        eprintln!("    (libFuzzer's output: {})", log_path.display());
        result?;
        if keep {
            step(
                &format!("keep what {target} found"),
                Command::new(&binary)
                    .arg("-merge=1")
                    .arg(&seeds)
                    .arg(&found),
            )?;
        }
    }
    Ok(())
}

/// Builds the release binaries of `packages` (only `bins` of them, when
/// named: `--bin` applies across the packages).
fn build_release(packages: &[&str], bins: &[&str]) -> Result<(), String> {
    let mut command = cargo();
    command.args(["build", "--release", "--quiet"]);
    for package in packages {
        command.args(["--package", package]);
    }
    for bin in bins {
        command.args(["--bin", bin]);
    }
    step("build the release binaries", &mut command)
}

/// The chaos suite at full size, with the release binaries.
fn chaos(args: &[String]) -> Result<(), String> {
    build_release(
        &[
            "log-streamer",
            "cdc-forwarder",
            "sensor-forwarder",
            "shardline-chaos",
            "shardline-harness",
        ],
        &[],
    )?;
    step(
        "install test services",
        Command::new(target_dir().join("release/harness")).arg("install"),
    )?;
    step(
        "chaos suite",
        Command::new(target_dir().join("release/chaos")).args(args),
    )
}

/// The whole-path bench runs the release binaries, so they are built first,
/// with the same profile the bench is built with.
fn bench() -> Result<(), String> {
    build_release(&["log-streamer", "cdc-forwarder"], &[])?;
    step(
        "build the baseline program",
        cargo().args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "shardline-benches",
            "--example",
            "regex_baseline",
        ]),
    )?;
    step(
        "whole-path bench",
        cargo().args([
            "bench",
            "--quiet",
            "--package",
            "shardline-benches",
            "--bench",
            "whole_path",
        ]),
    )
}

/// The scale-out bench drives the release log-streamer beside it.
fn scale_out() -> Result<(), String> {
    build_release(
        &["log-streamer", "shardline-benches"],
        &["log-streamer", "scale-out"],
    )?;
    // The bench installs kinesalite itself if it is missing.
    step(
        "scale-out bench",
        &mut Command::new(target_dir().join("release/scale-out")),
    )
}

fn demo(args: &[String]) -> Result<(), String> {
    // The demo runs the log-streamer binary built next to it.
    step(
        "build",
        cargo().args([
            "build",
            "--quiet",
            "--package",
            "log-streamer",
            "--package",
            "shardline-demo",
        ]),
    )?;
    step(
        "demo",
        cargo()
            .args(["run", "--quiet", "--package", "shardline-demo", "--"])
            .args(args),
    )
}
