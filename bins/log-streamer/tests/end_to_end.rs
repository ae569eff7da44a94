//! log-streamer end to end: the real binary, real files, and kinesalite
//! (and the fault proxy) started by the harness.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use shardline_harness::binary::StreamRun;
use shardline_harness::fault_proxy::{
    EntryFault, FaultCode, FaultProxy, ProxyAction, RequestFault, Selection,
};
use shardline_harness::{Kinesalite, Moto, binary, sdk_config, streams, unique_name};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// An Apache combined line whose path carries its number.
fn line(n: u64) -> String {
    format!(
        "10.0.{}.{} - - [15/Jan/2024:10:30:45 +0000] \"GET /item/{n} HTTP/1.1\" 200 {n} \"-\" \"e2e\"\n",
        (n / 256) % 256,
        n % 256
    )
}

fn append(path: &Path, lines: std::ops::RangeInclusive<u64>) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let text: String = lines.map(line).collect();
    file.write_all(text.as_bytes())
}

/// How many times each line number is in the stream.
fn tally(
    records: &[streams::ReadRecord],
) -> Result<BTreeMap<u64, usize>, Box<dyn std::error::Error>> {
    let mut counts = BTreeMap::new();
    for record in records {
        let value: Value = serde_json::from_slice(&record.data)?;
        let path = value
            .get("path")
            .and_then(Value::as_str)
            .ok_or("record without a path")?;
        let n: u64 = path.trim_start_matches("/item/").parse()?;
        *counts.entry(n).or_insert(0) += 1;
    }
    Ok(counts)
}

fn missing(counts: &BTreeMap<u64, usize>, last: u64) -> Vec<u64> {
    (1..=last).filter(|n| !counts.contains_key(n)).collect()
}

fn duplicates(counts: &BTreeMap<u64, usize>) -> usize {
    counts.values().map(|c| c - 1).sum()
}

/// A run against its own stream, with an access log to follow.
struct Setup(StreamRun);

impl std::ops::Deref for Setup {
    type Target = StreamRun;

    fn deref(&self) -> &StreamRun {
        &self.0
    }
}

impl std::ops::DerefMut for Setup {
    fn deref_mut(&mut self) -> &mut StreamRun {
        &mut self.0
    }
}

impl Setup {
    async fn new(shards: i32) -> Result<Setup, Box<dyn std::error::Error>> {
        Ok(Setup(StreamRun::new("e2e", shards).await?))
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    /// The config every test runs with: fast polling and checkpoints,
    /// short batches.
    fn config(&self, extra: &str) -> Result<PathBuf, shardline_harness::Error> {
        let batch = if extra.contains("batch_timeout") {
            ""
        } else {
            "batch_timeout = 0.05\n"
        };
        let text = format!(
            "[producer]\n{batch}queue_maxsize = 1000\n{extra}\n\
             [tail]\npoll_interval = 0.05\nrotate_wait = 0.5\ncheckpoint_interval = 0.1\n\n\
             [[log_files]]\npath = {:?}\ntype = \"apache\"\n",
            self.log().display().to_string()
        );
        self.write_config(&text)
    }

    fn command(&self, config: &Path, args: &[&str]) -> Command {
        let mut command = self.0.command(env!("CARGO_BIN_EXE_log-streamer"));
        command.arg("--config").arg(config).args(args);
        command
    }

    fn run(
        &self,
        config: &Path,
        args: &[&str],
    ) -> Result<(Output, Value), Box<dyn std::error::Error>> {
        let output = self.command(config, args).output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "log-streamer failed: {stderr}");
        let summary: Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("summary is not JSON ({e}): {stderr}"))?;
        Ok((output, summary))
    }

    fn spawn(&self, config: &Path, args: &[&str]) -> std::io::Result<Child> {
        self.command(config, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }

    /// Waits until the checkpoint lists the file now at `path` with a
    /// fingerprint of its first bytes as they are now (up to 256).
    fn wait_until_fingerprinted(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path)?;
        let (inode, len) = (metadata.ino(), metadata.len().min(256));
        wait_for_checkpointed_file(&self.checkpoint_file(), |file| {
            file.get("ino").and_then(Value::as_u64) == Some(inode)
                && file.pointer("/fingerprint/len").and_then(Value::as_u64) == Some(len)
        })
        .map_err(|_| format!("{} was not fingerprinted within 30 s", path.display()).into())
    }

    fn dead_letters(&self) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let path = self.dead_letter_file();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?)
    }

    async fn read(
        &self,
        expected: usize,
    ) -> Result<Vec<streams::ReadRecord>, Box<dyn std::error::Error>> {
        Ok(streams::read_at_least(
            &self.client,
            &self.stream,
            expected,
            Duration::from_secs(60),
        )
        .await?)
    }
}

