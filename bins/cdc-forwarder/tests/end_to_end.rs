//! cdc-forwarder end to end: the real binary against the harness's
//! PostgreSQL (wal2json) and kinesalite, with the fault proxy in between
//! where a test needs faults.

// The helpers below are assertions: a read that times out, a record that
// is not JSON, a missing field is the test failing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use shardline_harness::binary::StreamRun;
use shardline_harness::fault_proxy::{EntryFault, FaultCode, FaultProxy, Selection};
use shardline_harness::{Kinesalite, Postgres, binary, streams, unique_name};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Setup {
    run: StreamRun,
    database: String,
    url: String,
    slot: String,
}

impl Setup {
    async fn new(
        pg: &Postgres,
        shards: i32,
        schema: &str,
    ) -> Result<Setup, Box<dyn std::error::Error>> {
        let run = StreamRun::new("cdc", shards).await?;
        let database = unique_name("cdc");
        pg.create_database(&database)?;
        pg.psql(&database, schema)?;
        Ok(Setup {
            run,
            url: pg.url(&database),
            database,
            slot: unique_name("slot"),
        })
    }

    fn config(&self) -> PathBuf {
        self.run
            .write_config(
                "[producer]\nbatch_timeout = 0.05\nmax_retries = -1\nretry_initial_delay = 0.01\n\
             retry_max_delay = 0.2\n\n[postgres]\npoll_interval = 0.05\n\n\
             [cdc]\ncheckpoint_interval = 0.1\n",
            )
            .unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.run.command(env!("CARGO_BIN_EXE_cdc-forwarder"));
        command
            .arg("--config")
            .arg(self.config())
            .arg("--postgres-url")
            .arg(&self.url)
            .arg("--slot")
            .arg(&self.slot)
            .arg("--create-slot")
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Result<Value, Box<dyn std::error::Error>> {
        let output = self.command(args).output()?;
        summary(&output)
    }

    fn spawn(&self, args: &[&str]) -> std::io::Result<Child> {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }

    async fn read(&self, expected: usize) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let timeout = Duration::from_secs(60);
        let run = &self.run;
        Ok(streams::read_json_at_least(&run.client, &run.stream, expected, timeout).await?)
    }
}

fn summary(output: &Output) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(binary::summary("cdc-forwarder", output)?)
}

fn id(event: &Value) -> i64 {
    event["primary_key"]["id"].as_i64().unwrap()
}

/// Each row's `v` values in the order one consumer of its shard reads them.
fn per_row(events: &[Value], table: &str) -> BTreeMap<i64, Vec<i64>> {
    let mut rows: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for event in events.iter().filter(|e| e["table"] == table) {
        let v = event["after"]["v"].as_i64().unwrap_or(-1);
        rows.entry(id(event)).or_default().push(v);
    }
    rows
}

const CRITICAL: &str = "public.accounts:balance;public.documents:title";

