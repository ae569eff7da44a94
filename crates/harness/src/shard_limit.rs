//! A proxy that enforces Kinesis Data Streams' write limits per shard.
//!
//! No emulator enforces them: kinesalite takes whatever it is sent, so a
//! test through it never sees the `ProvisionedThroughputExceededException`
//! storm that many producers sharing a stream cause. [`ShardLimitProxy`]
//! sits between the SDK and kinesalite, speaks the real protocol (HTTP/1.1,
//! AWS JSON 1.1, `X-Amz-Target`), and does what the service does:
//!
//! - each open shard takes at most [`ShardLimits::records_per_second`]
//!   records and [`ShardLimits::bytes_per_second`] bytes (data and
//!   partition key) over any sliding second; a `PutRecords` entry past
//!   either is answered with `ProvisionedThroughputExceededException` and
//!   not forwarded, the others are (a `PutRecord` past them gets the error
//!   as its answer);
//! - a record's shard is the open shard whose hash key range holds its
//!   explicit hash key, or the MD5 of its partition key as a 128-bit
//!   big-endian integer; the proxy lists the shards (`ListShards`) and
//!   lists them again at most [`SHARD_LIST_TTL`] later, so a reshard is
//!   followed as it happens;
//! - the control-plane calls in [`ShardLimits::requests_per_second`] are
//!   answered with `LimitExceededException` past their rate.
//!
//! kinesalite has no `UpdateShardCount`; the proxy does it as the service
//! does a uniform scale-up to twice the open shards: it splits each open
//! shard at the middle of its hash key range (`SplitShard`, one at a time,
//! waiting for the stream to be `ACTIVE` again in between), and answers
//! at once while the stream reshards.
//!
//! What it took and refused is counted per second ([`ShardLimitProxy::seconds`])
//! and per shard ([`ShardLimitProxy::shards`]), so a benchmark can compare
//! delivery with the shards' budget.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use md5::{Digest, Md5};
use serde_json::{Value, json};

use crate::Error;
use crate::aws_json::{
    KINESIS_TARGET, PartialPut, Server, Service, Upstream, bad_gateway, pass_on, put_except,
    respond,
};

/// Records a shard takes per second.
/// <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>
pub const SHARD_RECORDS_PER_SECOND: u64 = 1_000;
/// Bytes a shard takes per second, partition keys included (1 MiB; same page).
pub const SHARD_BYTES_PER_SECOND: u64 = 1_048_576;
/// `ListShards`: 1,000 transactions per second per stream
/// (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListShards.html>).
pub const LIST_SHARDS_PER_SECOND: u32 = 1_000;
/// `DescribeStreamSummary`: 20 transactions per second per account
/// (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeStreamSummary.html>).
pub const DESCRIBE_STREAM_SUMMARY_PER_SECOND: u32 = 20;
/// `DescribeStream`: 10 transactions per second per account
/// (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeStream.html>).
pub const DESCRIBE_STREAM_PER_SECOND: u32 = 10;
/// How long the proxy trusts a stream's shard list before listing it again.
pub const SHARD_LIST_TTL: Duration = Duration::from_millis(500);
/// The window the limits are enforced over: the service's "per second".
const WINDOW: Duration = Duration::from_secs(1);
/// The account id in the service's error messages.
const ACCOUNT: &str = "000000000000";

/// The limits a [`ShardLimitProxy`] enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLimits {
    /// Records each open shard takes per sliding second.
    pub records_per_second: u64,
    /// Bytes (data and partition key) each open shard takes per sliding
    /// second.
    pub bytes_per_second: u64,
    /// Calls per sliding second of each named operation (`ListShards`,
    /// `DescribeStreamSummary`, ...), for the whole proxy: the proxy stands
    /// for one account and its streams.
    pub requests_per_second: BTreeMap<String, u32>,
}

impl ShardLimits {
    /// The service's own limits.
    pub fn kinesis() -> ShardLimits {
        ShardLimits {
            records_per_second: SHARD_RECORDS_PER_SECOND,
            bytes_per_second: SHARD_BYTES_PER_SECOND,
            requests_per_second: [
                ("ListShards", LIST_SHARDS_PER_SECOND),
                ("DescribeStreamSummary", DESCRIBE_STREAM_SUMMARY_PER_SECOND),
                ("DescribeStream", DESCRIBE_STREAM_PER_SECOND),
            ]
            .into_iter()
            .map(|(op, n)| (op.to_owned(), n))
            .collect(),
        }
    }

