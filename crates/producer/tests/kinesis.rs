//! The producer against kinesalite (through the harness), with the fault
//! proxy in between where the test needs faults no emulator makes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::error::Error;
use std::path::Path;
use std::time::Duration;

use shardline_harness::{
    EntryFault, FaultCode, FaultProxy, Kinesalite, ProxyAction, RequestFault, Selection,
    sdk_config, streams, unique_name,
};
use shardline_partition_key::{PartitionKey, ShardRange};
use shardline_producer::{
    BuildError, DeadLetterFile, DeadLetterReason, KinesisDestination, Outcome, Producer, Receipt,
    Record, RetryPolicy, SinkStats, SourceName, replay,
};

type TestResult = Result<(), Box<dyn Error>>;

/// Fast retries, so fault tests take milliseconds rather than the default
/// seconds.
fn fast_retries(max_retries: Option<u32>) -> RetryPolicy {
    RetryPolicy::default()
        .initial_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(50))
        .max_retries(max_retries)
}

fn kinesis_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::new(&sdk_config(endpoint))
}

async fn new_stream(name: &str, shards: i32) -> Result<String, Box<dyn Error>> {
    let stream = unique_name(name);
    streams::create_stream(&Kinesalite::shared()?.kinesis_client(), &stream, shards).await?;
    Ok(stream)
}

/// `n` records over `keys` keys; data is `<prefix>-<key>-<i>`.
fn records(prefix: &str, n: usize, keys: usize) -> Result<Vec<Record>, Box<dyn Error>> {
    let source = SourceName::new("test");
    (0..n)
        .map(|i| {
            let key = format!("key-{}", i % keys);
            Ok(Record::from_source(
                source.clone(),
                PartitionKey::new(&key)?,
                format!("{prefix}-{key}-{i}"),
            ))
        })
        .collect()
}

async fn send_all(
    producer: &Producer,
    records: Vec<Record>,
) -> Result<Vec<Receipt>, Box<dyn Error>> {
    let mut receipts = Vec::new();
    for record in records {
        receipts.push(producer.send(record).await?);
    }
    Ok(receipts)
}

/// Sends every record, expects each to be delivered, shuts the producer
/// down and checks its counters reconcile; returns them.
async fn deliver_all(
    producer: &Producer,
    records: Vec<Record>,
) -> Result<SinkStats, Box<dyn Error>> {
    for receipt in send_all(producer, records).await? {
        let outcome = receipt.await;
        assert!(matches!(outcome, Outcome::Delivered(_)), "{outcome:?}");
    }
    producer.shutdown(Duration::from_secs(10)).await;
    let stats = producer.stats();
    assert_reconciles(&stats);
    Ok(stats)
}

/// Counts of each data value in the stream.
async fn stream_counts(
    stream: &str,
    at_least: usize,
) -> Result<(BTreeMap<String, usize>, Vec<streams::ReadRecord>), Box<dyn Error>> {
    let client = Kinesalite::shared()?.kinesis_client();
    let read = streams::read_at_least(&client, stream, at_least, Duration::from_secs(20)).await?;
    let mut counts = BTreeMap::new();
    for record in &read {
        *counts
            .entry(String::from_utf8_lossy(&record.data).into_owned())
            .or_insert(0) += 1;
    }
    Ok((counts, read))
}

fn assert_reconciles(stats: &SinkStats) {
    let t = stats.total;
    assert_eq!(
        t.records_in,
        t.delivered + t.dead_lettered + t.failed,
        "records in = delivered + dead-lettered + failed: {stats:?}"
    );
    assert_eq!(stats.queued_records, 0, "{stats:?}");
    assert_eq!(stats.in_flight_requests, 0, "{stats:?}");
}

/// The user records a stream holds, deaggregated where aggregated, each
/// with the shard it was read from.
fn user_records(
    read: &[streams::ReadRecord],
) -> Result<Vec<(shardline_producer::aggregation::UserRecord, String)>, Box<dyn Error>> {
    use shardline_producer::aggregation::{UserRecord, deaggregate};
    let mut users = Vec::new();
    for record in read {
        let inside = deaggregate(&record.data)?.unwrap_or_else(|| {
            vec![UserRecord {
                partition_key: record.partition_key.clone(),
                explicit_hash_key: None,
                data: record.data.clone(),
            }]
        });
        users.extend(inside.into_iter().map(|u| (u, record.shard_id.clone())));
    }
    Ok(users)
}

