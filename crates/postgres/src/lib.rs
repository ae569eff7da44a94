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

mod slot;

pub use slot::{
    CHECKPOINT_KIND, DEFAULT_BATCH_ROWS, DEFAULT_MAX_CHANGES, DEFAULT_POLL_INTERVAL, SlotConfig,
    SlotError, SlotPosition, SlotSource, SlotStatus,
};

#[doc(no_inline)]
pub use shardline_core::Source;
