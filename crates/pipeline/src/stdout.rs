//! `--sink stdout`: records written to standard output, one per line.

use std::io::Write;
use std::sync::Mutex;

use shardline_core::{
    Accepted, DeadLetterFile, DeadLetterReason, DeadLetterSink, Delivery, DeliveryStats, Item,
    Outcome, Receipt, Sink, SinkCounters, SinkError, SinkStats, SourceName, Tally,
};

struct Output {
    out: Box<dyn Write + Send>,
    dead_letters: DeadLetterFile,
}

/// Each record's data, exactly, one per line; nothing is sent. Rejected
/// input still goes to the dead-letter file. A record counts as delivered
/// once its batch is written and flushed, a rejection once its letter is
/// synced.
///
/// ```
/// use shardline_core::{DeadLetterFile, Item, PartitionKey, Record, Sink, SourceName};
/// use shardline_pipeline::StdoutSink;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let dead_letters = DeadLetterFile::open(&dir.path().join("dead-letters.ndjson"))?;
/// let out = dir.path().join("records.ndjson");
/// let sink = StdoutSink::with_writer(Box::new(std::fs::File::create(&out)?), dead_letters);
/// let record = Record::from_source(SourceName::new("lines"), PartitionKey::new("k")?, "{\"n\":1}");
/// let accepted = sink.send(vec![Item::Record(record)]).await?;
/// for receipt in accepted.receipts {
///     assert!(receipt.await.is_settled());
/// }
/// assert_eq!(std::fs::read_to_string(&out)?, "{\"n\":1}\n");
/// assert_eq!(sink.stats().total.delivered, 1);
/// # Ok(()) }
/// ```
pub struct StdoutSink {
    output: Mutex<Output>,
    counters: SinkCounters,
}

impl std::fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdoutSink").finish_non_exhaustive()
    }
}

impl StdoutSink {
    /// Writes to the process's standard output.
    pub fn new(dead_letters: DeadLetterFile) -> Self {
        Self::with_writer(Box::new(std::io::stdout()), dead_letters)
    }

    /// Writes to `out` (a file, a buffer in tests).
    pub fn with_writer(out: Box<dyn Write + Send>, dead_letters: DeadLetterFile) -> Self {
        StdoutSink {
            output: Mutex::new(Output {
                out: Box::new(std::io::BufWriter::with_capacity(1 << 16, out)),
                dead_letters,
            }),
            counters: SinkCounters::default(),
        }
    }
}

#[async_trait::async_trait]
impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    /// Writes the batch under one lock; the letters of its rejections are
    /// written and synced after the records are flushed.
    async fn send(&self, items: Vec<Item>) -> Result<Accepted, SinkError> {
        let mut letters = Vec::new();
        let mut outcomes = Vec::with_capacity(items.len());
        let mut tally = Tally::default();
        let mut output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        for item in items {
            match item {
                Item::Record(record) => {
                    output
                        .out
                        .write_all(&record.data)
                        .and_then(|()| output.out.write_all(b"\n"))
                        .map_err(|source| SinkError::Write {
                            sink: "stdout",
                            source,
                        })?;
                    let bytes = record.data.len() as u64;
                    tally.add(
                        &record.source,
                        DeliveryStats {
                            records_in: 1,
                            bytes_in: bytes,
                            delivered: 1,
                            bytes_delivered: bytes,
                            ..DeliveryStats::default()
                        },
                    );
                    outcomes.push(Outcome::Delivered(Delivery::default()));
                }
                Item::Rejected(letter) => {
                    tally.add(
                        &SourceName::new(&letter.source),
                        DeliveryStats {
                            records_in: 1,
                            dead_lettered: 1,
                            rejected: 1,
                            ..DeliveryStats::default()
                        },
                    );
                    outcomes.push(Outcome::DeadLettered {
                        reason: DeadLetterReason::Rejected,
                        error_code: None,
                        error_message: letter.error_message.clone(),
                        record: None,
                    });
                    letters.push(letter);
                }
            }
        }
        output.out.flush().map_err(|source| SinkError::Write {
            sink: "stdout",
            source,
        })?;
        if !letters.is_empty() {
            output
                .dead_letters
                .write(&letters)
                .map_err(SinkError::DeadLetter)?;
        }
        drop(output);
        for (source, stats) in tally.iter() {
            self.counters.settled_at_once(source, stats);
        }
        Ok(Accepted {
            receipts: outcomes.into_iter().map(Receipt::ready).collect(),
            refused: None,
        })
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }
}
