//! Guards the wire protocol of the pinned SDK crates.
//!
//! kinesalite, moto and the fault proxy all speak AWS JSON 1.1
//! (`application/x-amz-json-1.1` with an `X-Amz-Target` header). Newer
//! Smithy models move services to rpc-v2-cbor (aws-sdk-cloudwatch did at
//! 1.100); if an upgrade of aws-sdk-kinesis or aws-sdk-firehose does the
//! same, this test fails loudly instead of every emulator test failing
//! obscurely.

use std::error::Error;

use shardline_harness::sdk_config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the client put on the wire.
#[derive(Debug)]
struct Captured {
    request_line: String,
    content_type: Option<String>,
    target: Option<String>,
    body: Vec<u8>,
}

/// Accepts one HTTP request, answers it with `answer` as JSON 1.1, and
/// returns what was sent.
async fn capture_one(listener: TcpListener, answer: &'static str) -> std::io::Result<Captured> {
    let (mut socket, _) = listener.accept().await?;
    let mut buffer = Vec::new();
    let header_end = loop {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "connection closed before the headers ended",
            ));
        }
        buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(buffer.get(..header_end).unwrap_or_default()).into_owned();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_owned();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let content_type = header("content-type");
    let target = header("x-amz-target");
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer.get(header_end..).unwrap_or_default().to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{answer}",
        answer.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.flush().await?;
    Ok(Captured {
        request_line,
        content_type,
        target,
        body,
    })
}

fn assert_json_1_1(captured: &Captured, target: &str) -> Result<(), Box<dyn Error>> {
    assert!(
        captured.request_line.starts_with("POST / "),
        "{}",
        captured.request_line
    );
    assert_eq!(
        captured.content_type.as_deref(),
        Some("application/x-amz-json-1.1"),
        "the SDK no longer speaks AWS JSON 1.1; kinesalite, moto and the fault proxy need it"
    );
    assert_eq!(captured.target.as_deref(), Some(target));
    let body: serde_json::Value = serde_json::from_slice(&captured.body)?;
    assert!(body.get("Records").is_some_and(|r| r.is_array()), "{body}");
    Ok(())
}

#[tokio::test]
async fn kinesis_put_records_is_json_1_1() -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(capture_one(
        listener,
        r#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"}]}"#,
    ));
    let client = aws_sdk_kinesis::Client::new(&sdk_config(&endpoint));
    let entry = aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
        .data(aws_sdk_kinesis::primitives::Blob::new("x"))
        .partition_key("k")
        .build()?;
    let answer = client
        .put_records()
        .stream_name("s")
        .records(entry)
        .send()
        .await?;
    assert_eq!(answer.failed_record_count(), Some(0));
    assert_json_1_1(&server.await??, "Kinesis_20131202.PutRecords")
}

#[tokio::test]
async fn firehose_put_record_batch_is_json_1_1() -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(capture_one(
        listener,
        r#"{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[{"RecordId":"r1"}]}"#,
    ));
    let client = aws_sdk_firehose::Client::new(&sdk_config(&endpoint));
    let record = aws_sdk_firehose::types::Record::builder()
        .data(aws_sdk_firehose::primitives::Blob::new("x"))
        .build()?;
    let answer = client
        .put_record_batch()
        .delivery_stream_name("d")
        .records(record)
        .send()
        .await?;
    assert_eq!(answer.failed_put_count(), 0);
    assert_json_1_1(&server.await??, "Firehose_20150804.PutRecordBatch")
}
