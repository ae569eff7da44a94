//! The one task that owns every queued record: it hands ready records to
//! the batcher, sends the batches it cuts, retries what failed, has
//! what cannot be delivered dead-lettered, and answers each record's
//! receipt. Owning all state in one task means no locks on the hot path
//! and one place where a record changes hands.
//!
//! Its parts live beside it: batch assembly in [`crate::batcher`], each
//! key's turn in [`crate::ordering`], the retry decision in
//! [`crate::RetryPolicy::decide`], the dead-letter job in
//! [`dead_letters`].

mod dead_letters;
mod pending;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use shardline_core::{
    DeadLetter, DeadLetterReason, DeadLetterSink, Delivery, Outcome, PartitionKey, SinkCounters,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::batcher::{Batcher, Draft, Unit};
use crate::concurrency::{Answer, Concurrency};
use crate::config::ProducerConfig;
use crate::destination::{Destination, Entry, EntryError, ErrorClass, PutError, classify};
use crate::limits::BatchLimits;
use crate::rate_limit::Throttle;
use crate::retry::Decision;
use crate::warnings::{About, Kind, Warnings};
use dead_letters::{DeadLetters, HandBack, Job, Written};
pub(crate) use pending::{Control, Pending, Permits};

type PutResult = Result<Vec<Result<Delivery, EntryError>>, PutError>;

/// Below this share of the producer's room (records, or bytes) left,
/// batches go without waiting for their linger: a sender is about to wait
/// for room, so more records cannot come in to fill a batch. (With
/// aggregation a batch is full only by bytes, and a producer full of small
/// records never reached that: every batch waited out its linger.)
const NEARLY_FULL_DIVISOR: usize = 8;

/// The room `send` takes records and bytes from, as the dispatcher sees
/// it: whether the producer is nearly full.
#[derive(Debug)]
pub(crate) struct Intake {
    records: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    records_floor: usize,
    bytes_floor: usize,
}

impl Intake {
    pub(crate) fn new(
        records: Arc<Semaphore>,
        bytes: Arc<Semaphore>,
        config: &ProducerConfig,
    ) -> Self {
        Intake {
            records,
            bytes,
            records_floor: config.queue_max_records / NEARLY_FULL_DIVISOR,
            bytes_floor: config.record_budget() / NEARLY_FULL_DIVISOR,
        }
    }

    /// Less than an eighth of the room for records or bytes is left.
    fn nearly_full(&self) -> bool {
        self.records.available_permits() < self.records_floor.max(1)
            || self.bytes.available_permits() < self.bytes_floor.max(1)
    }
}

/// The per-entry error code of a shard's throughput limit.
const SHARD_THROTTLED: &str = "ProvisionedThroughputExceededException";

/// The code a record is retried with when its aggregate was stored in a
/// shard that does not hold its key (the KPL's word for it).
const WRONG_SHARD: &str = "Wrong Shard";

/// The first wait before listing the shards again after a failure, and
/// the longest (the KPL's shard map backs off between the same bounds).
const SHARD_MAP_RETRY_MIN: Duration = Duration::from_secs(1);
const SHARD_MAP_RETRY_MAX: Duration = Duration::from_secs(30);

/// How long a misrouted aggregate whose shard was not listed waits for the
/// next listing: a reshard splits one shard after another, each in well
/// under a second.
const RELIST_AFTER: Duration = Duration::from_millis(200);

/// Listings a misrouted aggregate waits through for its shard to appear
/// before all its records are sent again (about a second, with
/// [`RELIST_AFTER`]).
const MISROUTED_LISTINGS: u8 = 5;

/// An aggregate stored in a shard other than the one it was made for.
struct Misrouted {
    members: Vec<Pending>,
    delivery: Delivery,
    /// Listings since that did not list its shard.
    listings: u8,
}

/// Failures whose retry may be free: not counted against the retry policy.
#[derive(Debug, Clone, Copy)]
enum FreeRetry {
    /// Every retry counts.
    No,
    /// Throttled by a shard the producer paces (see
    /// [`Pending::paced_throttle`]).
    PacedShard,
    /// Stored in a shard that does not hold the key (see
    /// [`Pending::wrong_shard`]).
    WrongShard,
}

/// A batch in flight: each entry's records, and the shard each entry was
/// expected to land in (its index in the shard map and its id).
struct InFlight {
    members: Vec<Vec<Pending>>,
    predicted: Vec<Option<(usize, String)>>,
    /// The shard map `predicted` comes from.
    shard_map_generation: u64,
    /// When it was sent, and how many requests were in flight then (itself
    /// included).
    sent: Instant,
    in_flight_then: usize,
    /// The memory its request's copies take (see
    /// [`ProducerConfig::request_copy_bytes`]).
    copy_bytes: usize,
}

enum Event {
    Records(Option<Vec<Pending>>),
    Control(Option<Control>),
    BatchDone(tokio::task::Id, Option<(PutResult, Duration)>),
    DeadLettersWritten(Result<Job, tokio::task::JoinError>),
    Timer,
}

pub(crate) struct Dispatcher {
    destination: Arc<dyn Destination>,
    limits: BatchLimits,
    config: ProducerConfig,
    counters: Arc<SinkCounters>,
    rng: StdRng,
    /// Records held now (their retries used up).
    held: u64,
    /// Dead letters and failed requests, logged in summary.
    warnings: Warnings,