/// The index a test record carries at the end of its data (`…-<i>`).
fn index_of(data: &[u8]) -> Result<usize, Box<dyn Error>> {
    Ok(String::from_utf8_lossy(data)
        .rsplit('-')
        .next()
        .ok_or("no index")?
        .parse()?)
}

/// Each partition key's records, as read back, in the order they were sent.
fn assert_keys_in_order(read: &[streams::ReadRecord]) -> Result<(), Box<dyn Error>> {
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for record in read {
        let index = index_of(&record.data)?;
        if let Some(previous) = last.insert(&record.partition_key, index) {
            assert!(previous < index, "{} out of order", record.partition_key);
        }
    }
    Ok(())
}

/// The stream's open shards, as the producer sees them.
async fn open_shards(stream: &str) -> Result<shardline_partition_key::ShardMap, Box<dyn Error>> {
    use shardline_producer::Destination;
    let client = Kinesalite::shared()?.kinesis_client();
    Ok(KinesisDestination::new(&client, stream)
        .shard_map()
        .await?
        .ok_or("no open shards")?)
}

fn dead_letter_file(dir: &Path) -> Result<DeadLetterFile, Box<dyn Error>> {
    Ok(DeadLetterFile::open(&dir.join("dead-letters.ndjson"))?)
}

/// A producer for `stream` through `endpoint`, dead-lettering into `dir`.
fn builder(
    endpoint: &str,
    stream: &str,
    dir: &Path,
) -> Result<shardline_producer::ProducerBuilder, Box<dyn Error>> {
    Ok(
        Producer::builder(KinesisDestination::new(&kinesis_client(endpoint), stream))
            .dead_letters(dead_letter_file(dir)?),
    )
}

#[tokio::test]
async fn round_trip_delivers_every_record_once_with_its_shard_and_sequence() -> TestResult {
    let stream = new_stream("producer_round_trip", 4).await?;
    let dir = tempfile::tempdir()?;
    let producer = builder(&Kinesalite::shared()?.endpoint(), &stream, dir.path())?
        .linger(Duration::from_millis(20))
        .build()
        .await?;
    let sent = records("rt", 3000, 50)?;
    let receipts = send_all(&producer, sent.clone()).await?;
    let mut delivered_to = HashMap::new();
    for (record, receipt) in sent.iter().zip(receipts) {
        match receipt.await {
            Outcome::Delivered(delivery) => {
                let shard = delivery.shard_id().ok_or("no shard id")?.to_owned();
                let sequence = delivery
                    .sequence_number()
                    .ok_or("no sequence number")?
                    .to_owned();
                delivered_to.insert(record.data.clone(), (shard, sequence));
            }
            other => return Err(format!("{:?}: {other:?}", record.data).into()),
        }
    }
    producer.shutdown(Duration::from_secs(10)).await;

    let (counts, read) = stream_counts(&stream, sent.len()).await?;
    assert_eq!(read.len(), sent.len());
    assert!(counts.values().all(|&n| n == 1));
    // Each receipt named the shard and sequence number the record has.
    for record in &read {
        let (shard, sequence) = &delivered_to[&bytes::Bytes::from(record.data.clone())];
        assert_eq!(
            (shard, sequence),
            (&record.shard_id, &record.sequence_number)
        );
    }
    let stats = producer.stats();
    assert_eq!(stats.total.delivered, 3000);
    assert_eq!(stats.by_source["test"].delivered, 3000);
    assert_reconciles(&stats);
    Ok(())
}

#[tokio::test]
async fn thirty_percent_failing_entries_are_retried_alone_until_delivered() -> TestResult {
    let stream = new_stream("producer_partial", 4).await?;
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Share(0.3),
        code: FaultCode::Throttled,
    }));
    let dir = tempfile::tempdir()?;
    let producer = builder(&proxy.endpoint(), &stream, dir.path())?
        .linger(Duration::from_millis(20))
        .retry(fast_retries(None))
        .build()
        .await?;
    let sent = records("partial", 2000, 40)?;
    deliver_all(&producer, sent.clone()).await?;

    // Every record exactly once: a partial failure never resends the rest.
    let (counts, _) = stream_counts(&stream, sent.len()).await?;
    assert_eq!(counts.len(), sent.len());
    assert!(counts.values().all(|&n| n == 1), "a record was duplicated");

    // The producer's counts agree with what the proxy did.
    let failed_entries: usize = proxy
        .events()
        .iter()
        .map(|e| match &e.action {
            ProxyAction::EntriesFailed { failed } => failed.len(),
            _ => 0,
        })
        .sum();
    let stats = producer.stats();
    assert!(failed_entries > 500, "only {failed_entries} entries failed");
    assert_eq!(stats.total.retried, failed_entries as u64);
    assert_eq!(stats.total.delivered, 2000);
    assert_eq!(stats.total.possibly_duplicated, 0);
    assert_reconciles(&stats);
    Ok(())
}

