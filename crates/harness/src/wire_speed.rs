//! A Kinesis endpoint that accepts every put at wire speed, for benchmarks.
//!
//! kinesalite stores what it is given and tops out near 20,000 records/s on
//! this kind of machine, so a benchmark through it measures the emulator. The
//! [`WireSpeedKinesis`] endpoint measures the client instead: it speaks the
//! real protocol (HTTP/1.1, AWS JSON 1.1, `X-Amz-Target`), refuses a request
//! without SigV4 headers, parses every body, checks the `PutRecords` limits,
//! answers every entry with a sequence number and the shard its hash key
//! falls in, and counts what it was given. It keeps nothing.
//!
//! It answers `DescribeStreamSummary` and `ListShards` for any stream name
//! (with [`WireSpeedKinesis::shards`] equal hash ranges), `PutRecords` and
//! `PutRecord`; anything else gets `UnknownOperationException`.
//!
//! Like the [`FaultProxy`](crate::FaultProxy), it is for tests and
//! benchmarks: clients reach it through the standard endpoint settings, and
//! product code has no path of its own for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use md5::{Digest, Md5};
use serde::Deserialize;

use crate::Error;
use crate::aws_json::{JSON_1_1, KINESIS_TARGET, Server};

/// `PutRecords` takes at most 500 records per request
/// (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html>).
pub const PUT_RECORDS_MAX_ENTRIES: usize = 500;
/// ... and at most 5 MiB per request, partition keys included (same page).
pub const PUT_RECORDS_MAX_BYTES: u64 = 5 * 1024 * 1024;
/// ... and at most 1 MiB per record, data and partition key together.
pub const RECORD_MAX_BYTES: u64 = 1024 * 1024;
/// A partition key is 1 to 256 Unicode characters (same page).
pub const PARTITION_KEY_MAX_CHARS: usize = 256;

/// What a [`WireSpeedKinesis`] endpoint has been given so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireCounts {
    /// HTTP requests answered, of any operation.
    pub requests: u64,
    /// `PutRecords` and `PutRecord` requests accepted.
    pub puts: u64,
    /// Records accepted (entries of accepted puts).
    pub records: u64,
    /// Bytes of record data accepted, after base64 decoding.
    pub data_bytes: u64,
    /// Requests refused: no SigV4 headers, a malformed body, or a limit
    /// exceeded.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    puts: AtomicU64,
    records: AtomicU64,
    data_bytes: AtomicU64,
    refused: AtomicU64,
    /// The last sequence number handed out.
    sequence: AtomicU64,
}

struct Shared {
    counters: Counters,
    /// The first hash key of each shard, ascending; shard `i` ends where
    /// shard `i + 1` starts.
    starts: Vec<u128>,
}

/// A local Kinesis endpoint that accepts every valid put at once (see the
/// module documentation). Stops when dropped.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use shardline_harness::WireSpeedKinesis;
/// let endpoint = WireSpeedKinesis::start(4).await?;
/// let client = aws_sdk_kinesis::Client::new(&shardline_harness::sdk_config(&endpoint.endpoint()));
/// client
///     .put_record()
///     .stream_name("any")
///     .partition_key("k")
///     .data(aws_sdk_kinesis::primitives::Blob::new("hello"))
///     .send()
///     .await?;
/// assert_eq!(endpoint.counts().records, 1);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct WireSpeedKinesis {
    server: Server,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WireSpeedKinesis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireSpeedKinesis")
            .field("addr", &self.server.addr())
            .field("shards", &self.shared.starts.len())
            .finish()
    }
}

impl WireSpeedKinesis {
    /// Listens on a free port of 127.0.0.1, serving from the current Tokio
    /// runtime, with `shards` open shards (at least one) splitting the hash
    /// key space evenly.
    pub async fn start(shards: u32) -> Result<WireSpeedKinesis, Error> {
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            starts: even_starts(shards.max(1)),
        });
        let handler = shared.clone();
        let server = Server::start("wire-speed endpoint", move |request, _reset| {
            let shared = handler.clone();
            async move { handle(request, &shared).await }
        })
        .await?;
        Ok(WireSpeedKinesis { server, shared })
    }

    /// The endpoint URL, for `AWS_ENDPOINT_URL_KINESIS` or an SDK config.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// The number of open shards it reports.
    pub fn shards(&self) -> usize {
        self.shared.starts.len()
    }

    /// What it has been given so far.
    pub fn counts(&self) -> WireCounts {
        let c = &self.shared.counters;
        WireCounts {
            requests: c.requests.load(Ordering::Relaxed),
            puts: c.puts.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            data_bytes: c.data_bytes.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }
}

/// The starting hash keys of `n` shards that split the 128-bit key space
/// evenly, the way `CreateStream` lays them out.
fn even_starts(n: u32) -> Vec<u128> {
    let step = u128::MAX / u128::from(n);
    (0..u128::from(n)).map(|i| i * step).collect()
}

