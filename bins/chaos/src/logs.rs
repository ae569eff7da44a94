//! log-streamer scenarios: kills through rotations, faults and an outage,
//! garbage input, a full disk for the dead-letter file.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use shardline_harness::Kinesalite;
use shardline_harness::binary::{self, StreamRun};
use shardline_harness::fault_proxy::{EntryFault, FaultCode, FaultProxy, RequestFault, Selection};
use shardline_harness::streams::StreamReader;
use tokio::runtime::Runtime;

use crate::count::{CrashBound, Row, Tally, count_in, number_in, read_until_complete};
use crate::{Binaries, Size};

/// How long the stream may take to show every input after the writing
/// ends.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);

/// An Apache combined line whose path carries its number.
fn line(n: u64) -> String {
    format!(
        "10.0.{}.{} - - [15/Jan/2024:10:30:45 +0000] \"GET /item/{n} HTTP/1.1\" 200 {n} \"-\" \"chaos\"\n",
        (n / 256) % 256,
        n % 256
    )
}

fn append(path: &Path, text: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text)
}

/// A stream record's input number (`/item/N` in its JSON).
fn record_number(data: &[u8]) -> Option<u64> {
    number_in(&String::from_utf8_lossy(data))
}

/// A run of log-streamer following `log` into its own stream.
struct Streamer {
    run: StreamRun,
    exe: PathBuf,
    config: PathBuf,
}

impl Streamer {
    fn new(rt: &Runtime, bins: &Binaries, name: &str, shards: i32) -> anyhow::Result<Self> {
        let run = rt.block_on(StreamRun::new(name, shards))?;
        let log = run.dir.path().join("access.log");
        std::fs::write(&log, "")?;
        let config = run.write_config(&format!(
            "[tail]\npoll_interval = 0.05\nrotate_wait = 1\n\n\
             [[log_files]]\npath = {:?}\ntype = \"apache\"\n",
            log.display().to_string()
        ))?;
        Ok(Streamer {
            run,
            exe: bins.log_streamer.clone(),
            config,
        })
    }

    fn log(&self) -> PathBuf {
        self.run.dir.path().join("access.log")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.run.command(&self.exe.to_string_lossy());
        command.arg("--config").arg(&self.config).args(args);
        command
    }

    /// Starts it, following; stdout (the summary) is kept, stderr is
    /// drained into a thread so the child never blocks on it.
    fn spawn(&self, args: &[&str]) -> anyhow::Result<Running> {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting log-streamer")?;
        let mut stderr = child.stderr.take().context("stderr")?;
        let drain = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        Ok(Running { child, drain })
    }

    /// Reads the stream and the dead letters until every line is found
    /// (or the timeout), stopping early if `running` has exited.
    async fn tally(
        &self,
        tally: &mut Tally,
        reader: &mut StreamReader,
        running: Option<&mut Running>,
    ) -> anyhow::Result<()> {
        let mut alive: Box<dyn FnMut() -> bool + '_> = match running {
            Some(running) => Box::new(move || matches!(running.child.try_wait(), Ok(None))),
            None => Box::new(|| true),
        };
        read_until_complete(
            reader,
            tally,
            &self.run.dead_letter_file(),
            SETTLE_TIMEOUT,
            record_number,
            &mut *alive,
        )
        .await
    }
}

struct Running {
    child: Child,
    drain: std::thread::JoinHandle<String>,
}

impl Running {
    fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        let _ = self.drain.join();
        Ok(())
    }

    /// SIGTERM, then its summary; stderr with the error if it failed.
    fn stop(mut self) -> anyhow::Result<serde_json::Value> {
        // Exited already: its status and log say why.
        if self.child.try_wait()?.is_some() {
            return self.finish();
        }
        binary::terminate(&self.child)?;
        binary::wait_with_timeout(&mut self.child, Duration::from_secs(60))?;
        self.finish()
    }

    fn finish(self) -> anyhow::Result<serde_json::Value> {
        let output = self.child.wait_with_output()?;
        let stderr = self.drain.join().unwrap_or_default();
        anyhow::ensure!(
            output.status.success(),
            "log-streamer exited with {}: {}",
            output.status,
            stderr.lines().last().unwrap_or_default()
        );
        serde_json::from_slice(&output.stdout).with_context(|| format!("the summary: {stderr}"))
    }
}

