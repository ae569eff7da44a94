//! sensor-forwarder end to end, the real binary between the harness's
//! Mosquitto and kinesalite (a bench binary, not criterion: each figure is
//! one whole run).
//!
//! `cargo bench -p sensor-forwarder --bench forwarder`
//!
//! Each run: start the forwarder, publish `SHARDLINE_BENCH_READINGS`
//! (default 20,000) QoS 1 readings as fast as the broker acknowledges
//! them, and time from the first publish until the forwarder's statistics
//! say every reading was sent (its `--stats-interval` JSON lines). The
//! broker keeps its default in-flight window of 20 unacknowledged
//! messages per client, so the batch wait (`--batch-timeout`) bounds the
//! rate; runs go to `--sink stdout` and to a 4-shard kinesalite stream.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use shardline_harness::{Kinesalite, Mosquitto, streams, unique_name};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const EXE: &str = env!("CARGO_BIN_EXE_sensor-forwarder");

fn readings() -> usize {
    std::env::var("SHARDLINE_BENCH_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

async fn publish(port: u16, prefix: &str, count: usize) -> Result<()> {
    let options = MqttOptions::new(unique_name("bench-publisher"), "127.0.0.1", port);
    let (client, mut events) = AsyncClient::new(options, 1024);
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < count {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    });
    for n in 0..count {
        let payload = format!(
            "{{\"device_id\":\"sensor-{:03}\",\"temperature\":{}.5,\"humidity\":{},\"n\":{n}}}",
            n % 50,
            15 + n % 20,
            30 + n % 50
        );
        client
            .publish(
                format!("{prefix}/site-{}/temperature", n % 4),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await?;
    }
    acks.await?.map_err(|e| format!("publisher: {e}"))?;
    Ok(())
}

async fn run(
    broker: &Mosquitto,
    kinesalite: &Kinesalite,
    label: &str,
    args: &[&str],
) -> Result<()> {
    let count = readings();
    let dir = tempfile::tempdir()?;
    let prefix = unique_name("bench");
    let mut child = Command::new(EXE)
        .envs(kinesalite.endpoints().env())
        .env("RUST_LOG", "error")
        .args(["--mqtt-url", &broker.url(), "--stats-interval", "0.1"])
        .args(["--client-id", &format!("{prefix}-forwarder")])
        .args(["--topic", &format!("{prefix}/+/+")])
        .args(["--topic-template", &format!("{prefix}/<location>/<metric>")])
        .arg("--dead-letter-file")
        .arg(dir.path().join("dead-letters.ndjson"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("stderr")?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let watcher = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(|l| l.ok())
        {
            if line.contains("dead letters in") {
                let _ = ready_tx.send(());
            }
            if let Ok(stats) = serde_json::from_str::<serde_json::Value>(&line)
                && stats
                    .get("total_sent")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
                    >= count as u64
            {
                let _ = done_tx.send(Instant::now());
                break;
            }
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(30))?;
    let started = Instant::now();
    publish(broker.port(), &prefix, count).await?;
    let published = started.elapsed();
    let done = done_rx.recv_timeout(Duration::from_secs(600))?;
    let elapsed = done.duration_since(started).as_secs_f64();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let _ = watcher.join();
    println!(
        "{label:<44} {count} readings in {elapsed:>6.2} s = {:>8.0} readings/s (publishing took {:.2} s)",
        count as f64 / elapsed,
        published.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let broker = Mosquitto::start()?;
    let kinesalite = Kinesalite::shared()?;
    let stream = unique_name("sensor-bench");
    streams::create_stream(&kinesalite.kinesis_client(), &stream, 4).await?;
    println!(
        "sensor-forwarder: {} QoS 1 readings, Mosquitto in-flight window 20",
        readings()
    );
    for (label, args) in [
        (
            "stdout, batch wait 50 ms (default)",
            vec!["--sink", "stdout"],
        ),
        (
            "stdout, batch wait 10 ms",
            vec!["--sink", "stdout", "--batch-timeout", "0.01"],
        ),
        (
            "stdout, batch wait 200 ms",
            vec!["--sink", "stdout", "--batch-timeout", "0.2"],
        ),
        (
            "kinesalite, batch wait 50 ms (default)",
            vec!["--stream-name", &stream],
        ),
        (
            "kinesalite, batch wait 10 ms",
            vec!["--stream-name", &stream, "--batch-timeout", "0.01"],
        ),
    ] {
        run(&broker, kinesalite, label, &args).await?;
    }
    Ok(())
}
