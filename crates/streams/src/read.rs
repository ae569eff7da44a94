//! Reading a stream back as a consumer does: every shard, parents before
//! children after a reshard, KPL aggregates opened into their user records.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::{DateTime, DateTimeFormat};
use aws_sdk_kinesis::types::ShardIteratorType;
use shardline_partition_key::{PartitionKey, hash_key};
use shardline_producer::aggregation::deaggregate;
use tokio::time::Instant;

use crate::StreamError;
use crate::admin::{ShardInfo, list_shards};

/// `GetRecords` returns at most this many records a call
/// (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html>).
const GET_RECORDS_MAX: i32 = 10_000;
/// Each shard takes at most 5 `GetRecords` calls a second (same page):
/// the reader calls each shard at most this often.
pub const GET_RECORDS_INTERVAL: Duration = Duration::from_millis(200);
/// After `ProvisionedThroughputExceededException` a shard waits this long,
/// doubling to [`THROTTLED_PAUSE_MAX`] while it lasts.
const THROTTLED_PAUSE_MIN: Duration = Duration::from_millis(500);
/// The longest wait after a refused `GetRecords`.
const THROTTLED_PAUSE_MAX: Duration = Duration::from_secs(5);
/// How long a read call may go unanswered before reading fails: the SDK
/// waits forever by default, and a reader that follows a stream must not
/// hang silently (GetRecords answers within a second or two,
/// <https://docs.aws.amazon.com/streams/latest/dev/troubleshooting-consumers.html>).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a reader that follows the stream lists its shards again, to
/// find the children of a reshard it has not finished reading to.
const LIST_EVERY: Duration = Duration::from_secs(10);

/// Where in each shard reading begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record the stream still holds.
    TrimHorizon,
    /// Only records that arrive from now on.
    Latest,
    /// Records that arrived at or after this time.
    AtTimestamp(DateTime),
    /// Records after this sequence number (of one shard).
    AfterSequence(String),
}

impl FromStr for StartAt {
    type Err = StreamError;

    /// `trim-horizon`, `latest`, `at-timestamp:T` (RFC 3339, or seconds
    /// since the Unix epoch), `after-sequence:SEQ`.
    ///
    /// ```
    /// use shardline_streams::StartAt;
    ///
    /// assert_eq!("latest".parse::<StartAt>().unwrap(), StartAt::Latest);
    /// assert!(matches!(
    ///     "at-timestamp:2026-12-07T10:00:00Z".parse::<StartAt>().unwrap(),
    ///     StartAt::AtTimestamp(_)
    /// ));
    /// assert!("yesterday".parse::<StartAt>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Self, StreamError> {
        let invalid = |why: &str| {
            StreamError::Invalid(format!(
                "{why}: `{text}` (trim-horizon, latest, at-timestamp:T or after-sequence:SEQ)"
            ))
        };
        match text {
            "trim-horizon" => return Ok(StartAt::TrimHorizon),
            "latest" => return Ok(StartAt::Latest),
            _ => {}
        }
        if let Some(time) = text.strip_prefix("at-timestamp:") {
            let parsed = DateTime::from_str(time, DateTimeFormat::DateTimeWithOffset)
                .ok()
                .or_else(|| time.parse::<f64>().ok().map(DateTime::from_secs_f64));
            return parsed
                .map(StartAt::AtTimestamp)
                .ok_or_else(|| invalid("not an RFC 3339 time or seconds since the epoch"));
        }
        if let Some(sequence) = text.strip_prefix("after-sequence:") {
            if sequence.is_empty() || !sequence.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("a sequence number is digits"));
            }
            return Ok(StartAt::AfterSequence(sequence.to_owned()));
        }
        Err(invalid("unknown starting position"))
    }
}

/// What to read and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Where reading begins in the shards the stream has when it starts;
    /// shards born of a reshard after that are read from their start.
    pub start: StartAt,
    /// Read this shard only (parents are not waited for).
    pub shard: Option<String>,
    /// Open KPL aggregates into their user records, keeping only those
    /// whose hash key the shard holds, as the KCL does. `false`: every
    /// record exactly as stored.
    pub deaggregate: bool,
}

impl Default for ReadOptions {
    /// Every shard from the oldest record, deaggregated.
    fn default() -> Self {
        ReadOptions {
            start: StartAt::TrimHorizon,
            shard: None,
            deaggregate: true,
        }
    }
}

