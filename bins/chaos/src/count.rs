//! Counting: which numbered inputs reached the stream (how often), which
//! the dead-letter file, which neither; and the table of results.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use shardline_harness::binary::StreamRun;
use shardline_harness::streams::StreamReader;

/// What a crash may repeat: the batch requests in flight when it came
/// (`[producer] max_in_flight` of them, 500 records each). The service has
/// taken some or all of them, and nothing says which, so a restart sends
/// them again. What settled before is checkpointed promptly
/// (`CHECKPOINT_AFTER_INPUTS`), so it is not repeated: measured, each
/// crash of `cdc-1` repeated at most one batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CrashBound {
    /// Batch requests in flight at most.
    pub(crate) in_flight: u64,
}

impl CrashBound {
    /// The binaries' default: `DEFAULT_MAX_IN_FLIGHT` requests.
    pub(crate) const DEFAULT: CrashBound = CrashBound {
        in_flight: shardline_producer::DEFAULT_MAX_IN_FLIGHT as u64,
    };

    /// Records repeated per crash at most.
    pub(crate) fn per_crash(self) -> u64 {
        self.in_flight * shardline_producer::DEFAULT_BATCH_RECORDS as u64
    }
}

/// One scenario's outcome.
#[derive(Debug, Default)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) records_in: u64,
    /// Distinct inputs in the stream.
    pub(crate) delivered: u64,
    /// Distinct inputs in the dead-letter file.
    pub(crate) dead_lettered: u64,
    pub(crate) lost: u64,
    /// Copies beyond the first, in the stream and the dead-letter file.
    pub(crate) duplicates: u64,
    /// Processes killed, servers restarted.
    pub(crate) crashes: u64,
    /// Duplicates allowed per crash.
    pub(crate) per_crash_bound: u64,
    pub(crate) seconds: f64,
    /// Goals missed, and anything else worth saying.
    pub(crate) problems: Vec<String>,
    pub(crate) notes: Vec<String>,
}

impl Row {
    /// A scenario that could not run to its end.
    pub(crate) fn broken(scenario: &str, seconds: f64, error: String) -> Row {
        Row {
            scenario: scenario.to_owned(),
            seconds,
            problems: vec![format!("did not finish: {error}")],
            ..Row::default()
        }
    }

    /// Fills the counts from a tally and judges the common goals: nothing
    /// lost, duplicates within a batch per crash, every input accounted
    /// for once.
    pub(crate) fn from_tally(
        scenario: &str,
        tally: &Tally,
        crashes: u64,
        bound: CrashBound,
    ) -> Row {
        let mut row = Row {
            scenario: scenario.to_owned(),
            records_in: tally.records_in,
            delivered: tally.delivered.len() as u64,
            dead_lettered: tally.dead.len() as u64,
            lost: tally.lost(),
            duplicates: tally.duplicates(),
            crashes,
            per_crash_bound: bound.per_crash(),
            ..Row::default()
        };
        if row.lost > 0 {
            row.problems.push(format!(
                "{} lost (first: {:?})",
                row.lost,
                tally.missing().into_iter().take(5).collect::<Vec<_>>()
            ));
        }
        let allowed = crashes * row.per_crash_bound;
        if row.duplicates > allowed {
            let runs: Vec<String> = tally
                .duplicate_runs()
                .iter()
                .take(8)
                .map(|(first, last, extra)| format!("{first}..={last} ({extra})"))
                .collect();
            row.problems.push(format!(
                "{} duplicates, over {allowed} ({} per crash); largest runs: {}",
                row.duplicates,
                row.per_crash_bound,
                runs.join(", ")
            ));
        }
        let both = tally
            .delivered
            .keys()
            .filter(|n| tally.dead.contains_key(n))
            .count();
        if both > 0 {
            row.notes
                .push(format!("{both} both delivered and dead-lettered"));
        }
        // The longest stretch of inputs sent twice or more: what one crash
        // (or a few landing close together) repeated.
        if crashes > 0
            && let Some((first, last, extra)) = tally.duplicate_runs().first()
        {
            row.notes
                .push(format!("largest repeat: {first}..={last} ({extra})"));
        }
        row
    }

    pub(crate) fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    pub(crate) fn verdict(&self) -> String {
        if self.passed() {
            format!("ok in {:.1} s {}", self.seconds, self.notes.join("; "))
        } else {
            format!("FAILED: {}", self.problems.join("; "))
        }
    }
}

/// The results as a Markdown table.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | records in | delivered | dead-lettered | lost | duplicates | crashes | per crash (bound) | time | result |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for row in rows {
        let result = if row.passed() {
            if row.notes.is_empty() {
                "ok".to_owned()
            } else {
                format!("ok ({})", row.notes.join("; "))
            }
        } else {
            format!("**failed**: {}", row.problems.join("; "))
        };
        let per_crash = if row.crashes == 0 {
            "–".to_owned()
        } else {
            format!(
                "{:.0} (≤ {})",
                row.duplicates as f64 / row.crashes as f64,
                row.per_crash_bound
            )
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} s | {} |\n",
            row.scenario,
            row.records_in,
            row.delivered,
            row.dead_lettered,
            row.lost,
            row.duplicates,
            row.crashes,
            per_crash,
            row.seconds,
            result
        ));
    }
    out
}

