//! What the harness's proxies and endpoints share: serving HTTP on a local
//! port, the AWS JSON 1.1 protocol as Kinesis and Firehose speak it, the
//! emulator behind a proxy, and answering a batch put of which only some
//! entries were forwarded.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::Error;

/// The `X-Amz-Target` prefix of Kinesis Data Streams calls.
pub(crate) const KINESIS_TARGET: &str = "Kinesis_20131202.";
/// The `X-Amz-Target` prefix of Firehose calls.
pub(crate) const FIREHOSE_TARGET: &str = "Firehose_20150804.";
/// The content type of the AWS JSON 1.1 protocol.
pub(crate) const JSON_1_1: &str = "application/x-amz-json-1.1";

/// A local HTTP server: a free port of 127.0.0.1, each connection served by
/// one handler from the current Tokio runtime. Dropping it stops it.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Listens for `what` (named in errors) and answers every request with
    /// `handler`. The handler is given its connection's reset: notified, it
    /// drops the connection with a TCP reset and no answer.
    pub(crate) async fn start<H, F>(what: &str, handler: H) -> Result<Server, Error>
    where
        H: Fn(Request<Incoming>, Arc<Notify>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io(format!("binding the {what}"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io(format!("reading the {what}'s address"), e))?;
        let task = tokio::spawn(accept_loop(listener, handler));
        Ok(Server { addr, task })
    }

    /// The server's endpoint URL.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop<H, F>(listener: TcpListener, handler: H)
where
    H: Fn(Request<Incoming>, Arc<Notify>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        // SO_LINGER 0: closing the socket sends RST, not FIN. A server only
        // closes a connection itself to reset it; otherwise the client
        // closes.
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        let reset = Arc::new(Notify::new());
        let handler = handler.clone();
        tokio::spawn(async move {
            let service_reset = reset.clone();
            let service = hyper::service::service_fn(move |request| {
                let answer = handler(request, service_reset.clone());
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = reset.notified() => {} // dropping the connection resets it
            }
        });
    }
}

/// The service a request is for, from its `X-Amz-Target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Kinesis,
    Firehose,
    Other,
}

impl Service {
    pub(crate) fn of(target: &str) -> Service {
        if target.starts_with(KINESIS_TARGET) {
            Service::Kinesis
        } else if target.starts_with(FIREHOSE_TARGET) {
            Service::Firehose
        } else {
            Service::Other
        }
    }

    /// The list of per-entry answers in a batch put's response.
    fn answers_field(self) -> &'static str {
        match self {
            Service::Firehose => "RequestResponses",
            _ => "Records",
        }
    }
}

/// The emulator a proxy forwards to.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: hyper::Uri,
}

impl Upstream {
    pub(crate) fn new(upstream: &str, what: &'static str) -> Result<Upstream, Error> {
        let uri: hyper::Uri = upstream
            .parse()
            .map_err(|e| Error::call(what, format!("parsing upstream {upstream}"), e))?;
        Ok(Upstream {
            client: Client::builder(TokioExecutor::new()).build_http(),
            uri,
        })
    }

    /// Sends a request on with the headers of `parts` and `body`,
    /// returning the upstream's status and body.
    pub(crate) async fn forward(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let uri = format!(
            "{}://{}{}",
            self.uri.scheme_str().unwrap_or("http"),
            self.uri
                .authority()
                .map(|a| a.as_str())
                .unwrap_or("127.0.0.1"),
            path
        );
        let mut builder = Request::builder().method(parts.method.clone()).uri(uri);
        for (name, value) in &parts.headers {
            if name != http::header::CONTENT_LENGTH && name != http::header::HOST {
                builder = builder.header(name, value);
            }
        }
        let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
    }
}

/// An answer in the AWS JSON 1.1 protocol.
pub(crate) fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    pass_on(status, Bytes::from(body.to_string()))
}

