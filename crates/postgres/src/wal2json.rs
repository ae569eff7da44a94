//! Reading wal2json's output: the plugin options, and the rows of a round
//! turned into inputs (one per message: BEGIN, each change, COMMIT) and
//! settlement marks, skipping what an earlier round already handed out.
//! No I/O here.

use std::collections::VecDeque;

use serde::Deserialize;
use shardline_cdc::TableFilter;
use shardline_cdc::decode::{lsn_text, parse_lsn};
use shardline_core::Input;

use crate::SlotError;
use crate::ledger::{Mark, Opened};
use crate::source::SlotPosition;

/// The output plugin the slot must use.
pub(crate) const PLUGIN: &str = "wal2json";

/// wal2json options: one JSON document per message (format-version 2) with
/// the transaction id, commit time, LSNs and key columns on each, and
/// TRUNCATE too (wal2json's default `actions` leave it out). Logical
/// decoding messages (`pg_logical_emit_message`, other tools' heartbeats)
/// are not among the `actions`; wal2json 2.5 still sends a
/// non-transactional one at times (seen in CI), and such a message, which
/// carries no change, is passed over (see [`Reader::row`]).
const OPTIONS: [&str; 12] = [
    "format-version",
    "2",
    "include-xids",
    "1",
    "include-timestamp",
    "1",
    "include-lsn",
    "1",
    "include-pk",
    "1",
    "actions",
    "insert,update,delete,truncate",
];

/// The plugin options for a slot read with this table filter; the filter
/// is handed to wal2json, so other tables' changes never leave the server.
pub(crate) fn options(tables: &TableFilter) -> Vec<String> {
    let mut options: Vec<String> = OPTIONS.iter().map(|s| (*s).to_owned()).collect();
    let list = |patterns: &[shardline_cdc::TablePattern]| {
        patterns
            .iter()
            .map(|p| p.wal2json())
            .collect::<Vec<_>>()
            .join(",")
    };
    if !tables.include.is_empty() {
        options.push("add-tables".into());
        options.push(list(&tables.include));
    }
    if !tables.exclude.is_empty() {
        options.push("filter-tables".into());
        options.push(list(&tables.exclude));
    }
    options
}

/// One round of peeking.
#[derive(Debug)]
pub(crate) struct Round {
    /// The WAL position the round reads up to.
    pub(crate) upto: u64,
    /// When the round began (its flush position was read just after).
    pub(crate) started_ms: i64,
    /// Rows asked for.
    pub(crate) limit: usize,
    pub(crate) rows: usize,
    /// Rows handed out (not read before).
    pub(crate) new_rows: usize,
}

impl Round {
    /// The round returned fewer rows than asked for: it read everything
    /// committed up to `upto`.
    pub(crate) fn complete(&self) -> bool {
        self.rows < self.limit
    }
}

/// A transaction being read.
#[derive(Debug, Clone)]
struct Transaction {
    end: u64,
    /// Rows (messages) of it handed out so far, BEGIN included.
    emitted: usize,
    /// Rows of it to pass over: read before a lost connection.
    skip_first: usize,
    /// Read entirely before: skip it all.
    skip_all: bool,
    rows: usize,
    /// Whether its first input of this run was announced ([`Opened`]).
    announced: bool,
}

/// What a row was, when it was not simply handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Row {
    /// Handed out, or part of a transaction being passed over.
    Read,
    /// The BEGIN of a transaction read before and not yet settled: it is
    /// passed over whole.
    TransactionSkipped,
    /// A logical decoding message outside any transaction: no change.
    MessagePassedOver,
    /// A COMMIT: once everything up to it settles, the slot may move here.
    Committed(Mark),
}

/// The reading state across rounds: what was handed out, what is open.
#[derive(Debug)]
pub(crate) struct Reader {
    current: Option<Transaction>,
    /// A transaction cut off by a lost connection: its end and rows read.
    cut: Option<(u64, usize)>,
    /// End of the last transaction (or round) read: anything ending at or
    /// before it was read already.
    read_through: u64,
    /// Transactions read and not yet confirmed in the slot: end, rows.
    unconfirmed: VecDeque<(u64, usize)>,
    next_seq: u64,
    /// Inputs read and not yet handed to the pipeline.
    pending: Vec<Input<SlotPosition>>,
    /// Transactions whose first input of this run was just handed out.
    opened: Vec<Opened>,
}

