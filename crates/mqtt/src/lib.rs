//! An MQTT subscription as a shardline [`Source`].
//!
//! QoS 1 with a persistent session (`clean_session = false` and a fixed
//! client id) and manual acknowledgements: a message's PUBACK goes to the
//! broker only when the record made from it is settled — delivered or
//! dead-lettered. Until then the broker keeps the message, and sends it
//! again after a reconnection or a crash of this process: delivery is at
//! least once, and redeliveries (the DUP flag) are counted.
//!
//! Unacknowledged messages also hold the broker back: it sends at most its
//! in-flight window of unacknowledged QoS 1 messages to a client (Mosquitto:
//! `max_inflight_messages`, 20 by default), so a slow destination slows the
//! broker rather than filling this process's memory.
//!
//! # Example
//!
//! Subscribing to sensor topics; here no broker listens, and starting
//! says so:
//!
//! ```
//! use shardline_mqtt::{MqttConfig, MqttError, MqttSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = MqttConfig {
//!     url: "mqtt://127.0.0.1:1".to_owned(),
//!     client_id: "sensor-forwarder".to_owned(),
//!     topics: vec!["sensors/+/temperature".to_owned()],
//!     credentials: None,
//!     tls: None,
//! };
//! match MqttSource::start(config).await {
//!     Err(MqttError::Connection(e)) => eprintln!("{e}"),
//!     other => panic!("{other:?}"),
//! }
//! # }
//! ```

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::path::{Path, PathBuf};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport};
use shardline_core::{Input, Origin, Position, Source, SourceCounters, SourceError};
use tokio::sync::mpsc;

/// Messages read from the broker and not yet taken by the pipeline, at
/// most; past it the event loop stops reading the socket.
const CHANNEL_MESSAGES: usize = 1024;
/// Messages handed to the pipeline at once at most.
const MAX_BATCH: usize = 1024;
/// Reconnection backoff: first delay and cap.
const RECONNECT_INITIAL: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
/// Keep-alive: the broker drops a client silent for 1.5 times this.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// How long start-up may take to connect and have every subscription
/// acknowledged.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing may take to write the queued acknowledgements.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests (subscriptions, acknowledgements) the client queues for the
/// event loop.
const CLIENT_CAPACITY: usize = 4096;

/// Where to connect and what to subscribe to.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// `mqtt://HOST:PORT` (or `tcp://`; port 1883 when left out).
    pub url: String,
    /// The session's identity at the broker: the same id finds the same
    /// subscriptions and unacknowledged messages after a restart.
    pub client_id: String,
    /// Topic filters (`sensors/+/temperature`, `sensors/#`).
    pub topics: Vec<String>,
    /// User name and password, if the broker asks for them.
    pub credentials: Option<(String, String)>,
    /// TLS (`mqtts://` URLs): the CA that signed the broker's certificate
    /// and, for brokers that authenticate clients by certificate (AWS IoT
    /// Core), the client's certificate and key — PEM, read at start.
    pub tls: Option<TlsFiles>,
}

/// PEM files for a TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate that signed the broker's.
    pub ca: PathBuf,
    /// Certificate and private key.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Why the subscription cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    /// The URL is not `mqtt://` or `mqtts://` with a host and port.
    #[error("MQTT URL {0:?}: expected mqtt://HOST:PORT or mqtts://HOST:PORT")]
    Url(String),
    /// An `mqtts://` URL without the broker's CA certificate.
    #[error("{0} needs the broker's CA certificate (PEM) to check the broker")]
    NoCa(String),
    /// TLS files given for an `mqtt://` URL.
    #[error("TLS files are for mqtts:// URLs, not {0}")]
    TlsWithoutMqtts(String),
    /// A TLS file could not be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// No topic filter was given.
    #[error("no topic to subscribe to")]
    NoTopics,
    /// The subscription could not be sent.
    #[error("subscribing: {0}")]
    Client(#[from] rumqttc::ClientError),
    /// The connection to the broker failed.
    #[error("connecting to the broker: {0}")]
    Connection(Box<rumqttc::ConnectionError>),
    /// The broker refused a topic filter.
    #[error("the broker refused subscription {0:?}")]
    Refused(String),
    /// The broker did not answer in time.
    #[error("no answer from the broker within {0:?}")]
    Timeout(Duration),
}

