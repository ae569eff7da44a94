//! A fault-injecting proxy for what no emulator does.
//!
//! kinesalite, kinesis-local and moto never throttle and never fail single
//! entries of a batch, yet that is what a producer meets in production. The
//! proxy sits between the SDK and the emulator and speaks the real protocol
//! (HTTP/1.1, `application/x-amz-json-1.1`, `X-Amz-Target`):
//!
//! - [`EntryFault`]: fails chosen entries, or a chosen share of them, of
//!   `PutRecords` / `PutRecordBatch` with `ProvisionedThroughputExceededException`,
//!   `InternalFailure` or `ServiceUnavailableException`; only the other
//!   entries are forwarded, so the emulator holds exactly what the answer
//!   acknowledges, and the answer is a valid partial-failure response;
//! - [`RequestFault`]: throttles a whole request, answers 500 or 503, resets
//!   the connection (before or after forwarding), or stalls past the
//!   client's timeout (before or after forwarding).
//!
//! Every request is recorded as a [`ProxyEvent`], so a test can reconcile
//! what its producer counted with what the proxy did.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::Error;
use crate::aws_json::{
    PartialPut, Server, Service, Upstream, accepted, bad_gateway, pass_on, put_except, respond,
};

/// The error an entry or request is failed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    /// Kinesis `ProvisionedThroughputExceededException` (for Firehose:
    /// `ServiceUnavailableException`, its throttling error).
    Throttled,
    /// `InternalFailure`.
    InternalFailure,
    /// `ServiceUnavailableException`.
    ServiceUnavailable,
}

impl FaultCode {
    fn error_code(self, service: Service) -> &'static str {
        match (self, service) {
            (FaultCode::Throttled, Service::Kinesis) => "ProvisionedThroughputExceededException",
            (FaultCode::Throttled | FaultCode::ServiceUnavailable, _) => {
                "ServiceUnavailableException"
            }
            (FaultCode::InternalFailure, _) => "InternalFailure",
        }
    }
}

/// Which entries of each `PutRecords` / `PutRecordBatch` request fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// Each entry fails with this probability (0.0..=1.0), drawn from the
    /// proxy's seeded generator.
    Share(f64),
    /// The entries at these positions of every request.
    Indices(BTreeSet<usize>),
    /// Every entry whose data contains these bytes (e.g. a marker a test
    /// put into the records that must always fail).
    DataContains(Vec<u8>),
}

/// Fails entries of batch puts, as a throttled or struggling shard does.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryFault {
    pub selection: Selection,
    pub code: FaultCode,
}

/// A fault applied to a whole put request (`PutRecord`, `PutRecords`,
/// `PutRecordBatch`, Firehose `PutRecord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    /// HTTP 400 with the service's throttling error; nothing forwarded.
    Throttle,
    /// HTTP 500 `InternalFailure`; nothing forwarded.
    InternalError,
    /// HTTP 503 `ServiceUnavailableException`; nothing forwarded.
    Unavailable,
    /// The TCP connection is reset with no answer. With `forward`, the
    /// request reaches the emulator first: the client cannot know whether
    /// its records were stored.
    Reset { forward: bool },
    /// The answer is held back for `delay` (set it past the client's
    /// timeout). With `forward`, the request reaches the emulator at once.
    Stall { delay: Duration, forward: bool },
}

/// What the proxy did with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum ProxyAction {
    /// Passed through unchanged.
    Forwarded,
    /// Some entries failed by an [`EntryFault`]; the rest forwarded.
    EntriesFailed { failed: Vec<usize> },
    /// A [`RequestFault`] was applied.
    Request(RequestFault),
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyEvent {
    /// `X-Amz-Target`, e.g. `Kinesis_20131202.PutRecords`.
    pub target: String,
    /// Entries in the request (1 for single-record puts, 0 otherwise).
    pub entries: usize,
    /// Entries sent on to the emulator.
    pub forwarded_entries: usize,
    /// Entries the emulator accepted (known only when it answered).
    pub accepted_entries: usize,
    /// What the proxy did.
    pub action: ProxyAction,
    /// The emulator's HTTP status, when the request was forwarded and
    /// answered.
    pub upstream_status: Option<u16>,
}

