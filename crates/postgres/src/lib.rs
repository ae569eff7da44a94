//! A PostgreSQL logical replication slot, decoded by wal2json, as a
//! shardline [`Source`].
//!
//! The slot is read by SQL polling: each round asks
//! `pg_logical_slot_peek_changes` for the transactions committed up to the
//! WAL flush position read just before (at most about
//! [`SlotConfig::max_changes`] rows; PostgreSQL always returns whole
//! transactions), and streams the rows — a large transaction is never held
//! whole in memory here. Every wal2json message becomes one input (BEGIN,
//! each change, COMMIT), in commit order.
//!
//! Nothing is consumed by reading. A transaction counts as done once its
//! COMMIT and everything read before it is settled (delivered or
//! dead-lettered); only then does the checkpoint move past it:
//!
//! - the forwarder's own checkpoint file (end LSN and transaction id,
//!   written atomically) is the source of truth — PostgreSQL can move a
//!   slot back after a crash, so on start and after every reconnection the
//!   slot is advanced to the checkpoint when it is behind;
//! - `pg_replication_slot_advance` follows, between rounds, so the server
//!   can release WAL;
//! - a checkpoint never falls inside a transaction.
//!
//! Transactions read but not yet settled are peeked again by the next
//! rounds; they are recognised by their end LSN and skipped, and a
//! transaction cut off by a lost connection is resumed after the rows
//! already read. When a round finds nothing new, the position moves to
//! the flush position it read up to (a heartbeat: WAL of other databases
//! or filtered tables does not pile up behind the slot).

//!
//! # Example
//!
//! Reading the slot `shardline` of a database, only the `public.orders`
//! table; here the server is not running, and opening says so:
//!
//! ```
//! use shardline_cdc::TableFilter;
//! use shardline_core::CheckpointFile;
//! use shardline_postgres::{CHECKPOINT_KIND, SlotConfig, SlotError, SlotSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let mut config = SlotConfig::new("postgres://app@127.0.0.1:1/shop", "shardline");
//! config.create_slot = true;
//! config.tables = TableFilter::parse("public.orders", "")?;
//! let checkpoint = CheckpointFile::new(dir.path().join("orders.checkpoint.json"), CHECKPOINT_KIND);
//!
//! match SlotSource::open(config, checkpoint).await {
//!     Err(SlotError::Postgres(e)) => assert!(e.to_string().contains("connect")),
//!     other => panic!("{other:?}"),
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod ledger;
mod source;
mod sql;
mod wal2json;

use std::time::Duration;

use shardline_core::SourceError;

pub use source::{STARTUP_CONNECT_WAIT, SlotConfig, SlotPosition, SlotSource, SlotStatus};

#[doc(no_inline)]
pub use shardline_core::Source;

/// The checkpoint file's kind: a tail checkpoint cannot be read as a slot's.
pub const CHECKPOINT_KIND: &str = "postgres";
/// Rows one round asks PostgreSQL for (`upto_nchanges`), beyond the rows
/// of transactions read and not yet settled. PostgreSQL checks the limit
/// only after each transaction, so a larger transaction still comes whole
/// (streamed).
pub const DEFAULT_MAX_CHANGES: usize = 10_000;
/// How long to wait after a round that found nothing new — Debezium's
/// `poll.interval.ms` default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Inputs handed to the pipeline at once at most.
pub const DEFAULT_BATCH_ROWS: usize = 1024;
/// The session's `statement_timeout` ([`SlotConfig::statement_timeout`]):
/// long enough for a round to decode a transaction of millions of rows,
/// short enough that a server that stopped answering is left within
/// minutes. PostgreSQL's own default is no limit.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Why the slot cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlotError {
    /// The server or the connection failed.
    #[error("PostgreSQL: {}", server_says(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The slot does not exist and is not to be created.
    #[error("replication slot {0:?} does not exist; give --create-slot to create it with wal2json")]
    NoSlot(String),
    #[error(
        "replication slot {slot:?} is gone, but changes were read from it up to {read_up_to} \
         (the checkpoint file or this run): a new slot would start at the current WAL position \
         and never read what was committed since; restore the slot, or give --accept-slot-gap with --create-slot to accept the gap"
    )]
    /// The slot is gone after changes were read from it.
    SlotGone {
        /// The slot.
        slot: String,
        /// How far changes were read.
        read_up_to: String,
    },
    /// The slot uses another output plugin than wal2json.
    #[error("replication slot {slot:?} uses the {plugin} plugin; shardline reads wal2json slots")]
    Plugin {
        /// The slot.
        slot: String,
        /// The plugin it uses.
        plugin: String,
    },
    /// The slot belongs to another database.
    #[error("replication slot {slot:?} belongs to database {found:?}, not {expected:?}")]
    Database {
        /// The slot.
        slot: String,
        /// What it names.
        found: String,
        /// What this run reads.
        expected: String,
    },
    /// `wal_level` is not `logical` (its value).
    #[error("wal_level is {0}; logical decoding needs wal_level = logical (and a restart)")]
    WalLevel(String),
    /// The checkpoint file was written for another slot.
    #[error("the checkpoint file is for slot {found:?}, not {expected:?}")]
    CheckpointSlot {
        /// What it names.
        found: String,
        /// What this run reads.
        expected: String,
    },
    /// No answer within the statement timeout and its grace period.
    #[error("no answer from PostgreSQL within {0:?}: the connection is taken as lost")]
    NoReply(Duration),
    /// The URL cannot be used.
    #[error("the PostgreSQL URL: {0}")]
    Url(String),
    /// wal2json sent something it should not have.
    #[error("wal2json sent {0}")]
    Protocol(String),
    /// The checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] shardline_core::CheckpointError),
}

/// The server's own words for an error it sent (`tokio_postgres` shows
/// only "db error"), with its SQLSTATE; a client-side error as it is.
fn server_says(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(": ");
                text.push_str(detail);
            }
            text
        }
        None => error.to_string(),
    }
}

impl From<SlotError> for SourceError {
    fn from(e: SlotError) -> Self {
        match e {
            SlotError::Checkpoint(e) => SourceError::Checkpoint(e),
            other => SourceError::Other(other.to_string()),
        }
    }
}
