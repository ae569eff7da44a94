//! The slot reader as a [`Source`]: connection, rounds of peeked changes,
//! the checkpoint file and the slot's advance.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::Stream;
use serde::Serialize;
use shardline_cdc::TableFilter;
use shardline_cdc::decode::{lsn_text, parse_lsn};
use shardline_core::{CheckpointFile, Input, Position, Source, SourceCounters, SourceError};
use tokio::time::Instant;
use tokio_postgres::{Client, RowStream};

use crate::ledger::{Ledger, Mark, Saved, SavedPartial};
use crate::wal2json::{Reader, Round, Row};
use crate::{
    DEFAULT_BATCH_ROWS, DEFAULT_MAX_CHANGES, DEFAULT_POLL_INTERVAL, DEFAULT_STATEMENT_TIMEOUT,
    SlotError, sql,
};

/// How long to wait for settlements when the rows read but not yet
/// settled already exceed a round: peeking again now would mostly re-read
/// them.
const SETTLE_WAIT: Duration = Duration::from_millis(50);
/// Reconnection backoff after a lost connection: first delay and cap.
/// How long [`SlotSource::open`] keeps trying a server that refuses or
/// drops the connection (one restarting, recovering, failing over) before
/// the error is the run's: a forwarder started beside a database that is
/// coming up waits for it, and a wrong address still fails within half a
/// minute, having said why each time it tried.
pub const STARTUP_CONNECT_WAIT: Duration = Duration::from_secs(30);

const RECONNECT_INITIAL: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// How long past `statement_timeout` to wait for the server's answer (its
/// cancellation included) before taking the connection as lost: a server
/// frozen behind a live TCP connection never answers. At most this, and
/// at most the statement timeout itself.
const REPLY_GRACE_MAX: Duration = Duration::from_secs(10);

/// Where the slot is and where reading is.
#[derive(Debug, Clone)]
pub struct SlotConfig {
    /// `postgres://user@host:port/database`.
    pub url: String,
    /// The replication slot's name.
    pub slot: String,
    /// Create the slot (with wal2json) when it does not exist and nothing
    /// was read from an earlier one.
    pub create_slot: bool,
    /// With `create_slot`: create the slot anew even when a checkpoint (or
    /// this run) has read from an earlier slot of that name. A new slot
    /// starts at the current WAL position, so what was committed between
    /// the checkpoint and then is never read; without this, a missing slot
    /// with a checkpoint is an error ([`SlotError::SlotGone`]).
    pub accept_slot_gap: bool,
    /// Tables to read; the filter is handed to wal2json, so other tables'
    /// changes never leave the server.
    pub tables: TableFilter,
    /// Changes read and not yet settled at most ([`crate::DEFAULT_MAX_CHANGES`]).
    pub max_changes: usize,
    /// The wait after a round that found nothing new.
    pub poll_interval: Duration,
    /// Inputs handed to the pipeline at once at most.
    pub batch_rows: usize,
    /// Read what is committed at start-up, then end.
    pub once: bool,
    /// The session's `statement_timeout`: a query (a round decoding a
    /// large transaction included) that takes longer fails. An answer that
    /// has not come a grace period after it means the connection is lost
    /// (a frozen server, a half-open connection), and it is made again.
    /// `Duration::ZERO`: no limit, and no such wait.
    pub statement_timeout: Duration,
}