impl Reader {
    /// Reading that resumes after `read_through` (the checkpoint).
    pub(crate) fn new(read_through: u64) -> Self {
        Reader {
            current: None,
            cut: None,
            read_through,
            unconfirmed: VecDeque::new(),
            next_seq: 1,
            pending: Vec::new(),
            opened: Vec::new(),
        }
    }

    /// Resumes the transaction ending at `end` after its first `rows`
    /// messages (settled before a restart), when a round reads it.
    pub(crate) fn resume_after(&mut self, end: u64, rows: usize) {
        self.cut = Some((end, rows));
    }

    /// Transactions whose first input of this run was handed out since
    /// the last call.
    pub(crate) fn take_opened(&mut self) -> Vec<Opened> {
        std::mem::take(&mut self.opened)
    }

    pub(crate) fn read_through(&self) -> u64 {
        self.read_through
    }

    /// Inputs read and not yet handed out.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn take_pending(&mut self) -> Vec<Input<SlotPosition>> {
        std::mem::take(&mut self.pending)
    }

    /// Rows of transactions read and not yet confirmed in the slot.
    pub(crate) fn unconfirmed_rows(&self) -> usize {
        self.unconfirmed.iter().map(|(_, rows)| rows).sum()
    }

    /// The slot is confirmed up to `lsn`.
    pub(crate) fn confirmed(&mut self, lsn: u64) {
        while self.unconfirmed.front().is_some_and(|(end, _)| *end <= lsn) {
            self.unconfirmed.pop_front();
        }
    }

    /// The connection was lost: the transaction being read is resumed,
    /// after the rows already handed out, when a later round reads it.
    pub(crate) fn connection_lost(&mut self) {
        if let Some(txn) = self.current.take() {
            self.cut = Some((txn.end, txn.emitted));
        }
    }

    /// One row of `round`.
    pub(crate) fn row(
        &mut self,
        round: &mut Round,
        lsn: u64,
        xid: Option<String>,
        data: Vec<u8>,
    ) -> Result<Row, SlotError> {
        let action = action(&data)?;
        round.rows += 1;
        let mut noted = Row::Read;
        if action == b'B' {
            let end = next_lsn(&data)?;
            // The cut transaction comes after those read whole before it
            // (commit order): keep the cut until its own BEGIN, and drop it
            // only once a later transaction shows it is not coming.
            let skip_first = match self.cut {
                Some((cut_end, rows)) if cut_end == end => {
                    self.cut = None;
                    rows
                }
                Some((cut_end, _)) if cut_end < end => {
                    self.cut = None;
                    0
                }
                _ => 0,
            };
            let skip_all = end <= self.read_through;
            if skip_all {
                noted = Row::TransactionSkipped;
            }
            self.current = Some(Transaction {
                end,
                // What was handed out before counts: a cut during the
                // skipped part keeps it.
                emitted: skip_first,
                skip_first,
                skip_all,
                rows: 0,
                announced: false,
            });
        }
        if action == b'M' && self.current.is_none() {
            // A non-transactional logical message: no change, no
            // transaction to settle; the round's heartbeat covers its LSN.
            return Ok(if lsn > self.read_through {
                Row::MessagePassedOver
            } else {
                Row::Read
            });
        }
        let Some(txn) = self.current.as_mut() else {
            return Err(SlotError::Protocol(format!(
                "a message outside a transaction: {}",
                String::from_utf8_lossy(&data)
                    .chars()
                    .take(80)
                    .collect::<String>()
            )));
        };
        txn.rows += 1;
        let commit_at = if action == b'C' {
            commit_ms(&data)
        } else {
            None
        };
        if !txn.skip_all && txn.rows > txn.skip_first {
            round.new_rows += 1;
            txn.emitted = txn.rows;
            let seq = self.next_seq;
            self.next_seq += 1;
            if !txn.announced {
                txn.announced = true;
                self.opened.push(Opened {
                    first_seq: seq,
                    first_row: txn.rows as u64,
                    end: txn.end,
                });
            }
            self.pending.push(Input {
                data: data.into(),
                position: SlotPosition {
                    seq,
                    lsn,
                    xid: xid.clone(),
                },
            });
        }
        if action == b'C' {
            let (end, rows, skipped) = (txn.end, txn.rows, txn.skip_all);
            self.current = None;
            if !skipped {
                self.read_through = self.read_through.max(end);
                self.unconfirmed.push_back((end, rows));
                return Ok(Row::Committed(Mark {
                    seq: self.next_seq - 1,
                    lsn: end,
                    xid,
                    at_ms: commit_at,
                }));
            }
        }
        Ok(noted)
    }

    /// A round has returned all its rows. When it read everything committed
    /// up to its position, that position is a mark too (a heartbeat: WAL of
    /// other databases or filtered tables does not pile up behind the
    /// slot).
    pub(crate) fn end_round(&mut self, round: &Round) -> Result<Option<Mark>, SlotError> {
        if let Some(txn) = self.current.take() {
            return Err(SlotError::Protocol(format!(
                "a transaction (ending {}) without its COMMIT",
                lsn_text(txn.end)
            )));
        }
        if round.complete() && round.upto > self.read_through {
            self.read_through = round.upto;
            return Ok(Some(Mark {
                seq: self.next_seq - 1,
                lsn: round.upto,
                xid: None,
                at_ms: Some(round.started_ms),
            }));
        }
        Ok(None)
    }
}

