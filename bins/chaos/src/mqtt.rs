//! sensor-forwarder scenario: readings published at QoS 1 while the broker
//! is stopped and started again several times, and the forwarder is
//! SIGKILLed once and started again on its persistent session.

use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use shardline_harness::binary::{self, StreamRun};
use shardline_harness::{Mosquitto, unique_name};
use tokio::runtime::Runtime;

use crate::count::{Collector, CrashBound, Row};
use crate::{Binaries, Size};

/// How long the broker stays down at each restart.
const BROKER_DOWN: Duration = Duration::from_secs(2);

/// A reading's number (`n`).
fn reading_number(data: &[u8]) -> Option<u64> {
    let reading: serde_json::Value = serde_json::from_slice(data).ok()?;
    reading.get("n")?.as_u64()
}

/// Reading `n`, from one of seven devices.
fn reading(n: u64) -> String {
    serde_json::json!({
        "device_id": format!("d{}", n % 7),
        "n": n,
        "temperature": 21.5,
        "humidity": 40,
    })
    .to_string()
}

/// Publishes readings `1..=count` to `topic` at QoS 1, `rate` a second,
/// through broker restarts (the client reconnects and sends again what the
/// broker had not acknowledged), and returns once the broker has
/// acknowledged every one: from then on they are the broker's to keep.
/// Returns how often the connection was lost.
async fn publish(port: u16, topic: String, count: u64, rate: u64) -> anyhow::Result<u64> {
    let mut options = MqttOptions::new(unique_name("chaos-publisher"), "127.0.0.1", port);
    options.set_clean_session(false);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 1_000);
    let acknowledged = tokio::spawn(async move {
        let (mut acked, mut lost) = (0u64, 0u64);
        while acked < count {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(_) => {
                    lost += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        lost
    });
    let started = tokio::time::Instant::now();
    for n in 1..=count {
        tokio::time::sleep_until(started + Duration::from_secs_f64((n - 1) as f64 / rate as f64))
            .await;
        client
            .publish(&topic, QoS::AtLeastOnce, false, reading(n))
            .await
            .context("publishing")?;
    }
    let lost = tokio::time::timeout(Duration::from_secs(120), acknowledged)
        .await
        .context("the broker did not acknowledge every reading in 120 s")??;
    client.disconnect().await.ok();
    Ok(lost)
}

/// The forwarder, started and ready (subscribed), with its stderr drained.
struct Forwarder {
    child: Child,
    stderr: JoinHandle<String>,
}

pub(crate) fn broker_restarts(size: Size, bins: &Binaries, rt: &Runtime) -> anyhow::Result<Row> {
    let (readings, restarts, rate) = match size {
        Size::Smoke => (3_000, 1, 1_000),
        Size::Full => (60_000, 5, 2_000),
    };
    // A broker of its own: it is restarted on purpose.
    let broker = Mosquitto::start()?;
    let run = rt.block_on(StreamRun::new("chaos_mqtt", 2))?;
    let config = run.write_config("")?;
    let prefix = unique_name("chaos");
    let spawn = || -> anyhow::Result<Forwarder> {
        let mut child = run
            .command(&bins.sensor_forwarder.to_string_lossy())
            .arg("--config")
            .arg(&config)
            .args(["--mqtt-url", &broker.url()])
            .args(["--client-id", &format!("{prefix}-forwarder")])
            .args(["--topic", &format!("{prefix}/+/+")])
            .args(["--topic-template", &format!("{prefix}/<location>/<metric>")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting sensor-forwarder")?;
        let (_, stderr) = binary::wait_for_stderr(&mut child, "dead letters in")?;
        Ok(Forwarder { child, stderr })
    };
    let mut forwarder = spawn()?;
    let publisher = rt.spawn(publish(
        broker.port(),
        format!("{prefix}/line-1/temperature"),
        readings,
        rate,
    ));
    // The restarts spread over the publishing, and the forwarder killed
    // halfway between the first two.
    let span = Duration::from_secs_f64(readings as f64 / rate as f64);
    let gap = span / (restarts + 1);
    let mut crashes = 0;
    for restart in 0..restarts {
        std::thread::sleep(gap / 2);
        if restart == 0 {
            forwarder.child.kill()?;
            forwarder.child.wait()?;
            crashes += 1;
            forwarder = spawn()?;
        }
        std::thread::sleep(gap / 2);
        broker.restart_after(BROKER_DOWN)?;
        crashes += 1;
    }
    let publisher_reconnections = rt.block_on(publisher)??;

    let mut collected = Collector::new(&run, readings, reading_number);
    rt.block_on(collected.read_while_running(Duration::from_secs(180), &mut forwarder.child))?;
    if let Some(status) = forwarder.child.try_wait()? {
        anyhow::bail!(
            "sensor-forwarder exited with {status} before delivering everything: {}",
            forwarder.stderr.join().unwrap_or_default()
        );
    }
    binary::terminate(&forwarder.child)?;
    binary::wait_with_timeout(&mut forwarder.child, Duration::from_secs(60))?;
    let status = forwarder.child.wait()?;
    let stderr = forwarder.stderr.join().unwrap_or_default();
    anyhow::ensure!(
        status.success(),
        "sensor-forwarder exited with {status}: {stderr}"
    );
    rt.block_on(collected.read(Duration::from_secs(5)))?;
    let tally = collected.tally;
    let mut row = Row::from_tally("mqtt", &tally, crashes, CrashBound::DEFAULT);
    row.notes.push(format!(
        "broker restarted {restarts} time(s) ({} s down each), forwarder killed once; the publisher's connection failed {publisher_reconnections} times",
        BROKER_DOWN.as_secs()
    ));
    let mqtt: Option<serde_json::Value> = stderr
        .lines()
        .find_map(|line| line.split("sensor-forwarder: mqtt ").nth(1))
        .and_then(|json| serde_json::from_str(json).ok());
    let count = |name: &str| mqtt.as_ref().and_then(|m| m.get(name)?.as_u64());
    if let (Some(reconnections), Some(redelivered)) = (count("reconnections"), count("redelivered"))
    {
        row.notes.push(format!(
            "the last forwarder reconnected {reconnections} time(s); the broker sent it {redelivered} readings again"
        ));
    }
    Ok(row)
}
