//! The statistics in the Prometheus / OpenMetrics text exposition format,
//! served over HTTP on an address the user opts into.
//!
//! The format is written by the Prometheus project's own client
//! (`prometheus-client`): each scrape takes a fresh snapshot through a
//! [`Collector`], so nothing is counted twice.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet, text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Metrics, SourceSnapshot, StatsProvider};

/// The bucket bounds, in seconds, of the Prometheus latency histogram.
pub const PROMETHEUS_BUCKETS_SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Cumulative counts at each of [`PROMETHEUS_BUCKETS_SECONDS`], the sum in
/// seconds (from the histogram's recorded values) and the total count.
fn prometheus_buckets(histogram: &hdrhistogram::Histogram<u64>) -> (Vec<(f64, u64)>, f64, u64) {
    let buckets = PROMETHEUS_BUCKETS_SECONDS
        .iter()
        .map(|&le| {
            let micros = (le * 1e6) as u64;
            (le, histogram.count_between(0, micros))
        })
        .collect();
    let sum: f64 = histogram
        .iter_recorded()
        .map(|v| v.value_iterated_to() as f64 / 1e6 * v.count_at_value() as f64)
        .sum();
    (buckets, sum, histogram.len())
}

/// The port a metrics address given as a bare host listens on (Vector's
/// exporter uses 9598; shardline takes the next).
pub const DEFAULT_METRICS_PORT: u16 = 9599;

/// The content type of the OpenMetrics text format the client writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reads `--metrics-addr`: `HOST:PORT`, `:PORT` or `PORT` (loopback), or a
/// bare host (the default port).
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port_only = text.strip_prefix(':').unwrap_or(text);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(ip) = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        return Ok(SocketAddr::new(ip, DEFAULT_METRICS_PORT));
    }
    Err(format!(
        "metrics address {text:?}: expected HOST:PORT, :PORT or an IP address"
    ))
}

/// Encodes the statistics on every scrape.
pub struct Exporter {
    metrics: Arc<Metrics>,
    stats: StatsProvider,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

type SourceField = fn(&SourceSnapshot) -> u64;

/// Counters per source: name (without `_total`, which the encoder adds),
/// help, field.
const SOURCE_COUNTERS: [(&str, &str, SourceField); 10] = [
    (
        "shardline_input_read",
        "Input items read (lines, changes, messages).",
        |s| s.read,
    ),
    ("shardline_input_bytes", "Bytes of input read.", |s| {
        s.bytes_read
    }),
    (
        "shardline_input_parsed",
        "Input items that became records.",
        |s| s.parsed,
    ),
    (
        "shardline_input_invalid",
        "Input items that did not parse or failed validation (dead-lettered).",
        |s| s.invalid,
    ),
    (
        "shardline_input_skipped",
        "Input items with nothing to send.",
        |s| s.skipped,
    ),
    (
        "shardline_records_sent",
        "Records the service acknowledged.",
        |s| s.sent,
    ),
    (
        "shardline_records_failed",
        "Records that could not be delivered.",
        |s| s.failed,
    ),
    (
        "shardline_records_retried",
        "Entry failures retried.",
        |s| s.retried,
    ),
    (
        "shardline_records_dead_lettered",
        "Records and input written to the dead-letter file.",
        |s| s.dead_lettered,
    ),
    ("shardline_alarms_raised", "Alarms raised.", |s| {
        s.alarms_raised
    }),
];

impl Exporter {
    /// The endpoint's figures: the metrics, joined with the sink's statistics.
    pub fn new(metrics: Arc<Metrics>, stats: StatsProvider) -> Self {
        Exporter { metrics, stats }
    }