    /// The service's limits with each shard's records and bytes per second
    /// scaled by `share` (0.2: a fifth of a shard), so that a test or a
    /// benchmark reaches them with less load.
    pub fn scaled(share: f64) -> ShardLimits {
        let scale = |n: u64| ((n as f64) * share).round().max(1.0) as u64;
        ShardLimits {
            records_per_second: scale(SHARD_RECORDS_PER_SECOND),
            bytes_per_second: scale(SHARD_BYTES_PER_SECOND),
            ..ShardLimits::kinesis()
        }
    }
}

/// What the proxy did in one second of its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondCounts {
    /// Put entries the shards took (and the emulator accepted).
    pub accepted_records: u64,
    /// Their bytes, data and partition keys.
    pub accepted_bytes: u64,
    /// Put entries refused with `ProvisionedThroughputExceededException`.
    pub throttled_records: u64,
    /// Calls refused with `LimitExceededException`.
    pub limited_requests: u64,
    /// `PutRecords` and `PutRecord` calls.
    pub put_requests: u64,
}

impl SecondCounts {
    fn add(&mut self, other: &SecondCounts) {
        self.accepted_records += other.accepted_records;
        self.accepted_bytes += other.accepted_bytes;
        self.throttled_records += other.throttled_records;
        self.limited_requests += other.limited_requests;
        self.put_requests += other.put_requests;
    }
}

/// What one shard took and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardCounts {
    /// Records it took.
    pub accepted_records: u64,
    /// Their bytes.
    pub accepted_bytes: u64,
    /// Records refused.
    pub throttled_records: u64,
    /// The most records it took in any sliding second.
    pub peak_records_per_second: u64,
    /// The most bytes it took in any sliding second.
    pub peak_bytes_per_second: u64,
}

/// One open shard: its hash key range.
#[derive(Debug, Clone)]
struct OpenShard {
    id: String,
    start: u128,
    end: u128,
}

/// A shard's takings over the last second.
#[derive(Debug, Default)]
struct Window {
    taken: VecDeque<(Instant, u64)>,
    records: u64,
    bytes: u64,
}

impl Window {
    fn slide(&mut self, now: Instant) {
        while let Some(&(at, bytes)) = self.taken.front() {
            if now.saturating_duration_since(at) < WINDOW {
                break;
            }
            self.taken.pop_front();
            self.records -= 1;
            self.bytes -= bytes;
        }
    }
}

#[derive(Debug)]
struct State {
    limits: ShardLimits,
    started: Instant,
    /// Each stream's open shards and when they were listed.
    streams: HashMap<String, (Instant, Vec<OpenShard>)>,
    /// Streams being resharded: their shards are listed for every put.
    resharding: HashSet<String>,
    windows: HashMap<String, Window>,
    calls: HashMap<String, VecDeque<Instant>>,
    seconds: Vec<SecondCounts>,
    shards: BTreeMap<String, ShardCounts>,
}

impl State {
    fn new(limits: ShardLimits, started: Instant) -> State {
        State {
            limits,
            started,
            streams: HashMap::new(),
            resharding: HashSet::new(),
            windows: HashMap::new(),
            calls: HashMap::new(),
            seconds: Vec::new(),
            shards: BTreeMap::new(),
        }
    }

    /// Counts into the second of the proxy's life that `now` falls in.
    fn count(&mut self, now: Instant, f: impl FnOnce(&mut SecondCounts)) {
        let index = usize::try_from(now.saturating_duration_since(self.started).as_secs())
            .unwrap_or(usize::MAX);
        if self.seconds.len() <= index {
            self.seconds.resize(index + 1, SecondCounts::default());
        }
        if let Some(second) = self.seconds.get_mut(index) {
            f(second);
        }
    }