/// Counters of the subscription.
#[derive(Debug, Default)]
pub struct MqttStats {
    /// Messages received.
    pub received: AtomicU64,
    /// Of those, sent again by the broker (DUP flag): a copy of a message
    /// received before and not yet acknowledged.
    pub redelivered: AtomicU64,
    /// Acknowledgements sent for settled messages.
    pub acknowledged: AtomicU64,
    /// Connections made after a lost one.
    pub reconnections: AtomicU64,
    /// Settled messages not acknowledged because the connection they came
    /// on was lost since: the broker sends them again (under a packet id
    /// it may by then have given to another message, which an
    /// acknowledgement of the old one must not settle).
    pub stale: AtomicU64,
}

/// One message's place: read order, topic and packet id, and the
/// connection it came on.
#[derive(Debug, Clone)]
pub struct MqttPosition {
    seq: u64,
    publish: Arc<Publish>,
    connection: u64,
}

impl MqttPosition {
    /// The topic the message was published to.
    pub fn topic(&self) -> &str {
        &self.publish.topic
    }
}

impl Position for MqttPosition {
    fn describe(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("topic".to_owned(), self.publish.topic.clone()),
            ("packet_id".to_owned(), self.publish.pkid.to_string()),
            ("message".to_owned(), self.seq.to_string()),
        ])
    }

    fn origin(&self) -> Origin<'_> {
        Origin::topic(&self.publish.topic)
    }
}

/// The MQTT port (RFC: IANA) and the MQTT over TLS port.
const MQTT_PORT: u16 = 1883;
const MQTTS_PORT: u16 = 8883;

/// Splits `mqtt://host:port` (or `mqtts://`) into host, port and whether
/// it is TLS.
fn host_port(url: &str) -> Result<(String, u16, bool), MqttError> {
    let bad = || MqttError::Url(url.to_owned());
    let (rest, tls) = if let Some(rest) = url.strip_prefix("mqtts://") {
        (rest, true)
    } else if let Some(rest) = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
    {
        (rest, false)
    } else {
        return Err(bad());
    };
    let rest = rest.trim_end_matches('/');
    let default_port = if tls { MQTTS_PORT } else { MQTT_PORT };
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            Ok((host.to_owned(), port.parse().map_err(|_| bad())?, tls))
        }
        None if !rest.is_empty() => Ok((rest.to_owned(), default_port, tls)),
        _ => Err(bad()),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, MqttError> {
    std::fs::read(path).map_err(|error| MqttError::Read {
        path: path.to_owned(),
        error,
    })
}

/// The transport for `url`: TLS with the given files for `mqtts://`.
fn transport(url: &str, tls: bool, files: Option<&TlsFiles>) -> Result<Transport, MqttError> {
    match (tls, files) {
        (false, None) => Ok(Transport::Tcp),
        (false, Some(_)) => Err(MqttError::TlsWithoutMqtts(url.to_owned())),
        (true, None) => Err(MqttError::NoCa(url.to_owned())),
        (true, Some(files)) => {
            let client_auth = match &files.client {
                Some((cert, key)) => Some((read(cert)?, read(key)?)),
                None => None,
            };
            Ok(Transport::tls_with_config(TlsConfiguration::Simple {
                ca: read(&files.ca)?,
                alpn: None,
                client_auth,
            }))
        }
    }
}

