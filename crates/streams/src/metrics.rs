//! The stream-level CloudWatch metrics Kinesis publishes (namespace
//! `AWS/Kinesis`, dimension `StreamName`), summed up over a window.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use serde::Serialize;

use crate::StreamError;

/// Kinesis publishes its stream metrics here
/// (<https://docs.aws.amazon.com/streams/latest/dev/monitoring-with-cloudwatch.html>).
pub const NAMESPACE: &str = "AWS/Kinesis";
/// Stream-level metrics come once a minute (same page).
pub const PERIOD: Duration = Duration::from_secs(60);

/// How one metric is summed up over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Summary {
    /// The total of every minute (counts, bytes).
    Sum,
    /// The mean of every sample (latency).
    Average,
    /// The highest sample (iterator age).
    Maximum,
}

/// The metrics `metrics` shows, and how each is summed up: what a
/// producer's health hangs on (records and bytes in, writes refused) and a
/// consumer's (how far behind it reads), with the put latency.
pub const STREAM_METRICS: [(&str, Summary); 5] = [
    ("IncomingRecords", Summary::Sum),
    ("IncomingBytes", Summary::Sum),
    ("WriteProvisionedThroughputExceeded", Summary::Sum),
    ("GetRecords.IteratorAgeMilliseconds", Summary::Maximum),
    ("PutRecords.Latency", Summary::Average),
];

/// One metric over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricFigure {
    /// Its CloudWatch name.
    pub metric: String,
    /// How [`MetricFigure::value`] sums up the minutes.
    pub summary: Summary,
    /// The figure over the window; `None` when CloudWatch has no data
    /// point in it.
    pub value: Option<f64>,
    /// CloudWatch's unit (`Count`, `Bytes`, `Milliseconds`).
    pub unit: Option<String>,
    /// Minutes with data.
    pub datapoints: usize,
}

/// Each of [`STREAM_METRICS`] for `stream` over the last `window`.
pub async fn stream_metrics(
    client: &Client,
    stream: &str,
    window: Duration,
) -> Result<Vec<MetricFigure>, StreamError> {
    let end = SystemTime::now();
    let start = end.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut figures = Vec::with_capacity(STREAM_METRICS.len());
    for (metric, summary) in STREAM_METRICS {
        let answer = client
            .get_metric_statistics()
            .namespace(NAMESPACE)
            .metric_name(metric)
            .dimensions(
                Dimension::builder()
                    .name("StreamName")
                    .value(stream)
                    .build(),
            )
            .start_time(DateTime::from(start))
            .end_time(DateTime::from(end))
            .period(PERIOD.as_secs() as i32)
            .statistics(Statistic::Sum)
            .statistics(Statistic::SampleCount)
            .statistics(Statistic::Maximum)
            .send()
            .await
            .map_err(|e| StreamError::call("GetMetricStatistics", stream, e))?;
        let points = answer.datapoints();
        let value = match summary {
            _ if points.is_empty() => None,
            Summary::Sum => Some(points.iter().filter_map(|p| p.sum()).sum()),
            Summary::Maximum => points.iter().filter_map(|p| p.maximum()).reduce(f64::max),
            Summary::Average => {
                let samples: f64 = points.iter().filter_map(|p| p.sample_count()).sum();
                let total: f64 = points.iter().filter_map(|p| p.sum()).sum();
                (samples > 0.0).then(|| total / samples)
            }
        };
        figures.push(MetricFigure {
            metric: metric.to_owned(),
            summary,
            value,
            unit: points
                .iter()
                .find_map(|p| p.unit())
                .map(|u| u.as_str().to_owned()),
            datapoints: points.len(),
        });
    }
    Ok(figures)
}
