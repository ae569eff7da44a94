//! The slot reader: connection, rounds of peeked changes, settled marks,
//! checkpoint file and slot advance.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::Stream;
use serde::{Deserialize, Serialize};
use shardline_cdc::TableFilter;
use shardline_cdc::decode::{lsn_text, parse_lsn};
use shardline_core::{CheckpointFile, Input, Position, Source, SourceCounters, SourceError};
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls, RowStream};

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
/// How long to wait for settlements when the rows read but not yet
/// settled already exceed a round: peeking again now would mostly re-read
/// them.
const SETTLE_WAIT: Duration = Duration::from_millis(50);
/// Reconnection backoff after a lost connection: first delay and cap.
const RECONNECT_INITIAL: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// The output plugin the slot must use.
const PLUGIN: &str = "wal2json";
/// wal2json options: one JSON document per message (format-version 2) with
/// the transaction id, commit time, LSNs and key columns on each, and
/// TRUNCATE too (wal2json's default `actions` leave it out). Logical
/// decoding messages (`pg_logical_emit_message`, other tools' heartbeats)
/// are not among the `actions`; wal2json 2.5 still sends a
/// non-transactional one at times (seen in CI), and such a message, which
/// carries no change, is passed over (see [`SlotSource`]'s reading).
const WAL2JSON_OPTIONS: [&str; 12] = [
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

/// Where the slot is and where reading is.
#[derive(Debug, Clone)]
pub struct SlotConfig {
    /// `postgres://user@host:port/database`.
    pub url: String,
    pub slot: String,
    /// Create the slot (with wal2json) when it does not exist.
    pub create_slot: bool,
    /// Tables to read; the filter is handed to wal2json, so other tables'
    /// changes never leave the server.
    pub tables: TableFilter,
    pub max_changes: usize,
    pub poll_interval: Duration,
    pub batch_rows: usize,
    /// Read what is committed at start-up, then end.
    pub once: bool,
}

impl SlotConfig {
    pub fn new(url: impl Into<String>, slot: impl Into<String>) -> Self {
        SlotConfig {
            url: url.into(),
            slot: slot.into(),
            create_slot: false,
            tables: TableFilter::default(),
            max_changes: DEFAULT_MAX_CHANGES,
            poll_interval: DEFAULT_POLL_INTERVAL,
            batch_rows: DEFAULT_BATCH_ROWS,
            once: false,
        }
    }

    fn options(&self) -> Vec<String> {
        let mut options: Vec<String> = WAL2JSON_OPTIONS.iter().map(|s| (*s).to_owned()).collect();
        let list = |patterns: &[shardline_cdc::TablePattern]| {
            patterns
                .iter()
                .map(|p| p.wal2json())
                .collect::<Vec<_>>()
                .join(",")
        };
        if !self.tables.include.is_empty() {
            options.push("add-tables".into());
            options.push(list(&self.tables.include));
        }
        if !self.tables.exclude.is_empty() {
            options.push("filter-tables".into());
            options.push(list(&self.tables.exclude));
        }
        options
    }
}

/// Why the slot cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlotError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("replication slot {0:?} does not exist; give --create-slot to create it with wal2json")]
    NoSlot(String),
    #[error("replication slot {slot:?} uses the {plugin} plugin; shardline reads wal2json slots")]
    Plugin { slot: String, plugin: String },
    #[error("replication slot {slot:?} belongs to database {found:?}, not {expected:?}")]
    Database {
        slot: String,
        found: String,
        expected: String,
    },
    #[error("wal_level is {0}; logical decoding needs wal_level = logical (and a restart)")]
    WalLevel(String),
    #[error("the checkpoint file is for slot {found:?}, not {expected:?}")]
    CheckpointSlot { found: String, expected: String },
    #[error("wal2json sent {0}")]
    Protocol(String),
    #[error(transparent)]
    Checkpoint(#[from] shardline_core::CheckpointError),
}

impl From<SlotError> for SourceError {
    fn from(e: SlotError) -> Self {
        match e {
            SlotError::Checkpoint(e) => SourceError::Checkpoint(e),
            other => SourceError::Other(other.to_string()),
        }
    }
}

/// Whether an error is worth reconnecting for: a lost or refused
/// connection, a server starting or shutting down, the slot briefly in use.
fn transient(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        None => true,
        Some(state) => {
            let code = state.code();
            code.starts_with("08") // connection exception
                || code.starts_with("57P") // admin shutdown, cannot connect now
                || code.starts_with("53") // insufficient resources
                || code == "55006" // object in use: the slot is active elsewhere
                || code == "40001"
                || code == "40P01"
        }
    }
}

