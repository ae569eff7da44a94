//! A record inside the producer, with its delivery history, and the
//! requests the dispatcher takes besides records.

use std::time::{Instant, SystemTime};

use shardline_core::{DeadLetter, PartitionKey, Record, Reply};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::batcher::Queued;
use crate::ordering::HoldsTurn;

/// The queue room a record holds until it leaves the producer.
#[derive(Debug)]
#[expect(
    dead_code,
    reason = "held only for their Drop, which returns the room to the queue"
)]
pub(crate) struct Permits {
    pub(crate) records: OwnedSemaphorePermit,
    pub(crate) bytes: OwnedSemaphorePermit,
}

/// A record inside the producer, with its delivery history.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) record: Record,
    pub(crate) seq: u64,
    pub(crate) reply: Option<Reply>,
    _permits: Permits,
    pub(crate) attempts: u32,
    pub(crate) first_attempt: Option<SystemTime>,
    pub(crate) last_attempt: Option<SystemTime>,
    pub(crate) last_error: Option<(Option<String>, String)>,
    /// Attempts whose outcome is unknown (timeout, lost connection): each
    /// may have stored a copy.
    pub(crate) unknown_attempts: u32,
    /// When it (last) became ready to go.
    ready_since: Instant,
    /// A record a source rejected: goes straight to the dead-letter sink
    /// with this letter.
    pub(crate) rejected: Option<Box<DeadLetter>>,
    /// With strict ordering: it is one of its key's active records (see
    /// [`crate::ordering`]), so its leaving lets the next one go.
    pub(crate) holds_turn: bool,
    /// Its retries are used up and it is held (counted in the sink's
    /// `held_records` until it leaves).
    pub(crate) held: bool,
    /// Attempts refused by a shard the producer paces, that spent no retry
    /// (at most [`PACED_THROTTLES_FREE`]).
    paced_throttles: u8,
    /// Attempts stored in a shard that does not hold its key, that spent
    /// no retry (at most [`WRONG_SHARDS_FREE`]).
    wrong_shards: u8,
    /// Copies stored in a shard that does not hold its key: a consumer
    /// that does not filter by hash key range sees them.
    stored_outside: u32,
}

/// Attempts stored in a shard that does not hold the key that spend no
/// retry, per record. Each reshard the producer had not seen yet can cost
/// a record one: past this many the shard map is not catching up, and the
/// retry policy bounds how long the record is tried.
pub(crate) const WRONG_SHARDS_FREE: u8 = 4;

/// Throttles by a paced shard that spend no retry, per record. A shard
/// paced just under its capacity refuses a small share of entries, and the
/// same record ten times running only when the shard refuses nearly
/// everything (a fault, a key far hotter than a shard): past this, a
/// throttle spends a retry as any failure does, so the retry policy still
/// bounds how long a record is tried.
pub(crate) const PACED_THROTTLES_FREE: u8 = 10;

impl Pending {
    /// A record handed over at `now` (one clock reading serves a group).
    pub(crate) fn new(
        record: Record,
        seq: u64,
        reply: Reply,
        permits: Permits,
        now: Instant,
    ) -> Self {
        Pending {
            record,
            seq,
            reply: Some(reply),
            _permits: permits,
            attempts: 0,
            first_attempt: None,
            last_attempt: None,
            last_error: None,
            unknown_attempts: 0,
            ready_since: now,
            rejected: None,
            holds_turn: false,
            held: false,
            paced_throttles: 0,
            wrong_shards: 0,
            stored_outside: 0,
        }
    }

    /// A record a source rejected, to be written to the dead-letter sink as
    /// `letter` says.
    pub(crate) fn rejected(
        record: Record,
        letter: DeadLetter,
        seq: u64,
        reply: Reply,
        permits: Permits,
        now: Instant,
    ) -> Self {
        let mut pending = Pending::new(record, seq, reply, permits, now);
        pending.rejected = Some(Box::new(letter));
        pending
    }

    pub(crate) fn into_record(self) -> Record {
        self.record
    }

    /// An attempt starts now.
    pub(crate) fn attempt(&mut self, at: SystemTime) {
        self.attempts += 1;
        self.first_attempt.get_or_insert(at);
        self.last_attempt = Some(at);
    }

    /// Its attempt was throttled by a shard the producer paces: unless it
    /// has been [`PACED_THROTTLES_FREE`] times already, the attempt does
    /// not count against its retries (it waits for the shard's tokens
    /// instead). Whether it was free.
    pub(crate) fn paced_throttle(&mut self) -> bool {
        if self.paced_throttles >= PACED_THROTTLES_FREE {
            return false;
        }
        self.paced_throttles += 1;
        self.attempts = self.attempts.saturating_sub(1);
        true
    }

    /// Its attempt was stored in a shard that does not hold its key (its
    /// aggregate was made for a shard since split or merged): unless it
    /// has been [`WRONG_SHARDS_FREE`] times already, the attempt does not
    /// count against its retries. Whether it was free.
    pub(crate) fn wrong_shard(&mut self) -> bool {
        if self.wrong_shards >= WRONG_SHARDS_FREE {
            return false;
        }
        self.wrong_shards += 1;
        self.attempts = self.attempts.saturating_sub(1);
        true
    }

    /// A copy of it is stored in a shard that does not hold its key.
    pub(crate) fn stored_outside_key_range(&mut self) {
        self.stored_outside += 1;
    }

    /// Copies of it that may be stored besides the one delivered: attempts
    /// whose outcome was unknown, and copies stored in a shard that does
    /// not hold its key.
    pub(crate) fn extra_copies(&self) -> u32 {
        self.unknown_attempts + self.stored_outside
    }

    /// An attempt failed with `code` and `message`; `outcome_unknown`: the
    /// service may have stored it anyway.
    pub(crate) fn failed(&mut self, code: Option<String>, message: &str, outcome_unknown: bool) {
        self.unknown_attempts += u32::from(outcome_unknown);
        self.last_error = Some((code, message.to_owned()));
    }
}

impl HoldsTurn for Pending {
    fn key(&self) -> &PartitionKey {
        &self.record.partition_key
    }

    fn set_holds_turn(&mut self, holds: bool) {
        self.holds_turn = holds;
    }
}

impl Queued for Pending {
    fn record(&self) -> &Record {
        &self.record
    }

    fn ready_since(&self) -> Instant {
        self.ready_since
    }

    fn set_ready_since(&mut self, at: Instant) {
        self.ready_since = at;
    }
}

/// Requests to the dispatcher other than records.
#[derive(Debug)]
pub(crate) enum Control {
    Flush {
        up_to: u64,
        done: oneshot::Sender<()>,
    },
    Shutdown {
        deadline: Instant,
        done: oneshot::Sender<()>,
    },
}
