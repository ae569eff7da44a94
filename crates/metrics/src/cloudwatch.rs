//! CloudWatch metrics: RecordsProcessed, RecordsFailed, SuccessRate and
//! ThroughputPerSec, plus DeadLettered and Latency, for every source under a
//! `DataSource` dimension and for the whole run without one — published with
//! PutMetricData through the official SDK.
//!
//! Each publication covers the interval since the previous one. Publishing
//! never blocks the data path: the [`crate::Reporter`] hands data to a
//! background task and drops an interval (counted) if the previous one is
//! still being sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use hdrhistogram::Histogram;

use crate::{Metrics, Snapshot, TOTAL_SCOPE};

/// PutMetricData accepts at most 1,000 different metrics per request
/// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html).
pub const MAX_METRICS_PER_REQUEST: usize = 1000;
/// ... and at most 1 MB per HTTP POST request (same page). Requests are cut
/// well below it by a generous estimate of each datum's encoded size.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// At most 150 values in one datum's Values/Counts arrays (same page).
pub const MAX_VALUES_PER_DATUM: usize = 150;
/// The dimension naming the source.
pub const DATA_SOURCE_DIMENSION: &str = "DataSource";
/// The namespace used when none is configured.
pub const DEFAULT_NAMESPACE: &str = "Shardline";

/// The latency histogram is folded into buckets growing by this factor from
/// 0.1 ms, so an hour fits in under 100 values (below
/// [`MAX_VALUES_PER_DATUM`]) while each stays within 20 % of the truth.
const LATENCY_BUCKET_FACTOR: f64 = 1.2;
const LATENCY_FIRST_BUCKET_MICROS: u64 = 100;

/// What publishing did, for the run's summary and tests.
#[derive(Debug, Default)]
pub struct PublishStats {
    /// PutMetricData requests that succeeded.
    pub requests: AtomicU64,
    /// Data points those requests carried.
    pub data_points: AtomicU64,
    /// Requests that failed (logged; their data are not retried).
    pub failed_requests: AtomicU64,
    /// Intervals not published because the previous one was still going.
    pub skipped_intervals: AtomicU64,
}

impl PublishStats {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Previous {
    sent: u64,
    failed: u64,
    dead_lettered: u64,
}

/// Turns successive snapshots into metric data.
#[derive(Debug)]
pub struct CloudWatch {
    publisher: Publisher,
    previous: BTreeMap<String, Previous>,
    last_elapsed: f64,
}

/// Puts metric data; cheap to clone.
#[derive(Debug, Clone)]
pub struct Publisher {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
    stats: Arc<PublishStats>,
}

impl CloudWatch {
    /// Publishes through `client` under `namespace`.
    pub fn new(client: aws_sdk_cloudwatch::Client, namespace: impl Into<String>) -> Self {
        CloudWatch {
            publisher: Publisher {
                client,
                namespace: namespace.into(),
                stats: Arc::default(),
            },
            previous: BTreeMap::new(),
            last_elapsed: 0.0,
        }
    }

    /// The namespace the metrics go under.
    pub fn namespace(&self) -> &str {
        &self.publisher.namespace
    }

    /// What publishing did so far.
    pub fn stats(&self) -> Arc<PublishStats> {
        self.publisher.stats.clone()
    }

