//! One round trip with every service the harness starts, through the
//! official AWS SDK for Rust or a real client of that service.

use std::error::Error;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use shardline_harness::{Kinesalite, Mosquitto, Moto, Postgres, sdk_config, streams, unique_name};

type TestResult = Result<(), Box<dyn Error>>;

#[tokio::test]
async fn kinesalite_round_trip_through_the_sdk() -> TestResult {
    let kinesalite = Kinesalite::shared()?;
    let client = kinesalite.kinesis_client();
    let stream = unique_name("kinesalite_round_trip");
    streams::create_stream(&client, &stream, 3).await?;

    let sent: Vec<String> = (0..40).map(|i| format!("record-{i}")).collect();
    let entries = sent
        .iter()
        .map(|data| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(data.as_bytes()))
                .partition_key(data)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let answer = client
        .put_records()
        .stream_name(&stream)
        .set_records(Some(entries))
        .send()
        .await?;
    assert_eq!(answer.failed_record_count(), Some(0));

    let read =
        streams::read_at_least(&client, &stream, sent.len(), Duration::from_secs(10)).await?;
    let mut got: Vec<String> = read
        .iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect();
    got.sort();
    let mut want = sent.clone();
    want.sort();
    assert_eq!(got, want);
    // 40 distinct keys over 3 shards: more than one shard is used.
    let shards: std::collections::BTreeSet<&str> =
        read.iter().map(|r| r.shard_id.as_str()).collect();
    assert!(shards.len() > 1, "all records landed on {shards:?}");
    Ok(())
}

#[tokio::test]
async fn kinesalite_restart_keeps_records_on_disk() -> TestResult {
    let kinesalite = Kinesalite::start_persistent()?;
    let client = kinesalite.kinesis_client();
    let stream = unique_name("kinesalite_restart");
    streams::create_stream(&client, &stream, 1).await?;
    client
        .put_record()
        .stream_name(&stream)
        .partition_key("k")
        .data(Blob::new("before the crash"))
        .send()
        .await?;

    kinesalite.restart()?;

    let read = streams::read_all(&kinesalite.kinesis_client(), &stream).await?;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].data, b"before the crash");
    Ok(())
}

#[tokio::test]
async fn moto_firehose_delivers_to_s3() -> TestResult {
    let moto = Moto::shared()?;
    let firehose = moto.firehose_client();
    let s3 = moto.s3_client();
    let name = unique_name("firehose_round_trip");
    let bucket = streams::bucket_name(&name);
    streams::create_s3_delivery_stream(&firehose, &s3, &name, &bucket).await?;

    let records = (0..5)
        .map(|i| {
            aws_sdk_firehose::types::Record::builder()
                .data(aws_sdk_firehose::primitives::Blob::new(format!(
                    "line {i}\n"
                )))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let answer = firehose
        .put_record_batch()
        .delivery_stream_name(&name)
        .set_records(Some(records))
        .send()
        .await?;
    assert_eq!(answer.failed_put_count(), 0);

    let objects = streams::read_bucket(&s3, &bucket).await?;
    let delivered: String = objects
        .values()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .collect();
    let lines: Vec<&str> = delivered.lines().collect();
    assert_eq!(lines, ["line 0", "line 1", "line 2", "line 3", "line 4"]);
    Ok(())
}

#[tokio::test]
async fn moto_cloudwatch_stores_metric_data() -> TestResult {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

    let moto = Moto::shared()?;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk_config(&moto.endpoint()));
    let namespace = unique_name("cw_round_trip");
    let datum = MetricDatum::builder()
        .metric_name("RecordsProcessed")
        .dimensions(
            Dimension::builder()
                .name("DataSource")
                .value("web_logs")
                .build(),
        )
        .value(42.0)
        .unit(StandardUnit::Count)
        .build();
    cloudwatch
        .put_metric_data()
        .namespace(&namespace)
        .metric_data(datum)
        .send()
        .await?;

    let listed = cloudwatch
        .list_metrics()
        .namespace(&namespace)
        .send()
        .await?;
    let metrics = listed.metrics();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].metric_name(), Some("RecordsProcessed"));
    let dimension = &metrics[0].dimensions()[0];
    assert_eq!(
        (dimension.name(), dimension.value()),
        (Some("DataSource"), Some("web_logs"))
    );
    Ok(())
}

#[tokio::test]
async fn postgres_logical_decoding_with_wal2json() -> TestResult {
    let postgres = Postgres::shared()?;
    let database = unique_name("pg_round_trip");
    postgres.create_database(&database)?;
    let (client, connection) =
        tokio_postgres::connect(&postgres.url(&database), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);

    client
        .batch_execute("CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL)")
        .await?;
    let slot = unique_name("slot");
    client
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'wal2json')",
            &[&slot],
        )
        .await?;
    client
        .batch_execute("INSERT INTO users VALUES (1, 'a@example.com')")
        .await?;

    let rows = client
        .query(
            "SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL, 'format-version', '2')",
            &[&slot],
        )
        .await?;
    let changes: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| serde_json::from_str(row.get::<_, &str>(0)))
        .collect::<Result<_, _>>()?;
    let actions: Vec<&str> = changes
        .iter()
        .filter_map(|c| c.get("action")?.as_str())
        .collect();
    assert_eq!(actions, ["B", "I", "C"]);
    let insert = &changes[1];
    assert_eq!(insert["table"], "users");
    assert_eq!(insert["columns"][1]["value"], "a@example.com");
    Ok(())
}

#[tokio::test]
async fn mosquitto_delivers_a_qos1_message() -> TestResult {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

    let broker = Mosquitto::shared()?;
    let topic = format!("sensors/{}/temperature", unique_name("room"));
    let mut options = MqttOptions::new(unique_name("client"), "127.0.0.1", broker.port());
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 16);
    client.subscribe(&topic, QoS::AtLeastOnce).await?;

    let received = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.poll().await? {
                Event::Incoming(Packet::SubAck(_)) => {
                    client
                        .publish(&topic, QoS::AtLeastOnce, false, r#"{"temperature":21.5}"#)
                        .await?;
                }
                Event::Incoming(Packet::Publish(publish)) => {
                    return Ok::<_, Box<dyn Error>>(publish);
                }
                _ => {}
            }
        }
    })
    .await??;
    assert_eq!(received.topic, topic);
    assert_eq!(&received.payload[..], br#"{"temperature":21.5}"#);
    assert_eq!(received.qos, QoS::AtLeastOnce);
    Ok(())
}