/// Numbered inputs `1..=records_in`: how often each reached the stream,
/// and which reached the dead-letter file (how often).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) records_in: u64,
    pub(crate) delivered: BTreeMap<u64, u64>,
    pub(crate) dead: BTreeMap<u64, u64>,
}

impl Tally {
    pub(crate) fn new(records_in: u64) -> Self {
        Tally {
            records_in,
            ..Tally::default()
        }
    }

    pub(crate) fn missing(&self) -> Vec<u64> {
        (1..=self.records_in)
            .filter(|n| !self.delivered.contains_key(n) && !self.dead.contains_key(n))
            .collect()
    }

    pub(crate) fn lost(&self) -> u64 {
        self.missing().len() as u64
    }

    pub(crate) fn complete(&self) -> bool {
        self.lost() == 0
    }

    pub(crate) fn duplicates(&self) -> u64 {
        self.delivered
            .values()
            .chain(self.dead.values())
            .map(|c| c.saturating_sub(1))
            .sum()
    }

    /// The repeated inputs as runs of consecutive numbers, largest first:
    /// `(first, last, extra copies)`. A crash's repeats form one run.
    pub(crate) fn duplicate_runs(&self) -> Vec<(u64, u64, u64)> {
        let mut runs: Vec<(u64, u64, u64)> = Vec::new();
        for (&n, &copies) in &self.delivered {
            if copies < 2 {
                continue;
            }
            match runs.last_mut() {
                Some((_, last, extra)) if *last + 1 == n => {
                    *last = n;
                    *extra += copies - 1;
                }
                _ => runs.push((n, n, copies - 1)),
            }
        }
        runs.sort_by_key(|run| std::cmp::Reverse(run.2));
        runs
    }

    /// Counts the dead-letter file's letters whose data carries a number.
    pub(crate) fn read_dead_letters(&mut self, path: &Path) -> anyhow::Result<()> {
        self.dead.clear();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for line in text.lines() {
            let Ok(letter) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let data = letter
                .get("data")
                .and_then(|d| d.as_str())
                .unwrap_or_default();
            let data = if letter.get("data_encoding").and_then(|d| d.as_str()) == Some("base64") {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .unwrap_or_default();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                data.to_owned()
            };
            if let Some(n) = number_in(&data) {
                *self.dead.entry(n).or_default() += 1;
            }
        }
        Ok(())
    }
}

/// The number an input carries: `/item/N` in a log line's path, `n=N` in
/// a garbage line, `"id":N` in a change event.
pub(crate) fn number_in(text: &str) -> Option<u64> {
    for marker in ["/item/", " n=", "\"id\":"] {
        if let Some(at) = text.find(marker) {
            let digits: String = text
                .get(at + marker.len()..)?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
    }
    None
}

/// Reads the stream into `tally` until every input is accounted for (the
/// dead-letter file re-read each time) or `timeout` passes; `number` finds
/// a record's input.
///
/// Stops early, without an error, once `running` says the binary that
/// should deliver them has exited: its exit status and log, which the
/// caller checks next, say why, rather than a wait for the whole timeout.
pub(crate) async fn read_until_complete(
    reader: &mut StreamReader,
    tally: &mut Tally,
    dead_letter_file: &Path,
    timeout: Duration,
    number: impl Fn(&[u8]) -> Option<u64>,
    running: &mut dyn FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        for record in reader.poll().await? {
            if let Some(n) = number(&record.data) {
                *tally.delivered.entry(n).or_default() += 1;
            }
        }
        tally.read_dead_letters(dead_letter_file)?;
        if tally.complete() || tokio::time::Instant::now() >= deadline || !running() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A run's stream and dead-letter file, read into a tally of its numbered
/// inputs; `number` finds a record's input.
pub(crate) struct Collector<F> {
    pub(crate) tally: Tally,
    reader: StreamReader,
    letters: std::path::PathBuf,
    number: F,
}

impl<F: Fn(&[u8]) -> Option<u64>> Collector<F> {
    pub(crate) fn new(run: &StreamRun, records_in: u64, number: F) -> Self {
        Collector {
            tally: Tally::new(records_in),
            reader: StreamReader::new(&run.client, &run.stream),
            letters: run.dead_letter_file(),
            number,
        }
    }

    /// Reads on until every input is accounted for or `timeout` passes.
    pub(crate) async fn read(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.read_while(timeout, &mut || true).await
    }

    /// [`Collector::read`], stopping early once `child` has exited.
    pub(crate) async fn read_while_running(
        &mut self,
        timeout: Duration,
        child: &mut std::process::Child,
    ) -> anyhow::Result<()> {
        self.read_while(timeout, &mut || matches!(child.try_wait(), Ok(None)))
            .await
    }

    async fn read_while(
        &mut self,
        timeout: Duration,
        running: &mut dyn FnMut() -> bool,
    ) -> anyhow::Result<()> {
        read_until_complete(
            &mut self.reader,
            &mut self.tally,
            &self.letters,
            timeout,
            &self.number,
            running,
        )
        .await
    }
}

/// How many of `numbers` are in `set`.
pub(crate) fn count_in(set: &BTreeMap<u64, u64>, numbers: &BTreeSet<u64>) -> u64 {
    numbers.iter().filter(|n| set.contains_key(n)).count() as u64
}