    batcher: Batcher<Pending>,
    /// The limit on requests in flight.
    concurrency: Concurrency,
    intake: Intake,
    retries: BTreeMap<(Instant, u64), Pending>,
    in_flight: JoinSet<(PutResult, Duration)>,
    in_flight_batches: HashMap<tokio::task::Id, InFlight>,
    /// What the requests in flight copy, against the request budget.
    request_bytes_in_flight: usize,
    /// The next batch did not fit in the request budget: nothing goes out
    /// before a request in flight comes back.
    request_budget_full: bool,
    /// With aggregation: ask the destination for its shards (again).
    refresh_shard_map: bool,
    /// Listing the shards failed: when to try again, and the wait after
    /// that (doubling up to [`SHARD_MAP_RETRY_MAX`]).
    shard_map_retry: Option<(Instant, Duration)>,
    /// Aggregates stored in a shard other than the one they were made for
    /// (the stream was resharded): each member is settled once a shard
    /// map lists that shard and says whether it holds the member's key.
    misrouted: Vec<Misrouted>,
    /// A misrouted aggregate's shard was not listed yet: list again then.
    relist_at: Option<Instant>,
    dead_letters: DeadLetters,
    /// No dead-letter sink: a record that cannot be delivered is handed
    /// back in its outcome.
    hand_back: bool,

