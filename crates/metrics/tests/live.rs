//! The metrics layer against real services: a producer sending to
//! kinesalite through the fault proxy (failing a known share), the
//! Prometheus endpoint scraped over HTTP, and CloudWatch data points put to
//! moto and read back.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardline_harness::{
    EntryFault, FaultCode, FaultProxy, Kinesalite, Moto, Selection, sdk_config, streams,
    unique_name,
};
use shardline_metrics::cloudwatch::{CloudWatch, DATA_SOURCE_DIMENSION, PublishStats};
use shardline_metrics::prometheus::{CONTENT_TYPE, Exporter, serve};
use shardline_metrics::{
    AlarmConfig, AlarmKind, AlarmState, Metrics, Severity, SourceCounters, StatsProvider,
};
use shardline_partition_key::PartitionKey;
use shardline_producer::{
    DeadLetterFile, DeliveryStats, KinesisDestination, Outcome, Producer, Record, RetryPolicy,
    SinkStats, SourceName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestResult = Result<(), Box<dyn Error>>;

/// Sends `n` records, `failing` of them marked for the proxy to fail,
/// counting them as a source would; returns the outcomes.
async fn send(
    producer: &Producer,
    counters: &SourceCounters,
    prefix: &str,
    n: usize,
    failing: usize,
) -> Result<Vec<Outcome>, Box<dyn Error>> {
    let source = SourceName::new("web_logs");
    let mut receipts = Vec::new();
    let read_at = Instant::now();
    for i in 0..n {
        let marker = if i < failing { "fail" } else { "ok" };
        let data = format!("{prefix}-{marker}-{i}");
        counters.read(1, data.len() as u64 + 1);
        counters.parsed(1);
        let key = PartitionKey::new(&format!("k{}", i % 7))?;
        receipts.push(
            producer
                .send(Record::from_source(source.clone(), key, data))
                .await?,
        );
    }
    let mut outcomes = Vec::new();
    for receipt in receipts {
        outcomes.push(receipt.await);
        counters.latency().record(read_at.elapsed(), 1);
    }
    Ok(outcomes)
}

/// Log lines written by a test's subscriber.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// One HTTP/1.1 GET; returns the status line, headers and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> Result<String, Box<dyn Error>> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// The value of the sample line starting with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn counters_reconcile_alarms_fire_and_clear_and_prometheus_is_scraped() -> TestResult {
    let kinesalite = Kinesalite::shared()?;
    let stream = unique_name("metrics_live");
    streams::create_stream(&kinesalite.kinesis_client(), &stream, 2).await?;
    let proxy = FaultProxy::start(&kinesalite.endpoint()).await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::DataContains(b"-fail-".to_vec()),
        code: FaultCode::Throttled,
    }));
    let dir = tempfile::tempdir()?;
    let client = aws_sdk_kinesis::Client::new(&sdk_config(&proxy.endpoint()));
    // The failing records are refused whatever the rate: the shards are not
    // paced, so each record is tried exactly as the retry policy says.
    let producer = Producer::builder(KinesisDestination::new(&client, &stream))
        .dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson"))?)
        .adaptive_shard_rate(false)
        .linger(Duration::from_millis(10))
        .retry(
            RetryPolicy::default()
                .initial_delay(Duration::from_millis(5))
                .max_delay(Duration::from_millis(20))
                .max_retries(Some(1)),
        )
        .build()
        .await?;
    let metrics = Arc::new(Metrics::with_alarms(AlarmConfig::default()));
    let web = metrics.source("web_logs");
    let stats: StatsProvider = {
        let producer = producer.clone();
        Arc::new(move || producer.stats())
    };
    let (addr, server) = serve(
        "127.0.0.1:0".parse()?,
        Exporter::new(metrics.clone(), stats.clone()),
    )
    .await?;

    // Interval 1: 15 % of 200 fail every attempt → dead-lettered.
    let outcomes = send(&producer, &web, "one", 200, 30).await?;
    let dead = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::DeadLettered { .. }))
        .count();
    assert_eq!(dead, 30);
    let snapshot = metrics.snapshot(&stats());
    let accepted: usize = proxy.events().iter().map(|e| e.accepted_entries).sum();
    assert_eq!(
        snapshot.total_sent, accepted as u64,
        "sent = what the service accepted"
    );
    assert_eq!(snapshot.total_sent, 170);
    assert_eq!(snapshot.total_failed, 30);
    assert_eq!(snapshot.dead_lettered, 30);
    assert_eq!(snapshot.retried, 30, "each failing record retried once");
    assert_eq!(snapshot.success_rate, 85.0);
    assert_eq!(snapshot.by_source["web_logs"].read, 200);
    assert_eq!(snapshot.by_source["web_logs"].latency.count, 200);
    // Judged under a JSON log subscriber: the alarm is a structured event.
    let log = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(log.clone())
        .finish();
    let events = tracing::subscriber::with_default(subscriber, || metrics.judge(&snapshot));
    let logged = log.text();
    println!("{logged}");
    let raised = logged
        .lines()
        .map(serde_json::from_str::<serde_json::Value>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|line| line["fields"]["scope"] == "web_logs")
        .ok_or("no alarm event for web_logs")?;
    assert_eq!(raised["level"], "WARN");
    assert_eq!(raised["target"], "shardline::alarm");
    assert_eq!(raised["fields"]["message"], "alarm raised");
    assert_eq!(raised["fields"]["severity"], "CRITICAL");
    assert_eq!(raised["fields"]["alarm"], "success_rate");
    assert_eq!(raised["fields"]["value"], 85.0);
    assert_eq!(raised["fields"]["threshold"], 90.0);
    let web_events: Vec<_> = events.iter().filter(|e| e.scope == "web_logs").collect();
    assert_eq!(web_events.len(), 1, "{events:?}");
    assert_eq!(
        (
            web_events[0].alarm,
            web_events[0].severity,
            web_events[0].state
        ),
        (
            AlarmKind::SuccessRate,
            Severity::Critical,
            AlarmState::Raised
        )
    );
    assert_eq!(web_events[0].value, 85.0);

    // The scrape sees the same figures.
    let response = get(addr, "/metrics").await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(CONTENT_TYPE), "{response}");
    let series = |name: &str| format!("{name}{{source=\"web_logs\"}}");
    assert_eq!(
        sample(&response, &series("shardline_records_sent_total")),
        Some(170.0)
    );
    assert_eq!(
        sample(&response, &series("shardline_records_failed_total")),
        Some(30.0)
    );
    assert_eq!(
        sample(&response, &series("shardline_alarms_raised_total")),
        Some(1.0)
    );
    assert_eq!(
        sample(&response, &series("shardline_latency_seconds_count")),
        Some(200.0)
    );
    assert_eq!(
        sample(
            &response,
            "shardline_latency_seconds_bucket{le=\"+Inf\",source=\"web_logs\"}"
        )
        .or_else(|| sample(
            &response,
            "shardline_latency_seconds_bucket{source=\"web_logs\",le=\"+Inf\"}"
        )),
        Some(200.0),
        "{response}"
    );
    assert!(get(addr, "/nothing").await?.starts_with("HTTP/1.1 404"));

    // Interval 2: the shard recovers; the alarm clears.
    proxy.set_entry_fault(None);
    send(&producer, &web, "two", 100, 0).await?;
    let snapshot = metrics.snapshot(&stats());
    assert_eq!(snapshot.total_sent, 270);
    let events = metrics.judge(&snapshot);
    assert!(
        events.iter().any(|e| e.scope == "web_logs"
            && e.severity == Severity::Critical
            && e.state == AlarmState::Cleared),
        "{events:?}"
    );
    let read = streams::read_at_least(
        &kinesalite.kinesis_client(),
        &stream,
        270,
        Duration::from_secs(20),
    )
    .await?;
    assert_eq!(
        read.len(),
        270,
        "what the metrics call sent is in the stream"
    );
    producer.shutdown(Duration::from_secs(5)).await;
    server.abort();
    Ok(())
}

