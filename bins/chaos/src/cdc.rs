//! cdc-forwarder scenario: SIGKILLed mid-stream and mid-transaction, and
//! PostgreSQL restarted in immediate mode (a crash) during the run.

use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use shardline_harness::binary::{self, StreamRun};
use shardline_harness::{Postgres, unique_name};
use tokio::runtime::Runtime;

use crate::count::{Collector, CrashBound, Row};
use crate::{Binaries, Size};

/// A change event's row id (`primary_key.id`).
fn event_id(data: &[u8]) -> Option<u64> {
    let event: serde_json::Value = serde_json::from_slice(data).ok()?;
    event.pointer("/primary_key/id")?.as_u64()
}

/// The last lines of a log file, joined.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(8)..)
        .unwrap_or_default()
        .join(" | ")
}

/// Inserts rows `first..=last` in one transaction, again until it is
/// committed: a server restart may cut the connection, before or after the
/// commit (then the rows are there already).
fn insert(pg: &Postgres, database: &str, first: u64, last: u64) -> anyhow::Result<()> {
    let sql = format!("INSERT INTO t SELECT g, 0 FROM generate_series({first}, {last}) g");
    for _ in 0..100 {
        match pg.psql(database, &sql) {
            Ok(_) => return Ok(()),
            Err(e) if e.to_string().contains("duplicate key") => return Ok(()),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    anyhow::bail!("rows {first}..={last} could not be inserted")
}

/// With cdc-forwarder's defaults: one request in flight, so a crash may
/// repeat one batch.
pub(crate) fn default_settings(size: Size, bins: &Binaries, rt: &Runtime) -> anyhow::Result<Row> {
    kills_and_restart("cdc", CrashBound { in_flight: 1 }, None, size, bins, rt)
}

/// With `[producer] max_in_flight = 8`, the producer's default: a crash in
/// the large transaction may repeat up to 8 batches.
pub(crate) fn eight_in_flight(size: Size, bins: &Binaries, rt: &Runtime) -> anyhow::Result<Row> {
    let bound = CrashBound::DEFAULT;
    kills_and_restart("cdc-8", bound, Some(bound.in_flight), size, bins, rt)
}

/// `max_in_flight`: the config's setting, if any.
fn kills_and_restart(
    name: &str,
    bound: CrashBound,
    max_in_flight: Option<u64>,
    size: Size,
    bins: &Binaries,
    rt: &Runtime,
) -> anyhow::Result<Row> {
    // Transactions of 10 rows, with one large transaction in the middle.
    let (transactions, big, kills) = match size {
        Size::Smoke => (200, 2_000, 2),
        Size::Full => (2_000, 50_000, 10),
    };
    let rows = transactions * 10 + big;
    // A cluster of its own: it is crashed on purpose.
    let pg = Postgres::start()?;
    let database = unique_name("chaos");
    pg.create_database(&database)?;
    pg.psql(&database, "CREATE TABLE t (id int PRIMARY KEY, v int)")?;
    let run = rt.block_on(StreamRun::new("chaos_cdc", 2))?;
    let mut config = "[postgres]\npoll_interval = 0.05\n".to_owned();
    if let Some(n) = max_in_flight {
        config.push_str(&format!("[producer]\nmax_in_flight = {n}\n"));
    }
    let config = run.write_config(&config)?;
    let slot = unique_name("slot");
    let url = pg.url(&database);
    // Every start's log, one after another: the end of it goes into an
    // error.
    let stderr_log = run.dir.path().join("cdc-forwarder.log");
    let spawn = || -> anyhow::Result<Child> {
        run.command(&bins.cdc_forwarder.to_string_lossy())
            .arg("--config")
            .arg(&config)
            .args(["--postgres-url", &url, "--slot", &slot, "--create-slot"])
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&stderr_log)?,
            )
            .spawn()
            .context("starting cdc-forwarder")
    };
    // The slot exists before the first change.
    let created = run
        .command(&bins.cdc_forwarder.to_string_lossy())
        .arg("--config")
        .arg(&config)
        .args([
            "--postgres-url",
            &url,
            "--slot",
            &slot,
            "--create-slot",
            "--once",
        ])
        .output()?;
    anyhow::ensure!(
        created.status.success(),
        "creating the slot: {}",
        String::from_utf8_lossy(&created.stderr)
    );

    let mut rng = rand::rng();
    let mut child = spawn()?;
    let mut crashes = 0;
    let mut next = 1;
    let half = transactions / 2;
    let kill_at: Vec<u64> = (0..kills)
        .map(|_| rng.random_range(1..transactions))
        .collect();
    for txn in 0..transactions {
        if txn == half {
            // The large transaction; the forwarder is killed while it
            // streams it.
            insert(&pg, &database, next, next + big - 1)?;
            next += big;
            std::thread::sleep(Duration::from_millis(rng.random_range(50..400)));
            child.kill()?;
            child.wait()?;
            crashes += 1;
            child = spawn()?;
            // And the database crashes.
            pg.restart_immediate()?;
            crashes += 1;
        }
        insert(&pg, &database, next, next + 9)?;
        next += 10;
        for _ in kill_at.iter().filter(|&&at| at == txn) {
            child.kill()?;
            child.wait()?;
            crashes += 1;
            child = spawn()?;
        }
    }
    let mut collected = Collector::new(&run, rows, event_id);
    rt.block_on(collected.read_while_running(Duration::from_secs(180), &mut child))?;
    if let Some(status) = child.try_wait()? {
        anyhow::bail!(
            "cdc-forwarder exited with {status} before delivering everything; its log ends: {}",
            log_tail(&stderr_log)
        );
    }
    binary::terminate(&child)?;
    binary::wait_with_timeout(&mut child, Duration::from_secs(60))?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "cdc-forwarder exited with {}; its log ends: {}",
        output.status,
        log_tail(&stderr_log)
    );
    rt.block_on(collected.read(Duration::from_secs(5)))?;
    let tally = collected.tally;
    let mut row = Row::from_tally(name, &tally, crashes, bound);
    row.notes.push(format!(
        "{transactions} transactions of 10 rows and one of {big}; {kills} + 1 kills, 1 database crash; {} in flight",
        bound.in_flight
    ));
    Ok(row)
}