    /// Every sequence number below this has reached the dispatcher; those
    /// above it that arrived early (sends race) wait in `admitted_ahead`.
    admitted_below: u64,
    admitted_ahead: BTreeSet<u64>,
    /// The sequence numbers of the records in the producer now: bounded by
    /// the queue's record cap, however long one record keeps retrying.
    unsettled: BTreeSet<u64>,
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    shutdown: Option<(Instant, Option<oneshot::Sender<()>>)>,
    cut_off: bool,
    records_closed: bool,
    control_closed: bool,
}

impl Dispatcher {
    pub(crate) fn new(
        destination: Arc<dyn Destination>,
        sink: Option<Box<dyn DeadLetterSink>>,
        config: ProducerConfig,
        counters: Arc<SinkCounters>,
        intake: Intake,
    ) -> Self {
        let limits = destination.limits();
        let batcher = Batcher::new(config.clone(), limits, destination.newline_delimited());
        Dispatcher {
            refresh_shard_map: batcher.needs_shard_map(),
            shard_map_retry: None,
            misrouted: Vec::new(),
            relist_at: None,
            concurrency: Concurrency::new(config.max_in_flight, config.adaptive_concurrency),
            limits,
            destination,
            config,
            counters,
            rng: StdRng::from_os_rng(),
            held: 0,
            warnings: Warnings::default(),
            batcher,
            intake,
            retries: BTreeMap::new(),
            in_flight: JoinSet::new(),
            in_flight_batches: HashMap::new(),
            request_bytes_in_flight: 0,
            request_budget_full: false,
            hand_back: sink.is_none(),
            dead_letters: DeadLetters::new(sink.unwrap_or_else(|| Box::new(HandBack))),
            admitted_below: 0,
            admitted_ahead: BTreeSet::new(),
            unsettled: BTreeSet::new(),
            flushes: Vec::new(),
            shutdown: None,
            cut_off: false,
            records_closed: false,
            control_closed: false,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut records: mpsc::UnboundedReceiver<Vec<Pending>>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        loop {
            let now = Instant::now();
            if self.shard_map_retry.is_some_and(|(at, _)| at <= now)
                || self.relist_at.is_some_and(|at| at <= now)
            {
                self.relist_at = None;
                self.refresh_shard_map = true;
            }
            let listed = self.refresh_shard_map;
            if self.refresh_shard_map {
                self.refresh_shard_map = false;
                self.load_shard_map(now).await;
            }
            if !self.misrouted.is_empty() {
                self.settle_misrouted(listed, now);
            }
            let now = Instant::now();
            for line in self.warnings.close(now, false) {
                line.log();
            }
            self.batcher.pacer().tick(now);
            self.cut_off_at_deadline(now);
            self.promote_due_retries(now);
            self.dispatch(now);
            for pending in self.dead_letters.start() {
                // The sink was lost to a panic: these cannot be settled.
                self.not_dead_lettered(pending, "the dead-letter sink is gone (it panicked)");
            }
            self.answer_flushes();
            if self.finished() {
                break;
            }
            match self.next_event(&mut records, &mut control).await {
                Event::Records(Some(pendings)) => {
                    let now = Instant::now();
                    for pending in pendings {
                        self.admit(pending, now);
                    }
                }
                Event::Records(None) => self.records_closed = true,
                Event::Control(Some(Control::Flush { up_to, done })) => {
                    self.flushes.push((up_to, done));
                }
                Event::Control(Some(Control::Shutdown { deadline, done })) => {
                    // No more records: take in those already sent.
                    records.close();
                    let now = Instant::now();
                    while let Ok(pendings) = records.try_recv() {
                        for pending in pendings {
                            self.admit(pending, now);
                        }
                    }
                    self.records_closed = true;
                    self.shutdown = Some((deadline, Some(done)));
                }
                Event::Control(None) => self.control_closed = true,
                Event::BatchDone(id, result) => self.batch_done(id, result),
                Event::DeadLettersWritten(result) => self.dead_letters_written(result),
                Event::Timer => {}
            }
        }
        for line in self.warnings.close(Instant::now(), true) {
            line.log();
        }
        self.answer_flushes();
        for (_, done) in self.flushes.drain(..) {
            let _ = done.send(());
        }
        if let Some((_, Some(done))) = self.shutdown.take() {
            let _ = done.send(());
        }
    }

    /// Asks the destination for its open shards. Without a map, records
    /// are not aggregated (each goes alone, where its key takes it), and
    /// shards are not paced. A map that cannot be listed again is dropped:
    /// it was asked for because it no longer matches the stream.
    async fn load_shard_map(&mut self, now: Instant) {
        match self.destination.shard_map().await {
            Ok(map) => {
                if self.shard_map_retry.take().is_some() && map.is_some() {
                    tracing::info!(
                        destination = self.destination.name(),
                        "the shards are listed again: records are aggregated by shard and \
                         throttled shards paced"
                    );
                }
                self.batcher.set_shard_map(map);
            }
            Err(e) => {
                let wait = match self.shard_map_retry {
                    Some((_, wait)) => {
                        tracing::debug!(
                            destination = self.destination.name(),
                            error = %e,
                            "cannot list the shards, again"
                        );
                        wait
                    }
                    None => {
                        tracing::warn!(
                            destination = self.destination.name(),
                            error = %e,
                            "cannot list the shards: records are sent one by one rather than \
                             aggregated, and a throttled shard is not paced, until they are \
                             listed (it needs kinesis:ListShards); trying again in {} s",
                            SHARD_MAP_RETRY_MIN.as_secs()
                        );
                        SHARD_MAP_RETRY_MIN
                    }
                };
                self.shard_map_retry = Some((now + wait, (wait * 2).min(SHARD_MAP_RETRY_MAX)));
                self.batcher.set_shard_map(None);
            }
        }
        self.counters
            .set_paced_shards(self.batcher.pacer().paced_shards() as u64);
    }

    /// Settles the members of aggregates stored in a shard other than the
    /// one they were made for, by the range of that shard in the maps
    /// listed since: a member whose key that shard holds is delivered; the
    /// others are sent again, as the KPL does (consumers that keep only the
    /// user records of their shard's hash key range, the KCL among them,
    /// drop the copy stored there). An aggregate whose shard no map has
    /// listed yet (a second split landed after the last listing) waits for
    /// the next listing, [`RELIST_AFTER`] later; after
    /// [`MISROUTED_LISTINGS`] listings without it, every member is sent
    /// again. `listed`: the shards were listed just now.
    fn settle_misrouted(&mut self, listed: bool, now: Instant) {
        let mut waiting = Vec::new();
        for mut misrouted in std::mem::take(&mut self.misrouted) {
            let stored_in = misrouted.delivery.shard_id().unwrap_or_default().to_owned();
            if !self.batcher.knows_shard(&stored_in) {
                misrouted.listings += u8::from(listed);
                if misrouted.listings < MISROUTED_LISTINGS {
                    waiting.push(misrouted);
                    continue;
                }
            }
            let Misrouted {
                members, delivery, ..
            } = misrouted;
            let mut again = Vec::new();
            for mut pending in members {
                match self.batcher.shard_holds(&stored_in, &pending.record) {
                    Some(true) => self.delivered(pending, delivery.clone()),
                    _ => {
                        pending.stored_outside_key_range();
                        again.push(pending);
                    }
                }
            }
            if again.is_empty() {
                continue;
            }
            tracing::debug!(
                destination = self.destination.name(),
                shard = stored_in,
                records = again.len(),
                "an aggregate was stored in a shard that does not hold all its keys (the \
                 stream was resharded): sending those records again"
            );
            let message = format!(
                "stored in {stored_in}, which does not hold its key since the stream was resharded"
            );
            self.failed_together(
                again,
                ErrorClass::Retryable,
                (Some(WRONG_SHARD.to_owned()), &message),
                false,
                FreeRetry::WrongShard,
            );
        }
        if !waiting.is_empty() && self.relist_at.is_none() {
            self.relist_at = Some(now + RELIST_AFTER);
        }
        self.misrouted = waiting;
    }

    fn finished(&self) -> bool {
        let stopping = self.shutdown.is_some() || (self.records_closed && self.control_closed);
        stopping
            && self.records_closed
            && self.batcher.is_idle()
            && self.retries.is_empty()
            && self.in_flight_batches.is_empty()
            && self.misrouted.is_empty()
            && self.dead_letters.is_idle()
    }

    async fn next_event(
        &mut self,
        records: &mut mpsc::UnboundedReceiver<Vec<Pending>>,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Event {
        let wake = self.next_wake();
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let job = async {
            match self.dead_letters.job() {
                Some(job) => job.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            pendings = records.recv(), if !self.records_closed => Event::Records(pendings),
            request = control.recv(), if !self.control_closed => Event::Control(request),
            Some(done) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                match done {
                    Ok((id, output)) => Event::BatchDone(id, Some(output)),
                    Err(e) => Event::BatchDone(e.id(), None),
                }
            }
            written = job => Event::DeadLettersWritten(written),
            () = sleep => Event::Timer,
        }
    }

    /// The next time something is due: a batch's linger, a retry, the
    /// shutdown deadline, the rate limiter's tokens.
    fn next_wake(&self) -> Option<Instant> {
        let room =
            self.in_flight_batches.len() < self.concurrency.limit() && !self.request_budget_full;
        let linger = room.then(|| self.batcher.linger_ends()).flatten();
        let retry = self.retries.keys().next().map(|(due, _)| *due);
        let rate = self.batcher.rate_limited_until();
        let deadline = self
            .shutdown
            .as_ref()
            .filter(|_| !self.cut_off)
            .map(|(d, _)| *d);
        let warnings = self.warnings.next_due();
        let shard_map = self.shard_map_retry.map(|(at, _)| at);
        [
            linger,
            retry,
            deadline,
            rate,
            warnings,
            shard_map,
            self.relist_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A record arrives from `send`.
    fn admit(&mut self, mut pending: Pending, now: Instant) {
        self.unsettled.insert(pending.seq);
        // Records mostly arrive in order: only one that overtook another
        // waits in the set.
        if pending.seq == self.admitted_below {
            self.admitted_below += 1;
            while self.admitted_ahead.remove(&self.admitted_below) {
                self.admitted_below += 1;
            }
        } else {
            self.admitted_ahead.insert(pending.seq);
        }
        if let Some(letter) = pending.rejected.take() {
            self.dead_letters.push(pending, *letter);
            return;
        }
        let size = self.batcher.size_of(&pending);
        if size > self.limits.max_record_bytes {
            let message = format!(
                "{size} bytes is more than the {} bytes {} accepts per record",
                self.limits.max_record_bytes,
                self.destination.name()
            );
            pending.last_error = Some((None, message));
            self.dead_letter(pending, DeadLetterReason::RecordTooLarge);
            return;
        }
        self.batcher.admit(pending, now);
    }

    fn promote_due_retries(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(entry) = self.retries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        self.batcher.retry(due, now);
    }

    /// Sends batches while there is room in flight and a batch is due.
    fn dispatch(&mut self, now: Instant) {
        if self
            .batcher
            .rate_limited_until()
            .is_some_and(|until| now < until)
        {
            // The pacer held records back a moment ago: taking again before
            // its interval would send the few tokens since then as tiny
            // requests (and, aggregated, as tiny aggregates that spend a
            // shard's record limit).
            return;
        }
        let hurry =
            !self.flushes.is_empty() || self.shutdown.is_some() || self.intake.nearly_full();
        while self.in_flight_batches.len() < self.concurrency.limit()
            && !self.request_budget_full
            && self.batcher.has_ready()
            && self.batcher.is_due(now, hurry)
        {
            let units = self.batcher.take(now);
            if units.is_empty() {
                // Everything ready is held back by the pacer.
                break;
            }
            let (entry_bytes, entry_count) = units.iter().fold((0, 0), |(bytes, count), unit| {
                (
                    bytes + unit.draft.data_len() + unit.draft.partition_key().len_bytes(),
                    count + 1,
                )
            });
            let copy_bytes = self.config.request_copy_bytes(entry_bytes, entry_count);
            if !self.in_flight_batches.is_empty()
                && self.request_bytes_in_flight + copy_bytes > self.config.request_budget()
            {
                // Its copies would take memory past the cap: it waits for a
                // request in flight to come back. (Alone in flight, a batch
                // always fits: the budget holds a full one.)
                self.batcher.put_back(units, now);
                self.request_budget_full = true;
                break;
            }
            self.send(units, copy_bytes);
        }
    }

    /// Starts the request for one batch.
    fn send(&mut self, units: Vec<Unit<Pending>>, copy_bytes: usize) {
        self.request_bytes_in_flight += copy_bytes;
        let at = SystemTime::now();
        let mut drafts = Vec::with_capacity(units.len());
        let mut predicted = Vec::with_capacity(units.len());
        let mut members = Vec::with_capacity(units.len());
        for mut unit in units {
            drafts.push(unit.draft);
            predicted.push(unit.predicted_shard);
            for pending in &mut unit.members {
                pending.attempt(at);
            }
            members.push(unit.members);
        }
        let destination = self.destination.clone();
        self.counters.request_started();
        let sent = Instant::now();
        let handle = self.in_flight.spawn(async move {
            let started = Instant::now();
            let entries: Vec<Entry> = drafts.into_iter().map(Draft::finish).collect();
            let result = destination.put(&entries).await;
            (result, started.elapsed())
        });
        self.in_flight_batches.insert(
            handle.id(),
            InFlight {
                members,
                predicted,
                shard_map_generation: self.batcher.shard_map_generation(),
                sent,
                in_flight_then: self.in_flight_batches.len() + 1,
                copy_bytes,
            },
        );
    }

    fn batch_done(&mut self, id: tokio::task::Id, output: Option<(PutResult, Duration)>) {
        let Some(InFlight {
            members,
            predicted,
            shard_map_generation,
            sent,
            in_flight_then,
            copy_bytes,
        }) = self.in_flight_batches.remove(&id)
        else {
            return; // cut off at the shutdown deadline; already dead-lettered
        };
        self.request_bytes_in_flight = self.request_bytes_in_flight.saturating_sub(copy_bytes);
        self.request_budget_full = false;
        let (mut result, latency) = output.unwrap_or_else(|| {
            (
                Err(PutError {
                    class: ErrorClass::Retryable,
                    code: None,
                    message: format!("the {} request task panicked", self.destination.name()),
                    outcome_unknown: true,
                }),
                Duration::ZERO,
            )
        });
        if let Ok(results) = &result
            && results.len() != members.len()
        {
            // A destination that answers for too few or too many entries
            // cannot be trusted with any of them.
            result = Err(PutError {
                class: ErrorClass::Retryable,
                code: None,
                message: format!(
                    "{} answered {} results for {} entries",
                    self.destination.name(),
                    results.len(),
                    members.len()
                ),
                outcome_unknown: true,
            });
        }
        self.counters.request_finished(latency, result.is_err());
        let now = Instant::now();
        let answer = match &result {
            Err(error) if error.class == ErrorClass::Retryable => Answer::PushedBack,
            _ => Answer::Answered,
        };
        self.concurrency
            .answered(answer, latency, sent, in_flight_then, now);
        self.counters
            .set_in_flight_limit(self.concurrency.limit() as u64);
        match result {
            Ok(results) => {
                // What the shards took and refused first: a throttle in the
                // same answer is judged against all of it. The shard of each
                // throttled entry, worked out once.
                let mut throttled_shards = Vec::with_capacity(members.len());
                // Entries of no worked-out shard count once per answer.
                let (mut unmapped, mut unmapped_bytes) = (0usize, 0usize);
                for ((unit, result), predicted) in members.iter().zip(&results).zip(&predicted) {
                    let shard = predicted.as_ref().map(|(index, _)| *index);
                    let mut throttled_shard = None;
                    match result {
                        Ok(_) => {
                            let bytes: usize = unit
                                .iter()
                                .map(|p| p.record.data.len() + p.record.partition_key.len_bytes())
                                .sum();
                            if let Some(shard) = shard {
                                self.batcher
                                    .pacer()
                                    .delivered(shard, bytes as f64, sent, now);
                            } else {
                                unmapped += 1;
                                unmapped_bytes += bytes;
                            }
                        }
                        Err(error) if error.code == SHARD_THROTTLED => {
                            let shard = shard.or_else(|| {
                                unit.first().and_then(|p| self.batcher.shard_of(&p.record))
                            });
                            if let Some(shard) = shard {
                                self.batcher.pacer().refused(shard, sent, now);
                            }
                            throttled_shard = shard;
                        }
                        Err(_) => {}
                    }
                    throttled_shards.push(throttled_shard);
                }
                if unmapped > 0 {
                    self.batcher.pacer().delivered_unmapped(
                        unmapped as f64,
                        unmapped_bytes as f64,
                        sent,
                        now,
                    );
                }
                let mut throttled = 0;
                let aggregated = self.config.aggregate_max_bytes.is_some();
                for (((unit, result), predicted), throttled_shard) in members
                    .into_iter()
                    .zip(results)
                    .zip(predicted)
                    .zip(throttled_shards)
                {
                    match result {
                        Ok(delivery) => {
                            if let (Some((_, predicted)), Some(stored_in)) =
                                (&predicted, delivery.shard_id())
                                && predicted != stored_in
                            {
                                // The stream was resharded: aggregate and pace by the
                                // new shards (unless the map was listed since this
                                // request went, and lists the shard it landed in).
                                if shard_map_generation == self.batcher.shard_map_generation()
                                    || !self.batcher.knows_shard(stored_in)
                                {
                                    self.refresh_shard_map = true;
                                }
                                if aggregated && unit.len() > 1 {
                                    // Its members are settled by the new map.
                                    self.misrouted.push(Misrouted {
                                        members: unit,
                                        delivery,
                                        listings: 0,
                                    });
                                    continue;
                                }
                            }
                            for pending in unit {
                                self.delivered(pending, delivery.clone());
                            }
                        }
                        Err(error) => {
                            let class = classify(&error.code, None);
                            let failure = (Some(error.code.clone()), error.message.as_str());
                            let free = if error.code == SHARD_THROTTLED
                                && self.shard_throttled(throttled_shard, sent, now)
                            {
                                FreeRetry::PacedShard
                            } else {
                                FreeRetry::No
                            };
                            throttled += u64::from(error.code == SHARD_THROTTLED);
                            self.failed_together(unit, class, failure, false, free);
                        }
                    }
                }
                if throttled > 0 {
                    self.counters.throttled(throttled);
                    self.counters
                        .set_paced_shards(self.batcher.pacer().paced_shards() as u64);
                }
            }
            Err(error) => {
                let kind = Kind {
                    message: "batch request failed",
                    about: About::Destination(self.destination.name().to_owned()),
                    reason: error.class.as_str().to_owned(),
                };
                let example = || format!("{} ({} entries)", error.message, members.len());
                if let Some(line) = self.warnings.warn(kind, Instant::now(), example) {
                    line.log();
                }
                self.failed_together(
                    members.into_iter().flatten().collect(),
                    error.class,
                    (error.code.clone(), error.message.as_str()),
                    error.outcome_unknown,
                    FreeRetry::No,
                );
            }
        }
    }

    fn delivered(&mut self, mut pending: Pending, delivery: Delivery) {
        self.counters.delivered(
            &pending.record.source,
            pending.record.data.len(),
            pending.extra_copies(),
        );
        if let Some(reply) = pending.reply.take() {
            reply.send(Outcome::Delivered(delivery));
        }
        self.left(pending);
    }

    /// Records that failed together: one entry, or one request, with
    /// `(code, message)`. With strict ordering and aggregation a key may
    /// have several records in one aggregate: only the first of them to be
    /// retried waits for its retry; the key's others go back to the front
    /// of its waiting line, to join that retry's aggregate when it goes out
    /// again. Each failure is recorded on every record.
    ///
    /// A [`FreeRetry`] failure — throttled by a shard the producer now
    /// paces, or stored in a shard that does not hold the key — is no
    /// failure of the records: they go back at once (a paced shard's
    /// records then wait for its tokens), without spending a retry, up to
    /// a bound per record.
    fn failed_together(
        &mut self,
        pendings: Vec<Pending>,
        class: ErrorClass,
        (code, message): (Option<String>, &str),
        outcome_unknown: bool,
        free: FreeRetry,
    ) {
        let regroup = self.config.strict_ordering && self.config.aggregate_max_bytes.is_some();
        let mut retrying: HashSet<PartitionKey> = HashSet::new();
        let mut back = Vec::new();
        for mut pending in pendings {
            pending.failed(code.clone(), message, outcome_unknown);
            let free = !self.cut_off
                && match free {
                    FreeRetry::No => false,
                    FreeRetry::PacedShard => pending.paced_throttle(),
                    FreeRetry::WrongShard => pending.wrong_shard(),
                };
            let decision = if free {
                Decision::Retry
            } else {
                let failing_for = pending
                    .first_attempt
                    .and_then(|first| SystemTime::now().duration_since(first).ok())
                    .unwrap_or_default();
                self.config
                    .retry
                    .decide(class, pending.attempts, failing_for, self.cut_off)
            };
            if regroup
                && matches!(decision, Decision::Retry | Decision::Hold)
                && !retrying.insert(pending.record.partition_key.clone())
            {
                self.counters.retried(&pending.record.source);
                back.push(pending);
                continue;
            }
            self.failed(pending, decision, free);
        }
        self.batcher.wait_again(back, Instant::now());
    }

    /// An entry bound for a shard was throttled: the shard is paced (its
    /// rate cut unless it was cut recently). Whether the entry's shard is
    /// known and paced, so that its records may simply wait for it.
    fn shard_throttled(&mut self, shard: Option<usize>, sent: Instant, now: Instant) -> bool {
        if !self.config.adaptive_shard_rate {
            // A fixed rate limit at most: the shard's records retry as any.
            return false;
        }
        let Some(shard) = shard else {
            return false;
        };
        match self.batcher.pacer().throttled(shard, sent, now) {
            Throttle::Cut(share) => tracing::debug!(
                destination = self.destination.name(),
                shard,
                share,
                "a shard throttled: pacing it at this share of a shard's capacity"
            ),
            Throttle::Paced => {}
        }
        true
    }

    /// A record failed: it waits for its retry, is held, or is
    /// dead-lettered. A `paced` one waits for no delay: its shard's tokens
    /// time it.
    fn failed(&mut self, mut pending: Pending, decision: Decision, paced: bool) {
        let delay = match decision {
            Decision::Retry if paced => Duration::ZERO,
            Decision::Retry => self.config.retry.delay(pending.attempts, &mut self.rng),
            Decision::Hold => {
                if !pending.held {
                    pending.held = true;
                    self.hold(&pending);
                }
                self.config
                    .retry
                    .hold_delay(pending.attempts, &mut self.rng)
            }
            Decision::GiveUp(reason) => return self.dead_letter(pending, reason),
        };
        self.counters.retried(&pending.record.source);
        let due = Instant::now() + delay;
        self.retries.insert((due, pending.seq), pending);
    }

    /// A held record left: the last one of an outage says so.
    fn released(&mut self) {
        self.counters.released();
        self.held = self.held.saturating_sub(1);
        if self.held == 0 {
            tracing::info!(
                destination = self.destination.name(),
                "no record is held any more: the service is taking records again"
            );
        }
    }

    /// A record is held: the first one of an outage says so.
    fn hold(&mut self, pending: &Pending) {
        self.counters.held();
        self.held += 1;
        if self.held == 1 {
            let (code, message) = pending.last_error.clone().unwrap_or_default();
            tracing::warn!(
                destination = self.destination.name(),
                error = message,
                code = code.unwrap_or_default(),
                "the service keeps failing: records that used up their retries are held and \
                 tried again until it takes them; reading pauses while the queue is full"
            );
        }
    }

    fn dead_letter(&mut self, pending: Pending, reason: DeadLetterReason) {
        let (data, data_encoding) = DeadLetter::encode_data(&pending.record.data);
        let (error_code, error_message) = pending
            .last_error
            .clone()
            .map_or((None, None), |(code, message)| (code, Some(message)));
        let letter = DeadLetter {
            data,
            data_encoding,
            partition_key: pending.record.partition_key.as_str().to_owned(),
            explicit_hash_key: pending.record.explicit_hash_key.map(|k| k.to_string()),
            source: pending.record.source.as_str().to_owned(),
            destination: self.destination.name().to_owned(),
            reason,
            error_code,
            error_message,
            attempts: pending.attempts,
            first_attempt: pending.first_attempt.map(DeadLetter::format_time),
            last_attempt: pending.last_attempt.map(DeadLetter::format_time),
            dead_lettered_at: DeadLetter::format_time(SystemTime::now()),
            context: BTreeMap::new(),
        };
        self.dead_letters.push(pending, letter);
    }

    fn dead_letters_written(&mut self, result: Result<Job, tokio::task::JoinError>) {
        match self.dead_letters.finished(result) {
            Written::Durable(written) => {
                for (mut pending, letter) in written {
                    self.counters.dead_lettered(
                        &pending.record.source,
                        pending.record.data.len(),
                        letter.reason == DeadLetterReason::Rejected,
                    );
                    let kind = Kind {
                        message: "record dead-lettered",
                        about: About::Source(pending.record.source.as_str().to_owned()),
                        reason: letter.reason.as_str().to_owned(),
                    };
                    let example = || letter.error_message.clone().unwrap_or_default();
                    if let Some(line) = self.warnings.warn(kind, Instant::now(), example) {
                        line.log();
                    }
                    if let Some(reply) = pending.reply.take() {
                        let record = self.hand_back.then(|| Box::new(pending.record.clone()));
                        reply.send(Outcome::DeadLettered {
                            reason: letter.reason,
                            error_code: letter.error_code,
                            error_message: letter.error_message,
                            record,
                        });
                    }
                    self.left(pending);
                }
            }
            Written::Failed(pendings, message) => {
                tracing::error!(records = pendings.len(), "{message}");
                for pending in pendings {
                    self.not_dead_lettered(pending, &message);
                }
            }
            Written::Lost(lost) => {
                // The records went down with the job; their receipts were
                // dropped and report the producer stopped. Count them.
                for record in lost {
                    if record.held {
                        self.released();
                    }
                    self.counters.failed(&record.source, record.bytes);
                    self.left_seq(record.seq, &record.key, record.holds_turn);
                }
            }
        }
    }

    fn not_dead_lettered(&mut self, mut pending: Pending, message: &str) {
        self.counters
            .failed(&pending.record.source, pending.record.data.len());
        if let Some(reply) = pending.reply.take() {
            reply.send(Outcome::Failed {
                message: message.to_owned(),
            });
        }
        self.left(pending);
    }

    /// A record leaves the producer: its key's next record may go, its
    /// sequence number no longer holds up flushes, its queue room is freed.
    fn left(&mut self, pending: Pending) {
        if pending.held {
            self.released();
        }
        self.left_seq(
            pending.seq,
            &pending.record.partition_key,
            pending.holds_turn,
        );
    }

    fn left_seq(&mut self, seq: u64, key: &PartitionKey, holds_turn: bool) {
        // Only a record holding its key's turn hands it on (and needs the
        // time): no clock reading per record otherwise.
        if holds_turn {
            self.batcher.left(key, Instant::now());
        }
        self.unsettled.remove(&seq);
    }

    /// A flush is answered once every record sent before it has arrived
    /// and left the producer.
    fn answer_flushes(&mut self) {
        let arrived = self.admitted_below;
        let oldest = self.unsettled.first().copied();
        let mut waiting = Vec::new();
        for (up_to, done) in self.flushes.drain(..) {
            if arrived >= up_to && oldest.is_none_or(|seq| seq >= up_to) {
                let _ = done.send(());
            } else {
                waiting.push((up_to, done));
            }
        }
        self.flushes = waiting;
    }

    /// At the shutdown deadline, everything not yet settled is dead-lettered.
    fn cut_off_at_deadline(&mut self, now: Instant) {
        let Some((deadline, _)) = &self.shutdown else {
            return;
        };
        if self.cut_off || now < *deadline {
            return;
        }
        self.cut_off = true;
        // Dropping the set aborts the requests still in flight.
        self.in_flight = JoinSet::new();
        let mut left_behind: Vec<Pending> = Vec::new();
        self.request_bytes_in_flight = 0;
        self.request_budget_full = false;
        for (_, batch) in self.in_flight_batches.drain() {
            self.counters.request_aborted();
            for mut pending in batch.members.into_iter().flatten() {
                pending.unknown_attempts += 1;
                left_behind.push(pending);
            }
        }
        for misrouted in std::mem::take(&mut self.misrouted) {
            left_behind.extend(misrouted.members);
        }
        let (ready, waiting) = self.batcher.drain();
        left_behind.extend(ready);
        left_behind.extend(std::mem::take(&mut self.retries).into_values());
        left_behind.extend(waiting);
        if !left_behind.is_empty() {
            tracing::warn!(
                records = left_behind.len(),
                "shutdown deadline passed; dead-lettering what is not delivered"
            );
        }
        for mut pending in left_behind {
            if pending.last_error.is_none() {
                pending.last_error = Some((
                    None,
                    "not delivered when the shutdown deadline passed".to_owned(),
                ));
            }
            self.dead_letter(pending, DeadLetterReason::ShutdownDeadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RECORD_OVERHEAD_BYTES;

    #[test]
    fn a_records_bookkeeping_fits_its_overhead_allowance() {
        // The queue's box and the receipt channel's allocation: two
        // reference counts, a state word, the outcome and two wakers.
        let channel = size_of::<Outcome>() + 3 * size_of::<usize>() + 2 * 3 * size_of::<usize>();
        let used = size_of::<Pending>() + channel;
        assert!(
            used <= RECORD_OVERHEAD_BYTES,
            "{used} bytes a record, {RECORD_OVERHEAD_BYTES} allowed"
        );
    }
}