#[tokio::test(flavor = "multi_thread")]
async fn changes_arrive_classified_keyed_and_in_commit_order() -> TestResult {
    let pg = Postgres::shared()?;
    let setup = Setup::new(
        pg,
        2,
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric);
         ALTER TABLE accounts REPLICA IDENTITY FULL;
         CREATE TABLE documents (id int PRIMARY KEY, title text, body text);
         ALTER TABLE documents ALTER COLUMN body SET STORAGE EXTERNAL;",
    )
    .await?;
    // The first run creates the slot; nothing is committed after it yet.
    let first = setup.run(&["--once", "--critical-fields", CRITICAL])?;
    assert_eq!(first["total_sent"], 0, "{first:#}");

    // STORAGE EXTERNAL: the 20 kB body is stored out of line (TOAST).
    pg.psql(
        &setup.database,
        "INSERT INTO accounts VALUES (1, 'kim', 100), (2, 'lee', 50);
         INSERT INTO documents VALUES (1, 'draft', repeat('x', 20000));",
    )?;
    pg.psql(
        &setup.database,
        "UPDATE accounts SET balance = 75 WHERE id = 1",
    )?;
    pg.psql(
        &setup.database,
        "UPDATE accounts SET owner = 'park' WHERE id = 2",
    )?;
    // The body is TOASTed and unchanged: wal2json leaves it out.
    pg.psql(
        &setup.database,
        "UPDATE documents SET title = 'final' WHERE id = 1",
    )?;
    pg.psql(
        &setup.database,
        "DELETE FROM accounts WHERE id = 2; DELETE FROM documents",
    )?;
    pg.psql(&setup.database, "TRUNCATE accounts")?;

    let summary = setup.run(&["--once", "--critical-fields", CRITICAL])?;
    eprintln!("summary of the run: {summary:#}");
    assert_eq!(summary["total_sent"], 9, "{summary:#}");
    assert_eq!(summary["total_failed"], 0);
    let source = &summary["by_source"]["database_cdc"];
    assert_eq!(source["parsed"], 9);
    assert_eq!(source["invalid"], 0);
    // BEGIN and COMMIT of the six transactions.
    assert_eq!(source["skipped"], 12);
    // The slot's lag in bytes and in time, read at the last checkpoint.
    assert!(source["backlog_bytes"].is_u64(), "{source:#}");
    assert!(source["backlog_seconds"].is_f64(), "{source:#}");

    let events = setup.read(9).await?;
    assert_eq!(events.len(), 9);
    for event in &events {
        eprintln!(
            "read back from {}: key {} {} {} {} {}",
            event["_shard"],
            event["_key"],
            event["operation"],
            event["table"],
            event["change_type"],
            event["after"]
                .to_string()
                .chars()
                .take(60)
                .collect::<String>()
        );
    }
    let truncate = events
        .iter()
        .find(|e| e["operation"] == "TRUNCATE")
        .expect("the TRUNCATE");
    assert_eq!(truncate["table"], "accounts");
    assert_eq!(truncate["change_type"], "table_truncated");
    assert_eq!(truncate["_key"], "public.accounts");
    let change = |table: &str, op: &str, id: i64| {
        events
            .iter()
            .find(|e| e["table"] == table && e["operation"] == op && e["primary_key"]["id"] == id)
            .unwrap_or_else(|| panic!("no {op} of {table} {id}"))
    };
    let critical = change("accounts", "UPDATE", 1);
    assert_eq!(critical["change_type"], "critical_field_change");
    assert_eq!(critical["changed_columns"], serde_json::json!(["balance"]));
    assert_eq!(critical["before_image"], "full");
    assert_eq!(critical["before"]["balance"], 100);
    assert_eq!(critical["_key"], "public.accounts:id=1");
    let general = change("accounts", "UPDATE", 2);
    assert_eq!(general["change_type"], "general_update");
    assert_eq!(change("accounts", "INSERT", 1)["change_type"], "new_record");
    assert_eq!(
        change("accounts", "DELETE", 2)["change_type"],
        "record_deleted"
    );
    // REPLICA IDENTITY DEFAULT: the before image is the key only, so
    // whether the critical `title` changed is unknown — and said so.
    let document = change("documents", "UPDATE", 1);
    assert_eq!(document["before_image"], "key_only");
    assert_eq!(document["change_type"], "unclassified_update");
    assert!(document["changed_columns"].is_null(), "{document}");
    assert_eq!(document["after"]["title"], "final");
    assert_eq!(
        document["after"]
            .as_object()
            .map(|a| a.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["id".to_owned(), "title".to_owned()]),
        "an unchanged TOAST column is left out, not null"
    );
    let inserted = change("documents", "INSERT", 1);
    assert_eq!(
        inserted["after"]["body"].as_str().map(str::len),
        Some(20_000)
    );
    assert_eq!(change("documents", "DELETE", 1)["before_image"], "key_only");
    // Each row's changes in commit order (the transactions ran one after
    // another, so (transaction id, sequence in it) only grows) — the
    // order Kinesis keeps is per partition key, and the key is the row.
    let mut by_key: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for event in &events {
        let txid: u64 = event["transaction_id"].as_str().unwrap().parse()?;
        let sequence = event["sequence"].as_u64().unwrap();
        by_key
            .entry(event["_key"].to_string())
            .or_default()
            .push((txid, sequence));
    }
    assert_eq!(by_key.len(), 4, "{by_key:?}");
    for (key, order) in by_key {
        assert!(order.is_sorted(), "{key}: {order:?}");
    }
    Ok(())
}