#[tokio::test]
async fn request_faults_throttling_5xx_resets_and_timeouts_lose_nothing() -> TestResult {
    let stream = new_stream("producer_request_faults", 2).await?;
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    proxy.queue_request_faults([
        RequestFault::Throttle,
        RequestFault::InternalError,
        RequestFault::Unavailable,
        RequestFault::Reset { forward: false },
        RequestFault::Reset { forward: true },
        RequestFault::Stall {
            delay: Duration::from_secs(2),
            forward: true,
        },
        RequestFault::Stall {
            delay: Duration::from_secs(2),
            forward: false,
        },
    ]);
    proxy.set_random_request_fault(Some((RequestFault::Throttle, 0.2)));
    let dir = tempfile::tempdir()?;
    let client = kinesis_client(&proxy.endpoint());
    let destination =
        KinesisDestination::with_request_timeout(&client, &stream, Duration::from_millis(500));
    let producer = Producer::builder(destination)
        .dead_letters(dead_letter_file(dir.path())?)
        .linger(Duration::from_millis(10))
        .batch_records(50)
        .retry(fast_retries(None))
        .build()
        .await?;
    let sent = records("faults", 1000, 30)?;
    let stats = deliver_all(&producer, sent.clone()).await?;
    assert_eq!(stats.total.delivered, 1000);
    assert!(stats.request_errors >= 7, "{stats:?}");

    // Every record is there; copies only where an attempt's outcome was
    // unknown (the reset and stall after forwarding), and counted.
    let (counts, read) = stream_counts(&stream, sent.len()).await?;
    assert_eq!(counts.len(), sent.len());
    let copies = (read.len() - counts.len()) as u64;
    assert!(
        copies > 0,
        "the forwarded reset and stall should have stored copies"
    );
    assert!(
        copies <= stats.total.possibly_duplicated,
        "{copies} copies but {} possible",
        stats.total.possibly_duplicated
    );
    Ok(())
}

#[tokio::test]
async fn exhausted_and_fatal_records_are_dead_lettered_with_their_reason() -> TestResult {
    let stream = new_stream("producer_dead_letters", 2).await?;
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::DataContains(b"poison".to_vec()),
        code: FaultCode::Throttled,
    }));
    let dir = tempfile::tempdir()?;
    let producer = builder(&proxy.endpoint(), &stream, dir.path())?
        .linger(Duration::from_millis(10))
        .retry(fast_retries(Some(2)))
        .build()
        .await?;
    let mut sent = records("ok", 100, 10)?;
    let source = SourceName::new("test");
    for i in 0..5 {
        sent.push(Record::from_source(
            source.clone(),
            PartitionKey::new("p")?,
            format!("poison-{i}"),
        ));
    }
    // Larger than Kinesis takes: data + key over 1 MiB.
    sent.push(Record::from_source(
        source.clone(),
        PartitionKey::new("big")?,
        vec![b'x'; 1024 * 1024],
    ));
    let receipts = send_all(&producer, sent.clone()).await?;
    let mut outcomes = Vec::new();
    for receipt in receipts {
        outcomes.push(receipt.await);
    }
    producer.shutdown(Duration::from_secs(10)).await;

    assert!(
        outcomes[..100]
            .iter()
            .all(|o| matches!(o, Outcome::Delivered(_)))
    );
    for outcome in &outcomes[100..105] {
        assert!(
            matches!(
                outcome,
                Outcome::DeadLettered {
                    reason: DeadLetterReason::RetriesExhausted,
                    error_code: Some(code),
                    record: None,
                    ..
                } if code == "ProvisionedThroughputExceededException"
            ),
            "{outcome:?}"
        );
    }
    assert!(
        matches!(
            outcomes[105],
            Outcome::DeadLettered {
                reason: DeadLetterReason::RecordTooLarge,
                error_code: None,
                record: None,
                ..
            }
        ),
        "{:?}",
        outcomes[105]
    );

    let letters = replay(&dir.path().join("dead-letters.ndjson"))?.letters;
    assert_eq!(letters.len(), 6);
    let poison: Vec<_> = letters
        .iter()
        .filter(|l| l.data.starts_with("poison"))
        .collect();
    assert_eq!(poison.len(), 5);
    for letter in &poison {
        assert_eq!(letter.attempts, 3, "1 try + 2 retries");
        assert_eq!(letter.reason, DeadLetterReason::RetriesExhausted);
        assert_eq!(letter.source, "test");
        assert_eq!(letter.partition_key, "p");
        assert!(letter.first_attempt.is_some() && letter.last_attempt.is_some());
        assert_eq!(letter.destination, format!("kinesis:{stream}"));
    }
    let big = letters
        .iter()
        .find(|l| l.reason == DeadLetterReason::RecordTooLarge)
        .ok_or("no record_too_large letter")?;
    assert_eq!(big.attempts, 0);
    assert_eq!(big.data.len(), 1024 * 1024);

    let stats = producer.stats();
    assert_eq!((stats.total.delivered, stats.total.dead_lettered), (100, 6));
    assert_reconciles(&stats);
    Ok(())
}