/// One record as read back: a user record of an aggregate, or a record
/// stored as it was put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// The shard it was read from.
    pub shard_id: String,
    /// The stored record's sequence number (shared by an aggregate's user
    /// records).
    pub sequence_number: String,
    /// Its place in its aggregate, from 0; 0 for a record not aggregated.
    pub sub_sequence_number: u64,
    /// Whether it came out of a KPL aggregate.
    pub aggregated: bool,
    /// Its partition key.
    pub partition_key: String,
    /// Its explicit hash key, if it was put with one (aggregated records).
    pub explicit_hash_key: Option<String>,
    /// When the stream took it (`ApproximateArrivalTimestamp`).
    pub arrival: Option<DateTime>,
    /// Its data.
    pub data: Vec<u8>,
}

impl ReadRecord {
    /// Arrival in milliseconds since the Unix epoch.
    pub fn arrival_ms(&self) -> Option<i64> {
        self.arrival.and_then(|t| t.to_millis().ok())
    }

    /// Arrival as RFC 3339 text (`2026-12-07T10:00:00.123Z`).
    pub fn arrival_text(&self) -> Option<String> {
        self.arrival
            .and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
    }
}

/// Where one shard's reading stands.
#[derive(Debug)]
enum Cursor {
    /// No iterator yet: begin at this position.
    Unstarted(StartAt),
    /// The next `GetRecords` iterator.
    Reading(String),
    /// A closed shard read to its end.
    Done,
}

#[derive(Debug)]
struct ShardState {
    info: ShardInfo,
    cursor: Cursor,
    /// When the next call to this shard may go.
    next_call: Instant,
    /// The pause after a refused call; doubles while refusals last.
    throttled_pause: Duration,
    /// The last sequence number read, to begin after it again when an
    /// iterator expires.
    last_sequence: Option<String>,
    /// The last call returned nothing and the shard is not behind.
    caught_up: bool,
}

/// Reads a stream as a consumer does, shard by shard, remembering its
/// place: each [`StreamReader::poll`] returns what arrived since the last.
///
/// - Each shard is called at most every [`GET_RECORDS_INTERVAL`] (5 calls
///   a second, Kinesis's limit), and waits longer after
///   `ProvisionedThroughputExceededException`.
/// - After a reshard, a child shard is read only once its parents are read
///   to their end, so records of one key come out in order.
/// - An iterator that expires (after 5 minutes) is replaced by one after
///   the last record read.
#[derive(Debug)]
pub struct StreamReader {
    client: Client,
    stream: String,
    options: ReadOptions,
    shards: BTreeMap<String, ShardState>,
    listed_at: Option<Instant>,
    /// A shard finished: list again to find its children.
    relist: bool,
    misplaced: u64,
}

impl StreamReader {
    /// A reader of every shard of `stream` from its oldest record,
    /// aggregates opened ([`ReadOptions::default`]); nothing is called
    /// until the first poll.
    pub fn new(client: &Client, stream: &str) -> Self {
        StreamReader {
            client: client.clone(),
            stream: stream.to_owned(),
            options: ReadOptions::default(),
            shards: BTreeMap::new(),
            listed_at: None,
            relist: false,
            misplaced: 0,
        }
    }

    /// A reader with `options`. `after-sequence` needs a shard: a sequence
    /// number belongs to one.
    pub fn with_options(
        client: &Client,
        stream: &str,
        options: ReadOptions,
    ) -> Result<Self, StreamError> {
        if matches!(options.start, StartAt::AfterSequence(_)) && options.shard.is_none() {
            return Err(StreamError::Invalid(
                "after-sequence:SEQ needs a shard: a sequence number belongs to one shard".into(),
            ));
        }
        Ok(StreamReader {
            options,
            ..StreamReader::new(client, stream)
        })
    }

    /// Records exactly as stored: aggregates not opened, nothing skipped.
    pub fn raw(mut self) -> Self {
        self.options.deaggregate = false;
        self
    }

    /// User records of aggregates that were skipped because their shard
    /// does not hold their hash key (stored before a reshard reached the
    /// producer; the KCL skips them too, and shardline's producer sends
    /// them again to the right shard).
    pub fn misplaced(&self) -> u64 {
        self.misplaced
    }

    /// Whether every shard is read up to its newest record (and every
    /// closed shard to its end) as of the last call to each.
    pub fn caught_up(&self) -> bool {
        self.listed_at.is_some()
            && self
                .shards
                .values()
                .all(|s| matches!(s.cursor, Cursor::Done) || s.caught_up)
    }

    /// When the next call to some shard may go.
    pub fn next_due(&self) -> Option<Instant> {
        self.shards
            .values()
            .filter(|s| !matches!(s.cursor, Cursor::Done))
            .map(|s| s.next_call)
            .min()
    }