    /// Whether a call of `operation` is within its rate, counting it if so.
    fn call_allowed(&mut self, operation: &str, now: Instant) -> bool {
        let Some(&limit) = self.limits.requests_per_second.get(operation) else {
            return true;
        };
        let calls = self.calls.entry(operation.to_owned()).or_default();
        while calls
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= WINDOW)
        {
            calls.pop_front();
        }
        if calls.len() >= limit as usize {
            self.count(now, |s| s.limited_requests += 1);
            return false;
        }
        calls.push_back(now);
        true
    }

    /// Takes one entry of `bytes` into `shard`'s window if it fits.
    fn take(&mut self, shard: &str, bytes: u64, now: Instant) -> bool {
        let (records_cap, bytes_cap) =
            (self.limits.records_per_second, self.limits.bytes_per_second);
        let window = self.windows.entry(shard.to_owned()).or_default();
        window.slide(now);
        let fits = window.records < records_cap && window.bytes + bytes <= bytes_cap;
        // A record larger than a second's bytes (a scaled-down limit) may
        // go into an empty window, or it could never go at all.
        if !(fits || (window.records == 0 && bytes > bytes_cap)) {
            self.shards
                .entry(shard.to_owned())
                .or_default()
                .throttled_records += 1;
            self.count(now, |s| s.throttled_records += 1);
            return false;
        }
        window.taken.push_back((now, bytes));
        window.records += 1;
        window.bytes += bytes;
        let (records, bytes_now) = (window.records, window.bytes);
        let counts = self.shards.entry(shard.to_owned()).or_default();
        counts.peak_records_per_second = counts.peak_records_per_second.max(records);
        counts.peak_bytes_per_second = counts.peak_bytes_per_second.max(bytes_now);
        true
    }

    /// Hands back what an entry took when it was not stored after all
    /// (the emulator refused it), so the window holds what the shard has.
    fn give_back(&mut self, shard: &str, bytes: u64) {
        if let Some(window) = self.windows.get_mut(shard)
            && let Some(position) = window.taken.iter().rposition(|&(_, b)| b == bytes)
        {
            window.taken.remove(position);
            window.records -= 1;
            window.bytes -= bytes;
        }
    }

    fn accepted(&mut self, shard: &str, bytes: u64, now: Instant) {
        let counts = self.shards.entry(shard.to_owned()).or_default();
        counts.accepted_records += 1;
        counts.accepted_bytes += bytes;
        self.count(now, |second| {
            second.accepted_records += 1;
            second.accepted_bytes += bytes;
        });
    }
}

/// A running shard-limit proxy in front of a Kinesis emulator.
#[derive(Debug)]
pub struct ShardLimitProxy {
    server: Server,
    shared: Arc<Shared>,
}

impl ShardLimitProxy {
    /// Starts a proxy on a free 127.0.0.1 port in front of `upstream`
    /// (e.g. [`crate::Kinesalite::endpoint`]), enforcing `limits`. Needs a
    /// Tokio runtime.
    pub async fn start(upstream: &str, limits: ShardLimits) -> Result<ShardLimitProxy, Error> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(limits, Instant::now())),
            upstream: Upstream::new(upstream, "shard-limit proxy")?,
        });
        let handler = shared.clone();
        let server = Server::start("shard-limit proxy", move |request, _reset| {
            let shared = handler.clone();
            async move { handle(request, &shared).await }
        })
        .await?;
        Ok(ShardLimitProxy { server, shared })
    }

    /// The proxy's endpoint URL; give it to the client instead of the
    /// emulator's.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// What the proxy did in each second since it started, in order.
    pub fn seconds(&self) -> Vec<SecondCounts> {
        self.with_state(|state| state.seconds.clone())
    }

    /// What the proxy did in all, or from second `from` on.
    pub fn totals_from(&self, from: usize) -> SecondCounts {
        self.with_state(|state| {
            let mut total = SecondCounts::default();
            for second in state.seconds.iter().skip(from) {
                total.add(second);
            }
            total
        })
    }

    /// What each shard took and refused, by shard id.
    pub fn shards(&self) -> BTreeMap<String, ShardCounts> {
        self.with_state(|state| state.shards.clone())
    }

    /// How long the proxy has been running.
    pub fn elapsed(&self) -> Duration {
        self.with_state(|state| state.started.elapsed())
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        self.shared.with_state(f)
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    upstream: Upstream,
}