#[tokio::test]
async fn build_refuses_a_stream_that_does_not_exist_in_one_line() -> TestResult {
    let stream = unique_name("producer_no_such_stream");
    let endpoint = Kinesalite::shared()?.endpoint();
    let built = Producer::builder(KinesisDestination::new(&kinesis_client(&endpoint), &stream))
        .build()
        .await;
    let Err(BuildError::Destination {
        destination,
        source,
    }) = &built
    else {
        return Err(format!("built for a missing stream: {built:?}").into());
    };
    assert_eq!(destination, &format!("kinesis:{stream}"));
    assert_eq!(source.code.as_deref(), Some("ResourceNotFoundException"));
    let message = built.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "kinesis:{stream} cannot be used: DescribeStreamSummary: ResourceNotFoundException: "
        )) && !message.contains('\n'),
        "{message}"
    );

    // An existing stream passes the check.
    let stream = new_stream("producer_checked", 1).await?;
    let producer = Producer::builder(KinesisDestination::new(&kinesis_client(&endpoint), &stream))
        .build()
        .await?;
    producer.shutdown(Duration::from_secs(1)).await;
    Ok(())
}

#[tokio::test]
async fn without_a_dead_letter_sink_an_undeliverable_record_comes_back_in_its_outcome() -> TestResult
{
    let stream = unique_name("producer_hand_back");
    let endpoint = Kinesalite::shared()?.endpoint();
    let producer = Producer::builder(KinesisDestination::new(&kinesis_client(&endpoint), &stream))
        .check_destination(false)
        .linger(Duration::from_millis(10))
        .build()
        .await?;
    let sent = records("back", 10, 3)?;
    let mut returned = Vec::new();
    for receipt in send_all(&producer, sent.clone()).await? {
        match receipt.await {
            Outcome::DeadLettered {
                reason: DeadLetterReason::Fatal,
                record: Some(record),
                ..
            } => returned.push(*record),
            other => return Err(format!("not handed back: {other:?}").into()),
        }
    }
    assert_eq!(returned, sent, "every record back, as sent");
    producer.shutdown(Duration::from_secs(5)).await;
    let stats = producer.stats();
    assert_eq!(stats.total.dead_lettered, 10);
    assert_reconciles(&stats);
    Ok(())
}

#[tokio::test]
async fn a_channel_takes_the_dead_letters_of_a_caller_that_keeps_its_own() -> TestResult {
    let stream = unique_name("producer_channel");
    let endpoint = Kinesalite::shared()?.endpoint();
    let (letters, mut inbox) = tokio::sync::mpsc::channel(4);
    let producer = Producer::builder(KinesisDestination::new(&kinesis_client(&endpoint), &stream))
        .dead_letters(letters)
        .check_destination(false)
        .linger(Duration::from_millis(10))
        .build()
        .await?;
    let sent = records("channel", 10, 3)?;
    let receipts = send_all(&producer, sent.clone()).await?;
    // The channel holds 4: the producer waits for the reader, losing none.
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let letter = inbox.recv().await.ok_or("the channel closed early")?;
        got.push(letter.to_record()?.data);
    }
    for receipt in receipts {
        let outcome = receipt.await;
        assert!(
            matches!(
                outcome,
                Outcome::DeadLettered {
                    reason: DeadLetterReason::Fatal,
                    record: None,
                    ..
                }
            ),
            "{outcome:?}"
        );
    }
    let want: Vec<_> = sent.iter().map(|r| r.data.clone()).collect();
    assert_eq!(got, want);
    producer.shutdown(Duration::from_secs(5)).await;
    assert_reconciles(&producer.stats());
    Ok(())
}

