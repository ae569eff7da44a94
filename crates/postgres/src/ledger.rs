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
}

impl Ledger {
    /// A ledger that starts at a mark already reached (the checkpoint).
    pub(crate) fn starting_at(reached: Option<Mark>) -> Self {
        Ledger {
            seq: 0,
            marks: VecDeque::new(),
            reached,
        }
    }

    /// A new point to reach, after every mark pushed before.
    pub(crate) fn push(&mut self, mark: Mark) {
        self.marks.push_back(mark);
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