impl Shared {
    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// The open shards of `stream`, listed again when the list is older
    /// than [`SHARD_LIST_TTL`]. `parts` are the headers of the client's
    /// request, reused for the proxy's own `ListShards` call (kinesalite
    /// does not check signatures).
    async fn open_shards(&self, stream: &str, parts: &http::request::Parts) -> Vec<OpenShard> {
        let now = Instant::now();
        let cached = self.with_state(|state| {
            if state.resharding.contains(stream) {
                return None;
            }
            state
                .streams
                .get(stream)
                .filter(|(listed, _)| now.saturating_duration_since(*listed) < SHARD_LIST_TTL)
                .map(|(_, shards)| shards.clone())
        });
        if let Some(shards) = cached {
            return shards;
        }
        let shards = self.list_open_shards(stream, parts).await;
        if !shards.is_empty() {
            self.with_state(|state| {
                if !state.resharding.contains(stream) {
                    state
                        .streams
                        .insert(stream.to_owned(), (now, shards.clone()));
                }
            });
        }
        shards
    }

    async fn list_open_shards(&self, stream: &str, parts: &http::request::Parts) -> Vec<OpenShard> {
        let Some(list_parts) = Call::of(parts).parts("ListShards") else {
            return Vec::new();
        };
        let mut shards = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let body = match &next {
                Some(token) => json!({"NextToken": token}),
                None => json!({"StreamName": stream}),
            };
            let Ok((status, answer)) = self
                .upstream
                .forward(&list_parts, Bytes::from(body.to_string()))
                .await
            else {
                return Vec::new();
            };
            if !status.is_success() {
                return Vec::new();
            }
            let value: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            for shard in value
                .get("Shards")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
            {
                let closed = shard
                    .pointer("/SequenceNumberRange/EndingSequenceNumber")
                    .is_some_and(|v| !v.is_null());
                let range = |field: &str| {
                    shard
                        .pointer(&format!("/HashKeyRange/{field}"))
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse::<u128>().ok())
                };
                if let (false, Some(id), Some(start), Some(end)) = (
                    closed,
                    shard.get("ShardId").and_then(Value::as_str),
                    range("StartingHashKey"),
                    range("EndingHashKey"),
                ) {
                    shards.push(OpenShard {
                        id: id.to_owned(),
                        start,
                        end,
                    });
                }
            }
            match value.get("NextToken").and_then(Value::as_str) {
                Some(token) => next = Some(token.to_owned()),
                None => break,
            }
        }
        shards
    }
}

/// A client request's method, URI and headers, to make the proxy's own
/// calls with (kinesalite does not check signatures).
#[derive(Debug, Clone)]
struct Call {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
}

impl Call {
    fn of(parts: &http::request::Parts) -> Call {
        Call {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        }
    }

    /// The request parts of a call of `operation`.
    fn parts(&self, operation: &str) -> Option<http::request::Parts> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone());
        for (name, value) in &self.headers {
            if name != "x-amz-target" {
                builder = builder.header(name, value);
            }
        }
        let request = builder
            .header("x-amz-target", format!("{KINESIS_TARGET}{operation}"))
            .body(())
            .ok()?;
        Some(request.into_parts().0)
    }
}

/// How long the proxy waits for kinesalite to finish one split.
const SPLIT_TIMEOUT: Duration = Duration::from_secs(30);

/// `UpdateShardCount` to twice the open shards: answered at once, done in
/// the background by splitting each open shard in two.
async fn update_shard_count(
    shared: &Arc<Shared>,
    parts: &http::request::Parts,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let invalid = |message: String| {
        respond(
            StatusCode::BAD_REQUEST,
            json!({"__type": "InvalidArgumentException", "message": message}),
        )
    };
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (Some(stream), Some(target)) = (
        stream_name(&request),
        request.get("TargetShardCount").and_then(Value::as_u64),
    ) else {
        return invalid("UpdateShardCount needs StreamName and TargetShardCount".to_owned());
    };
    let open = shared.list_open_shards(&stream, parts).await;
    if open.is_empty() || target != 2 * open.len() as u64 {
        return invalid(format!(
            "this proxy reshards by splitting every open shard in two: from {} to {} shards, not {target}",
            open.len(),
            2 * open.len()
        ));
    }
    let call = Call::of(parts);
    let current = open.len();
    shared.with_state(|state| {
        state.resharding.insert(stream.clone());
        state.streams.remove(&stream);
    });
    let task_shared = shared.clone();
    let task_stream = stream.clone();
    tokio::spawn(async move {
        for shard in &open {
            let middle = shard.start + (shard.end - shard.start) / 2 + 1;
            let split = json!({"StreamName": task_stream, "ShardToSplit": shard.id,
                               "NewStartingHashKey": middle.to_string()});
            let Some(split_parts) = call.parts("SplitShard") else {
                return;
            };
            if let Err(e) = task_shared
                .upstream
                .forward(&split_parts, Bytes::from(split.to_string()))
                .await
            {
                tracing::warn!(error = e, "the shard-limit proxy could not split a shard");
                break;
            }
            task_shared.wait_until_active(&task_stream, &call).await;
        }
        task_shared.with_state(|state| state.resharding.remove(&task_stream));
    });
    respond(
        StatusCode::OK,
        json!({"StreamName": stream, "CurrentShardCount": current, "TargetShardCount": target}),
    )
}