#[tokio::test]
async fn a_missing_stream_is_fatal_and_replay_delivers_the_dead_letters() -> TestResult {
    let stream = unique_name("producer_missing");
    let dir = tempfile::tempdir()?;
    let producer = builder(&Kinesalite::shared()?.endpoint(), &stream, dir.path())?
        .check_destination(false)
        .linger(Duration::from_millis(10))
        .retry(fast_retries(Some(3)))
        .build()
        .await?;
    let sent = records("missing", 20, 5)?;
    for receipt in send_all(&producer, sent.clone()).await? {
        let outcome = receipt.await;
        let Outcome::DeadLettered {
            reason: DeadLetterReason::Fatal,
            error_code: Some(code),
            error_message: Some(message),
            record: None,
        } = &outcome
        else {
            return Err(format!("not a fatal dead letter: {outcome:?}").into());
        };
        assert_eq!(code, "ResourceNotFoundException");
        // One readable line: the operation, the code and the service's
        // own words, not a dump of the SDK's error.
        assert!(
            message.starts_with("PutRecords: ResourceNotFoundException: ")
                && message.len() < 200
                && !message.contains('\n'),
            "{message}"
        );
    }
    producer.shutdown(Duration::from_secs(5)).await;
    assert_reconciles(&producer.stats());

    // Once the stream exists, the dead letters go in as they were.
    streams::create_stream(&Kinesalite::shared()?.kinesis_client(), &stream, 1).await?;
    let replayed_dir = tempfile::tempdir()?;
    let producer = builder(
        &Kinesalite::shared()?.endpoint(),
        &stream,
        replayed_dir.path(),
    )?
    .linger(Duration::from_millis(10))
    .build()
    .await?;
    assert_eq!(
        replay(&dir.path().join("dead-letters.ndjson"))?
            .letters
            .len(),
        20
    );
    let summary = producer
        .replay_file(&dir.path().join("dead-letters.ndjson"))
        .await?;
    assert_eq!(summary.delivered, 20);
    assert_eq!(summary.unreadable, 0);
    producer.shutdown(Duration::from_secs(5)).await;
    let (counts, _) = stream_counts(&stream, 20).await?;
    let want: BTreeSet<String> = sent
        .iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect();
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), want);
    Ok(())
}

#[tokio::test]
async fn the_emulator_killed_and_restarted_mid_run_loses_nothing() -> TestResult {
    let kinesalite = Kinesalite::start_persistent()?;
    let stream = unique_name("producer_restart");
    streams::create_stream(&kinesalite.kinesis_client(), &stream, 2).await?;
    let dir = tempfile::tempdir()?;
    let client = kinesis_client(&kinesalite.endpoint());
    let destination =
        KinesisDestination::with_request_timeout(&client, &stream, Duration::from_secs(2));
    let producer = Producer::builder(destination)
        .dead_letters(dead_letter_file(dir.path())?)
        .linger(Duration::from_millis(5))
        .batch_records(20)
        .retry(fast_retries(None))
        .build()
        .await?;
    let sent = records("restart", 1500, 25)?;
    let mut receipts = Vec::new();
    for (i, record) in sent.iter().cloned().enumerate() {
        receipts.push(producer.send(record).await?);
        if i == 500 {
            kinesalite.kill();
        }
        if i == 900 {
            kinesalite.restart()?;
        }
    }
    for receipt in receipts {
        assert!(matches!(receipt.await, Outcome::Delivered(_)));
    }
    producer.shutdown(Duration::from_secs(10)).await;
    let stats = producer.stats();
    assert_reconciles(&stats);
    assert!(
        stats.total.retried > 0,
        "the kill should have caused retries"
    );

    let read = streams::read_at_least(
        &kinesalite.kinesis_client(),
        &stream,
        sent.len(),
        Duration::from_secs(20),
    )
    .await?;
    let distinct: BTreeSet<Vec<u8>> = read.iter().map(|r| r.data.clone()).collect();
    assert_eq!(distinct.len(), sent.len());
    assert!((read.len() - distinct.len()) as u64 <= stats.total.possibly_duplicated);
    Ok(())
}

