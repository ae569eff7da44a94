//! Memory stays bounded when the destination is blocked: a sender trying to
//! push 1 GiB through `send` is held once the records' share of the memory
//! cap is used up, and the process's resident memory — the records, the
//! request in flight, and even the in-process fault proxy's copy of it —
//! grows by less than the cap.
//!
//! Alone in its own test binary, so the resident set measured is this
//! test's.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shardline_harness::{FaultProxy, Kinesalite, RequestFault, sdk_config, streams, unique_name};
use shardline_partition_key::PartitionKey;
use shardline_producer::{
    DEFAULT_QUEUE_MAX_BYTES, DeadLetterFile, DeadLetterReason, KinesisDestination, Outcome,
    Producer, RECORD_OVERHEAD_BYTES, Record, SourceName,
};

/// What the sender tries to push.
const PUSH_BYTES: usize = 1 << 30;
const RECORD_BYTES: usize = 64 * 1024;

fn resident_bytes() -> Result<u64, Box<dyn Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or("no VmRSS in /proc/self/status")?
        .parse()?;
    Ok(kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_destination_holds_the_sender_at_the_byte_cap() -> Result<(), Box<dyn Error>> {
    let kinesalite = Kinesalite::shared()?;
    let stream = unique_name("producer_memory");
    streams::create_stream(&kinesalite.kinesis_client(), &stream, 1).await?;
    let proxy = FaultProxy::start(&kinesalite.endpoint()).await?;
    // Every request hangs: the destination is blocked.
    proxy.set_random_request_fault(Some((
        RequestFault::Stall {
            delay: Duration::from_secs(120),
            forward: false,
        },
        1.0,
    )));
    let dir = tempfile::tempdir()?;
    let client = aws_sdk_kinesis::Client::new(&sdk_config(&proxy.endpoint()));
    let producer = Producer::builder(KinesisDestination::new(&client, &stream))
        .dead_letters(DeadLetterFile::open(&dir.path().join("dead.ndjson"))?)
        .linger(Duration::from_millis(1))
        .max_in_flight(1)
        .batch_bytes(1024 * 1024)
        .queue_max_records(1_000_000)
        .build()
        .await?;
    assert_eq!(producer.config().queue_max_bytes, DEFAULT_QUEUE_MAX_BYTES);
    let baseline = resident_bytes()?;

    // The sender: 1 GiB in 64 KiB records, each its own allocation.
    let pushed = Arc::new(AtomicU64::new(0));
    let sender = {
        let producer = producer.clone();
        let pushed = pushed.clone();
        tokio::spawn(async move {
            let source = SourceName::new("memory");
            let key = PartitionKey::new_or_hashed("k");
            let mut receipts = Vec::new();
            for i in 0..PUSH_BYTES / RECORD_BYTES {
                let data = vec![(i % 251) as u8; RECORD_BYTES];
                match producer
                    .send(Record::from_source(source.clone(), key.clone(), data))
                    .await
                {
                    Ok(receipt) => receipts.push(receipt),
                    Err(_) => break, // shut down
                }
                pushed.fetch_add(RECORD_BYTES as u64, Ordering::Relaxed);
            }
            receipts
        })
    };

    // Wait until the sender is held: its count stops moving at the cap.
    let mut peak = 0;
    let mut last = u64::MAX;
    let mut steady = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while steady < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        peak = peak.max(resident_bytes()?);
        let now = pushed.load(Ordering::Relaxed);
        steady = if now == last { steady + 1 } else { 0 };
        last = now;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sender never stopped"
        );
    }
    let held = pushed.load(Ordering::Relaxed);
    let cap = DEFAULT_QUEUE_MAX_BYTES as u64;
    // Each record costs its data, its one-byte key and its bookkeeping.
    let cost = (RECORD_BYTES + 1 + RECORD_OVERHEAD_BYTES) as u64;
    let records_share = producer.config().record_budget() as u64;
    assert!(records_share < cap);
    assert_eq!(
        held,
        records_share / cost * RECORD_BYTES as u64,
        "the sender is held exactly when the records' share is used up"
    );
    assert!(held < PUSH_BYTES as u64);
    let stats = producer.stats();
    assert_eq!(stats.queued_bytes, held);
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth <= cap,
        "resident memory grew by {} MiB with a {} MiB cap",
        growth >> 20,
        cap >> 20
    );

    // Shut down: the held records are dead-lettered, none unaccounted.
    producer.shutdown(Duration::from_millis(300)).await;
    let receipts = sender.await?;
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
    assert_eq!(stats.total.records_in, stats.total.dead_lettered);
    assert_eq!(stats.queued_records, 0);
    eprintln!(
        "held {} MiB of a 1 GiB push (records' share {} MiB of {} MiB); resident memory grew by {} MiB",
        held >> 20,
        records_share >> 20,
        cap >> 20,
        growth >> 20
    );
    Ok(())
}
