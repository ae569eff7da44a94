//! The MQTT source against a real Mosquitto broker (the harness's).

// The helpers below are assertions: a read that times out or a message
// that is missing is the test failing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use shardline_core::{Input, Source};
use shardline_harness::{Mosquitto, unique_name};
use shardline_mqtt::{MqttConfig, MqttPosition, MqttSource};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn config(broker: &Mosquitto, client_id: &str, room: &str) -> MqttConfig {
    MqttConfig {
        url: format!("mqtt://127.0.0.1:{}", broker.port()),
        client_id: client_id.to_owned(),
        topics: vec![format!("sensors/{room}/+")],
        credentials: None,
        tls: None,
    }
}

/// Publishes `count` QoS 1 readings to `sensors/<room>/temperature`.
async fn publish(broker: &Mosquitto, room: &str, range: std::ops::Range<u32>) -> TestResult {
    let options = MqttOptions::new(unique_name("publisher"), "127.0.0.1", broker.port());
    let (client, mut events) = AsyncClient::new(options, 64);
    let driver = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    for n in range {
        client
            .publish(
                format!("sensors/{room}/temperature"),
                QoS::AtLeastOnce,
                false,
                format!("{{\"device_id\":\"d{n}\",\"temperature\":{n}}}"),
            )
            .await?;
    }
    // Let the event loop send everything, then disconnect cleanly.
    client.disconnect().await?;
    let _ = tokio::time::timeout(Duration::from_secs(10), driver).await;
    Ok(())
}

async fn read(source: &mut MqttSource, count: usize) -> Vec<Input<MqttPosition>> {
    let mut inputs = Vec::new();
    while inputs.len() < count {
        let batch = tokio::time::timeout(Duration::from_secs(20), source.read())
            .await
            .expect("messages within 20 s")
            .unwrap()
            .expect("the subscription does not end");
        inputs.extend(batch);
    }
    inputs
}

fn numbers(inputs: &[Input<MqttPosition>]) -> Vec<u64> {
    inputs
        .iter()
        .map(|i| {
            let v: serde_json::Value = serde_json::from_slice(&i.data).unwrap();
            v["temperature"].as_u64().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn messages_arrive_in_order_with_their_topic() -> TestResult {
    let broker = Mosquitto::shared()?;
    let room = unique_name("room");
    let mut source = MqttSource::start(config(broker, &unique_name("sub"), &room)).await?;
    publish(broker, &room, 0..50).await?;
    // The broker sends at most its in-flight window (Mosquitto: 20) of
    // unacknowledged messages: settle as they are read, as a pipeline does.
    let mut settle = source.settler();
    let mut inputs = Vec::new();
    while inputs.len() < 50 {
        let batch = read(&mut source, 1).await;
        for input in &batch {
            settle(vec![input.position.clone()]);
        }
        inputs.extend(batch);
    }
    assert_eq!(numbers(&inputs), (0..50).collect::<Vec<_>>());
    assert!(
        inputs
            .iter()
            .all(|i| i.position.topic() == format!("sensors/{room}/temperature"))
    );
    assert_eq!(source.stats().acknowledged.load(Ordering::Relaxed), 50);
    Ok(())
}

#[tokio::test]
async fn unacknowledged_messages_come_back_and_acknowledged_ones_do_not() -> TestResult {
    let broker = Mosquitto::shared()?;
    let room = unique_name("room");
    let client_id = unique_name("sub");
    let mut source = MqttSource::start(config(broker, &client_id, &room)).await?;
    publish(broker, &room, 0..10).await?;
    let inputs = read(&mut source, 10).await;
    // The first four settle; the process then "crashes".
    let mut settle = source.settler();
    for input in inputs.into_iter().take(4) {
        settle(vec![input.position]);
    }
    source.close().await?;

    // The same session: the six unacknowledged messages come again.
    let mut source = MqttSource::start(config(broker, &client_id, &room)).await?;
    let again = read(&mut source, 6).await;
    assert_eq!(numbers(&again), (4..10).collect::<Vec<_>>());
    assert!(source.stats().redelivered.load(Ordering::Relaxed) >= 1);
    let mut settle = source.settler();
    for input in again {
        settle(vec![input.position]);
    }
    source.close().await?;

    let mut source = MqttSource::start(config(broker, &client_id, &room)).await?;
    let nothing = tokio::time::timeout(Duration::from_millis(500), source.read()).await;
    assert!(nothing.is_err(), "read again after every acknowledgement");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_broker_is_an_error_at_start() {
    let config = MqttConfig {
        url: "mqtt://127.0.0.1:1".to_owned(),
        client_id: unique_name("sub"),
        topics: vec!["sensors/#".to_owned()],
        credentials: None,
        tls: None,
    };
    let error = MqttSource::start(config).await.unwrap_err();
    assert!(error.to_string().contains("connecting"), "{error}");
}
