//! Strict ordering: one key's records leave the producer in the order they
//! came, through retries.
//!
//! One record of a key is *active* — ready, in flight or waiting for a
//! retry — and the key's later records wait their turn. With aggregation,
//! the active record's aggregate also takes the waiting records that fit
//! into it (they become active too): an aggregate succeeds or fails as a
//! whole, so they stay in order, and a key's records are never in two
//! entries of one request. The next waiting record goes when every active
//! one has left.

use std::collections::VecDeque;

use foldhash::HashMap;
use shardline_core::PartitionKey;

/// What the turns need of a queued record.
pub(crate) trait HoldsTurn {
    fn key(&self) -> &PartitionKey;
    /// Marks the record as one of its key's active ones, or not.
    fn set_holds_turn(&mut self, holds: bool);
}

/// One key's place in the producer.
#[derive(Debug)]
struct Turn<T> {
    active: usize,
    waiting: VecDeque<T>,
}

/// The keys with a record in the producer, and the later records of each
/// waiting for their turn.
#[derive(Debug)]
pub(crate) struct KeyTurns<T> {
    keys: HashMap<PartitionKey, Turn<T>>,
}

impl<T> Default for KeyTurns<T> {
    fn default() -> Self {
        KeyTurns {
            keys: HashMap::default(),
        }
    }
}

impl<T: HoldsTurn> KeyTurns<T> {
    /// A record arrives: it becomes its key's active record and is handed
    /// back to go out, or waits behind the key's active one.
    pub(crate) fn admit(&mut self, mut record: T) -> Option<T> {
        if let Some(turn) = self.keys.get_mut(record.key()) {
            turn.waiting.push_back(record);
            return None;
        }
        self.keys.insert(
            record.key().clone(),
            Turn {
                active: 1,
                waiting: VecDeque::new(),
            },
        );
        record.set_holds_turn(true);
        Some(record)
    }

    /// An active record of `key` left the producer. Returns the key's next
    /// record, now active, when none of its active ones is left inside.
    pub(crate) fn leave(&mut self, key: &PartitionKey) -> Option<T> {
        let turn = self.keys.get_mut(key)?;
        if turn.active > 1 {
            // Records of its aggregate are still inside.
            turn.active -= 1;
            return None;
        }
        match turn.waiting.pop_front() {
            Some(mut next) => {
                next.set_holds_turn(true);
                Some(next)
            }
            None => {
                self.keys.remove(key);
                None
            }
        }
    }

    /// Puts an active record back at the front of its key's waiting line
    /// (its aggregate failed and another of the key's records goes out
    /// alone first). When it is the key's only active record it cannot
    /// wait for itself: it is handed back to go out again.
    pub(crate) fn wait_again(&mut self, mut record: T) -> Option<T> {
        match self.keys.get_mut(record.key()) {
            Some(turn) if turn.active > 1 => {
                turn.active -= 1;
                record.set_holds_turn(false);
                turn.waiting.push_front(record);
                None
            }
            _ => Some(record),
        }
    }

    /// The first record waiting behind `key`'s active ones, if `fits` says
    /// it may join them now (the same aggregate): it becomes active.
    pub(crate) fn pull_if(
        &mut self,
        key: &PartitionKey,
        fits: impl FnOnce(&T) -> bool,
    ) -> Option<T> {
        let turn = self.keys.get_mut(key)?;
        if !turn.waiting.front().is_some_and(fits) {
            return None;
        }
        let mut next = turn.waiting.pop_front()?;
        next.set_holds_turn(true);
        turn.active += 1;
        Some(next)
    }

    /// Whether no record is waiting for a turn.
    pub(crate) fn none_waiting(&self) -> bool {
        self.keys.values().all(|turn| turn.waiting.is_empty())
    }

    /// Every waiting record, and no turns left (the shutdown deadline).
    pub(crate) fn drain_waiting(&mut self) -> Vec<T> {
        self.keys
            .drain()
            .flat_map(|(_, turn)| turn.waiting)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Queued {
        key: PartitionKey,
        n: u32,
        holds_turn: bool,
    }

    impl HoldsTurn for Queued {
        fn key(&self) -> &PartitionKey {
            &self.key
        }
        fn set_holds_turn(&mut self, holds: bool) {
            self.holds_turn = holds;
        }
    }

    fn queued(key: &str, n: u32) -> Queued {
        Queued {
            key: PartitionKey::new_or_hashed(key),
            n,
            holds_turn: false,
        }
    }

    #[test]
    fn a_keys_records_go_one_at_a_time_in_order() {
        let mut turns = KeyTurns::default();
        let first = turns.admit(queued("a", 1)).unwrap();
        assert!(first.holds_turn);
        assert!(turns.admit(queued("a", 2)).is_none());
        assert!(turns.admit(queued("a", 3)).is_none());
        // Another key is not held up.
        assert!(turns.admit(queued("b", 1)).is_some());
        assert!(!turns.none_waiting());
        let second = turns.leave(&first.key).unwrap();
        assert_eq!((second.n, second.holds_turn), (2, true));
        let third = turns.leave(&second.key).unwrap();
        assert_eq!(third.n, 3);
        assert!(turns.leave(&third.key).is_none());
        assert!(turns.none_waiting());
        // The key has no turn left: its next record goes at once.
        assert!(turns.admit(queued("a", 4)).is_some());
    }

    #[test]
    fn records_pulled_into_an_aggregate_leave_together_or_wait_again() {
        let mut turns = KeyTurns::default();
        let first = turns.admit(queued("a", 1)).unwrap();
        for n in 2..=4 {
            assert!(turns.admit(queued("a", n)).is_none());
        }
        // The aggregate takes 2 and 3, not 4.
        let second = turns.pull_if(&first.key, |q| q.n < 4).unwrap();
        let third = turns.pull_if(&first.key, |q| q.n < 4).unwrap();
        assert!(turns.pull_if(&first.key, |q| q.n < 4).is_none());
        // It failed: 2 and 3 wait again, in order, ahead of 4; 1 retries.
        assert!(turns.wait_again(third).is_none());
        assert!(turns.wait_again(second).is_none());
        let alone = turns.wait_again(first);
        assert_eq!(
            alone.map(|q| q.n),
            Some(1),
            "the last active one goes again"
        );
        let next = turns.leave(&PartitionKey::new_or_hashed("a")).unwrap();
        assert_eq!(next.n, 2);
        assert_eq!(
            turns
                .drain_waiting()
                .iter()
                .map(|q| q.n)
                .collect::<Vec<_>>(),
            [3, 4]
        );
    }
}