#[derive(Debug)]
struct Plan {
    entry_fault: Option<EntryFault>,
    queued: VecDeque<RequestFault>,
    random: Option<(RequestFault, f64)>,
    rng: StdRng,
    events: Vec<ProxyEvent>,
}

/// A running fault proxy in front of one upstream endpoint.
#[derive(Debug)]
pub struct FaultProxy {
    server: Server,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts a proxy on a free 127.0.0.1 port forwarding to `upstream`
    /// (e.g. [`crate::Kinesalite::endpoint`]). Needs a Tokio runtime.
    pub async fn start(upstream: &str) -> Result<FaultProxy, Error> {
        Self::start_with_seed(upstream, 0x5eed).await
    }

    /// As [`FaultProxy::start`], with the seed of the generator that draws
    /// failing entries and random request faults.
    pub async fn start_with_seed(upstream: &str, seed: u64) -> Result<FaultProxy, Error> {
        let shared = Arc::new(Shared {
            plan: Mutex::new(Plan {
                entry_fault: None,
                queued: VecDeque::new(),
                random: None,
                rng: StdRng::seed_from_u64(seed),
                events: Vec::new(),
            }),
            upstream: Upstream::new(upstream, "fault proxy")?,
        });
        let handler = shared.clone();
        let server = Server::start("fault proxy", move |request, reset| {
            let shared = handler.clone();
            async move { handle(request, &shared, &reset).await }
        })
        .await?;
        Ok(FaultProxy { server, shared })
    }

    /// The proxy's endpoint URL; give it to the client instead of the
    /// emulator's.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// Fails entries of every batch put from now on (`None`: stop).
    pub fn set_entry_fault(&self, fault: Option<EntryFault>) {
        self.with_plan(|plan| plan.entry_fault = fault);
    }

    /// Applies these faults to the next put requests, one each, in order.
    pub fn queue_request_faults(&self, faults: impl IntoIterator<Item = RequestFault>) {
        self.with_plan(|plan| plan.queued.extend(faults));
    }

    /// Applies `fault` to each put request with probability `share`
    /// (`None`: stop). Queued faults come first.
    pub fn set_random_request_fault(&self, fault: Option<(RequestFault, f64)>) {
        self.with_plan(|plan| plan.random = fault);
    }

    /// Every request seen so far, in arrival order.
    pub fn events(&self) -> Vec<ProxyEvent> {
        self.with_plan(|plan| plan.events.clone())
    }

    fn with_plan<T>(&self, f: impl FnOnce(&mut Plan) -> T) -> T {
        self.shared.with_plan(f)
    }
}

#[derive(Debug)]
struct Shared {
    plan: Mutex<Plan>,
    upstream: Upstream,
}