/// One wal2json message's place: read order, LSN, transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPosition {
    seq: u64,
    lsn: u64,
    xid: Option<String>,
}

impl Position for SlotPosition {
    fn describe(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::from([("lsn".to_owned(), lsn_text(self.lsn))]);
        if let Some(xid) = &self.xid {
            map.insert("xid".to_owned(), xid.clone());
        }
        map
    }
}

/// The checkpoint file's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    slot: String,
    /// End LSN of the last settled transaction (or of a heartbeat).
    lsn: String,
    /// Its transaction id; none for a heartbeat.
    xid: Option<String>,
}

/// A point reading may be confirmed up to, once every input up to `seq`
/// is settled: a transaction's end, or a round's flush position.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    seq: u64,
    lsn: u64,
    xid: Option<String>,
    /// When the WAL up to `lsn` was written, in ms since the epoch: the
    /// transaction's commit time, or when a round read the flush position.
    at_ms: Option<i64>,
}

/// What the settler and the source share.
#[derive(Debug, Default)]
struct Settled {
    /// Every input up to this sequence number is settled.
    seq: u64,
    marks: VecDeque<Mark>,
    /// The last mark reached.
    reached: Option<Mark>,
}

impl Settled {
    fn pop_reached(&mut self) {
        while self.marks.front().is_some_and(|m| m.seq <= self.seq) {
            self.reached = self.marks.pop_front();
        }
    }
}

/// The slot's state as last seen, for statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlotStatus {
    /// The slot's `confirmed_flush_lsn`.
    pub confirmed_flush_lsn: Option<String>,
    /// The server's current WAL position.
    pub wal_lsn: Option<String>,
    /// WAL bytes the slot holds back (`pg_current_wal_lsn() -
    /// confirmed_flush_lsn`).
    pub lag_bytes: Option<u64>,
    /// What the checkpoint file holds.
    pub checkpoint_lsn: Option<String>,
    /// Transactions read again because they were not settled yet when a
    /// round peeked them, and skipped.
    pub transactions_skipped: u64,
    /// Reconnections after a lost connection.
    pub reconnections: u64,
    /// Logical decoding messages sent outside any transaction
    /// (`pg_logical_emit_message(false, ...)`): they carry no change.
    pub messages_passed_over: u64,
    /// How far behind in time: the age of the newest point settled (the
    /// last settled transaction's commit, or an idle round's read).
    pub lag_seconds: Option<f64>,
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
}

/// One round of peeking.
#[derive(Debug)]
struct Round {
    upto: u64,
    /// When the round began (its flush position was read just after).
    started_ms: i64,
    limit: usize,
    rows: usize,
    new_rows: usize,
}

type Query =
    Pin<Box<dyn Future<Output = Result<(RowStream, Round), tokio_postgres::Error>> + Send>>;

enum Phase {
    /// Connect (again) at this time.
    Connect(Instant),
    /// Between rounds: start the next at this time.
    Idle(Instant),
    Query(Query),
    Streaming(Pin<Box<RowStream>>, Round),
}

impl std::fmt::Debug for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Connect(_) => "Connect",
            Phase::Idle(_) => "Idle",
            Phase::Query(_) => "Query",
            Phase::Streaming(..) => "Streaming",
        })
    }
}

/// A wal2json slot as a [`Source`].
#[derive(Debug)]
pub struct SlotSource {
    config: SlotConfig,
    client: Option<Arc<Client>>,
    phase: Phase,
    settled: Arc<Mutex<Settled>>,
    checkpoint: CheckpointFile,
    /// What the checkpoint file holds.
    saved: u64,
    /// What the slot is known to be confirmed up to.
    slot_confirmed: u64,
    /// End of the last transaction (or round) read: anything ending at or
    /// before it was read already.
    read_through: u64,
    /// With `once`: where reading ends.
    target: Option<u64>,
    current: Option<Transaction>,
    /// A transaction cut off by a lost connection: its end and rows read.
    cut: Option<(u64, usize)>,
    /// Transactions read and not yet confirmed in the slot: end, rows.
    unconfirmed: VecDeque<(u64, usize)>,
    next_seq: u64,
    pending: Vec<Input<SlotPosition>>,
    reconnect_delay: Duration,
    status: Arc<Mutex<SlotStatus>>,
    backlog: Option<Arc<SourceCounters>>,
}

