//! sensor-forwarder end to end: the real binary between the harness's
//! Mosquitto and kinesalite.

// The helpers below are assertions: a read that times out, a record that
// is not JSON, a missing field is the test failing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{Value, json};
use shardline_harness::binary::StreamRun;
use shardline_harness::fault_proxy::{EntryFault, FaultCode, FaultProxy, Selection};
use shardline_harness::{Kinesalite, Mosquitto, binary, streams, unique_name};
use shardline_partition_key::{IotKey, PartitionKeyStrategy};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Publishes each `(topic, payload)` with QoS 1 and returns once the broker
/// has acknowledged every one (PUBACK): from then on they are the
/// broker's to keep.
async fn publish(port: u16, messages: &[(String, String)]) -> TestResult {
    publish_as(port, None, messages).await
}

/// [`publish`], logged in as `login` (user, password).
async fn publish_as(
    port: u16,
    login: Option<(&str, &str)>,
    messages: &[(String, String)],
) -> TestResult {
    let mut options = MqttOptions::new(unique_name("publisher"), "127.0.0.1", port);
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(options, messages.len().max(1) + 8);
    let expected = messages.len();
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < expected {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        client_done(events).await;
        Ok(())
    });
    for (topic, payload) in messages {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload.clone())
            .await?;
    }
    tokio::time::timeout(Duration::from_secs(30), acks)
        .await
        .map_err(|_| "the broker did not acknowledge every message in 30 s")???;
    client.disconnect().await.ok();
    Ok(())
}

