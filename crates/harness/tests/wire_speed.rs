//! The wire-speed endpoint answers the official SDK the way Kinesis does,
//! refuses what Kinesis refuses, and counts exactly what it accepted.

use std::collections::BTreeSet;
use std::error::Error;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use md5::{Digest, Md5};
use shardline_harness::{WireCounts, WireSpeedKinesis, sdk_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn entry(key: &str, data: &str) -> Result<PutRecordsRequestEntry> {
    Ok(PutRecordsRequestEntry::builder()
        .partition_key(key)
        .data(Blob::new(data))
        .build()?)
}

#[tokio::test]
async fn every_entry_gets_a_sequence_number_and_the_shard_of_its_key() -> Result<()> {
    let endpoint = WireSpeedKinesis::start(4).await?;
    let client = aws_sdk_kinesis::Client::new(&sdk_config(&endpoint.endpoint()));

    let summary = client
        .describe_stream_summary()
        .stream_name("bench")
        .send()
        .await?;
    let summary = summary.stream_description_summary().ok_or("no summary")?;
    assert_eq!(summary.stream_name(), "bench");
    assert_eq!(summary.open_shard_count(), 4);

    let shards = client.list_shards().stream_name("bench").send().await?;
    let ranges: Vec<(String, u128, u128)> = shards
        .shards()
        .iter()
        .map(|s| {
            let range = s.hash_key_range().ok_or("no range")?;
            Ok::<_, Box<dyn Error>>((
                s.shard_id().to_owned(),
                range.starting_hash_key().parse()?,
                range.ending_hash_key().parse()?,
            ))
        })
        .collect::<std::result::Result<_, _>>()?;
    assert_eq!(ranges.len(), 4);
    assert_eq!(ranges.first().map(|r| r.1), Some(0));
    assert_eq!(ranges.last().map(|r| r.2), Some(u128::MAX));
    for pair in ranges.windows(2) {
        assert_eq!(pair[0].2 + 1, pair[1].1, "ranges must be contiguous");
    }

    let keys: Vec<String> = (0..500).map(|i| format!("key-{i}")).collect();
    let entries = keys
        .iter()
        .map(|k| entry(k, "0123456789"))
        .collect::<Result<Vec<_>>>()?;
    let answer = client
        .put_records()
        .stream_name("bench")
        .set_records(Some(entries))
        .send()
        .await?;
    assert_eq!(answer.failed_record_count(), Some(0));
    assert_eq!(answer.records().len(), 500);
    let mut sequence_numbers = BTreeSet::new();
    for (key, result) in keys.iter().zip(answer.records()) {
        let sequence = result.sequence_number().ok_or("no sequence number")?;
        assert_eq!(sequence.len(), 56, "{sequence}");
        sequence_numbers.insert(sequence.to_owned());
        let hash = u128::from_be_bytes(Md5::digest(key.as_bytes()).into());
        let expected = ranges
            .iter()
            .find(|(_, start, end)| (*start..=*end).contains(&hash))
            .map(|r| r.0.as_str());
        assert_eq!(result.shard_id(), expected, "{key}");
    }
    assert_eq!(sequence_numbers.len(), 500, "sequence numbers are unique");

    let single = client
        .put_record()
        .stream_name("bench")
        .partition_key("one")
        .explicit_hash_key("0")
        .data(Blob::new("abc"))
        .send()
        .await?;
    assert_eq!(single.shard_id(), "shardId-000000000000");
    assert!(!sequence_numbers.contains(single.sequence_number()));

    assert_eq!(
        endpoint.counts(),
        WireCounts {
            requests: 4,
            puts: 2,
            records: 501,
            data_bytes: 500 * 10 + 3,
            refused: 0,
        }
    );
    Ok(())
}

#[tokio::test]
async fn puts_over_the_service_limits_are_refused_and_not_counted() -> Result<()> {
    let endpoint = WireSpeedKinesis::start(1).await?;
    let client = aws_sdk_kinesis::Client::new(&sdk_config(&endpoint.endpoint()));

    let too_many = (0..501)
        .map(|i| entry(&format!("k{i}"), "x"))
        .collect::<Result<Vec<_>>>()?;
    let error = client
        .put_records()
        .stream_name("bench")
        .set_records(Some(too_many))
        .send()
        .await
        .expect_err("501 entries are over the limit");
    let service = error.into_service_error();
    assert!(service.is_invalid_argument_exception(), "{service:?}");

    let big = "x".repeat(1024 * 1024);
    let error = client
        .put_record()
        .stream_name("bench")
        .partition_key("k")
        .data(Blob::new(big))
        .send()
        .await
        .expect_err("1 MiB of data plus a key is over the limit");
    assert!(error.into_service_error().is_invalid_argument_exception());

    let counts = endpoint.counts();
    assert_eq!((counts.records, counts.puts, counts.refused), (0, 0, 2));
    Ok(())
}

#[tokio::test]
async fn an_unsigned_request_is_refused() -> Result<()> {
    let endpoint = WireSpeedKinesis::start(1).await?;
    let address = endpoint.endpoint();
    let host = address.trim_start_matches("http://");
    let body = r#"{"StreamName":"bench","PartitionKey":"k","Data":"eA=="}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.PutRecord\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(host).await?;
    socket.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(
        response.contains("MissingAuthenticationTokenException"),
        "{response}"
    );
    assert_eq!(endpoint.counts().records, 0);
    assert_eq!(endpoint.counts().refused, 1);
    Ok(())
}