impl SlotConfig {
    /// Reads `slot` of the database at `url`, with the defaults.
    pub fn new(url: impl Into<String>, slot: impl Into<String>) -> Self {
        SlotConfig {
            url: url.into(),
            slot: slot.into(),
            create_slot: false,
            accept_slot_gap: false,
            tables: TableFilter::default(),
            max_changes: DEFAULT_MAX_CHANGES,
            poll_interval: DEFAULT_POLL_INTERVAL,
            batch_rows: DEFAULT_BATCH_ROWS,
            once: false,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }
}

/// One wal2json message's place: read order, LSN, transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPosition {
    pub(crate) seq: u64,
    pub(crate) lsn: u64,
    pub(crate) xid: Option<String>,
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
    connection: Option<sql::Connection>,
    phase: Phase,
    /// While a query runs: when its next answer is due.
    reply_due: Option<Instant>,
    ledger: Arc<Mutex<Ledger>>,
    checkpoint: CheckpointFile,
    /// What the checkpoint file holds.
    saved: u64,
    /// The partial transaction the checkpoint file holds: end, messages.
    saved_partial: Option<(u64, u64)>,
    /// What the slot is known to be confirmed up to.
    slot_confirmed: u64,
    /// With `once`: where reading ends.
    target: Option<u64>,
    reader: Reader,
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
        let saved_partial = saved
            .as_ref()
            .and_then(|s| s.partial.as_ref())
            .and_then(|p| Some((parse_lsn(&p.end)?, p.rows)));
        let mut reader = Reader::new(saved_lsn);
        if let Some((end, rows)) = saved_partial {
            reader.resume_after(end, usize::try_from(rows).unwrap_or(usize::MAX));
        }
        let mut source = SlotSource {
            config,
            connection: None,
            phase: Phase::Idle(Instant::now()),
            reply_due: None,
            ledger: Arc::new(Mutex::new(Ledger::starting_at(saved_mark))),
            checkpoint,
            saved: saved_lsn,
            saved_partial,
            slot_confirmed: 0,
            target: None,
            reader,
            reconnect_delay: RECONNECT_INITIAL,
            status: Arc::new(Mutex::new(SlotStatus {
                checkpoint_lsn: saved.map(|s| s.lsn),
                ..SlotStatus::default()
            })),
            backlog: None,
        };
        let limit = source.reply_limit();
        let started = Instant::now();
        let mut delay = RECONNECT_INITIAL;
        loop {
            match within(limit, source.connect()).await {
                Ok(()) => break,
                Err(e) if transient(&e) && started.elapsed() + delay < STARTUP_CONNECT_WAIT => {
                    tracing::warn!(
                        "{e}; trying again in {delay:?} (for up to {} s from the start)",
                        STARTUP_CONNECT_WAIT.as_secs()
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RECONNECT_MAX);
                }
                Err(e) => return Err(e),
            }
        }
        if source.config.once {
            let client = source.client()?.clone();
            source.target = Some(within(limit, sql::flush_lsn(&client)).await?);
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
        self.connection
            .as_ref()
            .map(|c| &c.client)
            .ok_or_else(|| SlotError::Protocol("no connection".into()))
    }

    /// How long to wait for any answer of the server: the statement
    /// timeout and a grace period after it.
    fn reply_limit(&self) -> Option<Duration> {
        let timeout = self.config.statement_timeout;
        if timeout.is_zero() {
            return None;
        }
        timeout.checked_add(timeout.min(REPLY_GRACE_MAX))
    }