/// Reads the child's stderr until it names its Prometheus address.
fn metrics_address(child: &mut Child) -> Result<String, Box<dyn std::error::Error>> {
    use std::io::BufRead;
    let stderr = child.stderr.take().ok_or("stderr not piped")?;
    let mut lines = std::io::BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.split("metrics on http://").nth(1) {
            let addr = rest.trim_end_matches("/metrics").to_owned();
            // Keep draining stderr so the child never blocks on it.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(addr);
        }
    }
    Err("log-streamer ended without serving metrics".into())
}

/// GET /metrics over plain HTTP/1.1.
fn scrape(addr: &str) -> Result<String, Box<dyn std::error::Error>> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    if !response.starts_with("HTTP/1.1 200") {
        return Err(format!("scrape failed: {response}").into());
    }
    Ok(response)
}

#[tokio::test(flavor = "multi_thread")]
async fn once_delivers_every_line_dead_letters_bad_input_and_resumes() -> TestResult {
    let setup = Setup::new(2).await?;
    let log = setup.log();
    append(&log, 1..=500)?;
    // Bad input between good lines: garbage, invalid UTF-8, binary, and a
    // 10 MB line.
    let mut file = std::fs::OpenOptions::new().append(true).open(&log)?;
    file.write_all(b"garbage that is no log line\n")?;
    file.write_all(
        b"10.0.0.1 - - [15/Jan/2024:10:30:45 +0000] \"GET /\xff\xfe HTTP/1.1\" 200 1 \"-\" \"x\"\n",
    )?;
    file.write_all(&[0u8, 1, 2, 3, 0x7f, 0x80, 0x90, b'\n'])?;
    file.write_all(&vec![b'x'; 10 * 1024 * 1024])?;
    file.write_all(b"\n")?;
    drop(file);
    append(&log, 501..=1000)?;

    let config = setup.config("")?;
    let (_, summary) = setup.run(&config, &["--once"])?;
    assert_eq!(summary["total_sent"], 1000, "{summary:#}");
    assert_eq!(summary["by_source"]["apache"]["invalid"], 4, "{summary:#}");
    assert_eq!(summary["by_source"]["apache"]["read"], 1004, "{summary:#}");
    assert_eq!(summary["total_failed"], 0);

    let records = setup.read(1000).await?;
    let counts = tally(&records)?;
    assert_eq!(missing(&counts, 1000), Vec::<u64>::new());
    assert_eq!(duplicates(&counts), 0);
    let first: Value = serde_json::from_slice(&records[0].data)?;
    assert_eq!(first["status_code"], 200);
    assert_eq!(first["log_type"], "apache_access");
    assert!(
        first["ip_address"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.0."))
    );

    let letters = setup.dead_letters()?;
    assert_eq!(letters.len(), 4, "{letters:#?}");
    let log_path = log.display().to_string();
    let lines: Vec<&str> = letters
        .iter()
        .filter_map(|l| l["context"]["line"].as_str())
        .collect();
    assert_eq!(lines, ["501", "502", "503", "504"]);
    for letter in &letters {
        assert_eq!(letter["reason"], "rejected");
        assert_eq!(letter["context"]["file"], log_path.as_str());
        assert!(
            letter["error_message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert_eq!(letters[2]["data_encoding"], "base64");
    assert!(
        letters[3]["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("max_line_bytes"))
    );
    assert_eq!(
        letters[3]["context"]["dropped_bytes"],
        (10 * 1024 * 1024 - 1024 * 1024).to_string()
    );

    // More lines, then a resumed run: only the new lines are sent.
    append(&log, 1001..=1500)?;
    let (_, summary) = setup.run(&config, &["--once", "--resume-from-checkpoint"])?;
    assert_eq!(summary["total_sent"], 500, "{summary:#}");
    let counts = tally(&setup.read(1500).await?)?;
    assert_eq!(missing(&counts, 1500), Vec::<u64>::new());
    assert_eq!(duplicates(&counts), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_and_copytruncate_rotation_under_load_lose_nothing() -> TestResult {
    const LINES: u64 = 4000;
    const ROTATE_EVERY: u64 = 400;
    let setup = Setup::new(2).await?;
    let log = setup.log();
    std::fs::write(&log, "")?;
    let config = setup.config("")?;
    let mut child = setup.spawn(&config, &["--from-beginning"])?;

    let mut next = 1;
    let mut rotation = 0;
    while next <= LINES {
        let last = (next + 99).min(LINES);
        append(&log, next..=last)?;
        next = last + 1;
        if (next - 1) % ROTATE_EVERY == 0 && next <= LINES {
            rotation += 1;
            if rotation % 2 == 1 {
                // A file renamed away before the streamer ever opened it is
                // no longer at the watched path: nothing could follow it.
                // On a loaded machine the streamer may still be starting
                // when the first lines are written, so wait until it has
                // the file.
                setup.wait_until_fingerprinted(&log)?;
                std::fs::rename(
                    &log,
                    setup.dir.path().join(format!("access.log.{rotation}")),
                )?;
                std::fs::write(&log, "")?;
            } else {
                // copytruncate loses what the tailer had not read only if it
                // never saw the file's first bytes: then nothing ties the
                // copy to the file (docs/log-streamer.md).
                setup.wait_until_fingerprinted(&log)?;
                std::fs::copy(
                    &log,
                    setup.dir.path().join(format!("access.log.{rotation}")),
                )?;
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&log)?
                    .set_len(0)?;
            }
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    let records = setup.read(LINES as usize).await?;
    binary::terminate(&child)?;
    let status = binary::wait_with_timeout(&mut child, Duration::from_secs(30))?;
    assert!(status.success(), "{status}");

    let counts = tally(&records)?;
    assert_eq!(
        missing(&counts, LINES),
        Vec::<u64>::new(),
        "after {rotation} rotations"
    );
    assert_eq!(duplicates(&counts), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_loses_nothing() -> TestResult {
    const KILLS: usize = 10;
    let setup = Setup::new(2).await?;
    let log = setup.log();
    std::fs::write(&log, "")?;
    let config = setup.config("")?;
    let writer_log = log.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_writer = stop.clone();
    // About 2,000 lines/s while the streamer is killed and restarted.
    let writer = std::thread::spawn(move || -> std::io::Result<u64> {
        let mut n = 0;
        while !stop_writer.load(std::sync::atomic::Ordering::Relaxed) {
            append(&writer_log, n + 1..=n + 20)?;
            n += 20;
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(n)
    });
    let mut rng = rand::rng();
    for _ in 0..KILLS {
        let mut child = setup.spawn(&config, &["--from-beginning", "--resume-from-checkpoint"])?;
        std::thread::sleep(Duration::from_millis(rng.random_range(300..900)));
        child.kill()?;
        child.wait()?;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().map_err(|_| "writer panicked")??;
    let (_, summary) = setup.run(&config, &["--once", "--resume-from-checkpoint"])?;

    let records = setup.read(written as usize).await?;
    let counts = tally(&records)?;
    assert_eq!(missing(&counts, written), Vec::<u64>::new());
    let duplicated = duplicates(&counts);
    // Duplicates are what was delivered but not yet checkpointed at each
    // kill: at most what the producer holds (queue_maxsize) per kill.
    assert!(duplicated <= KILLS * 1000, "{duplicated} duplicates");
    eprintln!(
        "{written} lines, {KILLS} kills: {duplicated} duplicates; last run sent {}",
        summary["total_sent"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_failures_and_throttling_lose_nothing_and_reconcile() -> TestResult {
    const LINES: u64 = 3000;
    let mut setup = Setup::new(2).await?;
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    // A fifth of the entries fail whatever the rate. They fail as
    // `InternalFailure`: throttled entries are paced, and refusals that do
    // not depend on the rate only make pacing slow a shard down (rate-driven
    // throttling is the shard-limit proxy's, in the producer's tests and the
    // scale-out bench). Whole requests are throttled too.
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Share(0.2),
        code: FaultCode::InternalFailure,
    }));
    proxy.queue_request_faults([RequestFault::Throttle, RequestFault::InternalError]);
    setup.endpoints.kinesis = Some(proxy.endpoint());
    // CloudWatch metrics go to moto.
    let moto = Moto::shared()?;
    setup.endpoints.cloudwatch = Some(moto.endpoint());
    let namespace = unique_name("LogStreamer");
    append(&setup.log(), 1..=LINES)?;
    let config =
        setup.config("max_retries = -1\nretry_initial_delay = 0.01\nretry_max_delay = 0.2")?;
    let (_, summary) = setup.run(&config, &["--once", "--cloudwatch-namespace", &namespace])?;

    assert_eq!(summary["total_sent"], LINES, "{summary:#}");
    assert_eq!(summary["total_failed"], 0);
    assert!(
        summary["retried"].as_u64().is_some_and(|r| r > 0),
        "{summary:#}"
    );
    let source = &summary["by_source"]["apache"];
    assert_eq!(source["read"], source["parsed"]);
    assert_eq!(source["sent"], source["parsed"]);

    let counts = tally(&setup.read(LINES as usize).await?)?;
    assert_eq!(missing(&counts, LINES), Vec::<u64>::new());
    // Failed entries were not stored, so none is stored twice.
    assert_eq!(duplicates(&counts), 0);
    let accepted: usize = proxy.events().iter().map(|e| e.accepted_entries).sum();
    assert_eq!(accepted, LINES as usize);

    // What CloudWatch was told adds up to the same.
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk_config(&moto.endpoint()));
    let now = std::time::SystemTime::now();
    let processed = cloudwatch
        .get_metric_statistics()
        .namespace(&namespace)
        .metric_name("RecordsProcessed")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("DataSource")
                .value("apache")
                .build(),
        )
        .start_time((now - Duration::from_secs(600)).into())
        .end_time((now + Duration::from_secs(600)).into())
        .period(60)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
        .send()
        .await?;
    let sum: f64 = processed.datapoints().iter().filter_map(|p| p.sum()).sum();
    assert_eq!(sum, LINES as f64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_flushes_what_is_queued() -> TestResult {
    let setup = Setup::new(1).await?;
    let log = setup.log();
    std::fs::write(&log, "")?;
    // Batches would wait 60 s to fill: only the shutdown sends them.
    let config = setup.config("batch_timeout = 60")?;
    let mut child = setup.spawn(
        &config,
        &["--from-beginning", "--metrics-addr", "127.0.0.1:0"],
    )?;
    let metrics = metrics_address(&mut child)?;
    append(&log, 1..=300)?;
    // The lines are read (Prometheus says so) but not yet sent.
    let deadline = Instant::now() + Duration::from_secs(20);
    let read = loop {
        let text = scrape(&metrics)?;
        let read = text.lines().find_map(|l| {
            l.strip_prefix("shardline_input_read_total{source=\"apache\"} ")?
                .parse::<u64>()
                .ok()
        });
        if read == Some(300) || Instant::now() > deadline {
            break read;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(read, Some(300));
    let records = streams::read_all(&setup.client, &setup.stream).await?;
    assert!(records.is_empty(), "the batch went before the shutdown");
    let started = Instant::now();
    binary::terminate(&child)?;
    let status = binary::wait_with_timeout(&mut child, Duration::from_secs(30))?;
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let counts = tally(&setup.read(300).await?)?;
    assert_eq!(missing(&counts, 300), Vec::<u64>::new());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn firehose_delivery_stream_round_trip() -> TestResult {
    let moto = Moto::shared()?;
    let name = unique_name("e2e_firehose");
    let bucket = streams::bucket_name(&name);
    streams::create_s3_delivery_stream(&moto.firehose_client(), &moto.s3_client(), &name, &bucket)
        .await?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("access.log");
    append(&log, 1..=400)?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)?
        .write_all(b"not an access line\n")?;
    let files = serde_json::json!([{"path": log, "type": "apache"}]).to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_log-streamer"))
        .envs(moto.endpoints().env())
        .args(["--delivery-stream", &name, "--once", "--log-files", &files])
        .arg("--checkpoint-file")
        .arg(dir.path().join("checkpoint.json"))
        .arg("--dead-letter-file")
        .arg(dir.path().join("dead-letters.ndjson"))
        .args(["--stats-interval", "0"])
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(summary["total_sent"], 400, "{summary:#}");
    assert_eq!(summary["by_source"]["apache"]["invalid"], 1);

    // Firehose delivered the records to S3, one JSON document per line.
    let objects = streams::read_bucket(&moto.s3_client(), &bucket).await?;
    let mut counts = BTreeMap::new();
    for bytes in objects.values() {
        for line in String::from_utf8_lossy(bytes).lines() {
            let value: Value = serde_json::from_str(line)?;
            let path = value["path"].as_str().ok_or("no path")?;
            let n: u64 = path.trim_start_matches("/item/").parse()?;
            *counts.entry(n).or_insert(0usize) += 1;
            assert_eq!(value["log_type"], "apache_access");
        }
    }
    assert_eq!(missing(&counts, 400), Vec::<u64>::new());
    assert_eq!(duplicates(&counts), 0);
    let letters = std::fs::read_to_string(dir.path().join("dead-letters.ndjson"))?;
    assert_eq!(letters.lines().count(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_test_logs_are_delivered_and_malformed_lines_dead_lettered() -> TestResult {
    let setup = Setup::new(2).await?;
    let path = |name: &str| setup.dir.path().join(name).display().to_string();
    let config = setup.dir.path().join("generate.toml");
    std::fs::write(
        &config,
        format!(
            "[producer]\nbatch_timeout = 0.05\n[tail]\npoll_interval = 0.05\n\n\
             [[log_files]]\npath = {:?}\ntype = \"apache\"\n\
             [[log_files]]\npath = {:?}\ntype = \"nginx\"\n\
             [[log_files]]\npath = {:?}\ntype = \"application\"\n",
            path("apache.log"),
            path("nginx.log"),
            path("app.log"),
        ),
    )?;
    let (_, summary) = setup.run(
        &config,
        &[
            "--generate-test-logs",
            "--generate-rate",
            "300",
            "--duration",
            "3",
        ],
    )?;
    let mut written = 0;
    for (name, source) in [
        ("apache.log", "apache"),
        ("nginx.log", "nginx"),
        ("app.log", "application"),
    ] {
        let lines = std::fs::read_to_string(setup.dir.path().join(name))?
            .lines()
            .count() as u64;
        written += lines;
        let s = &summary["by_source"][source];
        let read = s["read"].as_u64().ok_or("read")?;
        // At 300 lines/s for 3 s, each file gets hundreds of lines; the
        // last poll's worth may be unread when the run stops.
        assert!(
            lines >= 300 && read >= lines - 100,
            "{name}: {lines} written, {read} read"
        );
        assert_eq!(
            s["parsed"].as_u64().unwrap_or(0) + s["invalid"].as_u64().unwrap_or(0),
            read,
            "{s}"
        );
        assert_eq!(s["sent"], s["parsed"], "{s}");
    }
    let invalid = summary["by_source"]
        .as_object()
        .ok_or("by_source")?
        .values()
        .map(|s| s["invalid"].as_u64().unwrap_or(0))
        .sum::<u64>();
    // One line in 50 is malformed on purpose.
    assert!(
        invalid > 0 && invalid < written / 10,
        "{invalid} of {written}"
    );
    assert_eq!(setup.dead_letters()?.len() as u64, invalid);
    let sent = summary["total_sent"].as_u64().ok_or("total_sent")?;
    let records = setup.read(sent as usize).await?;
    assert_eq!(records.len() as u64, sent);
    let success = summary["parse_success_rate"].as_f64().ok_or("rate")?;
    assert!(success >= 95.0, "the lab's bar: {success}");
    Ok(())
}

#[test]
fn keys_reports_how_sample_lines_spread_over_shards() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("access.log");
    append(&log, 1..=1000)?;
    let files = serde_json::json!([{"path": log, "type": "apache"}]).to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_log-streamer"))
        .args(["keys", "--shards", "4", "--json", "--log-files", &files])
        .output()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reports: Value = serde_json::from_slice(&output.stdout)?;
    let report = reports
        .get(0)
        .and_then(|r| r.get("report"))
        .ok_or("no report")?;
    assert_eq!(report["records"], 1000);
    let shards = report["shards"].as_array().ok_or("no shards")?;
    assert_eq!(shards.len(), 4);
    let total: u64 = shards.iter().filter_map(|s| s["records"].as_u64()).sum();
    assert_eq!(total, 1000);
    // 1000 client addresses in one hour: 1000 distinct web keys.
    assert_eq!(report["distinct_keys"], 1000);
    Ok(())
}

/// Two processes on one checkpoint file would overwrite each other's
/// positions: while one runs, a second is refused with an error that says
/// so, and once the first has stopped the file is free again (issue 20,
/// item 10).
#[test]
fn a_second_process_on_the_same_checkpoint_file_is_refused() -> TestResult {
    use std::io::BufRead;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("access.log");
    append(&log, 1..=10)?;
    let files = serde_json::json!([{"path": log, "type": "apache"}]).to_string();
    let command = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_log-streamer"));
        command
            .args(["--log-files", &files, "--sink", "stdout"])
            .args(["--stats-interval", "0", "--checkpoint-file"])
            .arg(dir.path().join("state/checkpoint.json"))
            .arg("--dead-letter-file")
            .arg(dir.path().join("state/dead-letters.ndjson"));
        command
    };
    // The first follows the file; it holds the checkpoint once it prints.
    // (Lines 1 to 10 are there before it starts.)
    let mut first = command()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = first.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // It starts at the end of the file: lines appended until one is out.
    let started = Instant::now();
    let mut next = 11;
    loop {
        append(&log, next..=next)?;
        next += 1;
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                line?;
                break;
            }
            Err(_) if started.elapsed() < Duration::from_secs(30) => {}
            Err(e) => return Err(format!("the first process printed nothing: {e}").into()),
        }
    }
    let second = command().arg("--once").output()?;
    let _ = first.kill();
    first.wait()?;
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
    let third = command().arg("--once").output()?;
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    Ok(())
}

/// Regression (issue 20, short outages): with the endpoint down for
/// longer than the retries last, records became `retries_exhausted` dead
/// letters that each needed a replay. A file can be read again: the
/// records are held and the input waits; nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_longer_than_the_retries_is_ridden_out_without_dead_letters() -> TestResult {
    let mut setup = Setup::new(1).await?;
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    setup.endpoints.kinesis = Some(proxy.endpoint());
    let log = setup.log();
    std::fs::write(&log, "")?;
    // The 3 retries are used up well within the outage.
    let config = setup.config("retry_initial_delay = 0.05\nretry_max_delay = 0.2")?;
    let mut child = setup.spawn(&config, &["--from-beginning"])?;
    let mut stderr_pipe = child.stderr.take().ok_or("stderr not piped")?;
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr_pipe, &mut text).map(|_| text)
    });
    let mut written = 0;
    let started = Instant::now();
    let mut down = false;
    // 1,000 lines/s for 6 s; every request fails from 1 s to 4 s.
    while started.elapsed() < Duration::from_secs(6) {
        let at = started.elapsed();
        let outage = at >= Duration::from_secs(1) && at < Duration::from_secs(4);
        if outage != down {
            down = outage;
            proxy.set_random_request_fault(down.then_some((RequestFault::Unavailable, 1.0)));
        }
        append(&log, written + 1..=written + 10)?;
        written += 10;
        std::thread::sleep(Duration::from_millis(10));
    }
    let counts = tally(&setup.read(written as usize).await?)?;
    binary::terminate(&child)?;
    let status = binary::wait_with_timeout(&mut child, Duration::from_secs(30))?;
    let output = child.wait_with_output()?;
    let stderr = stderr_reader
        .join()
        .map_err(|_| "stderr reader panicked")??;
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(missing(&counts, written), Vec::<u64>::new());
    assert_eq!(setup.dead_letters()?, Vec::<Value>::new());
    let summary: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(summary["dead_lettered"], 0, "{summary:#}");
    assert_eq!(summary["held_records"], 0, "{summary:#}");
    // The outage was visible while it lasted.
    assert!(stderr.contains("the service keeps failing"), "{stderr}");
    assert!(
        proxy
            .events()
            .iter()
            .any(|e| e.action == ProxyAction::Request(RequestFault::Unavailable)),
        "the outage never reached the producer"
    );
    Ok(())
}

/// Regression (issue 21, quieter output): with 90 % of 3,000 lines
/// refused, each refusal was a WARN line (1,966 of them), in colour codes
/// though stderr was no terminal. Now the first of a kind is logged and
/// the rest summed, and the text is plain.
#[tokio::test(flavor = "multi_thread")]
async fn refused_lines_are_summarised_in_plain_text_not_logged_one_by_one() -> TestResult {
    let setup = Setup::new(1).await?;
    let log = setup.log();
    let mut text = String::new();
    for n in 1..=3_000u64 {
        if n % 10 == 0 {
            text.push_str(&line(n));
        } else {
            text.push_str(&format!("garbage line {n}\n"));
        }
    }
    std::fs::write(&log, text)?;
    let config = setup.config("")?;
    let (output, summary) = setup.run(&config, &["--once"])?;
    assert_eq!(summary["total_sent"], 300, "{summary:#}");
    assert_eq!(
        summary["by_source"]["apache"]["invalid"], 2_700,
        "{summary:#}"
    );
    assert_eq!(setup.dead_letters()?.len(), 2_700);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains('\u{1b}'), "escape codes: {stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    // A first line and a summary per 5 s window: the run takes a few
    // seconds at most.
    assert!(
        (2..=6).contains(&warnings.len()),
        "{} warning lines: {stderr}",
        warnings.len()
    );
    let first = warnings.first().copied().unwrap_or_default();
    assert!(
        first.contains("record dead-lettered") && first.contains("reason=\"rejected\""),
        "{first}"
    );
    let counted: u64 = warnings
        .iter()
        .filter_map(|l| {
            l.split(" more in ")
                .next()?
                .rsplit(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(
        counted + warnings.iter().filter(|l| !l.contains(" more in ")).count() as u64,
        2_700,
        "every refusal is counted in the log: {stderr}"
    );
    Ok(())
}

/// Issue 21, files that come and go: a configured file that does not exist
/// yet is waited for, with a warning, and read once it appears.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_does_not_exist_yet_is_waited_for_and_read() -> TestResult {
    let setup = Setup::new(1).await?;
    let log = setup.log();
    let config = setup.config("")?;
    let child = setup.spawn(&config, &["--from-beginning"])?;
    // Waited for on a thread: a binary that never says it is waiting
    // fails the test in 30 s rather than hanging it.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut child = child;
        let said = binary::wait_for_stderr(&mut child, "no such file yet");
        let _ = tx.send((child, said));
    });
    let Ok((mut child, said)) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        return Err("no warning about the missing file in 30 s".into());
    };
    let (warning, _rest) = said?;
    assert!(warning.contains("access.log"), "{warning}");
    assert!(warning.contains("waiting for it to appear"), "{warning}");
    append(&log, 1..=50)?;
    let counts = tally(&setup.read(50).await?)?;
    assert_eq!(missing(&counts, 50), Vec::<u64>::new());
    binary::terminate(&child)?;
    let status = binary::wait_with_timeout(&mut child, Duration::from_secs(30))?;
    assert!(status.success(), "{status}");
    Ok(())
}

/// Event `n` of a Java application log: its log line and a stack trace.
fn java_event(n: u64) -> Vec<String> {
    vec![
        format!(
            "2024-01-15 10:30:{:02}.000 ERROR [main] c.e.App - event {n}",
            n % 60
        ),
        format!("java.lang.IllegalStateException: failure {n}"),
        format!("\tat com.example.Stock.take(Stock.java:{n})"),
        format!("\tat com.example.App.main(App.java:{n})"),
    ]
}

fn write_lines(path: &Path, lines: &[String]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    file.write_all(text.as_bytes())
}

/// Waits up to 30 s until the checkpoint lists a file for which `matches`
/// holds.
fn wait_for_checkpointed_file(checkpoint: &Path, matches: impl Fn(&Value) -> bool) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let found = std::fs::read(checkpoint)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|value| value.pointer("/state/watched").cloned())
            .and_then(|watched| watched.as_object().cloned())
            .is_some_and(|watched| {
                watched
                    .values()
                    .filter_map(Value::as_array)
                    .flatten()
                    .any(&matches)
            });
        if found {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err("no such file in the checkpoint within 30 s".into())
}

/// Waits until the checkpoint holds a file settled to `offset`.
fn wait_for_checkpoint_offset(checkpoint: &Path, offset: u64) -> TestResult {
    wait_for_checkpointed_file(checkpoint, |file| {
        file.get("offset").and_then(Value::as_u64) == Some(offset)
    })
    .map_err(|_| format!("the checkpoint did not reach offset {offset} in 30 s").into())
}

/// Stack traces are joined to their log line through a SIGKILL between
/// an event's first lines and the rest of it, and through two rename
/// rotations in the middle of an event (one while the streamer is down,
/// one while it runs): every event arrives once, whole.
#[tokio::test(flavor = "multi_thread")]
async fn multi_line_events_arrive_whole_through_a_kill_and_rotations() -> TestResult {
    let setup = Setup::new(1).await?;
    let log = setup.dir.path().join("app.log");
    // A long flush wait: an event is handed out by the next event's first
    // line, by its file being let go after rotation, or at the end of a
    // run, never by the clock in this test.
    let config = setup.write_config(&format!(
        "[producer]\nbatch_timeout = 0.05\n\
         [tail]\npoll_interval = 0.05\nrotate_wait = 0.5\ncheckpoint_interval = 0.1\n\n\
         [[log_files]]\npath = {:?}\nmulti_line_start_pattern = '^\\d{{4}}-'\nmulti_line_flush_ms = 60000\n",
        log.display().to_string()
    ))?;
    let event_text = |n: u64| java_event(n).join("\n");

    // Events 1-3 whole, and the first two lines of event 4.
    let mut first: Vec<String> = (1..=3).flat_map(java_event).collect();
    let settled_to: u64 = first.iter().map(|l| l.len() as u64 + 1).sum();
    first.extend(java_event(4).into_iter().take(2));
    write_lines(&log, &first)?;
    let mut child = setup.spawn(&config, &["--from-beginning"])?;
    setup.read(3).await?;
    // Events 1-3 settled; event 4 waits for the rest of it.
    wait_for_checkpoint_offset(&setup.checkpoint_file(), settled_to)?;
    child.kill()?;
    child.wait()?;

    // While it is down: the log is renamed and the writer, still holding
    // it, finishes event 4 there; events 5-6 and the start of 7 go to a
    // new log.
    let rotated = setup.dir.path().join("app.log.1");
    std::fs::rename(&log, &rotated)?;
    write_lines(&rotated, &java_event(4)[2..])?;
    let mut second: Vec<String> = (5..=6).flat_map(java_event).collect();
    second.extend(java_event(7).into_iter().take(3));
    write_lines(&log, &second)?;
    let mut child = setup.spawn(&config, &["--resume-from-checkpoint"])?;
    // Event 4 is found in the renamed file and read from its start;
    // events 5 and 6 follow (7 waits for its last line).
    setup.read(6).await?;

    // While it runs: a rotation in the middle of event 7.
    let rotated = setup.dir.path().join("app.log.2");
    std::fs::rename(&log, &rotated)?;
    write_lines(&rotated, &java_event(7)[3..])?;
    let third: Vec<String> = (8..=9).flat_map(java_event).collect();
    write_lines(&log, &third)?;
    // 7 is handed out when app.log.2 is let go; 8 when 9 starts.
    let records = setup.read(8).await?;
    binary::terminate(&child)?;
    let status = binary::wait_with_timeout(&mut child, Duration::from_secs(30))?;
    assert!(status.success(), "{status}");

    let mut counts = BTreeMap::new();
    for record in &records {
        let value: Value = serde_json::from_slice(&record.data)?;
        assert_eq!(value["log_type"], "text");
        let message = value["message"].as_str().ok_or("no message")?;
        let n: u64 = message
            .lines()
            .next()
            .and_then(|l| l.rsplit("event ").next())
            .ok_or("no event number")?
            .parse()?;
        assert_eq!(message, event_text(n), "event {n} was not whole");
        assert_eq!(
            value["timestamp"],
            format!("2024-01-15T10:30:{:02}.000+00:00", n % 60)
        );
        *counts.entry(n).or_insert(0) += 1;
    }
    assert_eq!(counts, (1..=8).map(|n| (n, 1)).collect::<BTreeMap<_, _>>());
    Ok(())
}

/// The records log-streamer prints for `log` with `entry`'s multi-line
/// settings, one JSON line each; a time read from the clock (a text that
/// starts with no time) is written `(read time)`.
fn multi_line_records(log: &Path, entry: &str) -> Result<String, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let files = format!(r#"[{{"path": {:?}, {entry}}}]"#, log.display().to_string());
    let output = Command::new(env!("CARGO_BIN_EXE_log-streamer"))
        .args(["--log-files", &files, "--sink", "stdout", "--once"])
        .arg("--checkpoint-file")
        .arg(dir.path().join("checkpoint.json"))
        .arg("--dead-letter-file")
        .arg(dir.path().join("dead-letters.ndjson"))
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "log-streamer failed: {stderr}");
    let mut out = String::new();
    for line in String::from_utf8(output.stdout)?.lines() {
        let mut record: Value = serde_json::from_str(line)?;
        let timed = record
            .get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| m.starts_with(|c: char| c.is_ascii_digit()));
        if !timed && let Some(time) = record.get_mut("timestamp") {
            *time = Value::from("(read time)");
        }
        out.push_str(&serde_json::to_string(&record)?);
        out.push('\n');
    }
    Ok(out)
}

/// Golden files: Java, Python and Go logs with stack traces in
/// `fixtures/logs/multi_line/`, against the reviewed records in
/// `<name>.expected.ndjson` (regenerate with `SHARDLINE_BLESS=1` and
/// review the diff). Each preset gives the same events as a start pattern
/// on the logger's time, where one exists.
#[test]
fn stack_traces_of_java_python_and_go_become_one_record_each() -> TestResult {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/logs/multi_line");
    let pattern = r#""type": "text", "multi_line_start_pattern": "^\\d{4}-""#;
    for (name, preset, same_as_pattern) in [
        ("java", r#""multi_line": "java""#, true),
        ("python", r#""multi_line": "python""#, true),
        ("go", r#""multi_line": "go""#, false),
    ] {
        let log = fixtures.join(format!("{name}.log"));
        let got = multi_line_records(&log, preset)?;
        let expected_path = fixtures.join(format!("{name}.expected.ndjson"));
        if std::env::var_os("SHARDLINE_BLESS").is_some() {
            std::fs::write(&expected_path, &got)?;
        }
        let expected = std::fs::read_to_string(&expected_path)?;
        for (number, (got, want)) in got.lines().zip(expected.lines()).enumerate() {
            assert_eq!(got, want, "{name}: record {}", number + 1);
        }
        assert_eq!(got.lines().count(), expected.lines().count(), "{name}");
        if same_as_pattern {
            assert_eq!(multi_line_records(&log, pattern)?, got, "{name}");
        }
    }
    Ok(())
}
