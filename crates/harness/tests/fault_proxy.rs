//! Each fault mode of the proxy, seen through the official SDK, with what
//! the emulator holds afterwards.

use std::collections::BTreeSet;
use std::error::Error;
use std::time::Duration;

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::put_records::{PutRecordsError, PutRecordsOutput};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use shardline_harness::{
    EntryFault, FaultCode, FaultProxy, Kinesalite, Moto, ProxyAction, RequestFault, Selection,
    sdk_config, streams, unique_name,
};

type TestResult = Result<(), Box<dyn Error>>;
type PutRecordsSdkError = SdkError<PutRecordsError>;

/// A Kinesis client of the proxy with the SDK's own retries off (they would
/// hide the faults) and a short attempt timeout (for the stall).
fn kinesis_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::config::Builder::from(&sdk_config(endpoint))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(500))
                .build(),
        )
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// A stream on the shared kinesalite, a proxy in front of it, and a client
/// of the proxy.
async fn setup(
    name: &str,
) -> Result<(String, FaultProxy, aws_sdk_kinesis::Client), Box<dyn Error>> {
    let kinesalite = Kinesalite::shared()?;
    let stream = unique_name(name);
    streams::create_stream(&kinesalite.kinesis_client(), &stream, 2).await?;
    let proxy = FaultProxy::start(&kinesalite.endpoint()).await?;
    let client = kinesis_client(&proxy.endpoint());
    Ok((stream, proxy, client))
}

async fn put_records(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    data: &[String],
) -> Result<Result<PutRecordsOutput, PutRecordsSdkError>, Box<dyn Error>> {
    let entries = data
        .iter()
        .map(|d| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(d.as_bytes()))
                .partition_key(d)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(client
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await)
}

async fn stream_contents(stream: &str) -> Result<BTreeSet<String>, Box<dyn Error>> {
    let client = Kinesalite::shared()?.kinesis_client();
    Ok(streams::read_all(&client, stream)
        .await?
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect())
}

fn records(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test]
async fn a_share_of_entries_fails_and_only_the_rest_reach_the_emulator() -> TestResult {
    let (stream, proxy, client) = setup("share").await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Share(0.3),
        code: FaultCode::Throttled,
    }));
    let data = records("share", 200);
    let answer = put_records(&client, &stream, &data).await??;

    let mut acknowledged = BTreeSet::new();
    let mut failed = 0;
    for (entry, datum) in answer.records().iter().zip(&data) {
        match entry.error_code() {
            Some(code) => {
                assert_eq!(code, "ProvisionedThroughputExceededException");
                failed += 1;
            }
            None => {
                assert!(entry.sequence_number().is_some() && entry.shard_id().is_some());
                acknowledged.insert(datum.clone());
            }
        }
    }
    assert_eq!(answer.records().len(), data.len());
    assert_eq!(answer.failed_record_count(), Some(failed));
    assert!(
        (30..=90).contains(&failed),
        "{failed} of 200 failed at a 30% share"
    );
    // The emulator holds exactly what was acknowledged.
    assert_eq!(stream_contents(&stream).await?, acknowledged);

    let events = proxy.events();
    let put = events
        .iter()
        .find(|e| e.target == "Kinesis_20131202.PutRecords")
        .expect("the proxy saw the PutRecords call");
    let ProxyAction::EntriesFailed { failed: indices } = &put.action else {
        panic!("unexpected action {:?}", put.action);
    };
    assert_eq!(indices.len() as i32, failed);
    assert_eq!(put.forwarded_entries, acknowledged.len());
    assert_eq!(put.accepted_entries, acknowledged.len());
    Ok(())
}

#[tokio::test]
async fn chosen_entries_fail_with_internal_failure() -> TestResult {
    let (stream, proxy, client) = setup("indices").await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Indices([0, 3].into()),
        code: FaultCode::InternalFailure,
    }));
    let data = records("indices", 5);
    let answer = put_records(&client, &stream, &data).await??;
    let codes: Vec<Option<&str>> = answer.records().iter().map(|r| r.error_code()).collect();
    assert_eq!(
        codes,
        [
            Some("InternalFailure"),
            None,
            None,
            Some("InternalFailure"),
            None
        ]
    );
    assert_eq!(answer.failed_record_count(), Some(2));
    let want: BTreeSet<String> = [1, 2, 4].iter().map(|&i| data[i].clone()).collect();
    assert_eq!(stream_contents(&stream).await?, want);

    // Every entry failing: nothing is forwarded, the answer is still valid.
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Share(1.0),
        code: FaultCode::Throttled,
    }));
    let answer = put_records(&client, &stream, &records("all-fail", 3)).await??;
    assert_eq!(answer.failed_record_count(), Some(3));
    assert_eq!(stream_contents(&stream).await?, want);

    // Cleared: everything passes.
    proxy.set_entry_fault(None);
    let answer = put_records(&client, &stream, &records("clear", 3)).await??;
    assert_eq!(answer.failed_record_count(), Some(0));
    Ok(())
}