impl Shared {
    fn with_plan<T>(&self, f: impl FnOnce(&mut Plan) -> T) -> T {
        let mut plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut plan)
    }

    fn record(&self, event: ProxyEvent) {
        self.with_plan(|plan| plan.events.push(event));
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: &Shared,
    reset: &Notify,
) -> Response<Full<Bytes>> {
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
    let service = Service::of(&target);
    let operation = target.rsplit('.').next().unwrap_or_default();
    let batch = matches!(operation, "PutRecords" | "PutRecordBatch") && service != Service::Other;
    let single = operation == "PutRecord" && service != Service::Other;
    let parsed: Option<Value> = (batch || single)
        .then(|| serde_json::from_slice(&body).ok())
        .flatten();
    let entries = match (&parsed, batch, single) {
        (Some(v), true, _) => v
            .get("Records")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        (_, _, true) => 1,
        _ => 0,
    };

    // Whole-request faults come first.
    let request_fault = if batch || single {
        let mut plan = shared.plan.lock().unwrap_or_else(|e| e.into_inner());
        let queued = plan.queued.pop_front();
        queued.or_else(|| {
            let (fault, share) = plan.random?;
            plan.rng.random_bool(share.clamp(0.0, 1.0)).then_some(fault)
        })
    } else {
        None
    };
    if let Some(fault) = request_fault {
        let mut event = ProxyEvent {
            target: target.clone(),
            entries,
            forwarded_entries: 0,
            accepted_entries: 0,
            action: ProxyAction::Request(fault),
            upstream_status: None,
        };
        let response = match fault {
            RequestFault::Throttle => {
                let code = FaultCode::Throttled.error_code(service);
                let status = if service == Service::Kinesis {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                respond(
                    status,
                    json!({"__type": code, "message": "Rate exceeded (fault proxy)"}),
                )
            }
            RequestFault::InternalError => respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"__type": "InternalFailure", "message": "Internal failure (fault proxy)"}),
            ),
            RequestFault::Unavailable => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"__type": "ServiceUnavailableException", "message": "Service unavailable (fault proxy)"}),
            ),
            RequestFault::Reset { forward } | RequestFault::Stall { forward, .. } => {
                let mut upstream_answer = None;
                if forward {
                    event.forwarded_entries = entries;
                    if let Ok((status, answer)) =
                        shared.upstream.forward(&parts, body.clone()).await
                    {
                        event.upstream_status = Some(status.as_u16());
                        event.accepted_entries = accepted(service, status, &answer, entries);
                        upstream_answer = Some((status, answer));
                    }
                }
                if let RequestFault::Stall { delay, .. } = fault {
                    shared.record(event);
                    tokio::time::sleep(delay).await;
                    return match upstream_answer {
                        Some((status, answer)) => pass_on(status, answer),
                        None => respond(
                            StatusCode::SERVICE_UNAVAILABLE,
                            json!({"__type": "ServiceUnavailableException", "message": "stalled (fault proxy)"}),
                        ),
                    };
                }
                shared.record(event);
                reset.notify_one();
                return std::future::pending().await;
            }
        };
        shared.record(event);
        return response;
    }

    // Entry faults on batch puts.
    let entry_fault = if batch {
        let plan = shared.plan.lock().unwrap_or_else(|e| e.into_inner());
        plan.entry_fault.clone()
    } else {
        None
    };
    if let (Some(fault), Some(request)) = (entry_fault, parsed) {
        return fail_entries(shared, &parts, service, &target, &fault, &request).await;
    }

    // Everything else passes through.
    match shared.upstream.forward(&parts, body).await {
        Ok((status, answer)) => {
            shared.record(ProxyEvent {
                target,
                entries,
                forwarded_entries: entries,
                accepted_entries: accepted(service, status, &answer, entries),
                action: ProxyAction::Forwarded,
                upstream_status: Some(status.as_u16()),
            });
            pass_on(status, answer)
        }
        Err(e) => {
            shared.record(ProxyEvent {
                target,
                entries,
                forwarded_entries: entries,
                accepted_entries: 0,
                action: ProxyAction::Forwarded,
                upstream_status: None,
            });
            bad_gateway("fault proxy", &e)
        }
    }
}

/// Fails the selected entries, forwards the rest, and merges both into one
/// partial-failure response in the original order.
async fn fail_entries(
    shared: &Shared,
    parts: &http::request::Parts,
    service: Service,
    target: &str,
    fault: &EntryFault,
    request: &Value,
) -> Response<Full<Bytes>> {
    let records: &[Value] = request
        .get("Records")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let failed: Vec<usize> = {
        let mut plan = shared.plan.lock().unwrap_or_else(|e| e.into_inner());
        (0..records.len())
            .filter(|&i| match &fault.selection {
                Selection::Share(share) => plan.rng.random_bool(share.clamp(0.0, 1.0)),
                Selection::Indices(indices) => indices.contains(&i),
                Selection::DataContains(needle) => records
                    .get(i)
                    .and_then(|r| r.get("Data"))
                    .and_then(Value::as_str)
                    .and_then(decode_base64)
                    .is_some_and(|data| contains(&data, needle)),
            })
            .collect()
    };
    let code = fault.code.error_code(service);
    let refused: Vec<Option<(String, String)>> = (0..records.len())
        .map(|i| {
            failed
                .contains(&i)
                .then(|| (code.to_owned(), format!("{code} (fault proxy)")))
        })
        .collect();
    let PartialPut {
        response,
        forwarded,
        accepted,
        upstream_status,
    } = put_except(&shared.upstream, parts, service, request, &refused).await;
    shared.record(ProxyEvent {
        target: target.to_owned(),
        entries: records.len(),
        forwarded_entries: forwarded,
        accepted_entries: accepted,
        action: ProxyAction::EntriesFailed { failed },
        upstream_status,
    });
    response
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}