impl Shared {
    async fn wait_until_active(&self, stream: &str, call: &Call) {
        let deadline = Instant::now() + SPLIT_TIMEOUT;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let Some(parts) = call.parts("DescribeStreamSummary") else {
                return;
            };
            let body = Bytes::from(json!({"StreamName": stream}).to_string());
            if let Ok((status, answer)) = self.upstream.forward(&parts, body).await
                && status.is_success()
                && serde_json::from_slice::<Value>(&answer)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/StreamDescriptionSummary/StreamStatus")
                            .and_then(Value::as_str)
                            .map(|s| s == "ACTIVE")
                    })
                    .unwrap_or(false)
            {
                return;
            }
        }
    }
}

/// A put entry as the limits see it.
struct Entry {
    shard: Option<String>,
    bytes: u64,
}

async fn handle(request: Request<Incoming>, shared: &Arc<Shared>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return respond(StatusCode::BAD_REQUEST, json!({"message": e.to_string()})),
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if Service::of(&target) != Service::Kinesis {
        return forward(shared, &parts, body).await;
    }
    let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
    let now = Instant::now();
    if !shared.with_state(|state| state.call_allowed(&operation, now)) {
        return respond(
            StatusCode::BAD_REQUEST,
            json!({"__type": "LimitExceededException",
                   "message": format!("Rate exceeded for {operation} under account {ACCOUNT}.")}),
        );
    }
    if operation == "UpdateShardCount" {
        return update_shard_count(shared, &parts, &body).await;
    }
    if !matches!(operation.as_str(), "PutRecords" | "PutRecord") {
        return forward(shared, &parts, body).await;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return forward(shared, &parts, body).await;
    };
    let Some(stream) = stream_name(&request) else {
        return forward(shared, &parts, body).await;
    };
    let open = shared.open_shards(&stream, &parts).await;
    let entries: Vec<Entry> = if operation == "PutRecords" {
        request
            .get("Records")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|record| entry(record, &open))
            .collect()
    } else {
        vec![entry(&request, &open)]
    };
    let now = Instant::now();
    let refused: Vec<Option<(String, String)>> = shared.with_state(|state| {
        state.count(now, |s| s.put_requests += 1);
        entries
            .iter()
            .map(|entry| match &entry.shard {
                Some(shard) if !state.take(shard, entry.bytes, now) => Some((
                    "ProvisionedThroughputExceededException".to_owned(),
                    format!(
                        "Rate exceeded for shard {shard} in stream {stream} under account {ACCOUNT}."
                    ),
                )),
                _ => None,
            })
            .collect()
    });
    if operation == "PutRecord" {
        return put_record(shared, &parts, body, &entries, refused).await;
    }
    let PartialPut {
        response,
        forwarded,
        accepted,
        ..
    } = put_except(
        &shared.upstream,
        &parts,
        Service::Kinesis,
        &request,
        &refused,
    )
    .await;
    settle(shared, &entries, &refused, forwarded == accepted, now);
    response
}

/// A single `PutRecord`: refused with the error, or forwarded.
async fn put_record(
    shared: &Shared,
    parts: &http::request::Parts,
    body: Bytes,
    entries: &[Entry],
    refused: Vec<Option<(String, String)>>,
) -> Response<Full<Bytes>> {
    if let Some(Some((code, message))) = refused.first() {
        return respond(
            StatusCode::BAD_REQUEST,
            json!({"__type": code, "message": message}),
        );
    }
    let now = Instant::now();
    match shared.upstream.forward(parts, body).await {
        Ok((status, answer)) => {
            settle(shared, entries, &refused, status.is_success(), now);
            pass_on(status, answer)
        }
        Err(e) => {
            settle(shared, entries, &refused, false, now);
            bad_gateway("shard-limit proxy", &e)
        }
    }
}

