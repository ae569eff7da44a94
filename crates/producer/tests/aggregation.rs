//! AWS's own aggregation library (PyPI `aws-kinesis-agg`, installed by the
//! harness) and shardline agree both ways, byte for byte: AWS's
//! deaggregator reads every aggregate shardline writes, and shardline's
//! deaggregator (which `shardline read` uses) reads every aggregate AWS's
//! aggregator writes.

use std::error::Error;
use std::process::Command;

use base64::Engine;
use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use shardline_partition_key::{ExplicitHashKey, PartitionKey};
use shardline_producer::aggregation::{Aggregate, deaggregate};

/// Deaggregates each record's data with `aws_kinesis_agg` and returns, per
/// record, its user records as `[partition_key, explicit_hash_key, data]`.
const DEAGGREGATE: &str = r#"
import base64, datetime, json, sys
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
out = []
for line in sys.stdin:
    data = base64.b64decode(json.loads(line))
    record = {"SequenceNumber": "1", "PartitionKey": "ignored",
              "ApproximateArrivalTimestamp": datetime.datetime.now(), "Data": data}
    users = []
    for user in iter_deaggregate_records([record], data_format="Boto3"):
        k = user["kinesis"]
        if not k.get("aggregated"):
            sys.exit("not read as an aggregated record")
        users.append([k["partitionKey"], k["explicitHashKey"], base64.b64encode(base64.b64decode(k["data"])).decode()])
    out.append(users)
print(json.dumps(out))
"#;

fn python_deaggregate(aggregates: &[Bytes]) -> Result<Value, Box<dyn Error>> {
    let input: Vec<Value> = aggregates
        .iter()
        .map(|a| json!(base64::engine::general_purpose::STANDARD.encode(a)))
        .collect();
    run_python(DEAGGREGATE, &input)
}

/// Runs `script` with the harness's Python, one JSON value a line on its
/// standard input; returns the JSON it prints.
fn run_python(script: &str, input: &[Value]) -> Result<Value, Box<dyn Error>> {
    let python = shardline_harness::install::ensure_python()?;
    let input: String = input.iter().map(|line| format!("{line}\n")).collect();
    let dir = tempfile::tempdir()?;
    let input_path = dir.path().join("records.ndjson");
    std::fs::write(&input_path, input)?;
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .stdin(std::fs::File::open(&input_path)?)
        .output()?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// User records as `(partition key, explicit hash key, data)`.
type Case = Vec<(String, Option<u128>, Vec<u8>)>;

/// 64 lists of user records, each all with explicit hash keys or all
/// without (`Aggregate::accepts`).
fn cases() -> Result<Vec<Case>, Box<dyn Error>> {
    let strategy = (
        any::<bool>(),
        proptest::collection::vec(
            (
                "[a-z0-9é-]{1,40}",
                any::<u128>(),
                proptest::collection::vec(any::<u8>(), 0..500),
            ),
            1..80,
        ),
    )
        .prop_map(|(with_keys, records)| {
            records
                .into_iter()
                .map(|(pk, ehk, data)| (pk, with_keys.then_some(ehk), data))
                .collect::<Vec<_>>()
        });
    let mut runner = TestRunner::new(Config::default());
    let mut cases = Vec::new();
    for _ in 0..64 {
        let tree = strategy
            .new_tree(&mut runner)
            .map_err(|e| format!("generating a case: {e}"))?;
        cases.push(tree.current());
    }
    Ok(cases)
}

/// Aggregates each line's user records (`[partition_key, explicit_hash_key
/// or null, base64 data]`) with `aws_kinesis_agg`'s `RecordAggregator`
/// into one aggregated record, printed as base64.
const AGGREGATE: &str = r#"
import base64, json, sys
from aws_kinesis_agg.aggregator import RecordAggregator
out = []
for line in sys.stdin:
    aggregator = RecordAggregator()
    for pk, ehk, data in json.loads(line):
        if aggregator.add_user_record(pk, base64.b64decode(data), ehk) is not None:
            sys.exit("the case does not fit one aggregated record")
    _, _, contents = aggregator.clear_and_get().get_contents()
    out.append(base64.b64encode(contents).decode())
print(json.dumps(out))
"#;

#[test]
fn shardline_reads_every_aggregate_aws_kinesis_agg_writes() -> Result<(), Box<dyn Error>> {
    let cases = cases()?;
    let input: Vec<Value> = cases
        .iter()
        .map(|records| {
            json!(
                records
                    .iter()
                    .map(|(pk, ehk, data)| json!([
                        pk,
                        ehk.map(|k| k.to_string()),
                        base64::engine::general_purpose::STANDARD.encode(data)
                    ]))
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    let written = run_python(AGGREGATE, &input)?;
    let written = written.as_array().ok_or("not a list")?;
    assert_eq!(written.len(), cases.len());
    for (records, aggregate) in cases.iter().zip(written) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(aggregate.as_str().ok_or("not a string")?)?;
        let users = deaggregate(&bytes)?.ok_or("not read as an aggregated record")?;
        assert_eq!(users.len(), records.len());
        for ((pk, ehk, data), user) in records.iter().zip(users) {
            assert_eq!(&user.partition_key, pk);
            assert_eq!(user.explicit_hash_key, ehk.map(|k| k.to_string()));
            assert_eq!(&user.data, data);
        }
        // One flipped bit of the checksum, and both read the bytes as a
        // plain record.
        let mut damaged = bytes.clone();
        if let Some(last) = damaged.last_mut() {
            *last ^= 1;
        }
        assert_eq!(deaggregate(&damaged)?, None);
    }
    Ok(())
}

#[test]
fn aws_kinesis_agg_reads_every_aggregate_byte_for_byte() -> Result<(), Box<dyn Error>> {
    // Generate many aggregates first, then hand them to Python in one run.
    let cases = cases()?;
    let mut aggregates = Vec::new();
    for records in &cases {
        let mut aggregate = Aggregate::new();
        for (pk, ehk, data) in records {
            assert!(aggregate.accepts(ehk.map(ExplicitHashKey)));
            aggregate.push(
                &PartitionKey::new(pk)?,
                ehk.map(ExplicitHashKey),
                Bytes::from(data.clone()),
            );
        }
        aggregates.push(aggregate.encode());
    }
    let read = python_deaggregate(&aggregates)?;
    let read = read.as_array().ok_or("not a list")?;
    assert_eq!(read.len(), cases.len());
    for (records, users) in cases.iter().zip(read) {
        let users = users.as_array().ok_or("not a list")?;
        assert_eq!(users.len(), records.len());
        for ((pk, ehk, data), user) in records.iter().zip(users) {
            assert_eq!(user[0], json!(pk));
            assert_eq!(user[1], json!(ehk.map(|k| k.to_string())));
            assert_eq!(
                user[2],
                json!(base64::engine::general_purpose::STANDARD.encode(data))
            );
        }
    }
    Ok(())
}
