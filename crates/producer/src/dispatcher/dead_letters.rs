//! The dead-letter job: letters written to the sink on a blocking thread,
//! one job at a time (the sink syncs to disk before it returns).

use shardline_core::{DeadLetter, DeadLetterSink, PartitionKey, SourceName};
use tokio::task::{JoinError, JoinHandle};

use super::pending::Pending;

/// The sink of a producer built without one: nothing is written, and the
/// dispatcher hands each record back in its outcome instead.
#[derive(Debug)]
pub(super) struct HandBack;

impl DeadLetterSink for HandBack {
    fn write(&mut self, _letters: &[DeadLetter]) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a job hands back: the sink, the records, and how the write went.
pub(super) type Job = (Box<dyn DeadLetterSink>, Vec<Pending>, std::io::Result<()>);

/// What is known of a record whose job panicked and took it along.
#[derive(Debug)]
pub(super) struct Lost {
    pub(super) seq: u64,
    pub(super) key: PartitionKey,
    pub(super) holds_turn: bool,
    /// It was held (counted in `held_records`).
    pub(super) held: bool,
    pub(super) source: SourceName,
    pub(super) bytes: usize,
}

/// How a job ended.
#[derive(Debug)]
pub(super) enum Written {
    /// The letters are durable: each record with its letter.
    Durable(Vec<(Pending, DeadLetter)>),
    /// The write failed: the records are not settled.
    Failed(Vec<Pending>, String),
    /// The job panicked; the sink and the records are gone.
    Lost(Vec<Lost>),
}

/// Dead letters waiting for the sink, and the job writing them.
pub(super) struct DeadLetters {
    queue: Vec<(Pending, DeadLetter)>,
    /// `None` while a job has it, or for good once a job panicked.
    sink: Option<Box<dyn DeadLetterSink>>,
    job: Option<JoinHandle<Job>>,
    /// The letters of the job, and what is known of its records, to account
    /// for them even if the job panics.
    job_letters: Vec<DeadLetter>,
    job_records: Vec<(u64, PartitionKey, bool, bool)>,
}

impl DeadLetters {
    pub(super) fn new(sink: Box<dyn DeadLetterSink>) -> Self {
        DeadLetters {
            queue: Vec::new(),
            sink: Some(sink),
            job: None,
            job_letters: Vec::new(),
            job_records: Vec::new(),
        }
    }

    /// Queues a record's letter for the next job.
    pub(super) fn push(&mut self, pending: Pending, letter: DeadLetter) {
        self.queue.push((pending, letter));
    }

    /// Nothing queued and no job running.
    pub(super) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.job.is_none()
    }

    /// The running job, to await.
    pub(super) fn job(&mut self) -> Option<&mut JoinHandle<Job>> {
        self.job.as_mut()
    }

    /// Starts a job for the queued letters if none is running. Returns the
    /// records that cannot be written because the sink was lost to a panic.
    pub(super) fn start(&mut self) -> Vec<Pending> {
        if self.job.is_some() || self.queue.is_empty() {
            return Vec::new();
        }
        let (pendings, letters): (Vec<Pending>, Vec<DeadLetter>) = self.queue.drain(..).unzip();
        let Some(mut sink) = self.sink.take() else {
            return pendings;
        };
        self.job_letters = letters.clone();
        self.job_records = pendings
            .iter()
            .map(|p| (p.seq, p.record.partition_key.clone(), p.holds_turn, p.held))
            .collect();
        self.job = Some(tokio::task::spawn_blocking(move || {
            let written = sink.write(&letters);
            (sink, pendings, written)
        }));
        Vec::new()
    }

    /// The running job ended with `result`.
    pub(super) fn finished(&mut self, result: Result<Job, JoinError>) -> Written {
        self.job = None;
        let letters = std::mem::take(&mut self.job_letters);
        let records = std::mem::take(&mut self.job_records);
        match result {
            Ok((sink, pendings, Ok(()))) => {
                self.sink = Some(sink);
                Written::Durable(pendings.into_iter().zip(letters).collect())
            }
            Ok((sink, pendings, Err(e))) => {
                self.sink = Some(sink);
                Written::Failed(
                    pendings,
                    format!("writing the dead-letter sink failed: {e}"),
                )
            }
            Err(e) => {
                tracing::error!("the dead-letter sink panicked: {e}");
                Written::Lost(
                    letters
                        .into_iter()
                        .zip(records)
                        .map(|(letter, (seq, key, holds_turn, held))| Lost {
                            seq,
                            key,
                            holds_turn,
                            held,
                            source: SourceName::new(&letter.source),
                            bytes: letter.data_bytes().map_or(0, |d| d.len()),
                        })
                        .collect(),
                )
            }
        }
    }
}
