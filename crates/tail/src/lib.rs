//! Following log files into a shardline pipeline.
//!
//! A [`TailSource`] watches one path or glob pattern and hands out its
//! lines in order, each with its [`TailPosition`]. It
//!
//! - follows appends, and picks up files that appear under a glob;
//! - follows rotation by rename (the renamed file is read to its end, kept
//!   open while it still grows, and let go after [`TailConfig::rotate_wait`]
//!   without new data) and by copytruncate (a file that shrinks or whose
//!   first bytes change is read again from its start);
//! - closes a glob's file that has been idle for
//!   [`TailConfig::close_inactive`], read to its end and settled (a dated
//!   archive the pattern still matches), keeping its place: it is opened
//!   again where it was when it changes, and forgotten once no longer
//!   matched;
//! - leaves alone compressed archives a glob matches (`app.log.2.gz`);
//! - joins multi-line events (a stack trace and its log line) when
//!   [`TailConfig::multi_line`] says how;
//! - recognises a file by device + inode and a fingerprint of its first
//!   [`FINGERPRINT_BYTES`] bytes, so a recycled inode is not taken for the
//!   old file;
//! - checkpoints, per file, only the lines whose records are settled
//!   ([`TailCheckpoints`]); on resume, a file renamed away before its lines
//!   settled is found among its siblings and read to its end, and a file
//!   truncated meanwhile is read from its start.
//!
//! Files are polled every [`TailConfig::poll_interval`] (as Vector and
//! Fluent Bit do where inotify is unavailable): reading never depends on
//! events that can be missed. Lines end at `\n` (a `\r` before it is
//! dropped); a line without a newline is handed out only when its file is
//! let go or a `--once` run reaches the end. A line longer than
//! [`TailConfig::max_line_bytes`] is cut there, and its position says how
//! many bytes were dropped, so the consumer can dead-letter it with that
//! reason.
//!
//! [`LinesSource`] reads the lines of a stream that cannot be read again
//! (stdin, a pipe), with nothing to checkpoint.
//!
//! # Example
//!
//! Following a log file from its start, settling what was read, and
//! resuming after it:
//!
//! ```
//! use std::sync::Arc;
//! use shardline_core::{CheckpointFile, Source};
//! use shardline_tail::{CHECKPOINT_KIND, StartAt, TailCheckpoints, TailConfig, TailSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let log = dir.path().join("access.log");
//! std::fs::write(&log, "first\nsecond\n")?;
//! let mut config = TailConfig::new(log.to_string_lossy());
//! config.start_at = StartAt::Beginning;
//! config.once = true;
//! let file = CheckpointFile::new(dir.path().join("tail.checkpoint.json"), CHECKPOINT_KIND);
//!
//! let mut source = TailSource::start(config.clone(), Arc::new(TailCheckpoints::fresh(file.clone())), false)?;
//! let mut settle = source.settler();
//! while let Some(batch) = source.read().await? {
//!     for input in batch {
//!         settle(vec![input.position]); // delivered: the checkpoint may pass it
//!     }
//! }
//! source.checkpoint().await?;
//! drop(source);
//!
//! // A new line, and a restart that resumes after what settled.
//! std::fs::write(&log, "first\nsecond\nthird\n")?;
//! let mut source = TailSource::start(config, Arc::new(TailCheckpoints::open(file)?), true)?;
//! let batch = source.read().await?.unwrap_or_default();
//! assert_eq!(batch.iter().map(|i| &i.data[..]).collect::<Vec<_>>(), [b"third"]);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod checkpoint;
mod identity;
mod lines;
mod multiline;
mod source;
mod tailer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use checkpoint::{CHECKPOINT_KIND, FileCheckpoint, TailCheckpoints};
pub use identity::{FINGERPRINT_BYTES, Fingerprint, Inode};
pub use lines::{LinePosition, LinesSource};
pub use multiline::{DEFAULT_MULTI_LINE_FLUSH, MultiLine, Preset, StartRule};
pub use source::{BATCHES_AHEAD, TailSource};
pub use tailer::is_glob;

/// Where reading starts in files found at start-up that the checkpoint
/// does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// At their beginning (`--once`, `--from-beginning`).
    Beginning,
    /// At their current end, as Kinesis Agent and Fluent Bit do.
    #[default]
    End,
}