impl SlotSource {
    /// Loads the checkpoint, connects, checks (or creates) the slot and
    /// advances it to the checkpoint if it is behind.
    pub async fn open(config: SlotConfig, checkpoint: CheckpointFile) -> Result<Self, SlotError> {
        let saved: Option<Saved> = checkpoint.load()?;
        if let Some(saved) = &saved
            && saved.slot != config.slot
        {
            return Err(SlotError::CheckpointSlot {
                found: saved.slot.clone(),
                expected: config.slot.clone(),
            });
        }
        let saved_mark = saved.as_ref().and_then(|s| {
            Some(Mark {
                seq: 0,
                lsn: parse_lsn(&s.lsn)?,
                xid: s.xid.clone(),
                at_ms: None,
            })
        });
        let saved_lsn = saved_mark.as_ref().map_or(0, |m| m.lsn);
        let mut source = SlotSource {
            config,
            client: None,
            phase: Phase::Idle(Instant::now()),
            settled: Arc::new(Mutex::new(Settled {
                seq: 0,
                marks: VecDeque::new(),
                reached: saved_mark,
            })),
            checkpoint,
            saved: saved_lsn,
            slot_confirmed: 0,
            read_through: saved_lsn,
            target: None,
            current: None,
            cut: None,
            unconfirmed: VecDeque::new(),
            next_seq: 1,
            pending: Vec::new(),
            reconnect_delay: RECONNECT_INITIAL,
            status: Arc::new(Mutex::new(SlotStatus {
                checkpoint_lsn: saved.map(|s| s.lsn),
                ..SlotStatus::default()
            })),
            backlog: None,
        };
        source.connect().await?;
        if source.config.once {
            source.target = Some(source.flush_lsn().await?);
        }
        Ok(source)
    }

    /// Reports the slot's WAL lag to these counters at each checkpoint (the
    /// `backlog_bytes` of the statistics and Prometheus).
    pub fn report_backlog(mut self, counters: Arc<SourceCounters>) -> Self {
        self.backlog = Some(counters);
        self
    }

    /// The slot's state as last seen (updated at each checkpoint).
    pub fn status(&self) -> Arc<Mutex<SlotStatus>> {
        self.status.clone()
    }

    fn client(&self) -> Result<&Arc<Client>, SlotError> {
        self.client
            .as_ref()
            .ok_or_else(|| SlotError::Protocol("no connection".into()))
    }

