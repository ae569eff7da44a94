//! The settlement ledger: which points of the WAL reading may be confirmed
//! up to, once everything read before them is settled, and the checkpoint
//! file's state.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// The checkpoint file's state (kind [`crate::CHECKPOINT_KIND`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub(crate) slot: String,
    /// End LSN of the last settled transaction (or of a heartbeat).
    pub(crate) lsn: String,
    /// Its transaction id; none for a heartbeat.
    pub(crate) xid: Option<String>,
    /// The transaction after `lsn`, when its first messages are settled
    /// and the rest not yet: a restart resumes it after them instead of
    /// sending it again whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) partial: Option<SavedPartial>,
}

/// The first `rows` messages (its BEGIN included) of the transaction that
/// ends at `end` are settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedPartial {
    pub(crate) end: String,
    pub(crate) rows: u64,
}

/// Where a transaction's inputs begin in this run: the first input handed
/// out for it (sequence number) is its message number `first_row` (1-based,
/// BEGIN is 1); its inputs are numbered on from there without a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opened {
    pub(crate) first_seq: u64,
    pub(crate) first_row: u64,
    pub(crate) end: u64,
}

/// A point reading may be confirmed up to, once every input up to `seq`
/// is settled: a transaction's end, or a round's flush position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) seq: u64,
    pub(crate) lsn: u64,
    pub(crate) xid: Option<String>,
    /// When the WAL up to `lsn` was written, in ms since the epoch: the
    /// transaction's commit time, or when a round read the flush position.
    pub(crate) at_ms: Option<i64>,
}

/// What the settler and the source share: how far input is settled, and
/// the marks not yet reached.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Every input up to this sequence number is settled.
    seq: u64,
    marks: VecDeque<Mark>,
    /// The last mark reached.
    reached: Option<Mark>,
    /// Transactions handed out and not yet reached, in order.
    opened: VecDeque<Opened>,
}

impl Ledger {
    /// A ledger that starts at a mark already reached (the checkpoint).
    pub(crate) fn starting_at(reached: Option<Mark>) -> Self {
        Ledger {
            seq: 0,
            marks: VecDeque::new(),
            reached,
            opened: VecDeque::new(),
        }
    }

    /// A new point to reach, after every mark pushed before.
    pub(crate) fn push(&mut self, mark: Mark) {
        self.marks.push_back(mark);
    }

    /// A transaction's inputs begin being handed out.
    pub(crate) fn open(&mut self, opened: Opened) {
        self.opened.push_back(opened);
    }

    /// The transaction after the last mark reached, if its first messages
    /// are settled: its end and how many of its messages.
    pub(crate) fn partial(&mut self) -> Option<(u64, u64)> {
        self.pop_reached();
        let reached = self.reached.as_ref().map_or(0, |m| m.lsn);
        while self.opened.front().is_some_and(|o| o.end <= reached) {
            self.opened.pop_front();
        }
        let open = self.opened.front()?;
        (open.first_seq <= self.seq)
            .then(|| (open.end, open.first_row + (self.seq - open.first_seq)))
    }

    /// Every input up to `seq` is settled.
    pub(crate) fn settle(&mut self, seq: u64) {
        self.seq = seq;
        self.pop_reached();
    }

    /// The last mark reached.
    pub(crate) fn reached(&mut self) -> Option<&Mark> {
        self.pop_reached();
        self.reached.as_ref()
    }

    fn pop_reached(&mut self) {
        while self.marks.front().is_some_and(|m| m.seq <= self.seq) {
            self.reached = self.marks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_core::CheckpointFile;

    /// The golden file of the slot checkpoint's format, version 1
    /// (`fixtures/checkpoints/README.md`).
    fn golden() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/checkpoints/postgres-v1.json")
    }

    fn state() -> Saved {
        Saved {
            slot: "shardline".to_owned(),
            lsn: "0/16B3780".to_owned(),
            xid: Some("748".to_owned()),
            partial: None,
        }
    }

    #[test]
    fn a_version_1_checkpoint_is_read_back() {
        let file = CheckpointFile::new(golden(), crate::CHECKPOINT_KIND);
        assert_eq!(file.load::<Saved>().unwrap(), Some(state()));
    }

    #[test]
    fn the_same_state_is_written_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        CheckpointFile::new(&path, crate::CHECKPOINT_KIND)
            .save(&state())
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::fs::read_to_string(golden()).unwrap()
        );
    }

    #[test]
    fn a_transaction_settled_in_part_says_how_many_of_its_messages() {
        let mut ledger = Ledger::default();
        // T1 (inputs 1..=3) ends at 100; T2 starts at input 4 and ends at
        // 200; T3 was resumed after 5 messages: input 9 is its 6th.
        for opened in [
            Opened {
                first_seq: 1,
                first_row: 1,
                end: 100,
            },
            Opened {
                first_seq: 4,
                first_row: 1,
                end: 200,
            },
            Opened {
                first_seq: 9,
                first_row: 6,
                end: 300,
            },
        ] {
            ledger.open(opened);
        }
        ledger.push(Mark {
            seq: 3,
            lsn: 100,
            xid: None,
            at_ms: None,
        });
        ledger.push(Mark {
            seq: 8,
            lsn: 200,
            xid: None,
            at_ms: None,
        });
        assert_eq!(ledger.partial(), None);
        ledger.settle(2);
        assert_eq!(ledger.partial(), Some((100, 2)));
        ledger.settle(3);
        assert_eq!(ledger.partial(), None, "T1 is whole, T2 not begun");
        ledger.settle(6);
        assert_eq!(ledger.partial(), Some((200, 3)));
        ledger.settle(10);
        assert_eq!(ledger.reached().map(|m| m.lsn), Some(200));
        assert_eq!(ledger.partial(), Some((300, 7)));
    }

    #[test]
    fn marks_are_reached_only_when_everything_before_settled() {
        let mut ledger = Ledger::default();
        for (seq, lsn) in [(3, 100), (5, 200), (5, 250)] {
            ledger.push(Mark {
                seq,
                lsn,
                xid: None,
                at_ms: None,
            });
        }
        ledger.settle(2);
        assert_eq!(ledger.reached(), None);
        ledger.settle(4);
        assert_eq!(ledger.reached().map(|m| m.lsn), Some(100));
        ledger.settle(5);
        assert_eq!(ledger.reached().map(|m| m.lsn), Some(250));
        assert!(ledger.marks.is_empty());
    }
}