/// Lets the event loop send a queued DISCONNECT, briefly.
async fn client_done(mut events: rumqttc::EventLoop) {
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

struct Setup {
    run: StreamRun,
    /// This test's own first topic level: tests share the broker.
    prefix: String,
}

impl Setup {
    async fn new(shards: i32) -> Result<Setup, Box<dyn std::error::Error>> {
        Ok(Setup {
            run: StreamRun::new("iot", shards).await?,
            prefix: unique_name("plant"),
        })
    }

    fn dead_letters(&self) -> PathBuf {
        self.run.dead_letter_file()
    }

    fn command(&self, url: &str, args: &[&str]) -> Command {
        let config = self
            .run
            .write_config(
                "[producer]\nbatch_timeout = 0.02\nmax_retries = -1\nretry_initial_delay = 0.01\n\
                 retry_max_delay = 0.2\n",
            )
            .unwrap();
        let mut command = self.run.command(env!("CARGO_BIN_EXE_sensor-forwarder"));
        command
            .arg("--config")
            .arg(config)
            .arg("--mqtt-url")
            .arg(url)
            .arg("--client-id")
            .arg(format!("{}-forwarder", self.prefix))
            .arg("--topic")
            .arg(format!("{}/+/+", self.prefix))
            .arg("--topic-template")
            .arg(format!("{}/<location>/<metric>", self.prefix))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    async fn read(&self, expected: usize) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let timeout = Duration::from_secs(60);
        let run = &self.run;
        Ok(streams::read_json_at_least(&run.client, &run.stream, expected, timeout).await?)
    }

    fn topic(&self, location: &str) -> String {
        format!("{}/{location}/temperature", self.prefix)
    }
}

/// The binary's summary after SIGTERM.
fn stop(mut child: std::process::Child) -> Result<Value, Box<dyn std::error::Error>> {
    binary::terminate(&child)?;
    binary::wait_with_timeout(&mut child, Duration::from_secs(30))?;
    let output = child.wait_with_output()?;
    Ok(binary::summary("sensor-forwarder", &output)?)
}

fn reading(device: &str, n: u64, temperature: f64) -> String {
    json!({"device_id": device, "n": n, "temperature": temperature, "humidity": 40}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn readings_arrive_with_topic_fields_and_device_keys_and_bad_ones_are_dead_lettered()
-> TestResult {
    let broker = Mosquitto::shared()?;
    let setup = Setup::new(2).await?;
    let mut child = setup
        .command(
            &broker.url(),
            &["--filter", "temperature > 0 && temperature < 100"],
        )
        .spawn()?;
    let (_, stderr) = binary::wait_for_stderr(&mut child, "dead letters in")?;

    let mut messages = Vec::new();
    let mut n = 0;
    for location in ["factory-a", "factory-b"] {
        for device in ["sensor-001", "sensor-002", "sensor-003"] {
            for _ in 0..10 {
                n += 1;
                messages.push((setup.topic(location), reading(device, n, 20.5)));
            }
        }
    }
    // Filtered out: below the filter, inside the schema's range.
    for i in 0..4 {
        messages.push((
            setup.topic("factory-a"),
            reading("sensor-001", 1000 + i, -5.0),
        ));
    }
    // Dead-lettered: out of range, no device, not JSON.
    messages.push((
        setup.topic("factory-a"),
        reading("sensor-001", 2000, 20.0).replace("\"humidity\":40", "\"humidity\":140"),
    ));
    messages.push((
        setup.topic("factory-a"),
        json!({"temperature": 20}).to_string(),
    ));
    messages.push((setup.topic("factory-b"), "{\"device_id\": ".to_owned()));
    publish(broker.port(), &messages).await?;

    let records = setup.read(60).await?;
    let summary = stop(child)?;
    let stderr = stderr.join().unwrap_or_default();
    assert_eq!(records.len(), 60, "{records:#?}");
    let mut seen = BTreeSet::new();
    for record in &records {
        assert!(
            seen.insert(record["n"].as_u64().unwrap()),
            "twice: {record}"
        );
        let location = record["location"].as_str().unwrap();
        assert!(
            location == "factory-a" || location == "factory-b",
            "{record}"
        );
        assert_eq!(record["metric"], "temperature");
        assert!(record["ingestion_time"].is_string(), "{record}");
        // The IoT key: device id and a hash of the location.
        let expected = IotKey::default().key(record).unwrap().partition_key;
        assert_eq!(record["_key"], expected.as_str(), "{record}");
    }

    let source = &summary["by_source"]["iot_sensors"];
    assert_eq!(source["read"], 67, "{summary:#}");
    assert_eq!(source["sent"], 60, "{summary:#}");
    assert_eq!(source["skipped"], 4, "{summary:#}");
    assert_eq!(source["invalid"], 3, "{summary:#}");
    assert_eq!(source["dead_lettered"], 3, "{summary:#}");
    assert_eq!(source["redelivered"], 0, "{summary:#}");
    assert_eq!(summary["total_failed"], 0, "{summary:#}");

    let letters: Vec<Value> = std::fs::read_to_string(setup.dead_letters())?
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 3, "{letters:#?}");
    for letter in &letters {
        assert_eq!(letter["reason"], "rejected", "{letter}");
        assert_eq!(letter["source"], "iot_sensors", "{letter}");
    }
    let all = format!("{letters:?}");
    assert!(
        all.contains("maximum") && all.contains("/humidity"),
        "{all}"
    );
    assert!(all.contains("required"), "{all}");
    assert!(all.contains("not JSON"), "{all}");
    assert!(
        all.contains(&setup.topic("factory-b")),
        "the topic is in the letter: {all}"
    );
    // Every message was acknowledged to the broker.
    assert!(stderr.contains("\"acknowledged\":67"), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restart_loses_nothing_the_broker_had_accepted() -> TestResult {
    // A broker of its own: restarting the shared one would disturb others.
    let broker = Mosquitto::start()?;
    let mut setup = Setup::new(1).await?;
    // Every put throttled until the broker is back: what the forwarder has
    // received stays unacknowledged, in the broker's in-flight window.
    let proxy = FaultProxy::start(&Kinesalite::shared()?.endpoint()).await?;
    proxy.set_entry_fault(Some(EntryFault {
        selection: Selection::Share(1.0),
        code: FaultCode::Throttled,
    }));
    setup.run.endpoints.kinesis = Some(proxy.endpoint());
    let mut child = setup.command(&broker.url(), &[]).spawn()?;
    let (_, stderr) = binary::wait_for_stderr(&mut child, "dead letters in")?;

    let batch = |range: std::ops::Range<u64>| -> Vec<(String, String)> {
        range
            .map(|n| {
                (
                    setup.topic("line-1"),
                    reading(&format!("d{}", n % 7), n, 21.0),
                )
            })
            .collect()
    };
    // The broker holds all of it for the forwarder (in flight, 20 at a
    // time, and queued) when it goes down.
    publish(broker.port(), &batch(0..300)).await?;
    broker.restart()?;
    publish(broker.port(), &batch(300..400)).await?;
    proxy.set_entry_fault(None);

    // The broker sends again what was in flight when it went down, so 400
    // records can come before the last readings do: wait for 400 distinct.
    let mut reader = streams::StreamReader::new(&setup.run.client, &setup.run.stream);
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while counts.len() < 400 && std::time::Instant::now() < deadline {
        for record in reader.poll().await? {
            let value: Value = serde_json::from_slice(&record.data)?;
            *counts.entry(value["n"].as_u64().unwrap()).or_default() += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing: Vec<u64> = (0..400).filter(|n| !counts.contains_key(n)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let summary = stop(child)?;
    let stderr = stderr.join().unwrap_or_default();
    assert_eq!(summary["total_failed"], 0, "{summary:#}");
    let redelivered = summary["by_source"]["iot_sensors"]["redelivered"].as_u64();
    assert!(redelivered.is_some_and(|n| n >= 1), "{summary:#}");
    // It noticed the restart, came back, and the broker sent again what
    // was in flight.
    let mqtt: Value = serde_json::from_str(
        stderr
            .lines()
            .find_map(|l| l.split("sensor-forwarder: mqtt ").nth(1))
            .ok_or("no MQTT statistics")?,
    )?;
    assert!(mqtt["reconnections"].as_u64().unwrap() >= 1, "{mqtt}");
    assert!(mqtt["redelivered"].as_u64().unwrap() >= 1, "{mqtt}");
    // What was in flight on the lost connection is not acknowledged on the
    // new one: its copies are.
    assert!(mqtt["stale"].as_u64().unwrap() >= 1, "{mqtt}");
    assert!(mqtt["acknowledged"].as_u64().unwrap() >= 400, "{mqtt}");
    Ok(())
}

#[test]
fn keys_reports_how_readings_spread_over_shards() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sample = dir.path().join("sample.ndjson");
    let mut lines = String::new();
    for n in 0..200 {
        // One device sends half of everything: a hot key.
        let device = if n % 2 == 0 {
            "hot-device".to_owned()
        } else {
            format!("d{n}")
        };
        lines.push_str(&reading(&device, n, 20.0));
        lines.push('\n');
    }
    lines.push_str("not json\n");
    std::fs::write(&sample, lines)?;
    let output = Command::new(env!("CARGO_BIN_EXE_sensor-forwarder"))
        .args([
            "keys",
            "--shards",
            "4",
            "--json",
            "--topic",
            "sensors/factory-a/temperature",
            "--from",
        ])
        .arg(&sample)
        .output()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(report["readings"], 200, "{report:#}");
    assert_eq!(report["unreadable_lines"], 1, "{report:#}");
    let hottest = &report["report"]["hottest_keys"][0];
    assert!(
        hottest["key"].as_str().unwrap().starts_with("hot-device:"),
        "{report:#}"
    );
    assert_eq!(hottest["records"], 100, "{report:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtts_with_a_client_certificate_and_refused_without_one() -> TestResult {
    let broker = Mosquitto::start_tls()?;
    let url = broker.tls_url().unwrap();
    let files = broker.tls_files().unwrap();
    let setup = Setup::new(1).await?;
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (ca, cert, key) = (
        path(&files.ca),
        path(&files.client_cert),
        path(&files.client_key),
    );

    // Without a client certificate the broker refuses: a clear error at start.
    let output = setup
        .command(&url, &["--mqtt-ca-file", &ca, "--duration", "5"])
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connecting to the broker"), "{stderr}");
    // mqtts:// without the CA: refused before connecting.
    let output = setup.command(&url, &["--duration", "5"]).output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CA certificate"), "{stderr}");

    let mut child = setup
        .command(
            &url,
            &[
                "--mqtt-ca-file",
                &ca,
                "--mqtt-cert-file",
                &cert,
                "--mqtt-key-file",
                &key,
            ],
        )
        .spawn()?;
    let (_, stderr) = binary::wait_for_stderr(&mut child, "dead letters in")?;
    let messages: Vec<(String, String)> = (0..10)
        .map(|n| (setup.topic("secure-room"), reading("sensor-tls", n, 22.0)))
        .collect();
    // Published over the plain listener: the forwarder reads over TLS.
    publish(broker.port(), &messages).await?;
    let records = setup.read(10).await?;
    let summary = stop(child)?;
    drop(stderr);
    assert_eq!(records.len(), 10);
    assert!(records.iter().all(|r| r["location"] == "secure-room"));
    assert_eq!(
        summary["by_source"]["iot_sensors"]["sent"], 10,
        "{summary:#}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_wants_a_password_gets_it_and_refuses_without() -> TestResult {
    let broker = Mosquitto::start_with_password("plant-7", "s3cret-pass")?;
    let setup = Setup::new(1).await?;
    // No login: the broker refuses, and start-up says so.
    let output = setup
        .command(&broker.url(), &["--duration", "5"])
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connecting to the broker"), "{stderr}");
    let wrong = setup
        .command(
            &broker.url(),
            &["--mqtt-username", "plant-7", "--mqtt-password", "guess"],
        )
        .output()?;
    assert!(!wrong.status.success());

    let mut child = setup
        .command(&broker.url(), &["--mqtt-username", "plant-7"])
        .env("SHARDLINE_MQTT_PASSWORD", "s3cret-pass")
        .spawn()?;
    let (_, stderr) = binary::wait_for_stderr(&mut child, "dead letters in")?;
    let messages: Vec<(String, String)> = (0..10)
        .map(|n| (setup.topic("locked-room"), reading("sensor-pw", n, 22.0)))
        .collect();
    publish_as(broker.port(), Some(("plant-7", "s3cret-pass")), &messages).await?;
    let records = setup.read(10).await?;
    let summary = stop(child)?;
    drop(stderr);
    assert_eq!(records.len(), 10);
    assert_eq!(
        summary["by_source"]["iot_sensors"]["sent"], 10,
        "{summary:#}"
    );
    Ok(())
}

/// `--help` shows the MQTT settings read from the environment, never their
/// values: the password would end up in a terminal or a CI log.
#[test]
fn help_shows_no_secret_from_the_environment() {
    let output = Command::new(env!("CARGO_BIN_EXE_sensor-forwarder"))
        .arg("--help")
        .env("SHARDLINE_MQTT_URL", "mqtt://secret-host-marker:1883")
        .env("SHARDLINE_MQTT_USERNAME", "secret-user-marker")
        .env("SHARDLINE_MQTT_PASSWORD", "secret-password-marker")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("SHARDLINE_MQTT_PASSWORD"), "{help}");
    assert!(!help.contains("marker"), "{help}");
}
