//! multi-source end to end: the real binary into kinesalite for a fixed
//! duration; every count in its statistics checked against what each
//! generator made and what the stream holds.

// The helpers below are assertions: a missing field is the test failing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use shardline_harness::binary::StreamRun;
use shardline_harness::{binary, streams};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Which generator a record in the stream came from.
fn source_of(record: &Value) -> &'static str {
    if record.get("log_type").is_some() {
        "web_logs"
    } else if record.get("device_id").is_some() {
        "iot_sensors"
    } else if record.get("operation").is_some() {
        "database_cdc"
    } else {
        panic!("a record of no known source: {record}")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_all_sources_run_reconciles_per_source() -> TestResult {
    let run = StreamRun::new("multi", 2).await?;
    let output = run
        .command(env!("CARGO_BIN_EXE_multi-source"))
        .args(["--source", "all", "--duration", "3"])
        .args(["--web-rate", "200", "--iot-rate", "100", "--db-rate", "60"])
        .output()?;
    let summary = binary::summary("multi-source", &output)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let generated: Value = serde_json::from_str(
        stderr
            .lines()
            .find_map(|l| l.split("multi-source: generated ").nth(1))
            .ok_or("no generated counts")?,
    )?;
    eprintln!("{summary:#}\ngenerated: {generated}");

    let mut total_sent = 0;
    let mut dead = 0;
    for name in ["web_logs", "iot_sensors", "database_cdc"] {
        let source = &summary["by_source"][name];
        let made = generated[name].as_u64().unwrap();
        // About rate × duration; exactly what was read.
        assert!(made > 50, "{name}: {made}");
        assert_eq!(source["read"], made, "{name}: {summary:#}");
        let sent = source["sent"].as_u64().unwrap();
        let invalid = source["invalid"].as_u64().unwrap();
        assert_eq!(sent + invalid, made, "{name}: {summary:#}");
        assert_eq!(source["dead_lettered"], invalid, "{name}");
        assert_eq!(source["failed"], 0, "{name}");
        total_sent += sent;
        dead += invalid;
    }
    assert_eq!(summary["total_sent"], total_sent, "{summary:#}");
    assert_eq!(summary["total_failed"], 0);
    let letters = std::fs::read_to_string(run.dead_letter_file()).unwrap_or_default();
    assert_eq!(letters.lines().count() as u64, dead);

    // The stream holds exactly what was sent, per source.
    let records = streams::read_at_least(
        &run.client,
        &run.stream,
        total_sent as usize,
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(records.len() as u64, total_sent);
    let mut in_stream: BTreeMap<&str, u64> = BTreeMap::new();
    for record in &records {
        let value: Value = serde_json::from_slice(&record.data)?;
        *in_stream.entry(source_of(&value)).or_default() += 1;
    }
    for (name, count) in in_stream {
        assert_eq!(summary["by_source"][name]["sent"], count, "{name}");
    }
    Ok(())
}

#[test]
fn one_source_runs_alone() -> TestResult {
    let dir = tempfile::tempdir()?;
    let output = Command::new(env!("CARGO_BIN_EXE_multi-source"))
        .args(["--sink", "stdout", "--source", "iot", "--duration", "1"])
        .args(["--stats-interval", "0", "--dead-letter-file"])
        .arg(dir.path().join("dead-letters.ndjson"))
        .output()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout)?;
    assert!(stdout.lines().count() > 5, "{stdout}");
    for line in stdout.lines() {
        let reading: Value = serde_json::from_str(line)?;
        assert_eq!(source_of(&reading), "iot_sensors");
        assert!(reading["location"].is_string(), "{reading}");
    }
    // With stdout taken by the records, the statistics go to stderr.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"iot_sensors\""), "{stderr}");
    assert!(!stderr.contains("\"web_logs\""), "{stderr}");
    Ok(())
}