    /// Connects, checks the server and the slot, and brings the slot up to
    /// what is settled.
    async fn connect(&mut self) -> Result<(), SlotError> {
        let (client, connection) = tokio_postgres::connect(&self.config.url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("PostgreSQL connection ended: {e}");
            }
        });
        let wal_level: String = client.query_one("SHOW wal_level", &[]).await?.try_get(0)?;
        if wal_level != "logical" {
            return Err(SlotError::WalLevel(wal_level));
        }
        let slot = &self.config.slot;
        let row = client
            .query_opt(
                "SELECT plugin::text, database::text, current_database()::text, \
                 confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1::text",
                &[slot],
            )
            .await?;
        let confirmed = match row {
            Some(row) => {
                let plugin: Option<String> = row.try_get(0)?;
                let plugin = plugin.unwrap_or_else(|| "physical".into());
                if plugin != PLUGIN {
                    return Err(SlotError::Plugin {
                        slot: slot.clone(),
                        plugin,
                    });
                }
                let (found, expected): (Option<String>, String) =
                    (row.try_get(1)?, row.try_get(2)?);
                if found.as_deref() != Some(&expected) {
                    return Err(SlotError::Database {
                        slot: slot.clone(),
                        found: found.unwrap_or_default(),
                        expected,
                    });
                }
                let confirmed: Option<String> = row.try_get(3)?;
                confirmed.as_deref().and_then(parse_lsn).unwrap_or(0)
            }
            None if self.config.create_slot => {
                let row = client
                    .query_one(
                        "SELECT lsn::text FROM pg_create_logical_replication_slot($1::text::name, $2::text::name)",
                        &[slot, &PLUGIN],
                    )
                    .await?;
                let lsn: String = row.try_get(0)?;
                tracing::info!("created replication slot {slot} ({PLUGIN}) at {lsn}");
                parse_lsn(&lsn).unwrap_or(0)
            }
            None => return Err(SlotError::NoSlot(slot.clone())),
        };
        self.client = Some(Arc::new(client));
        self.slot_confirmed = confirmed;
        let settled = self.settled_lsn();
        if settled > confirmed {
            tracing::info!(
                "slot {slot} is at {}, behind what is settled ({}): advancing it (a database crash can move a slot back)",
                lsn_text(confirmed),
                lsn_text(settled)
            );
        } else if self.saved != 0 && confirmed > self.saved {
            tracing::info!(
                "slot {slot} is at {}, past the checkpoint file ({}): transactions settled after the last write",
                lsn_text(confirmed),
                lsn_text(self.saved)
            );
        }
        self.advance_slot().await?;
        Ok(())
    }

    async fn flush_lsn(&self) -> Result<u64, SlotError> {
        let row = self
            .client()?
            .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
            .await?;
        let text: String = row.try_get(0)?;
        parse_lsn(&text).ok_or_else(|| SlotError::Protocol(format!("an LSN {text:?}")))
    }

    /// The end of the last settled transaction (or heartbeat).
    fn settled_lsn(&self) -> u64 {
        let mut settled = self.settled.lock().unwrap_or_else(|e| e.into_inner());
        settled.pop_reached();
        settled.reached.as_ref().map_or(0, |m| m.lsn)
    }

    /// Moves the slot up to what is settled, if it is behind. Only between
    /// rounds: the slot is busy while a peek decodes.
    async fn advance_slot(&mut self) -> Result<(), SlotError> {
        let target = self.settled_lsn();
        if target <= self.slot_confirmed {
            return Ok(());
        }
        let text = lsn_text(target);
        self.client()?
            .execute(
                "SELECT pg_replication_slot_advance($1::text::name, $2::text::pg_lsn) \
                 FROM pg_replication_slots \
                 WHERE slot_name = $1::text AND confirmed_flush_lsn < $2::text::pg_lsn",
                &[&self.config.slot, &text],
            )
            .await?;
        self.slot_confirmed = target;
        while self
            .unconfirmed
            .front()
            .is_some_and(|(end, _)| *end <= target)
        {
            self.unconfirmed.pop_front();
        }
        Ok(())
    }

    fn unconfirmed_rows(&self) -> usize {
        self.unconfirmed.iter().map(|(_, rows)| rows).sum()
    }

    /// Starts a round: the flush position, then the peek up to it.
    fn start_round(&self) -> Result<Query, SlotError> {
        let client = self.client()?.clone();
        let slot = self.config.slot.clone();
        let options = self.config.options();
        let limit = self.config.max_changes.max(1) + self.unconfirmed_rows();
        let target = self.target;
        let started_ms = now_ms();
        Ok(Box::pin(async move {
            let upto = match target {
                Some(target) => target,
                None => {
                    let row = client
                        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
                        .await?;
                    let text: String = row.try_get(0)?;
                    parse_lsn(&text).unwrap_or(0)
                }
            };
            let upto_text = lsn_text(upto);
            let limit_param = i32::try_from(limit).unwrap_or(i32::MAX);
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&slot, &upto_text, &limit_param, &options];
            let rows = client
                .query_raw(
                    "SELECT lsn::text, xid::text, data FROM pg_logical_slot_peek_changes(\
                     $1::text::name, $2::text::pg_lsn, $3::int4, VARIADIC $4::text[])",
                    params,
                )
                .await?;
            Ok((
                rows,
                Round {
                    upto,
                    started_ms,
                    limit,
                    rows: 0,
                    new_rows: 0,
                },
            ))
        }))
    }

    /// A lost connection: reconnect after a backoff. Other errors end the
    /// source.
    fn broken(&mut self, error: tokio_postgres::Error) -> Result<(), SlotError> {
        if !transient(&error) {
            return Err(error.into());
        }
        tracing::warn!(
            "PostgreSQL: {error}; reconnecting in {:?}",
            self.reconnect_delay
        );
        if let Some(txn) = self.current.take() {
            self.cut = Some((txn.end, txn.emitted));
        }
        self.client = None;
        self.phase = Phase::Connect(Instant::now() + self.reconnect_delay);
        self.reconnect_delay = (self.reconnect_delay * 2).min(RECONNECT_MAX);
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reconnections += 1;
        Ok(())
    }

    /// One row of a round.
    fn row(&mut self, lsn: u64, xid: Option<String>, data: String) -> Result<(), SlotError> {
        let action = action(&data)?;
        let Phase::Streaming(_, round) = &mut self.phase else {
            return Ok(());
        };
        round.rows += 1;
        if action == b'B' {
            let end = next_lsn(&data)?;
            let skip_first = match self.cut.take() {
                Some((cut_end, rows)) if cut_end == end => rows,
                _ => 0,
            };
            let skip_all = end <= self.read_through;
            if skip_all {
                self.status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .transactions_skipped += 1;
            }
            self.current = Some(Transaction {
                end,
                emitted: 0,
                skip_first,
                skip_all,
                rows: 0,
            });
        }
        if action == b'M' && self.current.is_none() {
            // A non-transactional logical message: no change, no
            // transaction to settle; the round's heartbeat covers its LSN.
            if lsn > self.read_through {
                self.status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .messages_passed_over += 1;
            }
            return Ok(());
        }
        let Some(txn) = self.current.as_mut() else {
            return Err(SlotError::Protocol(format!(
                "a message outside a transaction: {}",
                data.chars().take(80).collect::<String>()
            )));
        };
        txn.rows += 1;
        let data_text = if action == b'C' {
            data.clone()
        } else {
            String::new()
        };
        let emit = !txn.skip_all && txn.rows > txn.skip_first;
        if emit {
            round.new_rows += 1;
            txn.emitted = txn.rows;
            let seq = self.next_seq;
            self.next_seq += 1;
            self.pending.push(Input {
                data: data.into_bytes(),
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
                let mark = Mark {
                    seq: self.next_seq - 1,
                    lsn: end,
                    xid,
                    at_ms: commit_ms(&data_text),
                };
                self.settled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .marks
                    .push_back(mark);
                self.read_through = self.read_through.max(end);
                self.unconfirmed.push_back((end, rows));
            }
        }
        Ok(())
    }

    /// A round has returned all its rows.
    fn end_round(&mut self, round: Round) -> Result<(), SlotError> {
        if let Some(txn) = self.current.take() {
            return Err(SlotError::Protocol(format!(
                "a transaction (ending {}) without its COMMIT",
                lsn_text(txn.end)
            )));
        }
        let complete = round.rows < round.limit;
        if complete && round.upto > self.read_through {
            // Everything committed before `upto` has been read: once all of
            // it settles, the slot can move there (a heartbeat).
            self.read_through = round.upto;
            let mark = Mark {
                seq: self.next_seq - 1,
                lsn: round.upto,
                xid: None,
                at_ms: Some(round.started_ms),
            };
            self.settled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .marks
                .push_back(mark);
        }
        let wait = if round.new_rows > 0 {
            Duration::ZERO
        } else if complete {
            self.config.poll_interval
        } else {
            SETTLE_WAIT
        };
        self.phase = Phase::Idle(Instant::now() + wait);
        Ok(())
    }

    async fn read_inner(&mut self) -> Result<Option<Vec<Input<SlotPosition>>>, SlotError> {
        enum Event {
            Connect,
            Round,
            Queried(Result<(RowStream, Round), tokio_postgres::Error>),
            Row(Option<Result<tokio_postgres::Row, tokio_postgres::Error>>),
        }
        loop {
            // Only what is kept in `self` is awaited here: a cancelled read
            // loses nothing (rows already taken wait in `pending`).
            let event = match &mut self.phase {
                Phase::Connect(at) => {
                    tokio::time::sleep_until(*at).await;
                    Event::Connect
                }
                Phase::Idle(at) => {
                    if !self.pending.is_empty() {
                        return Ok(Some(std::mem::take(&mut self.pending)));
                    }
                    tokio::time::sleep_until(*at).await;
                    Event::Round
                }
                Phase::Query(query) => Event::Queried(query.as_mut().await),
                Phase::Streaming(rows, _) => {
                    Event::Row(std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await)
                }
            };
            match event {
                Event::Connect => match self.connect().await {
                    Ok(()) => {
                        self.reconnect_delay = RECONNECT_INITIAL;
                        self.phase = Phase::Idle(Instant::now());
                    }
                    Err(SlotError::Postgres(e)) => self.broken(e)?,
                    Err(e) => return Err(e),
                },
                Event::Round => {
                    if self.target.is_some_and(|t| self.read_through >= t) {
                        return Ok(None);
                    }
                    if let Err(e) = self.advance_slot().await {
                        match e {
                            SlotError::Postgres(e) => self.broken(e)?,
                            other => return Err(other),
                        }
                        continue;
                    }
                    if self.unconfirmed_rows() >= self.config.max_changes.max(1) {
                        self.phase = Phase::Idle(Instant::now() + SETTLE_WAIT);
                        continue;
                    }
                    self.phase = Phase::Query(self.start_round()?);
                }
                Event::Queried(Ok((rows, round))) => {
                    self.phase = Phase::Streaming(Box::pin(rows), round);
                }
                Event::Queried(Err(e)) => self.broken(e)?,
                Event::Row(Some(Ok(row))) => {
                    let lsn: String = row.try_get(0)?;
                    let xid: Option<String> = row.try_get(1)?;
                    let data: String = row.try_get(2)?;
                    let lsn = parse_lsn(&lsn)
                        .ok_or_else(|| SlotError::Protocol(format!("an LSN {lsn:?}")))?;
                    self.row(lsn, xid, data)?;
                    if self.pending.len() >= self.config.batch_rows.max(1) {
                        return Ok(Some(std::mem::take(&mut self.pending)));
                    }
                }
                Event::Row(Some(Err(e))) => self.broken(e)?,
                Event::Row(None) => {
                    let Phase::Streaming(_, round) =
                        std::mem::replace(&mut self.phase, Phase::Idle(Instant::now()))
                    else {
                        continue;
                    };
                    self.end_round(round)?;
                }
            }
        }
    }

    /// Writes the checkpoint file when something new settled, then (when
    /// no round is running) advances the slot and reads its lag.
    async fn checkpoint_inner(&mut self) -> Result<(), SlotError> {
        let reached = {
            let mut settled = self.settled.lock().unwrap_or_else(|e| e.into_inner());
            settled.pop_reached();
            settled.reached.clone()
        };
        if let Some(mark) = reached
            && mark.lsn > self.saved
        {
            let text = lsn_text(mark.lsn);
            self.checkpoint.save(&Saved {
                slot: self.config.slot.clone(),
                lsn: text.clone(),
                xid: mark.xid,
            })?;
            self.saved = mark.lsn;
            self.status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .checkpoint_lsn = Some(text);
        }
        if matches!(self.phase, Phase::Idle(_)) && self.client.is_some() {
            // The slot is an optimisation over the file: failing to move it
            // now is retried later, not an error.
            if let Err(e) = self.advance_slot().await {
                tracing::debug!("advancing the slot: {e}");
            }
            if let Err(e) = self.read_status().await {
                tracing::debug!("reading the slot's lag: {e}");
            }
        }
        Ok(())
    }

    async fn read_status(&mut self) -> Result<(), SlotError> {
        let row = self
            .client()?
            .query_opt(
                "SELECT confirmed_flush_lsn::text, pg_current_wal_lsn()::text, \
                 (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 \
                 FROM pg_replication_slots WHERE slot_name = $1::text",
                &[&self.config.slot],
            )
            .await?;
        if let Some(row) = row {
            let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            status.confirmed_flush_lsn = row.try_get(0)?;
            status.wal_lsn = row.try_get(1)?;
            let lag: Option<i64> = row.try_get(2)?;
            status.lag_bytes = lag.and_then(|l| u64::try_from(l).ok());
            let reached_at = {
                let settled = self.settled.lock().unwrap_or_else(|e| e.into_inner());
                settled.reached.as_ref().and_then(|m| m.at_ms)
            };
            let age = reached_at
                .map(|at| Duration::from_millis(u64::try_from(now_ms() - at).unwrap_or(0)));
            status.lag_seconds = age.map(|a| a.as_secs_f64());
            if let Some(counters) = &self.backlog {
                if let Some(lag) = status.lag_bytes {
                    counters.set_backlog_bytes(lag);
                }
                if let Some(age) = age {
                    counters.set_backlog_age(age);
                }
            }
        }
        Ok(())
    }
}