/// A count in a summary.
fn num(summary: &serde_json::Value, key: &str) -> Option<u64> {
    summary.get(key)?.as_u64()
}

/// A summary's field as text.
fn show(summary: &serde_json::Value, key: &str) -> String {
    summary
        .get(key)
        .map_or_else(|| "none".to_owned(), ToString::to_string)
}

/// Rotation `k` of `log`: odd ones rename, even ones copy and truncate.
fn rotate(log: &Path, k: u64) -> std::io::Result<()> {
    let rotated = log.with_extension(format!("log.{k}"));
    if !k.is_multiple_of(2) {
        std::fs::rename(log, &rotated)?;
        std::fs::write(log, "")
    } else {
        std::fs::copy(log, &rotated)?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(log)?
            .set_len(0)
    }
}

/// Appends `lines` numbered lines at `rate` a second, rotating every
/// `rotate_every` (0: never).
fn write_paced(
    log: PathBuf,
    lines: u64,
    rate: u64,
    rotate_every: u64,
) -> std::thread::JoinHandle<std::io::Result<u64>> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let (mut n, mut rotations) = (0, 0);
        while n < lines {
            let chunk = 100.min(lines - n);
            let text: String = (n + 1..=n + chunk).map(line).collect();
            append(&log, text.as_bytes())?;
            n += chunk;
            if rotate_every > 0 && n.is_multiple_of(rotate_every) && n < lines {
                rotations += 1;
                rotate(&log, rotations)?;
            }
            let due = Duration::from_secs_f64(n as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(rotations)
    })
}

/// log-streamer SIGKILLed at random moments and restarted (resuming from
/// its checkpoint) while a file grows and rotates, alternating rename and
/// copytruncate.
pub(crate) fn kills(size: Size, bins: &Binaries, rt: &Runtime) -> anyhow::Result<Row> {
    // 2,000 lines/s, as the file grew when a kill re-sent up to 3,000
    // lines. At that rate about one request is in flight at a time, so a
    // kill should repeat about one batch (the goal: 500 lines),
    // well within the in-flight bound.
    let (lines, kills, rotate_every, rate) = match size {
        Size::Smoke => (10_000, 3, 2_500, 2_000),
        Size::Full => (1_000_000, 20, 100_000, 2_000),
    };
    let streamer = Streamer::new(rt, bins, "chaos_kills", 2)?;
    let writer = write_paced(streamer.log(), lines, rate, rotate_every);
    let span = Duration::from_secs_f64(lines as f64 / rate as f64);
    let mut rng = rand::rng();
    let args = ["--from-beginning", "--resume-from-checkpoint"];
    for _ in 0..kills {
        let running = streamer.spawn(&args)?;
        let up = rng.random_range(0.2..(2.0 * span.as_secs_f64() / kills as f64).max(0.4));
        std::thread::sleep(Duration::from_secs_f64(up));
        running.kill()?;
    }
    let mut running = streamer.spawn(&args)?;
    let rotations = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    let mut tally = Tally::new(lines);
    let mut reader = StreamReader::new(&streamer.run.client, &streamer.run.stream);
    rt.block_on(streamer.tally(&mut tally, &mut reader, Some(&mut running)))?;
    running.stop()?;
    rt.block_on(streamer.tally(&mut tally, &mut reader, None))?;
    let mut row = Row::from_tally("kills", &tally, kills, CrashBound::DEFAULT);
    row.notes.push(format!(
        "{rotations} rotations; {:.0} duplicates per kill",
        row.duplicates as f64 / kills as f64
    ));
    Ok(row)
}