/// A subscription as a [`Source`].
#[derive(Debug)]
pub struct MqttSource {
    client: AsyncClient,
    messages: mpsc::Receiver<(Publish, u64)>,
    /// Messages that arrived while subscribing, read first.
    early: std::collections::VecDeque<(Publish, u64)>,
    /// Counts lost connections: a message keeps the count it came with.
    connection: Arc<AtomicU64>,
    /// The pipeline's counters, for redeliveries in the statistics.
    report: Option<Arc<SourceCounters>>,
    next_seq: u64,
    stats: Arc<MqttStats>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for MqttSource {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl MqttSource {
    /// Connects and subscribes to every topic with QoS 1, and returns once
    /// the broker has acknowledged every subscription (an unreachable
    /// broker or a refused topic is an error here). From then on it
    /// reconnects with backoff for as long as the source lives.
    pub async fn start(config: MqttConfig) -> Result<Self, MqttError> {
        if config.topics.is_empty() {
            return Err(MqttError::NoTopics);
        }
        let (host, port, tls) = host_port(&config.url)?;
        let mut options = MqttOptions::new(config.client_id.clone(), host, port);
        options.set_transport(transport(&config.url, tls, config.tls.as_ref())?);
        options
            .set_keep_alive(KEEP_ALIVE)
            .set_clean_session(false)
            .set_manual_acks(true);
        if let Some((user, password)) = &config.credentials {
            options.set_credentials(user, password);
        }
        let (client, mut events) = AsyncClient::new(options, CLIENT_CAPACITY);
        for topic in &config.topics {
            client.subscribe(topic, QoS::AtLeastOnce).await?;
        }
        let (tx, messages) = mpsc::channel(CHANNEL_MESSAGES);
        let stats = Arc::new(MqttStats::default());
        // Until every subscription is acknowledged, messages (of a session
        // the broker kept) wait here, in order, for the first reads.
        let mut early = std::collections::VecDeque::new();
        let subscribed = async {
            let mut acknowledged = 0;
            while acknowledged < config.topics.len() {
                match events
                    .poll()
                    .await
                    .map_err(|e| MqttError::Connection(Box::new(e)))?
                {
                    Event::Incoming(Packet::SubAck(ack)) => {
                        for (code, topic) in ack.return_codes.iter().zip(&config.topics) {
                            if matches!(code, rumqttc::SubscribeReasonCode::Failure) {
                                return Err(MqttError::Refused(topic.clone()));
                            }
                        }
                        acknowledged += ack.return_codes.len();
                    }
                    Event::Incoming(Packet::Publish(publish)) => {
                        stats.received.fetch_add(1, Ordering::Relaxed);
                        if publish.dup {
                            stats.redelivered.fetch_add(1, Ordering::Relaxed);
                        }
                        early.push_back((publish, 0));
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        tokio::time::timeout(START_TIMEOUT, subscribed)
            .await
            .map_err(|_| MqttError::Timeout(START_TIMEOUT))??;
        let counters = stats.clone();
        let connection = Arc::new(AtomicU64::new(0));
        let lost = connection.clone();
        let resubscribe = client.clone();
        let topics = config.topics.clone();
        let task = tokio::spawn(async move {
            let mut delay = RECONNECT_INITIAL;
            let mut closing = false;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        counters.received.fetch_add(1, Ordering::Relaxed);
                        if publish.dup {
                            counters.redelivered.fetch_add(1, Ordering::Relaxed);
                        }
                        let on = lost.load(Ordering::Acquire);
                        if tx.send((publish, on)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        // The first ConnAck was taken at start-up: this is
                        // a reconnection.
                        delay = RECONNECT_INITIAL;
                        counters.reconnections.fetch_add(1, Ordering::Relaxed);
                        // A broker that lost the session (restarted
                        // without persistence) forgot the subscriptions.
                        if !ack.session_present {
                            for topic in &topics {
                                let _ = resubscribe.try_subscribe(topic, QoS::AtLeastOnce);
                            }
                        }
                    }
                    // `close`: keep polling until the connection ends, so
                    // that what was queued before it is written.
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => closing = true,
                    Ok(_) => {}
                    Err(_) if closing => return,
                    Err(e) => {
                        // Messages received so far are the old
                        // connection's: the broker sends them again.
                        lost.fetch_add(1, Ordering::AcqRel);
                        tracing::warn!("MQTT: {e}; reconnecting in {delay:?}");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(RECONNECT_MAX);
                    }
                }
            }
        });
        Ok(MqttSource {
            client,
            messages,
            early,
            connection,
            report: None,
            next_seq: 1,
            stats,
            task: Some(task),
        })
    }

    /// Sends the acknowledgements queued so far, then disconnects cleanly
    /// (waiting at most `timeout`). Messages not acknowledged stay with the
    /// broker for the next session. A pipeline does this when it ends
    /// ([`Source::close`], with [`CLOSE_TIMEOUT`]).
    pub async fn disconnect(&mut self, timeout: Duration) -> Result<(), MqttError> {
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        self.client.disconnect().await?;
        let _ = tokio::time::timeout(timeout, task).await;
        Ok(())
    }

    /// Counts redeliveries (the DUP flag) into `counters` too, so that the
    /// statistics, CloudWatch and Prometheus show them per source.
    pub fn report_redeliveries(mut self, counters: Arc<SourceCounters>) -> Self {
        counters.redelivered(0);
        self.report = Some(counters);
        self
    }

    /// The subscription's counters.
    pub fn stats(&self) -> Arc<MqttStats> {
        self.stats.clone()
    }
}

#[async_trait::async_trait]
impl Source for MqttSource {
    type Position = MqttPosition;

    async fn read(&mut self) -> Result<Option<Vec<Input<MqttPosition>>>, SourceError> {
        // `recv` is cancel-safe; after the first message, take what is
        // already there without waiting.
        let first = match self.early.pop_front() {
            Some(publish) => publish,
            None => match self.messages.recv().await {
                Some(publish) => publish,
                None => return Ok(None),
            },
        };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some((publish, connection)) = next.take() {
            if publish.dup
                && let Some(counters) = &self.report
            {
                counters.redelivered(1);
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let publish = Arc::new(publish);
            batch.push(Input {
                data: publish.payload.clone(),
                position: MqttPosition {
                    seq,
                    publish,
                    connection,
                },
            });
            if batch.len() < MAX_BATCH {
                next = self
                    .early
                    .pop_front()
                    .or_else(|| self.messages.try_recv().ok());
            }
        }
        Ok(Some(batch))
    }

    fn settler(&self) -> Box<dyn FnMut(Vec<MqttPosition>) + Send> {
        let client = self.client.clone();
        let stats = self.stats.clone();
        let connection = self.connection.clone();
        Box::new(move |positions: Vec<MqttPosition>| {
            let current = connection.load(Ordering::Acquire);
            for position in positions {
                // A message of a lost connection is the broker's to send
                // again; its packet id may name another message now.
                if position.connection != current {
                    stats.stale.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // The broker forgets the message only now.
                match client.try_ack(&position.publish) {
                    Ok(()) => {
                        stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!(
                        "MQTT: acknowledging {} #{}: {e}; the broker will send it again",
                        position.publish.topic,
                        position.publish.pkid
                    ),
                }
            }
        })
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        // Acknowledgements are the checkpoint: sent as records settle.
        Ok(())
    }

    async fn close(&mut self) -> Result<(), SourceError> {
        self.disconnect(CLOSE_TIMEOUT)
            .await
            .map_err(|e| SourceError::Other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            host_port("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".to_owned(), 1883, false)
        );
        assert_eq!(
            host_port("tcp://broker").unwrap(),
            ("broker".to_owned(), 1883, false)
        );
        assert_eq!(
            host_port("mqtts://iot.example.com").unwrap(),
            ("iot.example.com".to_owned(), 8883, true)
        );
        let files = TlsFiles {
            ca: "/no/such/ca.pem".into(),
            client: None,
        };
        assert!(matches!(
            transport("mqtts://h", true, None),
            Err(MqttError::NoCa(_))
        ));
        assert!(matches!(
            transport("mqtt://h", false, Some(&files)),
            Err(MqttError::TlsWithoutMqtts(_))
        ));
        assert!(matches!(
            transport("mqtts://h", true, Some(&files)),
            Err(MqttError::Read { .. })
        ));
        assert!(host_port("http://x:1").is_err());
        assert!(host_port("mqtt://:1").is_err());
        assert!(host_port("mqtt://h:x").is_err());
    }
}