/// Milliseconds since the epoch now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A COMMIT's commit time (`include-timestamp`), in ms since the epoch.
fn commit_ms(data: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Commit {
        timestamp: Option<String>,
    }
    let commit: Commit = serde_json::from_str(data).ok()?;
    shardline_cdc::decode::postgres_time_millis(&commit.timestamp?)
}

/// The message's action letter: wal2json writes `{"action":"X"` first.
fn action(data: &str) -> Result<u8, SlotError> {
    if let Some(rest) = data.strip_prefix("{\"action\":\"")
        && let Some(&letter) = rest.as_bytes().first()
    {
        return Ok(letter);
    }
    #[derive(Deserialize)]
    struct Head {
        action: String,
    }
    let head: Head = serde_json::from_str(data).map_err(|e| {
        SlotError::Protocol(format!("a message that is not wal2json format 2 ({e})"))
    })?;
    head.action
        .bytes()
        .next()
        .ok_or_else(|| SlotError::Protocol("an empty action".into()))
}

/// The end LSN of the transaction a BEGIN opens (`nextlsn`, with
/// `include-lsn`).
fn next_lsn(data: &str) -> Result<u64, SlotError> {
    #[derive(Deserialize)]
    struct Begin {
        nextlsn: Option<String>,
    }
    let begin: Begin = serde_json::from_str(data)
        .map_err(|e| SlotError::Protocol(format!("a BEGIN that is not JSON ({e})")))?;
    begin
        .nextlsn
        .as_deref()
        .and_then(parse_lsn)
        .ok_or_else(|| SlotError::Protocol(format!("a BEGIN without nextlsn: {data}")))
}

