//! The shard-limit proxy's limits, seen through the official SDK, with what
//! kinesalite holds afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::time::Duration;

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use shardline_harness::shard_limit::{DESCRIBE_STREAM_SUMMARY_PER_SECOND, ShardLimits};
use shardline_harness::{Kinesalite, ShardLimitProxy, sdk_config, streams, unique_name};

type TestResult = Result<(), Box<dyn Error>>;

const THROTTLED: &str = "ProvisionedThroughputExceededException";

/// A client of the proxy with the SDK's own retries off: they would hide
/// the refusals.
fn client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::config::Builder::from(&sdk_config(endpoint))
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

async fn setup(
    name: &str,
    shards: i32,
    limits: ShardLimits,
) -> Result<(String, ShardLimitProxy, aws_sdk_kinesis::Client), Box<dyn Error>> {
    let kinesalite = Kinesalite::shared()?;
    let stream = unique_name(name);
    streams::create_stream(&kinesalite.kinesis_client(), &stream, shards).await?;
    let proxy = ShardLimitProxy::start(&kinesalite.endpoint(), limits).await?;
    let client = client(&proxy.endpoint());
    Ok((stream, proxy, client))
}

async fn put(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    records: &[(String, usize)],
) -> Result<PutRecordsOutput, Box<dyn Error>> {
    let entries = records
        .iter()
        .map(|(key, size)| {
            let mut data = key.clone().into_bytes();
            data.resize(*size, b'.');
            PutRecordsRequestEntry::builder()
                .data(Blob::new(data))
                .partition_key(key)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(client
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await?)
}

/// Each answer's shard, or the error code, per key.
fn answers(records: &[(String, usize)], output: &PutRecordsOutput) -> BTreeMap<String, String> {
    records
        .iter()
        .zip(output.records())
        .map(|((key, _), answer)| {
            let what = answer
                .error_code()
                .or(answer.shard_id())
                .unwrap_or_default()
                .to_owned();
            (key.clone(), what)
        })
        .collect()
}

async fn stored(stream: &str) -> Result<BTreeSet<String>, Box<dyn Error>> {
    let client = Kinesalite::shared()?.kinesis_client();
    Ok(streams::read_all(&client, stream)
        .await?
        .into_iter()
        .map(|r| r.partition_key)
        .collect())
}

#[tokio::test]
async fn each_shard_takes_its_records_per_second_and_refuses_the_rest() -> TestResult {
    let mut limits = ShardLimits::scaled(0.05); // 50 records/s a shard
    limits.bytes_per_second = 1 << 20;
    let (stream, proxy, client) = setup("limit_records", 2, limits).await?;
    let records: Vec<(String, usize)> = (0..200).map(|i| (format!("key-{i}"), 20)).collect();
    let output = put(&client, &stream, &records).await?;
    let answers = answers(&records, &output);
    let mut by_shard: BTreeMap<&str, usize> = BTreeMap::new();
    for what in answers.values() {
        *by_shard.entry(what.as_str()).or_default() += 1;
    }
    assert_eq!(
        by_shard.len(),
        3,
        "two shards and the refusals: {by_shard:?}"
    );
    assert_eq!(by_shard[THROTTLED], 100, "{by_shard:?}");
    assert!(
        by_shard.values().all(|&n| n == 50 || n == 100),
        "{by_shard:?}"
    );
    assert_eq!(output.failed_record_count(), Some(100));
    // kinesalite holds exactly the entries that were accepted.
    let accepted: BTreeSet<String> = answers
        .iter()
        .filter(|(_, what)| what.as_str() != THROTTLED)
        .map(|(key, _)| key.clone())
        .collect();
    assert_eq!(stored(&stream).await?, accepted);
    let totals = proxy.totals_from(0);
    assert_eq!(
        (totals.accepted_records, totals.throttled_records),
        (100, 100)
    );
    assert!(
        proxy
            .shards()
            .values()
            .all(|s| s.peak_records_per_second == 50)
    );

    // Within the second the shards stay full; a second later they take
    // records again.
    let again: Vec<(String, usize)> = (0..20).map(|i| (format!("again-{i}"), 20)).collect();
    let output = put(&client, &stream, &again).await?;
    assert_eq!(output.failed_record_count(), Some(20));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let output = put(&client, &stream, &again).await?;
    assert_eq!(output.failed_record_count(), Some(0));
    Ok(())
}

#[tokio::test]
async fn each_shard_takes_its_bytes_per_second_keys_included() -> TestResult {
    let mut limits = ShardLimits::kinesis();
    limits.bytes_per_second = 30_000;
    let (stream, proxy, client) = setup("limit_bytes", 1, limits).await?;
    // 10,000 bytes of data and a 5-byte key: two fit in 30,000, the third
    // would need 30,015.
    let records: Vec<(String, usize)> = (0..5).map(|i| (format!("big-{i}"), 10_000)).collect();
    let output = put(&client, &stream, &records).await?;
    assert_eq!(output.failed_record_count(), Some(3));
    let codes: Vec<Option<&str>> = output.records().iter().map(|r| r.error_code()).collect();
    assert_eq!(
        codes,
        [
            None,
            None,
            Some(THROTTLED),
            Some(THROTTLED),
            Some(THROTTLED)
        ]
    );
    assert_eq!(proxy.totals_from(0).accepted_bytes, 2 * 10_005);
    assert_eq!(stored(&stream).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn control_calls_past_their_rate_get_limit_exceeded() -> TestResult {
    let (stream, proxy, client) = setup("limit_calls", 1, ShardLimits::kinesis()).await?;
    let mut refused = 0;
    let mut answered = 0;
    for _ in 0..DESCRIBE_STREAM_SUMMARY_PER_SECOND + 5 {
        match client
            .describe_stream_summary()
            .stream_name(&stream)
            .send()
            .await
        {
            Ok(_) => answered += 1,
            Err(e) => {
                let code = e.into_service_error();
                assert!(code.is_limit_exceeded_exception(), "{code:?}");
                refused += 1;
            }
        }
    }
    // The calls took less than a second on loopback: 20 answered.
    assert_eq!(answered, DESCRIBE_STREAM_SUMMARY_PER_SECOND);
    assert_eq!(refused, 5);
    assert_eq!(proxy.totals_from(0).limited_requests, 5);
    Ok(())
}

#[tokio::test]
async fn after_a_reshard_entries_land_in_the_open_shards() -> TestResult {
    let (stream, proxy, client) = setup("limit_reshard", 2, ShardLimits::kinesis()).await?;
    let records: Vec<(String, usize)> = (0..64).map(|i| (format!("k{i}"), 10)).collect();
    let before: BTreeSet<String> = answers(&records, &put(&client, &stream, &records).await?)
        .into_values()
        .collect();
    assert_eq!(before.len(), 2, "{before:?}");
    client
        .update_shard_count()
        .stream_name(&stream)
        .target_shard_count(4)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await?;
    // The proxy splits one shard at a time: wait for all four.
    let kinesis = Kinesalite::shared()?.kinesis_client();
    for _ in 0..500 {
        let shards = kinesis.list_shards().stream_name(&stream).send().await?;
        let open = shards
            .shards()
            .iter()
            .filter(|s| {
                s.sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_none()
            })
            .count();
        if open == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    streams::wait_until_active(&kinesis, &stream).await?;
    let after: BTreeSet<String> = answers(&records, &put(&client, &stream, &records).await?)
        .into_values()
        .collect();
    // Four new shards, none of the old ones: as the service answers.
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(after.is_disjoint(&before), "{before:?} {after:?}");
    assert_eq!(proxy.shards().len(), 6);
    Ok(())
}