#[tokio::test]
async fn strict_ordering_keeps_each_keys_order_through_retries() -> TestResult {
    let stream = new_stream("producer_ordering", 3).await?;
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Share(0.3),
        code: FaultCode::InternalFailure,
    }));
    let dir = tempfile::tempdir()?;
    let producer = builder(&proxy.endpoint(), &stream, dir.path())?
        .linger(Duration::from_millis(5))
        .strict_ordering(true)
        .retry(fast_retries(None))
        .build()
        .await?;
    let sent = records("order", 600, 12)?;
    deliver_all(&producer, sent.clone()).await?;

    let (counts, read) = stream_counts(&stream, sent.len()).await?;
    assert_eq!(counts.len(), sent.len());
    // Within a shard, records come back in sequence order; a key's records
    // must come back in the order they were sent.
    assert_keys_in_order(&read)
}

/// Strict ordering with aggregation: a hot key's queued records share one
/// aggregate (one entry per key per request), and a failed aggregate is
/// retried whole before the key's next records — so every key's records
/// arrive in order, once each, in far fewer Kinesis records.
#[tokio::test]
async fn strict_ordering_with_aggregation_puts_a_keys_run_in_one_aggregate() -> TestResult {
    let stream = new_stream("producer_ordering_agg", 3).await?;
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Share(0.3),
        code: FaultCode::InternalFailure,
    }));
    proxy.set_random_request_fault(Some((RequestFault::Unavailable, 0.1)));
    let dir = tempfile::tempdir()?;
    let producer = builder(&proxy.endpoint(), &stream, dir.path())?
        .linger(Duration::from_millis(5))
        .strict_ordering(true)
        .aggregate(8 * 1024)
        .retry(fast_retries(None))
        .build()
        .await?;
    let sent = records("orderagg", 3000, 6)?;
    let stats = deliver_all(&producer, sent.clone()).await?;
    assert!(stats.total.retried > 0);

    let read = streams::read_all(&Kinesalite::shared()?.kinesis_client(), &stream).await?;
    // One user record per key per aggregate would need at least 1,500
    // Kinesis records for six keys on three shards.
    assert!(
        read.len() < 600,
        "{} Kinesis records for {} user records",
        read.len(),
        sent.len()
    );
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = 0;
    for (user, _) in user_records(&read)? {
        let index = index_of(&user.data)?;
        if let Some(previous) = last.insert(user.partition_key.clone(), index) {
            assert!(
                previous < index,
                "{}: {index} after {previous}",
                user.partition_key
            );
        }
        seen += 1;
    }
    assert_eq!(seen, sent.len(), "every user record once");
    eprintln!(
        "{} user records over 6 keys in {} Kinesis records; {} retries",
        sent.len(),
        read.len(),
        stats.total.retried
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_deadline_dead_letters_what_a_stalled_destination_holds() -> TestResult {
    let stream = new_stream("producer_shutdown", 1).await?;
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    proxy.set_random_request_fault(Some((
        RequestFault::Stall {
            delay: Duration::from_secs(30),
            forward: false,
        },
        1.0,
    )));
    let dir = tempfile::tempdir()?;
    let producer = builder(&proxy.endpoint(), &stream, dir.path())?
        .linger(Duration::from_millis(5))
        .batch_records(10)
        .max_in_flight(2)
        .build()
        .await?;
    let receipts = send_all(&producer, records("stalled", 50, 5)?).await?;
    producer.shutdown(Duration::from_millis(500)).await;
    for receipt in receipts {
        assert!(matches!(
            receipt.await,
            Outcome::DeadLettered {
                reason: DeadLetterReason::ShutdownDeadline,
                ..
            }
        ));
    }
    let stats = producer.stats();
    assert_eq!(stats.total.dead_lettered, 50);
    assert_reconciles(&stats);
    assert_eq!(
        replay(&dir.path().join("dead-letters.ndjson"))?
            .letters
            .len(),
        50
    );
    // Sending after shutdown is refused, the record handed back.
    let late = records("late", 1, 1)?.remove(0);
    assert!(producer.send(late).await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_full_queue_pushes_back_and_flush_waits_for_settlement() -> TestResult {
    let stream = new_stream("producer_backpressure", 1).await?;
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    proxy.queue_request_faults([RequestFault::Stall {
        delay: Duration::from_millis(800),
        forward: true,
    }]);
    let dir = tempfile::tempdir()?;
    let client = kinesis_client(&proxy.endpoint());
    // Ten records fill one batch, which the proxy stalls; the long linger
    // keeps anything else from going out until `flush` asks.
    let producer = Producer::builder(KinesisDestination::new(&client, &stream))
        .dead_letters(dead_letter_file(dir.path())?)
        .linger(Duration::from_secs(60))
        .batch_records(10)
        .queue_max_records(10)
        .build()
        .await?;
    let mut all = records("bp", 11, 3)?;
    let eleventh = all.pop().ok_or("no record")?;
    let mut receipts = send_all(&producer, all).await?;
    // Ten records held: the eleventh does not fit now.
    let eleventh = match producer.try_send(eleventh) {
        Err(shardline_producer::TrySendError::Full(record)) => *record,
        other => return Err(format!("expected Full, got {other:?}").into()),
    };
    // `send` waits until room frees up, then takes it.
    receipts.push(producer.send(eleventh).await?);
    producer.flush().await;
    for mut receipt in receipts {
        assert!(matches!(receipt.try_outcome(), Some(Outcome::Delivered(_))));
    }
    producer.shutdown(Duration::from_secs(5)).await;
    assert_reconciles(&producer.stats());
    Ok(())
}

#[tokio::test]
async fn aggregation_packs_records_by_shard_and_every_user_record_arrives_once() -> TestResult {
    use shardline_producer::aggregation::DEFAULT_AGGREGATE_MAX_BYTES;

    let stream = new_stream("producer_aggregation", 4).await?;
    let dir = tempfile::tempdir()?;
    let producer = builder(&Kinesalite::shared()?.endpoint(), &stream, dir.path())?
        .linger(Duration::from_millis(20))
        .aggregate(DEFAULT_AGGREGATE_MAX_BYTES)
        .build()
        .await?;
    let sent = records("agg", 5000, 200)?;
    let receipts = send_all(&producer, sent.clone()).await?;
    let mut shard_of = HashMap::new();
    for (record, receipt) in sent.iter().zip(receipts) {
        match receipt.await {
            Outcome::Delivered(delivery) => {
                shard_of.insert(
                    record.data.clone(),
                    delivery.shard_id().ok_or("no shard")?.to_owned(),
                );
            }
            other => return Err(format!("{other:?}").into()),
        }
    }
    producer.shutdown(Duration::from_secs(10)).await;
    assert_reconciles(&producer.stats());

    // Far fewer Kinesis records than user records.
    let read = streams::read_all(&Kinesalite::shared()?.kinesis_client(), &stream).await?;
    assert!(
        read.len() < 200,
        "{} Kinesis records for 5000 user records",
        read.len()
    );

    let map = open_shards(&stream).await?;
    let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (user, shard_id) in user_records(&read)? {
        // Each user record is in the shard its own key maps to, and its
        // receipt named that shard.
        let key = PartitionKey::new(&user.partition_key)?;
        let index = map.index_for(&key, None).ok_or("no shard for key")?;
        assert_eq!(map.ranges()[index].shard_id, shard_id);
        assert_eq!(shard_of[&bytes::Bytes::from(user.data.clone())], shard_id);
        *seen.entry(user.data).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), sent.len());
    assert!(seen.values().all(|&n| n == 1));
    Ok(())
}

#[tokio::test]
async fn aggregates_that_fail_are_retried_whole_and_nothing_is_lost_or_doubled() -> TestResult {
    let stream = new_stream("producer_aggregation_faults", 3).await?;
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Share(0.3),
        code: FaultCode::Throttled,
    }));
    proxy.set_random_request_fault(Some((RequestFault::Unavailable, 0.1)));
    let dir = tempfile::tempdir()?;
    let producer = builder(&proxy.endpoint(), &stream, dir.path())?
        .linger(Duration::from_millis(10))
        .aggregate(8 * 1024)
        .retry(fast_retries(None))
        .build()
        .await?;
    let sent = records("aggfault", 3000, 90)?;
    let stats = deliver_all(&producer, sent.clone()).await?;
    assert!(stats.total.retried > 0);

    let read = streams::read_all(&Kinesalite::shared()?.kinesis_client(), &stream).await?;
    let mut seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (user, _) in user_records(&read)? {
        *seen.entry(user.data).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), sent.len());
    assert!(
        seen.values().all(|&n| n == 1),
        "a user record was stored twice"
    );
    Ok(())
}