    /// What puts the data this builds.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// The data for the interval that ends with `snapshot`; takes the
    /// latency histograms' interval from `metrics`.
    pub fn data(&mut self, snapshot: &Snapshot, metrics: &Metrics) -> Vec<MetricDatum> {
        let seconds = snapshot.elapsed_secs - self.last_elapsed;
        self.last_elapsed = snapshot.elapsed_secs;
        let now = aws_sdk_cloudwatch::primitives::DateTime::from(std::time::SystemTime::now());

        let mut latency: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
        for (name, counters) in metrics.sources() {
            if let Some(h) = counters.latency().take_interval() {
                latency.insert(name, h);
            }
        }
        let total_latency = latency.values().fold(None::<Histogram<u64>>, |acc, h| {
            Some(match acc {
                Some(mut t) => {
                    let _ = t.add(h);
                    t
                }
                None => h.clone(),
            })
        });

        let scopes = std::iter::once((
            None,
            Previous {
                sent: snapshot.total_sent,
                failed: snapshot.total_failed,
                dead_lettered: snapshot.dead_lettered,
            },
            total_latency.as_ref(),
        ))
        .chain(snapshot.by_source.iter().map(|(name, s)| {
            (
                Some(name.as_str()),
                Previous {
                    sent: s.sent,
                    failed: s.failed,
                    dead_lettered: s.dead_lettered,
                },
                latency.get(name),
            )
        }));
        let mut data = Vec::new();
        for (source, now_counts, histogram) in scopes {
            let key = source.unwrap_or(TOTAL_SCOPE).to_owned();
            let before = self.previous.insert(key, now_counts).unwrap_or_default();
            let sent = now_counts.sent.saturating_sub(before.sent);
            let failed = now_counts.failed.saturating_sub(before.failed);
            let dead = now_counts
                .dead_lettered
                .saturating_sub(before.dead_lettered);
            let datum = |name: &str, unit: StandardUnit| {
                let mut b = MetricDatum::builder()
                    .metric_name(name)
                    .unit(unit)
                    .timestamp(now);
                if let Some(source) = source {
                    b = b.dimensions(
                        Dimension::builder()
                            .name(DATA_SOURCE_DIMENSION)
                            .value(source)
                            .build(),
                    );
                }
                b
            };
            data.push(
                datum("RecordsProcessed", StandardUnit::Count)
                    .value(sent as f64)
                    .build(),
            );
            data.push(
                datum("RecordsFailed", StandardUnit::Count)
                    .value(failed as f64)
                    .build(),
            );
            data.push(
                datum("DeadLettered", StandardUnit::Count)
                    .value(dead as f64)
                    .build(),
            );
            if sent + failed > 0 {
                let rate = sent as f64 * 100.0 / (sent + failed) as f64;
                data.push(
                    datum("SuccessRate", StandardUnit::Percent)
                        .value(rate)
                        .build(),
                );
            }
            if seconds > 0.0 {
                data.push(
                    datum("ThroughputPerSec", StandardUnit::CountSecond)
                        .value(sent as f64 / seconds)
                        .build(),
                );
            }
            if let Some(h) = histogram.filter(|h| !h.is_empty()) {
                let (values, counts) = latency_values(h);
                data.push(
                    datum("Latency", StandardUnit::Milliseconds)
                        .set_values(Some(values))
                        .set_counts(Some(counts))
                        .build(),
                );
            }
        }
        data
    }
}

impl Publisher {
    /// Puts `data` in as few requests as the limits allow. Failures are
    /// logged and counted, never retried: the next interval carries on.
    pub async fn put(&self, data: Vec<MetricDatum>) {
        for chunk in requests(data) {
            let points = chunk.len() as u64;
            let result = self
                .client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(chunk))
                .send()
                .await;
            match result {
                Ok(_) => {
                    self.stats.requests.fetch_add(1, Ordering::Relaxed);
                    self.stats.data_points.fetch_add(points, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "CloudWatch PutMetricData failed ({points} data points dropped): {}",
                        aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
                    );
                }
            }
        }
    }
}

/// The histogram as CloudWatch Values/Counts, in milliseconds.
fn latency_values(histogram: &Histogram<u64>) -> (Vec<f64>, Vec<f64>) {
    let mut values = Vec::new();
    let mut counts = Vec::new();
    for v in histogram.iter_log(LATENCY_FIRST_BUCKET_MICROS, LATENCY_BUCKET_FACTOR) {
        let n = v.count_since_last_iteration();
        if n > 0 && values.len() < MAX_VALUES_PER_DATUM {
            values.push(v.value_iterated_to() as f64 / 1000.0);
            counts.push(n as f64);
        }
    }
    (values, counts)
}

/// A datum's encoded size, generously: names, dimension, timestamp, unit,
/// and each value and count.
fn estimated_bytes(datum: &MetricDatum) -> usize {
    512 + datum.values().len() * 96
}

/// Splits data into requests within [`MAX_METRICS_PER_REQUEST`] and
/// [`MAX_REQUEST_BYTES`].
fn requests(data: Vec<MetricDatum>) -> Vec<Vec<MetricDatum>> {
    let mut out: Vec<Vec<MetricDatum>> = Vec::new();
    let mut bytes = 0;
    for datum in data {
        let size = estimated_bytes(&datum);
        match out.last_mut() {
            Some(last)
                if last.len() < MAX_METRICS_PER_REQUEST && bytes + size <= MAX_REQUEST_BYTES =>
            {
                bytes += size;
                last.push(datum);
            }
            _ => {
                bytes = size;
                out.push(vec![datum]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_stay_within_limits() {
        let data: Vec<_> = (0..2500)
            .map(|i| {
                MetricDatum::builder()
                    .metric_name(format!("m{i}"))
                    .value(1.0)
                    .build()
            })
            .collect();
        let chunks = requests(data);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        let wide: Vec<_> = (0..100)
            .map(|_| {
                MetricDatum::builder()
                    .metric_name("Latency")
                    .set_values(Some(vec![1.0; 150]))
                    .set_counts(Some(vec![1.0; 150]))
                    .build()
            })
            .collect();
        let chunks = requests(wide);
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            assert!(chunk.iter().map(estimated_bytes).sum::<usize>() <= MAX_REQUEST_BYTES);
        }
    }

    #[test]
    fn latency_fits_one_datum() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for micros in [50, 1_000, 10_000, 10_100, 3_000_000_000] {
            h.record(micros).unwrap();
        }
        let (values, counts) = latency_values(&h);
        assert!(values.len() <= MAX_VALUES_PER_DATUM);
        assert_eq!(counts.iter().sum::<f64>(), 5.0);
        assert!(values.windows(2).all(|w| w[0] < w[1]));
    }
}
