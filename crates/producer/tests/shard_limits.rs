//! Producers sharing a stream whose shards enforce Kinesis's write limits
//! (the harness's shard-limit proxy in front of kinesalite): they learn
//! each shard's rate from its answers and deliver everything, without
//! talking to each other.

use std::collections::BTreeSet;
use std::error::Error;
use std::time::{Duration, Instant};

use shardline_harness::shard_limit::ShardLimits;
use shardline_harness::{Kinesalite, ShardLimitProxy, sdk_config, streams, unique_name};
use shardline_partition_key::PartitionKey;
use shardline_producer::{KinesisDestination, Outcome, Producer, Record, SourceName};

type TestResult = Result<(), Box<dyn Error>>;

/// Records each shard takes per second through the proxy (a tenth of the
/// service's, so the test is short).
const SHARD_RECORDS: u64 = 100;
const SHARDS: i32 = 2;
const PER_PRODUCER: usize = 600;

async fn producer(endpoint: &str, stream: &str) -> Result<Producer, Box<dyn Error>> {
    let client = aws_sdk_kinesis::Client::new(&sdk_config(endpoint));
    // The default retry policy: three retries, then the dead-letter sink
    // (none here: the record would come back in its outcome).
    Ok(Producer::builder(KinesisDestination::new(&client, stream))
        .linger(Duration::from_millis(20))
        .build()
        .await?)
}

async fn run(producer: Producer, name: &str) -> Result<(Vec<Outcome>, Producer), Box<dyn Error>> {
    let source = SourceName::new(name);
    let mut receipts = Vec::with_capacity(PER_PRODUCER);
    for i in 0..PER_PRODUCER {
        let key = PartitionKey::new(&format!("{name}-{i}"))?;
        let record = Record::from_source(source.clone(), key, format!("{name}-{i}"));
        receipts.push(producer.send(record).await?);
    }
    let mut outcomes = Vec::with_capacity(PER_PRODUCER);
    for receipt in receipts {
        outcomes.push(receipt.await);
    }
    Ok((outcomes, producer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_producers_sharing_throttled_shards_deliver_everything() -> TestResult {
    let kinesalite = Kinesalite::shared()?;
    let stream = unique_name("shared_shards");
    streams::create_stream(&kinesalite.kinesis_client(), &stream, SHARDS).await?;
    let mut limits = ShardLimits::scaled(SHARD_RECORDS as f64 / 1_000.0);
    limits.bytes_per_second = 1 << 20;
    let proxy = ShardLimitProxy::start(&kinesalite.endpoint(), limits).await?;
    let a = producer(&proxy.endpoint(), &stream).await?;
    let b = producer(&proxy.endpoint(), &stream).await?;

    // Both offer everything at once: ten times what the shards take in a
    // second.
    let started = Instant::now();
    let (left, right) = tokio::join!(run(a, "a"), run(b, "b"));
    let elapsed = started.elapsed();
    let ((a_outcomes, a), (b_outcomes, b)) = (left?, right?);

    eprintln!("{elapsed:.1?}; per second: {:?}", proxy.seconds());
    eprintln!("a: {:?}", a.stats());
    let lost = a_outcomes
        .iter()
        .chain(&b_outcomes)
        .filter(|o| !matches!(o, Outcome::Delivered(_)))
        .count();
    eprintln!("{lost} not delivered");
    // Nothing dead-lettered: throttled records waited for their shard
    // instead of spending their three retries.
    for outcome in a_outcomes.iter().chain(&b_outcomes) {
        assert!(matches!(outcome, Outcome::Delivered(_)), "{outcome:?}");
    }
    let stored: Vec<String> = streams::read_all(&kinesalite.kinesis_client(), &stream)
        .await?
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect();
    let distinct: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(distinct.len(), 2 * PER_PRODUCER, "every record stored");
    assert_eq!(stored.len(), 2 * PER_PRODUCER, "none twice");

    // Both producers paced the shards, and the retry storm stayed small:
    // after the first two seconds, throttled entries are a small share of
    // the delivered ones.
    let (a_stats, b_stats) = (a.stats(), b.stats());
    assert!(a_stats.paced_shards > 0 && b_stats.paced_shards > 0);
    let steady = proxy.totals_from(2);
    let all = proxy.totals_from(0);
    eprintln!(
        "{:.1?} for {} records at {} records/s a shard; throttled {} in all, {} of {} after 2 s",
        elapsed,
        2 * PER_PRODUCER,
        SHARD_RECORDS,
        all.throttled_records,
        steady.throttled_records,
        steady.accepted_records
    );
    eprintln!("per second: {:?}", proxy.seconds());
    assert_eq!(all.accepted_records, 2 * PER_PRODUCER as u64);
    assert_eq!(
        a_stats.throttled_entries + b_stats.throttled_entries,
        all.throttled_records,
        "the producers counted every refusal the shards made"
    );
    assert!(
        steady.throttled_records * 4 <= steady.accepted_records,
        "{} throttled for {} delivered after the first two seconds",
        steady.throttled_records,
        steady.accepted_records
    );
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