#[tokio::test]
async fn the_rate_limiter_paces_each_shard_and_delivers_everything() -> TestResult {
    let stream = new_stream("producer_rate_limit", 1).await?;
    let dir = tempfile::tempdir()?;
    // 10% of a shard: 100 records/s with a burst of 100.
    let producer = builder(&Kinesalite::shared()?.endpoint(), &stream, dir.path())?
        .linger(Duration::from_millis(1))
        .rate_limit(10)
        // One request at a time, so the order check is about the limiter.
        .max_in_flight(1)
        .build()
        .await?;
    let sent = records("paced", 250, 5)?;
    let started = std::time::Instant::now();
    for receipt in send_all(&producer, sent.clone()).await? {
        assert!(matches!(receipt.await, Outcome::Delivered(_)));
    }
    let elapsed = started.elapsed();
    producer.shutdown(Duration::from_secs(5)).await;
    // 100 at once, then 150 at 100/s: it cannot have been faster than 1.5 s.
    assert!(
        elapsed >= Duration::from_millis(1400),
        "took only {elapsed:?}"
    );
    assert_reconciles(&producer.stats());
    let (counts, read) = stream_counts(&stream, sent.len()).await?;
    assert_eq!(counts.len(), 250);
    // Held-back records keep their order: each key's records in order.
    assert_keys_in_order(&read)
}