    /// Calls each shard that may be called now once, and returns what they
    /// gave, each shard's records in order.
    pub async fn poll(&mut self) -> Result<Vec<ReadRecord>, StreamError> {
        let now = Instant::now();
        if self.relist || self.listed_at.is_none_or(|at| now >= at + LIST_EVERY) {
            self.list().await?;
        }
        let mut out = Vec::new();
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        for id in ids {
            if !self.ready(&id, now) {
                continue;
            }
            self.read_shard(&id, &mut out).await?;
        }
        Ok(out)
    }

    /// Reads until [`StreamReader::caught_up`], pacing the calls.
    pub async fn read_to_end(&mut self) -> Result<Vec<ReadRecord>, StreamError> {
        let mut out = Vec::new();
        loop {
            out.extend(self.poll().await?);
            if self.caught_up() {
                return Ok(out);
            }
            if let Some(due) = self.next_due() {
                tokio::time::sleep_until(due).await;
            }
        }
    }

    /// Whether a shard may be called now: not done, its pause over, and
    /// (reading the whole stream) its parents read to their end.
    fn ready(&self, id: &str, now: Instant) -> bool {
        let Some(state) = self.shards.get(id) else {
            return false;
        };
        if matches!(state.cursor, Cursor::Done) || state.next_call > now {
            return false;
        }
        if self.options.shard.is_some() {
            return true;
        }
        [&state.info.parent, &state.info.adjacent_parent]
            .into_iter()
            .flatten()
            .all(|parent| {
                // A parent past the retention period is listed no more.
                self.shards
                    .get(parent)
                    .is_none_or(|p| matches!(p.cursor, Cursor::Done))
            })
    }

    async fn list(&mut self) -> Result<(), StreamError> {
        let first = self.listed_at.is_none();
        let shards = list_shards(&self.client, &self.stream).await?;
        if let Some(wanted) = &self.options.shard
            && !shards.iter().any(|s| &s.id == wanted)
        {
            return Err(StreamError::Invalid(format!(
                "stream {} has no shard {wanted}",
                self.stream
            )));
        }
        for info in shards {
            if self.options.shard.as_ref().is_some_and(|w| *w != info.id)
                || self.shards.contains_key(&info.id)
            {
                continue;
            }
            // A shard born after reading began holds only records newer
            // than the starting position: read it all.
            let start = if first {
                self.options.start.clone()
            } else {
                StartAt::TrimHorizon
            };
            self.shards.insert(
                info.id.clone(),
                ShardState {
                    info,
                    cursor: Cursor::Unstarted(start),
                    next_call: Instant::now(),
                    throttled_pause: THROTTLED_PAUSE_MIN,
                    last_sequence: None,
                    caught_up: false,
                },
            );
        }
        self.listed_at = Some(Instant::now());
        self.relist = false;
        Ok(())
    }

    async fn iterator(&self, shard: &str, start: &StartAt) -> Result<Option<String>, StreamError> {
        let request = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(shard);
        let request = match start {
            StartAt::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            StartAt::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            StartAt::AtTimestamp(t) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(*t),
            StartAt::AfterSequence(seq) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
        };
        let answer = answered("GetShardIterator", shard, request.send())
            .await?
            .map_err(|e| StreamError::call("GetShardIterator", shard, e))?;
        Ok(answer.shard_iterator().map(str::to_owned))
    }

