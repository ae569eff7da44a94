//! Many log-streamer instances, one stream: N = 1, 2, 4 and 8 release
//! `log-streamer` processes, each tailing a file of its own that grows at a
//! fixed rate, into one stream of 2 shards behind the harness's shard-limit
//! proxy (Kinesis's per-shard limits over a sliding second, scaled down so
//! that a 2-core machine can offer twice the shards' capacity). Every case
//! runs without and with `--aggregate`; a last case reshards the stream
//! from 2 to 4 shards a third of the way through the run.
//!
//! `cargo xtask scale-out` builds the release binaries and runs this;
//! `cargo test` runs `scale-out --smoke` with the debug ones
//! (`tests/scale_out_smoke.rs`: N = 2 plain, and N = 2 aggregated with the
//! reshard, 8 s each). It drives the `log-streamer` beside it.
//! `SHARDLINE_SCALE_SECONDS` sets how long the files grow (default 40);
//! `SHARDLINE_SCALE_ONLY=TEXT` runs only the cases whose label holds TEXT;
//! `SHARDLINE_SCALE_LOG` is the instances' `RUST_LOG` (default `warn`), e.g.
//! `warn,shardline_producer::dispatcher=debug` to see each cut.
//!
//! For each case it reports:
//! - delivered records/s and bytes/s over the steady part of the run
//!   (from second 10 until the files stop growing), as a share of the
//!   shards' budget, whichever binds;
//! - throttled entries per delivered entry over the same part;
//! - latency from the line being written to the stream taking it
//!   (`ApproximateArrivalTimestamp`), p50 and p99, over every line: with
//!   twice the capacity offered, the backlog grows through the run, so this
//!   is dominated by the queue of lines waiting on disk;
//! - each instance's peak resident memory, against the memory cap it runs
//!   with;
//! - lines lost (written, never stored) and stored twice, from reading the
//!   whole stream back (aggregates taken apart) as a consumer that keeps
//!   only the user records of its shard's hash key range does (the KCL);
//! - the copies such a consumer drops: user records stored in a shard that
//!   does not hold their key (an aggregate made for a shard that has since
//!   split), which the producer sends again.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shardline_harness::shard_limit::{
    SHARD_BYTES_PER_SECOND, SHARD_RECORDS_PER_SECOND, ShardLimits,
};
use shardline_harness::{AwsEndpoints, Kinesalite, ShardLimitProxy, binary, measure, streams};
use shardline_partition_key::{ExplicitHashKey, PartitionKey, ShardRange};
use shardline_producer::aggregation::{DEFAULT_AGGREGATE_MAX_BYTES, deaggregate};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The share of a real shard's limits the proxy enforces: 200 records/s
/// and 205 KiB/s a shard, so that twice the capacity of 2 shards is 800
/// lines a second without aggregation and about 2,700 with it.
const SCALE: f64 = 0.2;
/// The stream's shards.
const SHARDS: u64 = 2;
/// The offered load, as a multiple of the shards' capacity.
const OFFERED: f64 = 2.0;
/// The first seconds are the convergence; the steady part starts here.
const WARM_UP_SECONDS: usize = 10;
/// The padding in each line: the line is 189 bytes, a web service's JSON
/// log line ...
const PADDING: usize = 100;
/// ... which becomes a record of 277 bytes (log-streamer adds the fields
/// the application schema has) and a partition key: about this many bytes
/// against a shard's limit.
const RECORD_BYTES: usize = 310;
/// How often each writer appends its lines.
const WRITE_INTERVAL: Duration = Duration::from_millis(50);
/// How long the instances get to ship their backlog once the files stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// The memory cap each instance runs with (`queue_max_bytes`: the
/// records it holds and the copies its requests in flight make; an
/// aggregated instance needs at least 24 MiB for one full request).
const MEMORY_CAP_BYTES: u64 = 32 << 20;
/// The largest aggregate, scaled with the shards' limits: the KPL's
/// default (51,200 bytes) is about 20 aggregates a second to a real shard,
/// and so is this to a scaled one. Unscaled, a shard here would take 4 a
/// second, each a quarter of its budget: pacing that coarse is not what
/// aggregated producers meet on a real stream.
const AGGREGATE_MAX_BYTES: usize = (DEFAULT_AGGREGATE_MAX_BYTES as f64 * SCALE) as usize;

#[derive(Debug, Clone, Copy)]
struct Case {
    instances: usize,
    aggregate: bool,
    reshard: bool,
    /// Today's producer: no adaptive pacing or concurrency.
    fixed: bool,
}