#[tokio::test]
async fn cloudwatch_data_points_reach_moto_with_the_data_source_dimension() -> TestResult {
    let moto = Moto::shared()?;
    let client = aws_sdk_cloudwatch::Client::new(&sdk_config(&moto.endpoint()));
    let namespace = unique_name("Shardline");
    let metrics = Metrics::new();
    let iot = metrics.source("iot_sensors");
    iot.read(100, 10_000);
    iot.parsed(100);
    iot.latency().record(Duration::from_millis(12), 90);
    let mut producer = SinkStats::default();
    producer.by_source.insert(
        "iot_sensors".into(),
        DeliveryStats {
            records_in: 100,
            delivered: 90,
            dead_lettered: 10,
            ..DeliveryStats::default()
        },
    );
    // Some time passes, so the interval has a throughput.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snapshot = metrics.snapshot(&producer);
    let mut cloudwatch = CloudWatch::new(client.clone(), namespace.clone());
    let data = cloudwatch.data(&snapshot, &metrics);
    let stats = cloudwatch.stats();
    cloudwatch.publisher().put(data).await;
    assert_eq!(PublishStats::get(&stats.failed_requests), 0);
    assert_eq!(PublishStats::get(&stats.requests), 1);

    let listed = client
        .list_metrics()
        .namespace(&namespace)
        .send()
        .await?
        .metrics
        .unwrap_or_default();
    let mut names: Vec<(String, Option<String>)> = listed
        .iter()
        .map(|m| {
            let source = m
                .dimensions()
                .iter()
                .find(|d| d.name() == Some(DATA_SOURCE_DIMENSION))
                .and_then(|d| d.value().map(str::to_owned));
            (m.metric_name().unwrap_or_default().to_owned(), source)
        })
        .collect();
    names.sort();
    names.dedup();
    for name in [
        "RecordsProcessed",
        "RecordsFailed",
        "SuccessRate",
        "ThroughputPerSec",
        "DeadLettered",
        "Latency",
    ] {
        assert!(
            names.contains(&(name.to_owned(), Some("iot_sensors".to_owned()))),
            "{name} for iot_sensors missing from {names:?}"
        );
        assert!(
            names.contains(&(name.to_owned(), None)),
            "{name} in total missing from {names:?}"
        );
    }

    let now = std::time::SystemTime::now();
    let statistic = |metric: &str| {
        client
            .get_metric_statistics()
            .namespace(&namespace)
            .metric_name(metric)
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name(DATA_SOURCE_DIMENSION)
                    .value("iot_sensors")
                    .build(),
            )
            .start_time((now - Duration::from_secs(600)).into())
            .end_time((now + Duration::from_secs(600)).into())
            .period(60)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Average)
            .send()
    };
    let sum = |points: &[aws_sdk_cloudwatch::types::Datapoint]| {
        points.iter().filter_map(|p| p.sum()).sum::<f64>()
    };
    let processed = statistic("RecordsProcessed").await?;
    assert_eq!(sum(processed.datapoints()), 90.0);
    let failed = statistic("RecordsFailed").await?;
    assert_eq!(sum(failed.datapoints()), 10.0);
    let rate = statistic("SuccessRate").await?;
    assert_eq!(
        rate.datapoints().first().and_then(|p| p.average()),
        Some(90.0)
    );

    // The next interval carries only what happened since.
    let producer_later = {
        let mut p = producer.clone();
        if let Some(s) = p.by_source.get_mut("iot_sensors") {
            s.delivered += 5;
        }
        p
    };
    let data = cloudwatch.data(&metrics.snapshot(&producer_later), &metrics);
    let processed = data
        .iter()
        .find(|d| {
            d.metric_name() == Some("RecordsProcessed")
                && d.dimensions()
                    .iter()
                    .any(|x| x.value() == Some("iot_sensors"))
        })
        .and_then(|d| d.value());
    assert_eq!(processed, Some(5.0));
    assert!(
        !data.iter().any(|d| d.metric_name() == Some("Latency")),
        "no latency recorded in the second interval"
    );
    Ok(())
}