#[tokio::test]
async fn aggregation_follows_a_split_shard() -> TestResult {
    let stream = new_stream("producer_reshard", 2).await?;
    let admin = Kinesalite::shared()?.kinesis_client();
    let dir = tempfile::tempdir()?;
    let producer = builder(&Kinesalite::shared()?.endpoint(), &stream, dir.path())?
        .linger(Duration::from_millis(5))
        .aggregate(16 * 1024)
        .build()
        .await?;
    let all = records("split", 2500, 200)?;
    let send_phase = |range: std::ops::Range<usize>| {
        let producer = producer.clone();
        let phase: Vec<Record> = all[range].to_vec();
        async move {
            for receipt in send_all(&producer, phase).await? {
                if !matches!(receipt.await, Outcome::Delivered(_)) {
                    return Err::<(), Box<dyn Error>>("not delivered".into());
                }
            }
            Ok(())
        }
    };
    send_phase(0..1000).await?;
    // Split the first shard in two at the middle of its range.
    admin
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((u128::MAX / 4).to_string())
        .send()
        .await?;
    streams::wait_until_active(&admin, &stream).await?;
    // The first puts after the split land in a child shard, not the one
    // predicted: the producer asks for the shards again.
    send_phase(1000..1500).await?;
    send_phase(1500..2500).await?;
    producer.shutdown(Duration::from_secs(10)).await;
    assert_reconciles(&producer.stats());

    let open = open_shards(&stream).await?;
    assert_eq!(open.ranges().len(), 3);

    // Every shard's range, the split one's included.
    let listed = admin.list_shards().stream_name(&stream).send().await?;
    let every_shard = listed
        .shards()
        .iter()
        .map(|s| {
            let range = s.hash_key_range().ok_or("no hash key range")?;
            let range = ShardRange {
                shard_id: s.shard_id().to_owned(),
                starting_hash_key: range.starting_hash_key().parse()?,
                ending_hash_key: range.ending_hash_key().parse()?,
            };
            Ok((range.shard_id.clone(), range))
        })
        .collect::<Result<HashMap<_, _>, Box<dyn Error>>>()?;
    let read = streams::read_all(&admin, &stream).await?;
    // What a consumer that keeps only the user records of its shard's hash
    // key range (the KCL) sees: each record once. Copies an aggregate made
    // for the split shard left in a child that does not hold their key
    // were sent again, and counted as possible duplicates.
    let mut kept: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut outside = 0;
    for (user, shard_id) in user_records(&read)? {
        let key = PartitionKey::new(&user.partition_key)?;
        let holds = every_shard
            .get(&shard_id)
            .ok_or("a shard not listed")?
            .holds(&key, None);
        if !holds {
            outside += 1;
            continue;
        }
        let index = index_of(&user.data)?;
        if index >= 1500 {
            // Sent after the refresh: in the open shard its key maps to.
            let shard = open.index_for(&key, None).ok_or("no shard")?;
            assert_eq!(open.ranges()[shard].shard_id, shard_id, "record {index}");
        }
        *kept.entry(user.data).or_insert(0) += 1;
    }
    assert_eq!(kept.len(), all.len());
    assert!(kept.values().all(|&n| n == 1), "a record kept twice");
    assert_eq!(producer.stats().total.possibly_duplicated, outside);
    Ok(())
}