/// 30 % of entries throttled, bursts of throttled requests, then every
/// request refused (503) for an outage: nothing may be dead-lettered.
pub(crate) fn faults(size: Size, bins: &Binaries, rt: &Runtime) -> anyhow::Result<Row> {
    let (lines, rate, outage_at, outage) = match size {
        Size::Smoke => (5_000, 2_000, 0.5, 3.0),
        Size::Full => (100_000, 1_000, 10.0, 60.0),
    };
    let mut streamer = Streamer::new(rt, bins, "chaos_faults", 2)?;
    let proxy = rt.block_on(FaultProxy::start(&Kinesalite::shared()?.endpoint()))?;
    // A share of entries fails whatever the rate: an internal failure. (A
    // throttle refuses entries for their rate, and the producer paces the
    // shard: the shard-limit proxy, in the scale-out bench, tests that.)
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Share(0.3),
        code: FaultCode::InternalFailure,
    }));
    streamer.run.endpoints.kinesis = Some(proxy.endpoint());
    let mut running = streamer.spawn(&["--from-beginning"])?;
    let started = Instant::now();
    let writer = write_paced(streamer.log(), lines, rate, 0);
    let at = |seconds: f64| {
        if let Some(wait) = Duration::from_secs_f64(seconds).checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    };
    at(outage_at / 2.0);
    proxy.queue_request_faults(std::iter::repeat_n(RequestFault::Throttle, 20));
    at(outage_at);
    proxy.set_random_request_fault(Some((RequestFault::Unavailable, 1.0)));
    at(outage_at + outage);
    proxy.set_random_request_fault(None);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer panicked"))??;
    let mut tally = Tally::new(lines);
    let mut reader = StreamReader::new(&streamer.run.client, &streamer.run.stream);
    rt.block_on(streamer.tally(&mut tally, &mut reader, Some(&mut running)))?;
    let summary = running.stop()?;
    rt.block_on(streamer.tally(&mut tally, &mut reader, None))?;
    let mut row = Row::from_tally("faults", &tally, 0, CrashBound::DEFAULT);
    if row.dead_lettered > 0 || num(&summary, "dead_lettered") != Some(0) {
        row.problems
            .push("records were dead-lettered for transient faults".into());
    }
    if num(&summary, "total_sent") != Some(lines) || num(&summary, "lines_processed") != Some(lines)
    {
        row.problems.push(format!(
            "the summary does not add up: sent {}, read {} of {lines}",
            show(&summary, "total_sent"),
            show(&summary, "lines_processed")
        ));
    }
    row.notes.push(format!(
        "{} retries, {outage:.0} s outage",
        show(&summary, "retried")
    ));
    Ok(row)
}

/// Garbage among numbered lines: random bytes, invalid UTF-8, NUL bytes,
/// lines far over the length limit; the file truncated halfway through.
/// Each garbage line carries ` n=N` so its dead letter can be counted.
fn garbage_line(n: u64, long: usize, rng: &mut impl Rng) -> Vec<u8> {
    if n.is_multiple_of(10) {
        return line(n).into_bytes();
    }
    let mut out = format!("junk n={n} ").into_bytes();
    if n % 1000 == 1 {
        out.extend(std::iter::repeat_n(b'z', long));
        out.push(b'\n');
        return out;
    }
    match n % 5 {
        0 => out.extend((0..200).map(|_| rng.random_range(0x20..0x7f_u8))),
        1 => out.extend((0..200).map(|_| rng.random::<u8>()).filter(|b| *b != b'\n')),
        2 => out.extend([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x82]),
        3 => out.extend([0, 0, b'x', 0, b'y', 0]),
        _ => out.extend(b"GET / HTTP/1.1 200 -".iter()),
    }
    out.push(b'\n');
    out
}

pub(crate) fn garbage(size: Size, bins: &Binaries, rt: &Runtime) -> anyhow::Result<Row> {
    let (lines, long) = match size {
        Size::Smoke => (2_000, 2 << 20),
        Size::Full => (10_000, 10 << 20),
    };
    let streamer = Streamer::new(rt, bins, "chaos_garbage", 1)?;
    let log = streamer.log();
    let mut rng = rand::rng();
    let half = lines / 2;
    let text: Vec<u8> = (1..=half)
        .flat_map(|n| garbage_line(n, long, &mut rng))
        .collect();
    append(&log, &text)?;
    let mut running = streamer.spawn(&["--from-beginning"])?;
    let mut tally = Tally::new(half);
    let mut reader = StreamReader::new(&streamer.run.client, &streamer.run.stream);
    rt.block_on(streamer.tally(&mut tally, &mut reader, Some(&mut running)))?;
    // Everything so far is accounted for: the file is truncated and
    // written again.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)?
        .set_len(0)?;
    let text: Vec<u8> = (half + 1..=lines)
        .flat_map(|n| garbage_line(n, long, &mut rng))
        .collect();
    append(&log, &text)?;
    tally.records_in = lines;
    rt.block_on(streamer.tally(&mut tally, &mut reader, Some(&mut running)))?;
    let summary = running.stop()?;
    rt.block_on(streamer.tally(&mut tally, &mut reader, None))?;
    let mut row = Row::from_tally("garbage", &tally, 0, CrashBound::DEFAULT);
    let valid: BTreeSet<u64> = (1..=lines).filter(|n| n.is_multiple_of(10)).collect();
    let valid_delivered = count_in(&tally.delivered, &valid);
    if valid_delivered != valid.len() as u64 || row.delivered != valid_delivered {
        row.problems.push(format!(
            "{valid_delivered} of {} valid lines delivered, {} records in all",
            valid.len(),
            row.delivered
        ));
    }
    if num(&summary, "lines_processed") != Some(lines) {
        row.problems.push(format!(
            "read {} lines of {lines}",
            show(&summary, "lines_processed")
        ));
    }
    Ok(row)
}