/// An AWS JSON 1.1 error answer.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn invalid(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidArgumentException",
            message: message.into(),
        }
    }
}

async fn handle(request: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let answer = answer(request, shared).await;
    match answer {
        Ok(body) => respond(StatusCode::OK, body),
        Err(refusal) => {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            let body = serde_json::json!({
                "__type": refusal.code,
                "message": refusal.message,
            })
            .to_string();
            respond(refusal.status, body)
        }
    }
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(JSON_1_1),
    );
    response
}

async fn answer(request: Request<Incoming>, shared: &Shared) -> Result<String, Refusal> {
    let (parts, body) = request.into_parts();
    check_signed(&parts.headers)?;
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(KINESIS_TARGET))
        .unwrap_or_default()
        .to_owned();
    let body = body
        .collect()
        .await
        .map_err(|e| Refusal::invalid(format!("reading the body: {e}")))?
        .to_bytes();
    match operation.as_str() {
        "PutRecords" => put_records(&body, shared),
        "PutRecord" => put_record(&body, shared),
        "DescribeStreamSummary" => describe_stream_summary(&body, shared),
        "ListShards" => Ok(list_shards(shared)),
        other => Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "UnknownOperationException",
            message: format!("the wire-speed endpoint does not answer {other:?}"),
        }),
    }
}