#[async_trait::async_trait]
impl Source for SlotSource {
    type Position = SlotPosition;

    async fn read(&mut self) -> Result<Option<Vec<Input<SlotPosition>>>, SourceError> {
        Ok(self.read_inner().await?)
    }

    fn settler(&self) -> Box<dyn FnMut(SlotPosition) + Send> {
        let settled = self.settled.clone();
        Box::new(move |position: SlotPosition| {
            let mut settled = settled.lock().unwrap_or_else(|e| e.into_inner());
            settled.seq = position.seq;
            settled.pop_reached();
        })
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        Ok(self.checkpoint_inner().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_begin_positions() {
        assert_eq!(action(r#"{"action":"B","xid":1}"#).unwrap(), b'B');
        assert_eq!(action(r#"{ "xid": 1, "action": "C" }"#).unwrap(), b'C');
        assert!(action("not json").is_err());
        assert_eq!(
            next_lsn(r#"{"action":"B","lsn":"0/16B3748","nextlsn":"0/16B3780"}"#).unwrap(),
            0x16B_3780
        );
        assert!(next_lsn(r#"{"action":"B"}"#).is_err());
        assert_eq!(
            commit_ms(r#"{"action":"C","timestamp":"2024-01-15 10:30:45.123456+00"}"#),
            Some(1_705_314_645_123)
        );
    }

    #[test]
    fn marks_are_reached_only_when_everything_before_settled() {
        let mut settled = Settled::default();
        for (seq, lsn) in [(3, 100), (5, 200), (5, 250)] {
            settled.marks.push_back(Mark {
                seq,
                lsn,
                xid: None,
                at_ms: None,
            });
        }
        settled.seq = 2;
        settled.pop_reached();
        assert_eq!(settled.reached, None);
        settled.seq = 4;
        settled.pop_reached();
        assert_eq!(settled.reached.as_ref().map(|m| m.lsn), Some(100));
        settled.seq = 5;
        settled.pop_reached();
        assert_eq!(settled.reached.as_ref().map(|m| m.lsn), Some(250));
        assert!(settled.marks.is_empty());
    }

    #[test]
    fn table_filters_become_wal2json_options() {
        let mut config = SlotConfig::new("postgres://x", "s");
        config.tables = TableFilter::parse("public.orders,users", "audit.*").unwrap();
        let options = config.options();
        let add = options.iter().position(|o| o == "add-tables").unwrap();
        assert_eq!(options[add + 1], "public.orders,*.users");
        let filter = options.iter().position(|o| o == "filter-tables").unwrap();
        assert_eq!(options[filter + 1], "audit.*");
    }
}