/// The dead-letter file on a 64 KiB tmpfs: when it fills, log-streamer
/// must stop with a clear error and not checkpoint past the letters it
/// could not write; with room again, a restart finishes the input.
pub(crate) fn disk_full(size: Size, bins: &Binaries, rt: &Runtime) -> anyhow::Result<Row> {
    let lines: u64 = match size {
        Size::Smoke => 2_000,
        Size::Full => 20_000,
    };
    let streamer = Streamer::new(rt, bins, "chaos_disk", 1)?;
    let disk = streamer.run.dir.path().join("small-disk");
    std::fs::create_dir(&disk)?;
    let Some(_mounted) = Tmpfs::mount(&disk, "64k") else {
        let mut row = Row::from_tally("disk-full", &Tally::default(), 0, CrashBound::DEFAULT);
        row.notes
            .push("skipped: mounting a tmpfs needs root (CAP_SYS_ADMIN)".into());
        return Ok(row);
    };
    // The run's dead-letter file lives on the small disk.
    let letters = streamer.run.dead_letter_file();
    std::os::unix::fs::symlink(disk.join("dead-letters.ndjson"), &letters)?;
    // Every other line is garbage: about 250 bytes of dead letter each.
    let mut all = Vec::new();
    for n in 1..=lines {
        if n.is_multiple_of(2) {
            all.extend(line(n).into_bytes());
        } else {
            all.extend(format!("junk n={n} not a log line\n").into_bytes());
        }
    }
    append(&streamer.log(), &all)?;
    let args = |first: bool| {
        let mut args = vec!["--once", "--resume-from-checkpoint"];
        if first {
            args.push("--from-beginning");
        }
        args
    };
    let run = |first: bool| streamer.command(&args(first)).output();
    let first = run(true)?;
    let mut row_notes = Vec::new();
    let mut problems = Vec::new();
    let stderr = String::from_utf8_lossy(&first.stderr);
    if first.status.success() {
        problems.push("the first run did not stop on the full disk".to_owned());
    } else {
        row_notes.push(format!(
            "stopped: {}",
            stderr
                .lines()
                .rev()
                .find(|l| l.contains("log-streamer"))
                .unwrap_or_default()
                .chars()
                .take(120)
                .collect::<String>()
        ));
    }
    Tmpfs::resize(&disk, "16m")?;
    let second = run(false)?;
    if !second.status.success() {
        problems.push(format!(
            "the run after the disk had room failed: {}",
            String::from_utf8_lossy(&second.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    let mut tally = Tally::new(lines);
    let mut reader = StreamReader::new(&streamer.run.client, &streamer.run.stream);
    rt.block_on(read_until_complete(
        &mut reader,
        &mut tally,
        &letters,
        Duration::from_secs(30),
        record_number,
        &mut || true,
    ))?;
    // A stop, not a crash: everything the first run read after the first
    // letter it could not write is read again, so its copies are counted
    // and said, not held to the per-crash bound.
    let mut row = Row::from_tally("disk-full", &tally, 0, CrashBound::DEFAULT);
    row.problems.retain(|p| !p.contains("duplicates"));
    row.problems.extend(problems);
    row.notes.extend(row_notes);
    row.notes
        .push(format!("{} sent again after the stop", row.duplicates));
    Ok(row)
}

/// A tmpfs mounted for the scenario, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(dir: &Path, size: &str) -> anyhow::Result<()> {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(dir)
            .status()?;
        anyhow::ensure!(status.success(), "resizing the tmpfs failed");
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