    /// When the next answer of a query starting (or going on) now is due
    /// (`None`: not in this program's lifetime).
    fn next_reply_due(&self) -> Option<Instant> {
        self.reply_limit()
            .and_then(|limit| Instant::now().checked_add(limit))
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status_mut(&self) -> std::sync::MutexGuard<'_, SlotStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects, checks the server and the slot, and brings the slot up to
    /// what is settled.
    async fn connect(&mut self) -> Result<(), SlotError> {
        let connection = sql::connect(&self.config.url, self.config.statement_timeout).await?;
        let client = &connection.client;
        let slot = &self.config.slot;
        // Where reading stands in an earlier slot: the checkpoint file,
        // this run's slot, or what this run has read.
        let read_up_to = self
            .saved
            .max(self.slot_confirmed)
            .max(self.reader.read_through());
        let create = self.config.create_slot && (read_up_to == 0 || self.config.accept_slot_gap);
        let found = match sql::check_slot(client, slot, create).await {
            Err(SlotError::NoSlot(_)) if read_up_to != 0 => {
                return Err(SlotError::SlotGone {
                    slot: slot.clone(),
                    read_up_to: lsn_text(read_up_to),
                });
            }
            other => other?,
        };
        let confirmed = match found {
            sql::Slot::Created(lsn) if read_up_to != 0 => {
                tracing::warn!(
                    "replication slot {slot} was missing and is created anew at {} (--accept-slot-gap): changes committed between {} and then are not read",
                    lsn_text(lsn),
                    lsn_text(read_up_to)
                );
                lsn
            }
            sql::Slot::Created(lsn) => lsn,
            sql::Slot::Found(confirmed) => {
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
                confirmed
            }
        };
        self.connection = Some(connection);
        self.slot_confirmed = confirmed;
        self.advance_slot().await?;
        Ok(())
    }

    /// The end of the last settled transaction (or heartbeat).
    fn settled_lsn(&self) -> u64 {
        self.ledger().reached().map_or(0, |m| m.lsn)
    }

    /// Moves the slot up to what is settled, if it is behind. Only between
    /// rounds: the slot is busy while a peek decodes.
    async fn advance_slot(&mut self) -> Result<(), SlotError> {
        let target = self.settled_lsn();
        if target <= self.slot_confirmed {
            return Ok(());
        }
        sql::advance(self.client()?, &self.config.slot, target).await?;
        self.slot_confirmed = target;
        self.reader.confirmed(target);
        Ok(())
    }

    /// Starts a round: the flush position, then the peek up to it.
    fn start_round(&self) -> Result<Query, SlotError> {
        let client = self.client()?.clone();
        let slot = self.config.slot.clone();
        let options = crate::wal2json::options(&self.config.tables);
        let limit = self.config.max_changes.max(1) + self.reader.unconfirmed_rows();
        let target = self.target;
        let started_ms = now_ms();
        Ok(Box::pin(async move {
            sql::peek(&client, &slot, target, limit, &options, started_ms).await
        }))
    }

    /// A lost connection: reconnect after a backoff. Other errors end the
    /// source.
    fn broken(&mut self, error: SlotError) -> Result<(), SlotError> {
        if !transient(&error) {
            return Err(error);
        }
        tracing::warn!("{error}; reconnecting in {:?}", self.reconnect_delay);
        self.reader.connection_lost();
        self.connection = None;
        self.reply_due = None;
        self.phase = Phase::Connect(Instant::now() + self.reconnect_delay);
        self.reconnect_delay = (self.reconnect_delay * 2).min(RECONNECT_MAX);
        self.status_mut().reconnections += 1;
        Ok(())
    }

    /// One row of the round being streamed.
    fn row(&mut self, lsn: u64, xid: Option<String>, data: Vec<u8>) -> Result<(), SlotError> {
        let Phase::Streaming(_, round) = &mut self.phase else {
            return Ok(());
        };
        let row = self.reader.row(round, lsn, xid, data)?;
        for opened in self.reader.take_opened() {
            self.ledger().open(opened);
        }
        match row {
            Row::Read => {}
            Row::TransactionSkipped => self.status_mut().transactions_skipped += 1,
            Row::MessagePassedOver => self.status_mut().messages_passed_over += 1,
            Row::Committed(mark) => self.ledger().push(mark),
        }
        Ok(())
    }

    /// A round has returned all its rows.
    fn end_round(&mut self, round: Round) -> Result<(), SlotError> {
        if let Some(heartbeat) = self.reader.end_round(&round)? {
            self.ledger().push(heartbeat);
        }
        let wait = if round.new_rows > 0 {
            Duration::ZERO
        } else if round.complete() {
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
            /// The server's answer is overdue.
            NoReply,
        }
        let limit = self.reply_limit();
        loop {
            // Only what is kept in `self` is awaited here: a cancelled read
            // loses nothing (rows already taken wait in the reader).
            let event = match &mut self.phase {
                Phase::Connect(at) => {
                    tokio::time::sleep_until(*at).await;
                    Event::Connect
                }
                Phase::Idle(at) => {
                    if self.reader.pending() > 0 {
                        return Ok(Some(self.reader.take_pending()));
                    }
                    tokio::time::sleep_until(*at).await;
                    Event::Round
                }
                Phase::Query(query) => match until(self.reply_due, query.as_mut()).await {
                    Some(answer) => Event::Queried(answer),
                    None => Event::NoReply,
                },
                Phase::Streaming(rows, _) => {
                    let row = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx));
                    match until(self.reply_due, row).await {
                        Some(row) => Event::Row(row),
                        None => Event::NoReply,
                    }
                }
            };
            match event {
                Event::Connect => match within(limit, self.connect()).await {
                    Ok(()) => {
                        self.reconnect_delay = RECONNECT_INITIAL;
                        self.phase = Phase::Idle(Instant::now());
                    }
                    Err(e) => self.broken(e)?,
                },
                Event::Round => {
                    if self.target.is_some_and(|t| self.reader.read_through() >= t) {
                        return Ok(None);
                    }
                    if let Err(e) = within(limit, self.advance_slot()).await {
                        self.broken(e)?;
                        continue;
                    }
                    if self.reader.unconfirmed_rows() >= self.config.max_changes.max(1) {
                        self.phase = Phase::Idle(Instant::now() + SETTLE_WAIT);
                        continue;
                    }
                    self.phase = Phase::Query(self.start_round()?);
                    self.reply_due = self.next_reply_due();
                }
                Event::Queried(Ok((rows, round))) => {
                    self.phase = Phase::Streaming(Box::pin(rows), round);
                    self.reply_due = self.next_reply_due();
                }
                Event::Queried(Err(e)) => self.broken(e.into())?,
                Event::NoReply => self.broken(SlotError::NoReply(limit.unwrap_or_default()))?,
                Event::Row(Some(Ok(row))) => {
                    let lsn: String = row.try_get(0)?;
                    let xid: Option<String> = row.try_get(1)?;
                    let data: Vec<u8> = row.try_get(2)?;
                    let lsn = parse_lsn(&lsn)
                        .ok_or_else(|| SlotError::Protocol(format!("an LSN {lsn:?}")))?;
                    self.row(lsn, xid, data)?;
                    self.reply_due = self.next_reply_due();
                    if self.reader.pending() >= self.config.batch_rows.max(1) {
                        return Ok(Some(self.reader.take_pending()));
                    }
                }
                Event::Row(Some(Err(e))) => self.broken(e.into())?,
                Event::Row(None) => {
                    self.reply_due = None;
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
        let (reached, partial) = {
            let mut ledger = self.ledger();
            (ledger.reached().cloned(), ledger.partial())
        };
        // A partial transaction is saved beside the last mark reached; with
        // none reached yet there is no place to save it beside. Until a
        // resumed transaction is read again, the saved part stands.
        if let Some(mark) = reached
            && (mark.lsn > self.saved || (partial.is_some() && partial != self.saved_partial))
        {
            let text = lsn_text(mark.lsn);
            self.checkpoint.save(&Saved {
                slot: self.config.slot.clone(),
                lsn: text.clone(),
                xid: mark.xid,
                partial: partial.map(|(end, rows)| SavedPartial {
                    end: lsn_text(end),
                    rows,
                }),
            })?;
            self.saved = mark.lsn;
            self.saved_partial = partial;
            self.status_mut().checkpoint_lsn = Some(text);
        }
        if matches!(self.phase, Phase::Idle(_)) && self.connection.is_some() {
            // The slot is an optimisation over the file: failing to move it
            // now is retried later, not an error; a connection that does
            // not answer is found lost by the next round.
            let limit = self.reply_limit();
            if let Err(e) = within(limit, self.advance_slot()).await {
                tracing::debug!("advancing the slot: {e}");
            }
            if let Err(e) = within(limit, self.read_status()).await {
                tracing::debug!("reading the slot's lag: {e}");
            }
        }
        Ok(())
    }

    async fn read_status(&mut self) -> Result<(), SlotError> {
        let Some((confirmed, wal, lag)) = sql::lag(self.client()?, &self.config.slot).await? else {
            return Ok(());
        };
        let reached_at = self.ledger().reached().and_then(|m| m.at_ms);
        let age =
            reached_at.map(|at| Duration::from_millis(u64::try_from(now_ms() - at).unwrap_or(0)));
        let mut status = self.status_mut();
        status.confirmed_flush_lsn = confirmed;
        status.wal_lsn = wal;
        status.lag_bytes = lag;
        status.lag_seconds = age.map(|a| a.as_secs_f64());
        if let Some(counters) = &self.backlog {
            if let Some(lag) = status.lag_bytes {
                counters.set_backlog_bytes(lag);
            }
            if let Some(age) = age {
                counters.set_backlog_age(age);
            }
        }
        Ok(())
    }
}

/// An error a new connection may not meet: the server restarting or out
/// of reach, or not answering in time.
fn transient(error: &SlotError) -> bool {
    match error {
        SlotError::Postgres(e) => sql::transient(e),
        SlotError::NoReply(_) => true,
        _ => false,
    }
}

/// `work`, unless it takes longer than `limit`.
async fn within<T>(
    limit: Option<Duration>,
    work: impl Future<Output = Result<T, SlotError>>,
) -> Result<T, SlotError> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .unwrap_or(Err(SlotError::NoReply(limit))),
        None => work.await,
    }
}

/// `work`'s output, or `None` if `due` passes first.
async fn until<T>(due: Option<Instant>, work: impl Future<Output = T>) -> Option<T> {
    match due {
        Some(due) => tokio::time::timeout_at(due, work).await.ok(),
        None => Some(work.await),
    }
}

/// Milliseconds since the epoch now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait::async_trait]
impl Source for SlotSource {
    type Position = SlotPosition;

    async fn read(&mut self) -> Result<Option<Vec<Input<SlotPosition>>>, SourceError> {
        Ok(self.read_inner().await?)
    }

    fn settler(&self) -> Box<dyn FnMut(Vec<SlotPosition>) + Send> {
        let ledger = self.ledger.clone();
        Box::new(move |positions: Vec<SlotPosition>| {
            // Read order: the last is the furthest.
            if let Some(last) = positions.last() {
                ledger
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .settle(last.seq);
            }
        })
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        Ok(self.checkpoint_inner().await?)
    }
}