/// The upstream's answer, passed on as it is.
pub(crate) fn pass_on(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", JSON_1_1)
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The answer to a request the upstream did not answer.
pub(crate) fn bad_gateway(what: &str, error: &str) -> Response<Full<Bytes>> {
    respond(
        StatusCode::BAD_GATEWAY,
        json!({"__type": "InternalFailure", "message": format!("{what}: upstream failed: {error}")}),
    )
}

/// How many entries of a forwarded request the upstream accepted.
pub(crate) fn accepted(
    service: Service,
    status: StatusCode,
    answer: &[u8],
    entries: usize,
) -> usize {
    if !status.is_success() {
        return 0;
    }
    let value: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
    let failed = match service {
        Service::Kinesis => value.get("FailedRecordCount"),
        Service::Firehose => value.get("FailedPutCount"),
        Service::Other => None,
    };
    let failed = failed
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    entries.saturating_sub(failed)
}

/// A batch put of which some entries were refused by the proxy.
pub(crate) struct PartialPut {
    /// The answer to give the client.
    pub(crate) response: Response<Full<Bytes>>,
    /// Entries sent on to the upstream.
    pub(crate) forwarded: usize,
    /// Of those, the entries the upstream accepted.
    pub(crate) accepted: usize,
    /// The upstream's HTTP status, when it answered.
    pub(crate) upstream_status: Option<u16>,
}

/// Forwards the entries of the batch put `request` whose refusal
/// `refused[i]` is `None`, and answers for all of them in their order: the
/// upstream's answer for a forwarded entry, `{ErrorCode, ErrorMessage}`
/// from `refused` for the others. The answer is
/// a valid partial-failure response, and the upstream holds exactly the
/// entries it acknowledges. When the upstream fails the forwarded part as a
/// whole, its error is passed on.
pub(crate) async fn put_except(
    upstream: &Upstream,
    parts: &http::request::Parts,
    service: Service,
    request: &Value,
    refused: &[Option<(String, String)>],
) -> PartialPut {
    let records: &[Value] = request
        .get("Records")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let kept: Vec<Value> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| refused.get(*i).is_none_or(Option::is_none))
        .map(|(_, r)| r.clone())
        .collect();
    let mut outcome = PartialPut {
        response: Response::new(Full::new(Bytes::new())),
        forwarded: kept.len(),
        accepted: 0,
        upstream_status: None,
    };
    let mut answers: VecDeque<Value> = VecDeque::new();
    if !kept.is_empty() {
        let mut forwarded = request.clone();
        if let Some(object) = forwarded.as_object_mut() {
            object.insert("Records".into(), Value::Array(kept.clone()));
        }
        let body = Bytes::from(serde_json::to_vec(&forwarded).unwrap_or_default());
        match upstream.forward(parts, body).await {
            Ok((status, answer)) if status.is_success() => {
                outcome.upstream_status = Some(status.as_u16());
                outcome.accepted = accepted(service, status, &answer, kept.len());
                let value: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
                answers = value
                    .get(service.answers_field())
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .into();
            }
            Ok((status, answer)) => {
                outcome.upstream_status = Some(status.as_u16());
                outcome.response = pass_on(status, answer);
                return outcome;
            }
            Err(e) => {
                outcome.response = bad_gateway("proxy", &e);
                return outcome;
            }
        }
    }
    let mut failed = 0usize;
    let merged: Vec<Value> = (0..records.len())
        .map(|i| {
            let refusal = refused.get(i).cloned().flatten();
            let answer = match refusal {
                Some((code, message)) => json!({"ErrorCode": code, "ErrorMessage": message}),
                None => answers.pop_front().unwrap_or_else(|| {
                    json!({"ErrorCode": "InternalFailure",
                           "ErrorMessage": "the upstream answered for too few entries"})
                }),
            };
            if answer.get("ErrorCode").is_some() {
                failed += 1;
            }
            answer
        })
        .collect();
    let answer = match service {
        Service::Firehose => {
            json!({"FailedPutCount": failed, "Encrypted": false, "RequestResponses": merged})
        }
        _ => json!({"FailedRecordCount": failed, "Records": merged}),
    };
    outcome.response = respond(StatusCode::OK, answer);
    outcome
}