/// SigV4 headers must be present; the signature itself is not checked (the
/// credentials are dummies).
fn check_signed(headers: &hyper::HeaderMap) -> Result<(), Refusal> {
    let authorization = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signed = authorization.starts_with("AWS4-HMAC-SHA256 ")
        && authorization.contains("Credential=")
        && authorization.contains("Signature=")
        && headers.contains_key("x-amz-date");
    if signed {
        Ok(())
    } else {
        Err(Refusal {
            status: StatusCode::FORBIDDEN,
            code: "MissingAuthenticationTokenException",
            message: "the request carries no SigV4 Authorization and X-Amz-Date headers".into(),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsInput<'a> {
    #[serde(borrow)]
    records: Vec<EntryInput<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EntryInput<'a> {
    #[serde(borrow)]
    data: &'a str,
    #[serde(borrow)]
    partition_key: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    explicit_hash_key: Option<&'a str>,
}

/// A checked entry: its decoded size, with its partition key (as the
/// limits count it), and its shard.
struct Accepted {
    data_bytes: u64,
    record_bytes: u64,
    shard: usize,
}

/// Checks an entry, decoding its data into `scratch` (reused across the
/// entries of a request: the endpoint keeps nothing, and must cost the
/// machine it shares with the client as little as it can).
fn check_entry(
    entry: &EntryInput<'_>,
    shared: &Shared,
    scratch: &mut Vec<u8>,
) -> Result<Accepted, Refusal> {
    let key_chars = entry.partition_key.chars().count();
    if key_chars == 0 || key_chars > PARTITION_KEY_MAX_CHARS {
        return Err(Refusal::invalid(format!(
            "a partition key of {key_chars} characters (1 to {PARTITION_KEY_MAX_CHARS})"
        )));
    }
    scratch.clear();
    base64::engine::general_purpose::STANDARD
        .decode_vec(entry.data, scratch)
        .map_err(|e| Refusal::invalid(format!("record data is not base64: {e}")))?;
    let data_len = scratch.len();
    let size = (data_len + entry.partition_key.len()) as u64;
    if size > RECORD_MAX_BYTES {
        return Err(Refusal::invalid(format!(
            "a record of {size} bytes (at most {RECORD_MAX_BYTES})"
        )));
    }
    let hash = match entry.explicit_hash_key {
        Some(key) => key
            .parse::<u128>()
            .map_err(|_| Refusal::invalid(format!("ExplicitHashKey {key:?} is not a u128")))?,
        None => u128::from_be_bytes(Md5::digest(entry.partition_key.as_bytes()).into()),
    };
    // starts[0] is 0, so at least one shard starts at or below any hash.
    let shard = shared
        .starts
        .partition_point(|&start| start <= hash)
        .saturating_sub(1);
    Ok(Accepted {
        data_bytes: data_len as u64,
        record_bytes: size,
        shard,
    })
}

fn put_records(body: &[u8], shared: &Shared) -> Result<String, Refusal> {
    let input: PutRecordsInput<'_> = serde_json::from_slice(body)
        .map_err(|e| Refusal::invalid(format!("a PutRecords body that does not parse: {e}")))?;
    let count = input.records.len();
    if count == 0 || count > PUT_RECORDS_MAX_ENTRIES {
        return Err(Refusal::invalid(format!(
            "{count} records in one PutRecords (1 to {PUT_RECORDS_MAX_ENTRIES})"
        )));
    }
    let mut accepted = Vec::with_capacity(count);
    let (mut request_bytes, mut data_bytes) = (0, 0);
    let mut scratch = Vec::new();
    for entry in &input.records {
        let entry = check_entry(entry, shared, &mut scratch)?;
        request_bytes += entry.record_bytes;
        data_bytes += entry.data_bytes;
        accepted.push(entry);
    }
    if request_bytes > PUT_RECORDS_MAX_BYTES {
        return Err(Refusal::invalid(format!(
            "{request_bytes} bytes in one PutRecords (at most {PUT_RECORDS_MAX_BYTES})"
        )));
    }
    let first = shared
        .counters
        .sequence
        .fetch_add(count as u64, Ordering::Relaxed);
    let mut out = String::with_capacity(40 + count * 110);
    out.push_str(r#"{"FailedRecordCount":0,"EncryptionType":"NONE","Records":["#);
    for (i, entry) in accepted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        push_fields(&mut out, first + i as u64 + 1, entry.shard);
        out.push('}');
    }
    out.push_str("]}");
    count_put(shared, count as u64, data_bytes);
    Ok(out)
}

fn put_record(body: &[u8], shared: &Shared) -> Result<String, Refusal> {
    let entry: EntryInput<'_> = serde_json::from_slice(body)
        .map_err(|e| Refusal::invalid(format!("a PutRecord body that does not parse: {e}")))?;
    let accepted = check_entry(&entry, shared, &mut Vec::new())?;
    let sequence = shared.counters.sequence.fetch_add(1, Ordering::Relaxed) + 1;
    let mut out = String::with_capacity(128);
    out.push_str(r#"{"EncryptionType":"NONE","#);
    push_fields(&mut out, sequence, accepted.shard);
    out.push('}');
    count_put(shared, 1, accepted.data_bytes);
    Ok(out)
}

fn count_put(shared: &Shared, records: u64, bytes: u64) {
    let c = &shared.counters;
    c.puts.fetch_add(1, Ordering::Relaxed);
    c.records.fetch_add(records, Ordering::Relaxed);
    c.data_bytes.fetch_add(bytes, Ordering::Relaxed);
}

/// An entry's result fields: a sequence number shaped like the service's
/// (56 decimal digits), unique and increasing for this endpoint, and the
/// shard.
fn push_fields(out: &mut String, sequence: u64, shard: usize) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        r#""SequenceNumber":"4959033827149025660855969253{sequence:028}","ShardId":"shardId-{shard:012}""#,
    );
}

/// A shard's id, as `ListShards` gives it; `push_fields` writes the same
/// form in place (the test checks they agree).
fn shard_id(shard: usize) -> String {
    format!("shardId-{shard:012}")
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamInput {
    #[serde(default)]
    stream_name: Option<String>,
    #[serde(default, rename = "StreamARN")]
    stream_arn: Option<String>,
}

fn describe_stream_summary(body: &[u8], shared: &Shared) -> Result<String, Refusal> {
    let input: StreamInput = serde_json::from_slice(body).map_err(|e| {
        Refusal::invalid(format!(
            "a DescribeStreamSummary body that does not parse: {e}"
        ))
    })?;
    let name = match (input.stream_name, input.stream_arn) {
        (Some(name), _) => name,
        (None, Some(arn)) => arn.rsplit('/').next().unwrap_or_default().to_owned(),
        (None, None) => return Err(Refusal::invalid("no StreamName or StreamARN")),
    };
    Ok(serde_json::json!({
        "StreamDescriptionSummary": {
            "StreamName": name,
            "StreamARN": format!("arn:aws:kinesis:{}:000000000000:stream/{name}", crate::REGION),
            "StreamStatus": "ACTIVE",
            "StreamModeDetails": {"StreamMode": "PROVISIONED"},
            "RetentionPeriodHours": 24,
            "StreamCreationTimestamp": 1_700_000_000,
            "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
            "EncryptionType": "NONE",
            "OpenShardCount": shared.starts.len(),
            "ConsumerCount": 0,
        }
    })
    .to_string())
}

fn list_shards(shared: &Shared) -> String {
    let shards: Vec<_> = shared
        .starts
        .iter()
        .enumerate()
        .map(|(i, start)| {
            let end = shared
                .starts
                .get(i + 1)
                .map_or(u128::MAX, |next| next - 1);
            serde_json::json!({
                "ShardId": shard_id(i),
                "HashKeyRange": {
                    "StartingHashKey": start.to_string(),
                    "EndingHashKey": end.to_string(),
                },
                "SequenceNumberRange": {
                    "StartingSequenceNumber": "49590338271490256608559692538361571095921575989136588800",
                },
            })
        })
        .collect();
    serde_json::json!({ "Shards": shards }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_starts_cover_the_key_space_in_order() {
        let starts = even_starts(4);
        assert_eq!(starts.len(), 4);
        assert_eq!(starts.first(), Some(&0));
        assert!(starts.windows(2).all(|w| w[0] < w[1]));
        // The last shard ends at u128::MAX and is no wider than the others
        // plus the remainder.
        let last_width = u128::MAX - starts[3];
        assert!(last_width >= starts[1] && last_width - starts[1] < 4);
    }
}