impl Case {
    fn label(&self) -> String {
        let mut label = format!("N = {}", self.instances);
        label.push_str(if self.aggregate {
            ", aggregated"
        } else {
            ", plain"
        });
        if self.reshard {
            label.push_str(", reshard 2 → 4");
        }
        if self.fixed {
            label.push_str(", adaptive off");
        }
        label
    }

    /// Lines a second all instances write together: twice what the shards
    /// take (records without aggregation, bytes with it).
    fn offered_lines_per_second(&self) -> f64 {
        let limits = limits();
        let capacity = if self.aggregate {
            (SHARDS * limits.bytes_per_second) as f64 / RECORD_BYTES as f64
        } else {
            (SHARDS * limits.records_per_second) as f64
        };
        capacity * OFFERED
    }
}

/// The first seconds of a run of `seconds`, left out of the steady part:
/// [`WARM_UP_SECONDS`], or half of a short (smoke) run.
fn warm_up(seconds: usize) -> usize {
    WARM_UP_SECONDS.min(seconds / 2)
}

fn limits() -> ShardLimits {
    ShardLimits::scaled(SCALE)
}

#[derive(Debug)]
struct Outcome {
    case: Case,
    offered: f64,
    records_share: f64,
    bytes_share: f64,
    throttled_per_delivered: f64,
    p50: Duration,
    p99: Duration,
    peak_rss_kib: Vec<u64>,
    written: u64,
    dead_lettered: u64,
    lost: u64,
    duplicated: u64,
    /// User records stored in a shard that does not hold their key.
    outside_key_range: u64,
    seconds_to_drain: f64,
}

fn main() -> Result<()> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let seconds: u64 = std::env::var("SHARDLINE_SCALE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 8 } else { 40 });
    let bins = release_dir()?;
    let kinesalite = Kinesalite::start()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut cases = Vec::new();
    if smoke {
        cases.push(Case {
            instances: 2,
            aggregate: false,
            reshard: false,
            fixed: false,
        });
        cases.push(Case {
            instances: 2,
            aggregate: true,
            reshard: true,
            fixed: false,
        });
    } else {
        cases.push(Case {
            instances: 1,
            aggregate: false,
            reshard: false,
            fixed: true,
        });
        for aggregate in [false, true] {
            for instances in [1, 2, 4, 8] {
                cases.push(Case {
                    instances,
                    aggregate,
                    reshard: false,
                    fixed: false,
                });
            }
        }
        cases.push(Case {
            instances: 8,
            aggregate: true,
            reshard: true,
            fixed: false,
        });
    }
    // `SHARDLINE_SCALE_ONLY=TEXT`: only the cases whose label holds TEXT.
    let only = std::env::var("SHARDLINE_SCALE_ONLY").unwrap_or_default();
    cases.retain(|case| case.label().contains(&only));
    let mut outcomes = Vec::new();
    for case in cases {
        eprintln!("==> {} for {seconds} s", case.label());
        let outcome = runtime.block_on(run_case(&kinesalite, &bins, case, seconds))?;
        eprintln!("    {}", row(&outcome));
        outcomes.push(outcome);
    }
    println!("{}", table(&outcomes, seconds));
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.lost > 0)
        .map(|o| format!("{}: {} lines lost", o.case.label(), o.lost))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; ").into())
    }
}

fn release_dir() -> Result<PathBuf> {
    // target/PROFILE/scale-out, beside log-streamer.
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("cannot find the binaries' directory")?;
    let bin = dir.join("log-streamer");
    if !bin.exists() {
        return Err(format!("{} is missing: run `cargo xtask scale-out`", bin.display()).into());
    }
    Ok(dir.to_path_buf())
}

/// A file that grows at a fixed rate with lines naming the instance, a
/// sequence number and the time they were written.
struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