#[tokio::test]
async fn firehose_entries_with_a_marker_fail_and_never_reach_s3() -> TestResult {
    let moto = Moto::shared()?;
    let name = unique_name("firehose_marker");
    let bucket = streams::bucket_name(&name);
    streams::create_s3_delivery_stream(&moto.firehose_client(), &moto.s3_client(), &name, &bucket)
        .await?;
    let proxy = FaultProxy::start(&moto.endpoint()).await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::DataContains(b"poison".to_vec()),
        code: FaultCode::ServiceUnavailable,
    }));
    let firehose = aws_sdk_firehose::Client::from_conf(
        aws_sdk_firehose::config::Builder::from(&sdk_config(&proxy.endpoint()))
            .retry_config(aws_sdk_firehose::config::retry::RetryConfig::disabled())
            .build(),
    );
    let lines = ["ok 1\n", "poison 2\n", "ok 3\n", "poison 4\n"];
    let batch = lines
        .iter()
        .map(|l| {
            aws_sdk_firehose::types::Record::builder()
                .data(aws_sdk_firehose::primitives::Blob::new(*l))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let answer = firehose
        .put_record_batch()
        .delivery_stream_name(&name)
        .set_records(Some(batch))
        .send()
        .await?;
    assert_eq!(answer.failed_put_count(), 2);
    let codes: Vec<Option<&str>> = answer
        .request_responses()
        .iter()
        .map(|r| r.error_code())
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some("ServiceUnavailableException"),
            None,
            Some("ServiceUnavailableException")
        ]
    );
    let delivered: String = streams::read_bucket(&moto.s3_client(), &bucket)
        .await?
        .values()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(delivered, "ok 1\nok 3\n");
    Ok(())
}

#[tokio::test]
async fn a_throttled_request_stores_nothing() -> TestResult {
    let (stream, proxy, client) = setup("throttle").await?;
    proxy.queue_request_faults([RequestFault::Throttle]);
    let err = put_records(&client, &stream, &records("throttled", 4))
        .await?
        .expect_err("the request is throttled");
    let service_error = err.as_service_error().expect("a modelled error");
    assert!(
        service_error.is_provisioned_throughput_exceeded_exception(),
        "{service_error:?}"
    );
    assert!(stream_contents(&stream).await?.is_empty());
    // The queue held one fault: the next request passes.
    put_records(&client, &stream, &records("after", 2)).await??;
    assert_eq!(stream_contents(&stream).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn status_500_and_503_store_nothing() -> TestResult {
    let (stream, proxy, client) = setup("status").await?;
    proxy.queue_request_faults([RequestFault::InternalError, RequestFault::Unavailable]);
    for want in [500, 503] {
        let err = put_records(&client, &stream, &records("status", 3))
            .await?
            .expect_err("the proxy answers an error status");
        let status = err.raw_response().map(|r| r.status().as_u16());
        assert_eq!(status, Some(want));
    }
    assert!(stream_contents(&stream).await?.is_empty());
    let actions: Vec<ProxyAction> = proxy
        .events()
        .into_iter()
        .filter(|e| e.target.ends_with("PutRecords"))
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            ProxyAction::Request(RequestFault::InternalError),
            ProxyAction::Request(RequestFault::Unavailable)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_reset_before_forwarding_stores_nothing() -> TestResult {
    let (stream, proxy, client) = setup("reset_before").await?;
    proxy.queue_request_faults([RequestFault::Reset { forward: false }]);
    let err = put_records(&client, &stream, &records("reset", 3))
        .await?
        .expect_err("the connection is reset");
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    assert!(stream_contents(&stream).await?.is_empty());
    // The client recovers on a new connection.
    put_records(&client, &stream, &records("after", 1)).await??;
    Ok(())
}

#[tokio::test]
async fn a_reset_after_forwarding_leaves_the_outcome_unknown_to_the_client() -> TestResult {
    let (stream, proxy, client) = setup("reset_after").await?;
    proxy.queue_request_faults([RequestFault::Reset { forward: true }]);
    let data = records("reset-after", 3);
    let err = put_records(&client, &stream, &data)
        .await?
        .expect_err("the connection is reset");
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    // The client saw an error, but the emulator stored the records.
    assert_eq!(
        stream_contents(&stream).await?,
        data.iter().cloned().collect()
    );
    let event = proxy
        .events()
        .into_iter()
        .find(|e| e.target.ends_with("PutRecords"))
        .expect("the proxy saw the call");
    assert_eq!((event.forwarded_entries, event.accepted_entries), (3, 3));
    Ok(())
}

#[tokio::test]
async fn a_stall_past_the_client_timeout_after_forwarding() -> TestResult {
    let (stream, proxy, client) = setup("stall").await?;
    proxy.queue_request_faults([RequestFault::Stall {
        delay: Duration::from_secs(3),
        forward: true,
    }]);
    let data = records("stall", 2);
    let err = put_records(&client, &stream, &data)
        .await?
        .expect_err("the client times out");
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    assert_eq!(
        stream_contents(&stream).await?,
        data.iter().cloned().collect()
    );
    Ok(())
}

#[tokio::test]
async fn random_request_faults_are_recorded_for_reconciliation() -> TestResult {
    let (stream, proxy, client) = setup("random").await?;
    proxy.set_random_request_fault(Some((RequestFault::Throttle, 0.5)));
    let mut succeeded = 0;
    let mut failed = 0;
    for i in 0..30 {
        let result = client
            .put_record()
            .stream_name(&stream)
            .partition_key(format!("k{i}"))
            .data(Blob::new(format!("random-{i}")))
            .send()
            .await;
        match result {
            Ok(_) => succeeded += 1,
            Err(e) => {
                assert!(
                    e.as_service_error()
                        .is_some_and(|s| s.is_provisioned_throughput_exceeded_exception()),
                    "{e:?}"
                );
                failed += 1;
            }
        }
    }
    let throttled = proxy
        .events()
        .iter()
        .filter(|e| e.action == ProxyAction::Request(RequestFault::Throttle))
        .count();
    assert_eq!(throttled, failed);
    assert!(
        failed > 0 && succeeded > 0,
        "{failed} failed, {succeeded} succeeded"
    );
    assert_eq!(stream_contents(&stream).await?.len(), succeeded);
    Ok(())
}