    /// The exposition text now.
    pub fn encode(self: &Arc<Self>) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::new();
        text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

impl Collector for Exporter {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.metrics.snapshot(&(self.stats)());
        for (name, help, field) in SOURCE_COUNTERS {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (source, s) in &snapshot.by_source {
                let labels = [("source", source.as_str())];
                ConstCounter::new(field(s)).encode(metric.encode_family(&labels)?)?;
            }
        }
        let throttled = ConstCounter::new(snapshot.throttled_entries);
        let metric = encoder.encode_descriptor(
            "shardline_throttled_entries",
            "Entries a shard refused for its throughput limit.",
            None,
            MetricType::Counter,
        )?;
        throttled.encode(metric)?;
        let gauges: [(&str, &str, f64); 7] = [
            (
                "shardline_queue_records",
                "Records in the producer: queued, retrying or in flight.",
                snapshot.queue_size as f64,
            ),
            (
                "shardline_held_records",
                "Records that used up their retries, held until the service takes them (an outage).",
                snapshot.held_records as f64,
            ),
            (
                "shardline_in_flight_requests",
                "Requests in flight to the service.",
                snapshot.in_flight_requests as f64,
            ),
            (
                "shardline_in_flight_limit",
                "Requests the producer lets be in flight now (adaptive).",
                snapshot.in_flight_limit as f64,
            ),
            (
                "shardline_paced_shards",
                "Shards paced now, having throttled.",
                snapshot.paced_shards as f64,
            ),
            (
                "shardline_success_rate_percent",
                "Records delivered of those settled since the start, in percent.",
                snapshot.success_rate,
            ),
            (
                "shardline_uptime_seconds",
                "Seconds since the run started.",
                snapshot.elapsed_secs,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        let mut metric = encoder.encode_descriptor(
            "shardline_source_backlog_bytes",
            "Bytes a source's upstream holds back for it (a replication slot's WAL lag).",
            None,
            MetricType::Gauge,
        )?;
        for (source, s) in &snapshot.by_source {
            if let Some(bytes) = s.backlog_bytes {
                let labels = [("source", source.as_str())];
                ConstGauge::new(bytes as f64).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "shardline_source_backlog_seconds",
            "How far behind a source is: the age of the newest point it settled upstream.",
            None,
            MetricType::Gauge,
        )?;
        for (source, s) in &snapshot.by_source {
            if let Some(seconds) = s.backlog_seconds {
                let labels = [("source", source.as_str())];
                ConstGauge::new(seconds).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "shardline_source_redelivered",
            "Inputs a source's upstream sent again (MQTT redeliveries).",
            None,
            MetricType::Counter,
        )?;
        for (source, s) in &snapshot.by_source {
            if let Some(count) = s.redelivered {
                let labels = [("source", source.as_str())];
                ConstCounter::new(count).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "shardline_latency_seconds",
            "Read to settled (delivered or dead-lettered), per source.",
            None,
            MetricType::Histogram,
        )?;
        for (source, counters) in self.metrics.sources() {
            let Some((buckets, sum, count)) = counters.latency().with_total(prometheus_buckets)
            else {
                continue;
            };
            let labels = [("source", source.as_str())];
            metric
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    sum,
                    count,
                    &buckets_with_inf(buckets, count),
                    None,
                )?;
        }
        Ok(())
    }
}

fn buckets_with_inf(mut buckets: Vec<(f64, u64)>, count: u64) -> Vec<(f64, u64)> {
    // The client expects per-bucket counts and accumulates them itself.
    let mut previous = 0;
    for (_, n) in &mut buckets {
        let cumulative = *n;
        *n = cumulative.saturating_sub(previous);
        previous = cumulative;
    }
    buckets.push((f64::INFINITY, count.saturating_sub(previous)));
    buckets
}

/// Serves `GET /metrics` on `addr` until the task is aborted; returns the
/// address bound (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    exporter: Exporter,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let exporter = Arc::new(exporter);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let exporter = exporter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let exporter = exporter.clone();
                    async move { Ok::<_, Infallible>(respond(&exporter, &request)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((bound, task))
}

fn respond<B>(exporter: &Arc<Exporter>, request: &Request<B>) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: String| {
        let mut response = Response::new(Full::new(Bytes::from(text)));
        *response.status_mut() = status;
        response
    };
    if request.method() != Method::GET || request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "try GET /metrics\n".to_owned());
    }
    match exporter.encode() {
        Ok(body) => {
            let mut response = plain(StatusCode::OK, body);
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(CONTENT_TYPE),
            );
            response
        }
        Err(e) => {
            let mut text = String::new();
            let _ = writeln!(text, "encoding the metrics failed: {e}");
            plain(StatusCode::INTERNAL_SERVER_ERROR, text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_past_every_bucket_count_only_in_the_sum() {
        let latency = shardline_core::Latency::default();
        latency.record(std::time::Duration::from_secs(7200), 1);
        let interval = latency.take_interval().unwrap();
        let (buckets, sum, count) = prometheus_buckets(&interval);
        assert_eq!(count, 1);
        assert!(buckets.iter().all(|(_, n)| *n == 0), "{buckets:?}");
        assert!(sum >= 3600.0, "{sum}");
    }

    #[test]
    fn metrics_addresses() {
        assert_eq!(parse_addr("9100").unwrap().to_string(), "127.0.0.1:9100");
        assert_eq!(parse_addr(":9100").unwrap().to_string(), "127.0.0.1:9100");
        assert_eq!(parse_addr("0.0.0.0:80").unwrap().to_string(), "0.0.0.0:80");
        assert_eq!(
            parse_addr("::1").unwrap().to_string(),
            format!("[::1]:{DEFAULT_METRICS_PORT}")
        );
        assert!(parse_addr("localhost:x").is_err());
    }

    #[test]
    fn redeliveries_are_a_counter_for_sources_that_count_them() {
        use shardline_core::SinkStats;
        let metrics = Arc::new(Metrics::new());
        metrics.source("files");
        metrics.source("iot_sensors").redelivered(0);
        metrics.source("iot_sensors").redelivered(3);
        let exporter = Arc::new(Exporter::new(metrics.clone(), Arc::new(SinkStats::default)));
        let text = exporter.encode().unwrap();
        assert!(
            text.contains("shardline_source_redelivered_total{source=\"iot_sensors\"} 3"),
            "{text}"
        );
        assert!(!text.contains("shardline_source_redelivered_total{source=\"files\"}"));
        let snapshot = metrics.snapshot(&SinkStats::default());
        assert_eq!(snapshot.by_source["iot_sensors"].redelivered, Some(3));
        let json = serde_json::to_value(snapshot.by_source["files"]).unwrap();
        assert!(json.get("redelivered").is_none());
    }

    #[test]
    fn a_reported_backlog_is_a_gauge_and_in_the_snapshot() {
        use shardline_core::SinkStats;
        let metrics = Arc::new(Metrics::new());
        metrics.source("files");
        metrics.source("database_cdc").set_backlog_bytes(4096);
        metrics
            .source("database_cdc")
            .set_backlog_age(std::time::Duration::from_millis(1500));
        let exporter = Arc::new(Exporter::new(metrics.clone(), Arc::new(SinkStats::default)));
        let text = exporter.encode().unwrap();
        assert!(
            text.contains("shardline_source_backlog_bytes{source=\"database_cdc\"} 4096"),
            "{text}"
        );
        assert!(!text.contains("shardline_source_backlog_bytes{source=\"files\"}"));
        assert!(
            text.contains("shardline_source_backlog_seconds{source=\"database_cdc\"} 1.5"),
            "{text}"
        );
        let snapshot = metrics.snapshot(&SinkStats::default());
        assert_eq!(snapshot.by_source["database_cdc"].backlog_bytes, Some(4096));
        let json = serde_json::to_value(snapshot.by_source["files"]).unwrap();
        assert!(json.get("backlog_bytes").is_none());
    }
}