    async fn read_shard(&mut self, id: &str, out: &mut Vec<ReadRecord>) -> Result<(), StreamError> {
        let Some(state) = self.shards.get(id) else {
            return Ok(());
        };
        let iterator = match &state.cursor {
            Cursor::Done => return Ok(()),
            Cursor::Reading(iterator) => iterator.clone(),
            Cursor::Unstarted(start) => {
                let start = start.clone();
                match self.iterator(id, &start).await? {
                    Some(iterator) => iterator,
                    None => {
                        self.finish(id);
                        return Ok(());
                    }
                }
            }
        };
        let request = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(GET_RECORDS_MAX);
        let answer = answered("GetRecords", id, request.send()).await?;
        let now = Instant::now();
        let page = match answer {
            Ok(page) => page,
            Err(e) => {
                let error = StreamError::call("GetRecords", id, e);
                let Some(state) = self.shards.get_mut(id) else {
                    return Ok(());
                };
                match error.code() {
                    Some("ProvisionedThroughputExceededException") => {
                        tracing::debug!(shard = id, pause = ?state.throttled_pause, "GetRecords refused: over the shard's read limit");
                        state.next_call = now + state.throttled_pause;
                        state.throttled_pause =
                            (state.throttled_pause * 2).min(THROTTLED_PAUSE_MAX);
                        state.caught_up = false;
                        return Ok(());
                    }
                    Some("ExpiredIteratorException") => {
                        let again = match &state.last_sequence {
                            Some(seq) => StartAt::AfterSequence(seq.clone()),
                            None => self.options.start.clone(),
                        };
                        tracing::debug!(shard = id, "the shard iterator expired; taking a new one");
                        state.cursor = Cursor::Unstarted(again);
                        return Ok(());
                    }
                    _ => return Err(error),
                }
            }
        };
        let Some(state) = self.shards.get_mut(id) else {
            return Ok(());
        };
        state.next_call = now + GET_RECORDS_INTERVAL;
        state.throttled_pause = THROTTLED_PAUSE_MIN;
        let records = page.records();
        state.caught_up = records.is_empty() && page.millis_behind_latest().unwrap_or(0) == 0;
        if let Some(last) = records.last() {
            state.last_sequence = Some(last.sequence_number().to_owned());
        }
        let range = state.info.range();
        for record in records {
            self.misplaced += open_record(
                id,
                record,
                self.options.deaggregate.then_some(range).flatten(),
                self.options.deaggregate,
                out,
            );
        }
        match page.next_shard_iterator() {
            Some(next) => {
                if let Some(state) = self.shards.get_mut(id) {
                    state.cursor = Cursor::Reading(next.to_owned());
                }
            }
            None => self.finish(id),
        }
        Ok(())
    }

    fn finish(&mut self, id: &str) {
        if let Some(state) = self.shards.get_mut(id) {
            state.cursor = Cursor::Done;
            state.caught_up = true;
        }
        self.relist = true;
    }
}

/// `call`'s answer, or an error naming it once [`CALL_TIMEOUT`] passes.
async fn answered<T>(
    operation: &'static str,
    shard: &str,
    call: impl Future<Output = T>,
) -> Result<T, StreamError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| StreamError::Call {
            operation,
            stream: shard.to_owned(),
            code: None,
            detail: format!("no answer in {CALL_TIMEOUT:?}"),
        })
}

/// Adds a stored record to `out`, opened into its user records when it is
/// a KPL aggregate and `deaggregate` is set; returns how many user records
/// were skipped because `range` does not hold their hash key.
fn open_record(
    shard: &str,
    record: &aws_sdk_kinesis::types::Record,
    range: Option<(u128, u128)>,
    deaggregate_it: bool,
    out: &mut Vec<ReadRecord>,
) -> u64 {
    let data = record.data().as_ref();
    let whole = |data: Vec<u8>| ReadRecord {
        shard_id: shard.to_owned(),
        sequence_number: record.sequence_number().to_owned(),
        sub_sequence_number: 0,
        aggregated: false,
        partition_key: record.partition_key().unwrap_or_default().to_owned(),
        explicit_hash_key: None,
        arrival: record.approximate_arrival_timestamp().copied(),
        data,
    };
    if !deaggregate_it {
        out.push(whole(data.to_vec()));
        return 0;
    }
    let users = match deaggregate(data) {
        Ok(Some(users)) => users,
        Ok(None) => {
            out.push(whole(data.to_vec()));
            return 0;
        }
        Err(e) => {
            tracing::warn!(
                shard,
                sequence_number = record.sequence_number(),
                error = %e,
                "a record has the KPL aggregate header but does not decode; shown as stored"
            );
            out.push(whole(data.to_vec()));
            return 0;
        }
    };
    let mut misplaced = 0;
    for (sub, user) in users.into_iter().enumerate() {
        let hash = match &user.explicit_hash_key {
            Some(key) => key.parse::<u128>().ok(),
            None => PartitionKey::new(&user.partition_key)
                .ok()
                .map(|k| hash_key(&k)),
        };
        if let (Some((start, end)), Some(hash)) = (range, hash)
            && !(start..=end).contains(&hash)
        {
            misplaced += 1;
            continue;
        }
        out.push(ReadRecord {
            shard_id: shard.to_owned(),
            sequence_number: record.sequence_number().to_owned(),
            sub_sequence_number: sub as u64,
            aggregated: true,
            partition_key: user.partition_key,
            explicit_hash_key: user.explicit_hash_key,
            arrival: record.approximate_arrival_timestamp().copied(),
            data: user.data,
        });
    }
    misplaced
}