fn start_writer(path: PathBuf, instance: usize, lines_per_second: f64) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let (stop_flag, counter) = (stop.clone(), written.clone());
    let thread = std::thread::spawn(move || {
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let started = Instant::now();
        let mut sequence = 0u64;
        let padding = "x".repeat(PADDING);
        while !stop_flag.load(Ordering::Relaxed) {
            let due = (started.elapsed().as_secs_f64() * lines_per_second) as u64;
            let mut chunk = String::new();
            let now = micros_now();
            while sequence < due {
                chunk.push_str(&format!(
                    "{{\"level\":\"info\",\"message\":\"request served\",\"id\":\"{instance}-{sequence}\",\"t\":{now},\"pad\":\"{padding}\"}}\n"
                ));
                sequence += 1;
            }
            file.write_all(chunk.as_bytes())?;
            counter.store(sequence, Ordering::Relaxed);
            std::thread::sleep(WRITE_INTERVAL);
        }
        file.sync_all()
    });
    Writer {
        stop,
        written,
        thread,
    }
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The offset a log-streamer's checkpoint has settled in `file`.
fn settled_offset(checkpoint: &Path, file: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(checkpoint) else {
        return 0;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return 0;
    };
    value
        .pointer("/state/watched")
        .and_then(|w| w.get(file.to_string_lossy().as_ref()))
        .and_then(|entries| entries.as_array())
        .and_then(|entries| entries.first())
        .and_then(|e| e.get("offset"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

struct Instance {
    child: Child,
    file: PathBuf,
    checkpoint: PathBuf,
    peak_kib: u64,
}

async fn run_case(
    kinesalite: &Kinesalite,
    bins: &Path,
    case: Case,
    seconds: u64,
) -> Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let stream = shardline_harness::unique_name("scale");
    let kinesis = kinesalite.kinesis_client();
    streams::create_stream(&kinesis, &stream, SHARDS as i32).await?;
    let proxy = ShardLimitProxy::start(&kinesalite.endpoint(), limits()).await?;
    let endpoints = AwsEndpoints {
        kinesis: Some(proxy.endpoint()),
        ..AwsEndpoints::default()
    };
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[producer]\nqueue_max_bytes = {MEMORY_CAP_BYTES}\nadaptive_shard_rate = {on}\nadaptive_concurrency = {on}\n{aggregate}",
            on = !case.fixed,
            aggregate = if case.aggregate {
                format!("aggregate_max_bytes = {AGGREGATE_MAX_BYTES}\n")
            } else {
                String::new()
            },
        ),
    )?;
    let offered = case.offered_lines_per_second();
    let per_instance = offered / case.instances as f64;
    let mut instances = Vec::new();
    let mut writers = Vec::new();
    for i in 0..case.instances {
        let file = dir.path().join(format!("app-{i}.log"));
        std::fs::write(&file, b"")?;
        let checkpoint = dir.path().join(format!("checkpoint-{i}.json"));
        let files = serde_json::json!([{"path": file, "type": "application"}]).to_string();
        let mut command = Command::new(bins.join("log-streamer"));
        command
            .envs(endpoints.env())
            .env(
                "RUST_LOG",
                std::env::var("SHARDLINE_SCALE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .args(["--log-files", &files, "--stream-name", &stream])
            .arg("--checkpoint-file")
            .arg(&checkpoint)
            .arg("--dead-letter-file")
            .arg(dir.path().join(format!("dead-letters-{i}.ndjson")))
            .arg("--config")
            .arg(&config)
            .args(["--stats-interval", "0"])
            // The file may have grown before the instance opens it: read it
            // from its first line, as a new host's shipper should.
            .arg("--from-beginning")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if case.aggregate {
            command.arg("--aggregate");
        }
        instances.push(Instance {
            child: command.spawn()?,
            file: file.clone(),
            checkpoint,
            peak_kib: 0,
        });
        writers.push(start_writer(file, i, per_instance));
    }
    let started = Instant::now();
    let mut resharded_at = None;
    // When the last split was done (every new shard open): the proxy
    // splits the shards one after the other, each taking kinesalite a
    // while.
    let mut reshard_done = None;
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for instance in &mut instances {
            if let Some(kib) = measure::high_water_kib(instance.child.id()) {
                instance.peak_kib = instance.peak_kib.max(kib);
            }
        }
        if case.reshard
            && resharded_at.is_none()
            && started.elapsed() >= Duration::from_secs(seconds / 3)
        {
            let client =
                aws_sdk_kinesis::Client::new(&shardline_harness::sdk_config(&proxy.endpoint()));
            client
                .update_shard_count()
                .stream_name(&stream)
                .target_shard_count((2 * SHARDS) as i32)
                .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
                .send()
                .await?;
            resharded_at = Some(SystemTime::now());
        }
        if resharded_at.is_some() && reshard_done.is_none() {
            let listed = kinesis.list_shards().stream_name(&stream).send().await?;
            let open = listed
                .shards()
                .iter()
                .filter(|s| {
                    s.sequence_number_range()
                        .is_some_and(|r| r.ending_sequence_number().is_none())
                })
                .count();
            if open as u64 == 2 * SHARDS {
                reshard_done = Some(SystemTime::now());
            }
        }
    }
    let writing_seconds = proxy.seconds().len();
    let mut written = 0;
    for writer in writers {
        writer.stop.store(true, Ordering::Relaxed);
        writer.thread.join().map_err(|_| "a writer panicked")??;
        written += writer.written.load(Ordering::Relaxed);
    }
    // Wait for every instance to settle its whole file.
    let drain_started = Instant::now();
    loop {
        let done = instances.iter().all(|i| {
            let size = std::fs::metadata(&i.file).map(|m| m.len()).unwrap_or(0);
            settled_offset(&i.checkpoint, &i.file) >= size
        });
        for instance in &mut instances {
            if let Some(kib) = measure::high_water_kib(instance.child.id()) {
                instance.peak_kib = instance.peak_kib.max(kib);
            }
        }
        if done || drain_started.elapsed() > DRAIN_TIMEOUT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seconds_to_drain = drain_started.elapsed().as_secs_f64();
    for instance in &mut instances {
        binary::terminate(&instance.child)?;
        binary::wait_with_timeout(&mut instance.child, Duration::from_secs(60))?;
    }

    // The steady part: from the warm-up to the end of writing.
    let per_second = proxy.seconds();
    let warm_up = warm_up(seconds as usize);
    let steady = per_second.get(warm_up..writing_seconds).unwrap_or_default();
    let (mut records, mut bytes, mut throttled) = (0u64, 0u64, 0u64);
    for second in steady {
        records += second.accepted_records;
        bytes += second.accepted_bytes;
        throttled += second.throttled_records;
    }
    let limits = limits();
    let shards_then = |index: usize| -> u64 {
        match resharded_at {
            Some(_) if index > (seconds / 3) as usize => 2 * SHARDS,
            _ => SHARDS,
        }
    };
    let budget_records: u64 = (warm_up..writing_seconds)
        .map(|i| shards_then(i) * limits.records_per_second)
        .sum::<u64>()
        .max(1);
    let budget_bytes: u64 = (warm_up..writing_seconds)
        .map(|i| shards_then(i) * limits.bytes_per_second)
        .sum::<u64>()
        .max(1);

    // Read everything back.
    let stored = streams::read_all(&kinesis, &stream).await?;
    let listed = kinesis.list_shards().stream_name(&stream).send().await?;
    // Every shard's range, those closed by the reshard included.
    let shard_ranges: HashMap<String, ShardRange> = listed
        .shards()
        .iter()
        .filter_map(|s| {
            let range = s.hash_key_range()?;
            Some((
                s.shard_id().to_owned(),
                ShardRange {
                    shard_id: s.shard_id().to_owned(),
                    starting_hash_key: range.starting_hash_key().parse().ok()?,
                    ending_hash_key: range.ending_hash_key().parse().ok()?,
                },
            ))
        })
        .collect();
    if let (Some(called), Some(done)) = (resharded_at, reshard_done) {
        eprintln!(
            "    resharding took {:.1} s from the call to the last split",
            done.duration_since(called)
                .unwrap_or_default()
                .as_secs_f64()
        );
    }
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut dead: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut latencies: Vec<u64> = Vec::new();
    let mut outside_key_range = 0u64;
    for record in &stored {
        let users: Vec<(String, Option<ExplicitHashKey>, Vec<u8>)> =
            match deaggregate(&record.data)? {
                Some(users) => users
                    .into_iter()
                    .map(|u| {
                        let explicit = u
                            .explicit_hash_key
                            .as_deref()
                            .map(ExplicitHashKey::parse)
                            .transpose()?;
                        Ok((u.partition_key, explicit, u.data))
                    })
                    .collect::<Result<_>>()?,
                None => vec![(record.partition_key.clone(), None, record.data.clone())],
            };
        for (key, explicit, data) in users {
            let line: serde_json::Value = serde_json::from_slice(&data)?;
            let id = line
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            // An aggregate made for a shard that has since split lands
            // where its first key goes: a consumer that keeps only its
            // shard's hash key range drops the others' copies there (the
            // producer sends those records again).
            if let Some(range) = shard_ranges.get(&record.shard_id)
                && !range.holds(&PartitionKey::new_or_hashed(&key), explicit)
            {
                outside_key_range += 1;
                continue;
            }
            if let (Some(t), Some(arrival)) =
                (line.get("t").and_then(|v| v.as_u64()), record.arrival_ms())
            {
                latencies.push((arrival as u64 * 1_000).saturating_sub(t));
            }
            *seen.entry(id).or_default() += 1;
        }
    }
    // What went to the dead-letter files, with the reason.
    let mut dead_lettered = 0;
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..case.instances {
        let path = dir.path().join(format!("dead-letters-{i}.ndjson"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines() {
            let letter: serde_json::Value = serde_json::from_str(line)?;
            let text = |field: &str| {
                letter
                    .get(field)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let reason = text("reason");
            *reasons.entry(reason).or_default() += 1;
            // The record is the JSON line log-streamer made, with its id.
            let record: serde_json::Value = serde_json::from_str(&text("data")).unwrap_or_default();
            if let Some(id) = record.get("id").and_then(serde_json::Value::as_str) {
                dead.insert(id.to_owned());
            }
            dead_lettered += 1;
        }
    }
    if !reasons.is_empty() {
        eprintln!("    dead letters by reason: {reasons:?}");
    }
    // Lines neither stored nor dead-lettered; the first 20 are named.
    let mut lost = 0;
    let mut missing: Vec<String> = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let count = written_lines(&instance.file)?;
        for sequence in 0..count {
            let id = format!("{i}-{sequence}");
            if !seen.contains_key(&id) && !dead.contains(&id) {
                lost += 1;
                if missing.len() < 20 {
                    missing.push(id);
                }
            }
        }
    }
    let duplicated = seen.values().map(|&n| u64::from(n.saturating_sub(1))).sum();
    if lost > 0 {
        eprintln!(
            "    {lost} lines lost (the shards took {} entries, the stream holds {} records): {missing:?}; \
             the run's files are kept in {}",
            proxy.totals_from(0).accepted_records,
            stored.len(),
            dir.keep().display()
        );
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(Duration::ZERO, |&us| Duration::from_micros(us))
    };
    Ok(Outcome {
        case,
        offered,
        records_share: records as f64 / budget_records as f64,
        bytes_share: bytes as f64 / budget_bytes as f64,
        throttled_per_delivered: throttled as f64 / records.max(1) as f64,
        p50: percentile(0.5),
        p99: percentile(0.99),
        peak_rss_kib: instances.iter().map(|i| i.peak_kib).collect(),
        written,
        dead_lettered,
        lost,
        duplicated,
        outside_key_range,
        seconds_to_drain,
    })
}

fn written_lines(file: &Path) -> Result<u64> {
    let text = std::fs::read(file)?;
    Ok(text.iter().filter(|&&b| b == b'\n').count() as u64)
}

fn row(o: &Outcome) -> String {
    let binding = o.records_share.max(o.bytes_share);
    let peak = o.peak_rss_kib.iter().max().copied().unwrap_or(0);
    format!(
        "| {} | {:.0} | {:.0}% | {:.0}% | **{:.0}%** | {:.3} | {:.1} s | {:.1} s | {:.1} MiB | {} | {} | {} | {} | {} |",
        o.case.label(),
        o.offered,
        o.records_share * 100.0,
        o.bytes_share * 100.0,
        binding * 100.0,
        o.throttled_per_delivered,
        o.p50.as_secs_f64(),
        o.p99.as_secs_f64(),
        peak as f64 / 1024.0,
        o.written,
        o.dead_lettered,
        o.lost,
        o.duplicated,
        o.outside_key_range,
    )
}

fn table(outcomes: &[Outcome], seconds: u64) -> String {
    let limits = limits();
    let mut out = format!(
        "{} s of writing, 2 shards of {} records/s and {} KiB/s each ({}% of a shard: {} records/s, {} KiB/s); \
         steady part from second {}; memory cap {} MiB an instance\n\n",
        seconds,
        limits.records_per_second,
        limits.bytes_per_second / 1024,
        (SCALE * 100.0) as u32,
        SHARD_RECORDS_PER_SECOND,
        SHARD_BYTES_PER_SECOND / 1024,
        warm_up(seconds as usize),
        MEMORY_CAP_BYTES >> 20,
    );
    out.push_str("| case | lines/s offered | records of budget | bytes of budget | binding | throttled per delivered | p50 write→stored | p99 | peak memory (largest instance) | lines | dead-lettered | lost | twice | copies outside their key's shard |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for o in outcomes {
        out.push_str(&row(o));
        out.push('\n');
    }
    let drains: BTreeMap<String, f64> = outcomes
        .iter()
        .map(|o| (o.case.label(), o.seconds_to_drain))
        .collect();
    out.push_str(&format!(
        "\nseconds to ship the backlog after the files stopped: {drains:?}\n"
    ));
    out
}