/// Counts what the shards took; what the emulator did not store after all
/// is handed back to its shard's window.
fn settle(
    shared: &Shared,
    entries: &[Entry],
    refused: &[Option<(String, String)>],
    stored: bool,
    now: Instant,
) {
    shared.with_state(|state| {
        for (entry, refusal) in entries.iter().zip(refused) {
            let (Some(shard), None) = (&entry.shard, refusal) else {
                continue;
            };
            if stored {
                state.accepted(shard, entry.bytes, now);
            } else {
                state.give_back(shard, entry.bytes);
            }
        }
    });
}

async fn forward(
    shared: &Shared,
    parts: &http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    match shared.upstream.forward(parts, body).await {
        Ok((status, answer)) => pass_on(status, answer),
        Err(e) => bad_gateway("shard-limit proxy", &e),
    }
}

/// The stream a request names, by `StreamName` or by `StreamARN`.
fn stream_name(request: &Value) -> Option<String> {
    if let Some(name) = request.get("StreamName").and_then(Value::as_str) {
        return Some(name.to_owned());
    }
    let arn = request.get("StreamARN").and_then(Value::as_str)?;
    arn.rsplit_once("stream/").map(|(_, name)| name.to_owned())
}

/// An entry's shard among `open` and its size as the limits count it.
fn entry(record: &Value, open: &[OpenShard]) -> Entry {
    let key = record
        .get("PartitionKey")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let data = record
        .get("Data")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let hash = match record.get("ExplicitHashKey").and_then(Value::as_str) {
        Some(explicit) => explicit.parse::<u128>().ok(),
        None => Some(u128::from_be_bytes(Md5::digest(key.as_bytes()).into())),
    };
    let shard = hash.and_then(|hash| {
        open.iter()
            .find(|s| s.start <= hash && hash <= s.end)
            .map(|s| s.id.clone())
    });
    Entry {
        shard,
        bytes: decoded_len(data) + key.len() as u64,
    }
}

/// The length of padded base64 `text` once decoded, without decoding it.
fn decoded_len(text: &str) -> u64 {
    let padding = text.bytes().rev().take_while(|&b| b == b'=').count().min(2);
    ((text.len() / 4) * 3).saturating_sub(padding) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_length_without_decoding() {
        use base64::Engine as _;
        for n in 0..20 {
            let data = vec![7u8; n];
            let text = base64::engine::general_purpose::STANDARD.encode(&data);
            assert_eq!(decoded_len(&text), n as u64, "{text}");
        }
    }

    #[test]
    fn a_window_takes_records_then_refuses_then_slides() {
        let mut limits = ShardLimits::scaled(0.01);
        limits.bytes_per_second = 1_000;
        let now = Instant::now();
        let mut state = State::new(limits, now);
        // 10 records per second per shard.
        let taken = (0..15).filter(|_| state.take("s0", 10, now)).count();
        assert_eq!(taken, 10);
        // Another shard has its own window.
        assert!(state.take("s1", 10, now));
        // Half a second later, still full; a second later, empty again.
        assert!(!state.take("s0", 10, now + Duration::from_millis(500)));
        let later = now + WINDOW;
        assert_eq!((0..15).filter(|_| state.take("s0", 10, later)).count(), 10);
        // Bytes bind too: 1,000 per second.
        let bytes_bound = (0..5).filter(|_| state.take("s2", 400, now)).count();
        assert_eq!(bytes_bound, 2);
        assert_eq!(state.seconds[0].throttled_records, 5 + 1 + 3);
        assert_eq!(state.shards["s0"].peak_records_per_second, 10);
    }

    #[test]
    fn control_calls_past_their_rate_are_refused() {
        let now = Instant::now();
        let mut state = State::new(ShardLimits::kinesis(), now);
        let allowed = (0..30)
            .filter(|_| state.call_allowed("DescribeStreamSummary", now))
            .count();
        assert_eq!(allowed, DESCRIBE_STREAM_SUMMARY_PER_SECOND as usize);
        assert!(state.call_allowed("PutRecords", now));
        assert!(state.call_allowed("DescribeStreamSummary", now + WINDOW));
        assert_eq!(state.seconds[0].limited_requests, 10);
    }
}