/// How often files are looked at by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long a rotated file is kept open after its last new data by
/// default: Fluent Bit's `Rotate_Wait` default, 5 s — time for the writer
/// to reopen its log.
pub const DEFAULT_ROTATE_WAIT: Duration = Duration::from_secs(5);
/// How long a file matched by a glob may sit idle — read to its end,
/// everything from it settled — before it is closed by default: Filebeat's
/// `close_inactive` default, 5 min. Dated archives that a pattern still
/// matches then hold no descriptor and cost no reads.
pub const DEFAULT_CLOSE_INACTIVE: Duration = Duration::from_secs(300);
/// The longest line kept by default: 1 MiB, the largest record Kinesis
/// accepts (data + key, `PutRecords` API reference) — a longer line cannot
/// be one record.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
/// Lines and bytes handed out at most in one batch by default.
pub const DEFAULT_MAX_BATCH_LINES: usize = 4096;
/// Bytes handed out at most in one batch by default.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 1024 * 1024;

/// What to follow and how.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// A path or a glob pattern (`/var/log/nginx/*.log`).
    pub watch: String,
    /// Where a file never seen before is started.
    pub start_at: StartAt,
    /// How often files are checked for new lines, rotation and new matches.
    pub poll_interval: Duration,
    /// How long a rotated file is still read from its old name's descriptor.
    pub rotate_wait: Duration,
    /// With a glob pattern: a file idle this long, read to its end and
    /// settled, is closed; it keeps its place in the checkpoint and is
    /// opened again where it was when it grows (or is truncated). A plain
    /// path stays open.
    pub close_inactive: Duration,
    /// Read to the end of every file once, then end.
    pub once: bool,
    /// The longest line kept; the rest of a longer line is dropped and counted.
    pub max_line_bytes: usize,
    /// Lines handed out at most in one batch.
    pub max_batch_lines: usize,
    /// Bytes handed out at most in one batch.
    pub max_batch_bytes: usize,
    /// Join lines into multi-line events (a stack trace and the line
    /// logged before it); `None`: every line is one input.
    pub multi_line: Option<MultiLine>,
}

impl TailConfig {
    /// Follows `watch` with the defaults.
    pub fn new(watch: impl Into<String>) -> Self {
        TailConfig {
            watch: watch.into(),
            start_at: StartAt::default(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            rotate_wait: DEFAULT_ROTATE_WAIT,
            close_inactive: DEFAULT_CLOSE_INACTIVE,
            once: false,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_batch_lines: DEFAULT_MAX_BATCH_LINES,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            multi_line: None,
        }
    }
}

/// Where a line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailPosition {
    /// The file, as this process numbers them.
    pub file: u64,
    /// Bumped at each truncation of the file.
    pub generation: u32,
    /// The file's path when the line was read.
    pub path: Arc<Path>,
    /// The byte offset of the line's start.
    pub start: u64,
    /// The byte offset just past its newline.
    pub end: u64,
    /// 1-based line number; of the last line, for a multi-line event.
    pub line: u64,
    /// The first line's number: `line` unless this is a multi-line event.
    pub first_line: u64,
    /// Bytes of the line beyond `max_line_bytes` that were not kept.
    pub dropped: u64,
}

impl shardline_core::Position for TailPosition {
    fn describe(&self) -> BTreeMap<String, String> {
        let mut context = BTreeMap::new();
        context.insert("file".to_owned(), self.path.display().to_string());
        context.insert("line".to_owned(), self.first_line.to_string());
        if self.line != self.first_line {
            context.insert("last_line".to_owned(), self.line.to_string());
        }
        context.insert("offset".to_owned(), self.start.to_string());
        if self.dropped > 0 {
            context.insert("dropped_bytes".to_owned(), self.dropped.to_string());
        }
        context
    }
}

/// Why a file cannot be followed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TailError {
    /// The file does not exist.
    #[error("{0}: no such file")]
    NotFound(PathBuf),
    #[error(
        "{0}: permission denied; the user running shardline needs read access (e.g. `chmod 644 {0}`)"
    )]
    /// The file cannot be read by this user.
    PermissionDenied(PathBuf),
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        #[source]
        /// What failed underneath.
        source: std::io::Error,
    },
}
