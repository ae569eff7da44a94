//! The project's own commands, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml`), so the README's two commands need nothing but
//! cargo on a fresh machine.
//!
//! - `cargo xtask demo`: starts a local Kinesis-compatible endpoint, streams
//!   the sample logs into it, reads the stream back and shows the counts.
//! - `cargo xtask test`: installs what the tests need, then runs formatting,
//!   lints and the whole test suite. `.ci/run` runs exactly this.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "shardline's demo and test commands")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Stream the sample logs into a local Kinesis endpoint this command
    /// starts on 127.0.0.1, read the stream back and show the counts.
    Demo {
        /// The stream to create on the local endpoint.
        #[arg(long, default_value = "log-streaming-demo")]
        stream_name: String,
        /// Its shard count (the lab uses 2).
        #[arg(long, default_value_t = 2)]
        shards: i32,
    },
    /// Install what the tests need, then run fmt, clippy and every test.
    Test {
        /// Skip `cargo fmt --check` and `cargo clippy` (tests only).
        #[arg(long)]
        no_lint: bool,
        /// Arguments passed on to `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Demo {
            stream_name,
            shards,
        } => demo(&stream_name, shards),
        Task::Test {
            no_lint,
            cargo_test_args,
        } => test(no_lint, &cargo_test_args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
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

fn step(name: &str, command: &mut Command) -> anyhow::Result<()> {
    eprintln!("==> {name}");
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    eprintln!("    {name}: {status} in {:.1?}", started.elapsed());
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

fn test(no_lint: bool, cargo_test_args: &[String]) -> anyhow::Result<()> {
    eprintln!(
        "==> installing the test services (kinesalite, moto, PostgreSQL + wal2json, Mosquitto)"
    );
    let started = Instant::now();
    shardline_harness::install::ensure_all().context("installing the test services")?;
    eprintln!("    installed in {:.1?}", started.elapsed());
    if !no_lint {
        step(
            "cargo fmt --check",
            cargo().args(["fmt", "--all", "--", "--check"]),
        )?;
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
    )
}

fn demo(stream_name: &str, shards: i32) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the Tokio runtime")?;
    runtime.block_on(async {
        eprintln!("==> starting kinesalite on 127.0.0.1 (installed into .harness/ on first use)");
        let kinesalite = shardline_harness::Kinesalite::start()?;
        let client = kinesalite.kinesis_client();
        eprintln!("    endpoint {}", kinesalite.endpoint());
        shardline_harness::streams::create_stream(&client, stream_name, shards).await?;
        eprintln!("==> created stream {stream_name} with {shards} shards");

        // Until log-streamer exists (issue 7), the demo sends the lab's
        // sample lines as they are, one record per line, keyed by the
        // client address as the web-log strategy will.
        let fixtures = workspace_root().join("fixtures/logs");
        let mut sent_by_file = BTreeMap::new();
        let mut entries = Vec::new();
        for file in ["apache_access.log", "nginx_access.log", "app.log"] {
            let text = std::fs::read_to_string(fixtures.join(file))
                .with_context(|| format!("reading fixtures/logs/{file}"))?;
            let mut count = 0usize;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let key = line.split_whitespace().next().unwrap_or(file);
                entries.push(
                    aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                        .data(aws_sdk_kinesis::primitives::Blob::new(line))
                        .partition_key(key)
                        .build()?,
                );
                count += 1;
            }
            sent_by_file.insert(file, count);
        }
        let sent = entries.len();
        let answer = client
            .put_records()
            .stream_name(stream_name)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "PutRecords: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(&e)
                )
            })?;
        let failed = answer.failed_record_count().unwrap_or(0);
        eprintln!("==> sent {sent} lines in one PutRecords call ({failed} failed)");

        let read = shardline_harness::streams::read_at_least(
            &client,
            stream_name,
            sent,
            Duration::from_secs(10),
        )
        .await?;
        let mut by_shard: BTreeMap<&str, usize> = BTreeMap::new();
        for record in &read {
            *by_shard.entry(record.shard_id.as_str()).or_default() += 1;
        }
        println!("sent by file:  {sent_by_file:?}");
        println!("read back:     {} records {by_shard:?}", read.len());
        if let Some(first) = read.first() {
            println!("first record:  {}", String::from_utf8_lossy(&first.data));
        }
        if read.len() != sent {
            bail!("sent {sent} records but read back {}", read.len());
        }
        println!("ok: every record sent was read back from the stream");
        Ok(())
    })
}