/// `UPDATES` updates to `ROWS` rows, each setting `v` to the next value.
fn updates(pg: &Postgres, database: &str, rows: i64, updates: i64) -> TestResult {
    pg.psql(
        database,
        &format!("INSERT INTO t SELECT g, 0 FROM generate_series(1, {rows}) g"),
    )?;
    for round in 1..=updates {
        pg.psql(database, &format!("UPDATE t SET v = {round}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_entries_are_retried_without_reordering_any_row() -> TestResult {
    const ROWS: i64 = 20;
    const UPDATES: i64 = 15;
    let pg = Postgres::shared()?;
    let mut setup = Setup::new(pg, 2, "CREATE TABLE t (id int PRIMARY KEY, v int)").await?;
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Share(0.3),
        code: FaultCode::Throttled,
    }));
    setup.run.endpoints.kinesis = Some(proxy.endpoint());
    setup.run(&["--once"])?;
    updates(pg, &setup.database, ROWS, UPDATES)?;
    let summary = setup.run(&["--once", "--batch-size", "7"])?;
    let total = (ROWS * (UPDATES + 1)) as u64;
    assert_eq!(summary["total_sent"], total, "{summary:#}");
    assert!(summary["retried"].as_u64().unwrap() > 0, "{summary:#}");

    let events = setup.read(total as usize).await?;
    assert_eq!(events.len() as u64, total);
    // Every row's values arrive 0, 1, …, UPDATES: retries reordered none.
    let expected: Vec<i64> = (0..=UPDATES).collect();
    for (row, values) in per_row(&events, "t") {
        assert_eq!(values, expected, "row {row}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_loses_no_change() -> TestResult {
    const ROWS: i64 = 50;
    const UPDATES: i64 = 40;
    let pg = Postgres::shared()?;
    let setup = Setup::new(pg, 2, "CREATE TABLE t (id int PRIMARY KEY, v int)").await?;
    setup.run(&["--once"])?;
    updates(pg, &setup.database, ROWS, UPDATES)?;
    let total = (ROWS * (UPDATES + 1)) as usize;

    let mut child = setup.spawn(&["--batch-size", "50"])?;
    // Killed once part of it is in the stream, mid-batch and
    // mid-transaction as it happens.
    let some = streams::read_at_least(
        &setup.run.client,
        &setup.run.stream,
        total / 4,
        Duration::from_secs(60),
    )
    .await?;
    assert!(
        some.len() >= total / 4,
        "only {} records before the kill",
        some.len()
    );
    let pid = i32::try_from(child.id())?;
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    child.wait()?;

    let summary = setup.run(&["--once"])?;
    assert_eq!(summary["total_failed"], 0, "{summary:#}");
    let events = setup.read(total).await?;
    let stored: BTreeSet<(i64, i64)> = events
        .iter()
        .map(|e| (id(e), e["after"]["v"].as_i64().unwrap()))
        .collect();
    let all: BTreeSet<(i64, i64)> = (1..=ROWS)
        .flat_map(|row| (0..=UPDATES).map(move |v| (row, v)))
        .collect();
    let lost: Vec<_> = all.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "lost {} changes: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    // Each row's last stored change is its last value: a re-sent
    // transaction comes after, never instead of, what it repeats.
    for (row, values) in per_row(&events, "t") {
        assert_eq!(values.last(), Some(&UPDATES), "row {row}");
    }
    eprintln!(
        "{total} changes, one kill -9: {} stored ({} again after the restart)",
        events.len(),
        events.len() - total
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_crash_mid_run_loses_no_change() -> TestResult {
    // A cluster of its own: the crash must not disturb other tests.
    let pg = Postgres::start()?;
    let setup = Setup::new(&pg, 1, "CREATE TABLE t (id int PRIMARY KEY, v int)").await?;
    // The slot exists before anything is written.
    setup.run(&["--once"])?;
    let child = setup.spawn(&[])?;
    for id in 1..=100 {
        pg.psql(&setup.database, &format!("INSERT INTO t VALUES ({id}, 0)"))?;
    }
    let before = streams::read_at_least(
        &setup.run.client,
        &setup.run.stream,
        100,
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(before.len(), 100);
    pg.restart_immediate()?;
    for id in 101..=200 {
        pg.psql(&setup.database, &format!("INSERT INTO t VALUES ({id}, 0)"))?;
    }
    let events = setup.read(200).await?;
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status()?;
    let output = child.wait_with_output()?;
    summary(&output)?;
    let ids: Vec<i64> = events.iter().map(id).collect();
    assert_eq!(
        ids,
        (1..=200).collect::<Vec<_>>(),
        "lost or repeated across the crash"
    );
    Ok(())
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/cdc")
        .join(name)
}

#[test]
fn every_input_format_reaches_stdout_as_normalized_events() -> TestResult {
    for format in ["debezium", "dms", "maxwell", "wal2json"] {
        let dir = tempfile::tempdir()?;
        let path = fixture(&format!("{format}.ndjson"));
        let text = std::fs::read_to_string(&path)?;
        let mut decoder = shardline_cdc::Decoder::new(format.parse()?);
        let (mut changes, mut errors) = (0, 0);
        for line in text.lines() {
            match decoder.decode(line.as_bytes()) {
                Ok(shardline_cdc::Decoded::Change(_)) => changes += 1,
                Ok(_) => {}
                Err(_) => errors += 1,
            }
        }
        let output = Command::new(env!("CARGO_BIN_EXE_cdc-forwarder"))
            .args(["--input", format, "--from"])
            .arg(&path)
            .args(["--once", "--sink", "stdout", "--stats-interval", "0"])
            .arg("--checkpoint-file")
            .arg(dir.path().join("checkpoint.json"))
            .arg("--dead-letter-file")
            .arg(dir.path().join("dead-letters.ndjson"))
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{format}: {stderr}");
        let events: Vec<Value> = String::from_utf8(output.stdout)?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(events.len(), changes, "{format}: {stderr}");
        assert!(
            events
                .iter()
                .all(|e| e["operation"].is_string() && e["table"].is_string())
        );
        let dead = std::fs::read_to_string(dir.path().join("dead-letters.ndjson"))?;
        assert_eq!(dead.lines().count(), errors, "{format}: {dead}");
    }
    Ok(())
}

#[test]
fn lines_that_are_not_changes_are_dead_lettered_with_the_reason() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdc-forwarder"))
        .args([
            "--input",
            "maxwell",
            "--from",
            "-",
            "--sink",
            "stdout",
            "--stats-interval",
            "0",
        ])
        .arg("--checkpoint-file")
        .arg(dir.path().join("checkpoint.json"))
        .arg("--dead-letter-file")
        .arg(dir.path().join("dead-letters.ndjson"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(
            b"{\"database\":\"shop\",\"table\":\"orders\",\"type\":\"insert\",\"ts\":1,\"xid\":1,\"data\":{\"id\":1}}\n\
              {\"database\":\"shop\",\"table\":\"orders\",\"type\":\"explode\",\"ts\":1,\"data\":{}}\n\
              not json at all\n",
        )?;
    }
    let output = child.wait_with_output()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8(output.stdout)?.lines().count(), 1);
    let dead: Vec<Value> = std::fs::read_to_string(dir.path().join("dead-letters.ndjson"))?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(dead.len(), 2);
    assert!(
        dead[0]["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("explode"),
        "{}",
        dead[0]
    );
    assert_eq!(dead[1]["context"]["line"], "3", "{}", dead[1]);
    assert_eq!(dead[1]["reason"], "rejected");
    Ok(())
}

#[test]
fn the_key_report_shows_what_each_strategy_does_to_the_shards() -> TestResult {
    // 1,000 updates of 500 orders in 100 transactions of one table.
    let dir = tempfile::tempdir()?;
    let sample = dir.path().join("maxwell.ndjson");
    let lines: String = (0..1000)
        .map(|n| {
            format!(
                "{{\"database\":\"shop\",\"table\":\"orders\",\"type\":\"update\",\"ts\":1,\
                 \"xid\":{},\"data\":{{\"id\":{},\"status\":\"paid\"}},\"old\":{{\"status\":\"new\"}},\
                 \"primary_key_columns\":[\"id\"]}}\n",
                n / 10,
                n % 500
            )
        })
        .collect();
    std::fs::write(&sample, lines)?;
    let report = |strategy: &str| -> Result<Value, Box<dyn std::error::Error>> {
        let output = Command::new(env!("CARGO_BIN_EXE_cdc-forwarder"))
            .args(["keys", "--shards", "4", "--input", "maxwell", "--json"])
            .args(["--partition-key", strategy, "--from"])
            .arg(&sample)
            .output()?;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let value: Value = serde_json::from_slice(&output.stdout)?;
        eprintln!(
            "--partition-key {strategy}: {}",
            value["report"]["warnings"]
        );
        Ok(value["report"].clone())
    };
    let by_row = report("pk")?;
    assert_eq!(by_row["records"], 1000);
    assert_eq!(by_row["distinct_keys"], 500);
    assert!(
        by_row["shards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["hot"] == false)
    );
    let by_table = report("table")?;
    assert_eq!(by_table["distinct_keys"], 1);
    assert_eq!(by_table["hottest_keys"][0]["key"], "shop.orders");
    assert!(
        by_table["shards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["hot"] == true)
    );
    let by_transaction = report("table-txid")?;
    assert_eq!(by_transaction["distinct_keys"], 100);
    Ok(())
}

/// `--help` names `SHARDLINE_POSTGRES_URL` but never shows its value: the
/// URL holds the database password.
#[test]
fn help_shows_no_database_url_from_the_environment() {
    let output = Command::new(env!("CARGO_BIN_EXE_cdc-forwarder"))
        .arg("--help")
        .env(
            "SHARDLINE_POSTGRES_URL",
            "postgres://app:secret-password-marker@db/app",
        )
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("SHARDLINE_POSTGRES_URL"), "{help}");
    assert!(!help.contains("marker"), "{help}");
}

#[test]
fn a_row_that_is_not_utf8_is_dead_lettered_and_the_rest_goes_on() -> TestResult {
    // An SQL_ASCII database stores any bytes in text columns.
    let pg = Postgres::shared()?;
    let database = unique_name("cdc");
    pg.psql(
        "postgres",
        &format!(
            "CREATE DATABASE {database} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' \
             TEMPLATE template0"
        ),
    )?;
    pg.psql(&database, "CREATE TABLE t (id int PRIMARY KEY, v text)")?;
    let dir = tempfile::tempdir()?;
    let slot = unique_name("slot");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_cdc-forwarder"))
            .arg("--postgres-url")
            .arg(pg.url(&database))
            .args([
                "--slot",
                &slot,
                "--create-slot",
                "--once",
                "--sink",
                "stdout",
            ])
            .args(["--stats-interval", "0"])
            .arg("--checkpoint-file")
            .arg(dir.path().join("checkpoint.json"))
            .arg("--dead-letter-file")
            .arg(dir.path().join("dead-letters.ndjson"))
            .output()
    };
    // The first run creates the slot.
    let output = run()?;
    assert!(output.status.success(), "{output:?}");
    pg.psql(&database, "INSERT INTO t VALUES (1, E'caf\\xe9')")?;
    pg.psql(&database, "INSERT INTO t VALUES (2, 'plain')")?;
    let dead_letters = || -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        Ok(
            std::fs::read_to_string(dir.path().join("dead-letters.ndjson"))?
                .lines()
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()?,
        )
    };
    // The bad row is dead-lettered as its bytes; the next change goes on.
    let output = run()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<Value> = String::from_utf8(output.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(events.iter().map(id).collect::<Vec<_>>(), [2]);
    let dead = dead_letters()?;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["data_encoding"], "base64", "{}", dead[0]);
    // Settled: a run after it neither fails on the row nor reads it again.
    let output = run()?;
    assert!(output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    assert_eq!(dead_letters()?.len(), 1);
    Ok(())
}