/// A COMMIT's commit time (`include-timestamp`), in ms since the epoch.
fn commit_ms(data: &[u8]) -> Option<i64> {
    #[derive(Deserialize)]
    struct Commit {
        timestamp: Option<String>,
    }
    let commit: Commit = serde_json::from_slice(data).ok()?;
    shardline_cdc::decode::postgres_time_millis(&commit.timestamp?)
}

/// The message's action letter: wal2json writes `{"action":"X"` first.
/// The rest of a change may be any bytes (an `SQL_ASCII` database's text
/// is not checked): that is for the decoder to judge, not the reader.
fn action(data: &[u8]) -> Result<u8, SlotError> {
    if let Some(rest) = data.strip_prefix(b"{\"action\":\"")
        && let Some(&letter) = rest.first()
    {
        return Ok(letter);
    }
    #[derive(Deserialize)]
    struct Head {
        action: String,
    }
    let head: Head = serde_json::from_str(&String::from_utf8_lossy(data)).map_err(|e| {
        SlotError::Protocol(format!("a message that is not wal2json format 2 ({e})"))
    })?;
    head.action
        .bytes()
        .next()
        .ok_or_else(|| SlotError::Protocol("an empty action".into()))
}

/// The end LSN of the transaction a BEGIN opens (`nextlsn`, with
/// `include-lsn`).
fn next_lsn(data: &[u8]) -> Result<u64, SlotError> {
    #[derive(Deserialize)]
    struct Begin {
        nextlsn: Option<String>,
    }
    let begin: Begin = serde_json::from_slice(data)
        .map_err(|e| SlotError::Protocol(format!("a BEGIN that is not JSON ({e})")))?;
    begin.nextlsn.as_deref().and_then(parse_lsn).ok_or_else(|| {
        SlotError::Protocol(format!(
            "a BEGIN without nextlsn: {}",
            String::from_utf8_lossy(data)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_begin_positions() {
        assert_eq!(action(br#"{"action":"B","xid":1}"#).unwrap(), b'B');
        assert_eq!(action(br#"{ "xid": 1, "action": "C" }"#).unwrap(), b'C');
        assert!(action(b"not json").is_err());
        assert_eq!(
            next_lsn(br#"{"action":"B","lsn":"0/16B3748","nextlsn":"0/16B3780"}"#).unwrap(),
            0x16B_3780
        );
        assert!(next_lsn(br#"{"action":"B"}"#).is_err());
        assert_eq!(
            commit_ms(br#"{"action":"C","timestamp":"2024-01-15 10:30:45.123456+00"}"#),
            Some(1_705_314_645_123)
        );
    }

    #[test]
    fn table_filters_become_wal2json_options() {
        let tables = TableFilter::parse("public.orders,users", "audit.*").unwrap();
        let options = options(&tables);
        let add = options.iter().position(|o| o == "add-tables").unwrap();
        assert_eq!(options[add + 1], "public.orders,*.users");
        let filter = options.iter().position(|o| o == "filter-tables").unwrap();
        assert_eq!(options[filter + 1], "audit.*");
    }

    fn round() -> Round {
        Round {
            upto: 0x500,
            started_ms: 0,
            limit: 100,
            rows: 0,
            new_rows: 0,
        }
    }

    /// A transaction of one insert, ending at `end`.
    fn transaction(end: u64) -> Vec<(u64, Vec<u8>)> {
        vec![
            (
                end - 0x30,
                format!(r#"{{"action":"B","xid":7,"nextlsn":"{}"}}"#, lsn_text(end)).into_bytes(),
            ),
            (end - 0x20, br#"{"action":"I","xid":7}"#.to_vec()),
            (end - 0x10, br#"{"action":"C","xid":7}"#.to_vec()),
        ]
    }

    #[test]
    fn a_transaction_read_before_is_passed_over_and_a_cut_one_resumed() {
        let mut reader = Reader::new(0);
        let mut first = round();
        let rows = transaction(0x100);
        // The connection drops after BEGIN and the insert were handed out.
        for (lsn, data) in rows.iter().take(2) {
            reader
                .row(&mut first, *lsn, Some("7".into()), data.clone())
                .unwrap();
        }
        assert_eq!(reader.take_pending().len(), 2);
        reader.connection_lost();
        // The next round reads it again: only the COMMIT is new.
        let mut second = round();
        let mut marks = Vec::new();
        for (lsn, data) in &rows {
            if let Row::Committed(mark) = reader
                .row(&mut second, *lsn, Some("7".into()), data.clone())
                .unwrap()
            {
                marks.push(mark);
            }
        }
        let pending = reader.take_pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].position.seq, 3);
        assert_eq!(
            marks.iter().map(|m| (m.seq, m.lsn)).collect::<Vec<_>>(),
            [(3, 0x100)]
        );
        assert_eq!(reader.unconfirmed_rows(), 3);
        // A round that reads it once more passes it over whole.
        let mut third = round();
        let begin = reader
            .row(&mut third, rows[0].0, Some("7".into()), rows[0].1.clone())
            .unwrap();
        assert_eq!(begin, Row::TransactionSkipped);
        for (lsn, data) in rows.iter().skip(1) {
            reader
                .row(&mut third, *lsn, Some("7".into()), data.clone())
                .unwrap();
        }
        assert_eq!(reader.pending(), 0);
        assert_eq!(third.new_rows, 0);
        // Complete and past what was read: the round's position is a mark.
        let heartbeat = reader.end_round(&third).unwrap().unwrap();
        assert_eq!((heartbeat.seq, heartbeat.lsn), (3, 0x500));
        reader.confirmed(0x500);
        assert_eq!(reader.unconfirmed_rows(), 0);
    }

    #[test]
    fn a_cut_transaction_is_resumed_after_the_ones_read_before_it() {
        // Transaction A is read whole (not yet confirmed), then B is cut
        // after its BEGIN and first insert by a lost connection.
        let mut reader = Reader::new(0);
        let mut first = round();
        let a = transaction(0x100);
        let b = transaction(0x200);
        for (lsn, data) in a.iter().chain(b.iter().take(2)) {
            reader
                .row(&mut first, *lsn, Some("7".into()), data.clone())
                .unwrap();
        }
        assert_eq!(reader.take_pending().len(), 5);
        reader.connection_lost();
        // The next round peeks from the slot again: A, then B whole. A is
        // passed over, and of B only its COMMIT is new.
        let mut second = round();
        for (lsn, data) in a.iter().chain(b.iter()) {
            reader
                .row(&mut second, *lsn, Some("7".into()), data.clone())
                .unwrap();
        }
        let pending = reader.take_pending();
        assert_eq!(
            pending.iter().map(|i| i.position.lsn).collect::<Vec<_>>(),
            [0x200 - 0x10],
            "only B's COMMIT is new"
        );
        assert_eq!(second.new_rows, 1);
    }

    #[test]
    fn a_round_that_ends_inside_a_transaction_is_an_error() {
        let mut reader = Reader::new(0);
        let mut round = round();
        let rows = transaction(0x100);
        reader
            .row(&mut round, rows[0].0, None, rows[0].1.clone())
            .unwrap();
        assert!(matches!(
            reader.end_round(&round),
            Err(SlotError::Protocol(_))
        ));
        // The transaction is dropped with the round: a change now is
        // outside any transaction.
        assert!(matches!(
            reader.row(&mut round, 1, None, br#"{"action":"I"}"#.to_vec()),
            Err(SlotError::Protocol(_))
        ));
    }
}
