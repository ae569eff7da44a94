//! What input becomes: the [`Process`] step and its [`Processed`] result.

use crate::record::Record;
use crate::source::Origin;

/// What became of one input.
#[derive(Debug)]
pub enum Processed {
    /// A record to send.
    Record(Record),
    /// Input that did not parse or failed validation: dead-lettered with
    /// this message and counted as invalid.
    Rejected(String),
    /// Nothing to send (a blank line); settled at once.
    Skip,
}

/// Turns input into records: parse, validate, mask, key. Runs on several
/// worker threads at once.
pub trait Process: Send + Sync + 'static {
    /// One input's bytes, and what its source knows of where it came from.
    fn process(&self, data: &[u8], origin: Origin<'_>) -> Processed;

    /// A run of inputs, in order: one result per input appended to `out`.
    /// The default calls [`Process::process`] for each; a processor
    /// overrides it to share work across the run — the log parsers write
    /// every record of a run into one buffer instead of one allocation
    /// per record.
    fn process_run<'a>(
        &self,
        inputs: &mut dyn Iterator<Item = (&'a [u8], Origin<'a>)>,
        out: &mut Vec<Processed>,
    ) {
        out.extend(inputs.map(|(data, origin)| self.process(data, origin)));
    }

    /// Whether inputs must be processed one after another, in read order
    /// (a decoder that carries a transaction from line to line). The
    /// pipeline then uses no worker threads.
    fn sequential(&self) -> bool {
        false
    }
}
