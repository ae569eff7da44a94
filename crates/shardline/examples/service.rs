//! An order service that forwards each order to a Kinesis data stream,
//! tells the client where it was stored, and shuts down without losing one.
//!
//! Each line a client writes to the TCP port is an order, a JSON object
//! with a `customer` (its partition key, so one customer's orders stay in
//! order on one shard). The service answers each line, in order, with
//! `stored <shard> <sequence number>`, `not stored <reason>`, or
//! `rejected <reason>`. On Ctrl-C or SIGTERM it stops reading, answers
//! what it has read, flushes the producer and exits.
//!
//! ```text
//! STREAM=orders LISTEN=127.0.0.1:7000 cargo run -p shardline --example service
//! printf '{"customer":"c-1","total":30}\n' | nc 127.0.0.1 7000
//! ```
//!
//! AWS settings come from the environment, as for any program using the
//! AWS SDK (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL` for a local
//! endpoint).

use std::time::Duration;

use shardline::{Outcome, PartitionKey, Producer, Receipt, Record};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// How long the producer may take to deliver what it holds at shutdown;
/// what is left after it is dead-lettered (here: handed back and reported).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stream = std::env::var("STREAM").unwrap_or_else(|_| "orders".to_owned());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:7000".to_owned());
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let producer = Producer::kinesis(&sdk_config, &stream).build().await?;

    let listener = TcpListener::bind(&listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let mut terminate = signal(SignalKind::terminate())?;
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, _) = accepted?;
                connections.spawn(serve(socket, producer.clone(), stopping.clone()));
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }

    // Stop taking connections and reading orders; answer those read.
    drop(listener);
    stop.send_replace(true);
    while let Some(served) = connections.join_next().await {
        if let Ok(Err(e)) = served {
            eprintln!("a connection ended with an error: {e}");
        }
    }
    producer.shutdown(SHUTDOWN_DEADLINE).await;
    let total = producer.stats().total;
    println!(
        "stopped: {} orders stored, {} not stored",
        total.delivered, total.dead_lettered
    );
    Ok(())
}

/// Reads orders from one client and answers each, in order, as it settles.
async fn serve(
    socket: TcpStream,
    producer: Producer,
    mut stopping: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (reader, mut writer) = socket.into_split();
    // Orders are sent as they are read; their answers are written in the
    // same order by a task of their own, so a client can pipeline orders.
    let (answers, mut pending) = mpsc::channel::<Answer>(1024);
    let answering = tokio::spawn(async move {
        while let Some(answer) = pending.recv().await {
            let line = match answer {
                Answer::Sent(receipt) => describe(receipt.await),
                Answer::Rejected(reason) => format!("rejected {reason}"),
            };
            writer.write_all(line.as_bytes()).await?;
            writer.write_all(b"\n").await?;
        }
        writer.shutdown().await
    });

    let mut lines = BufReader::new(reader).lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = stopping.wait_for(|stop| *stop) => None,
        };
        let Some(line) = line else { break };
        let answer = match order(&line) {
            Ok(record) => match producer.send(record).await {
                Ok(receipt) => Answer::Sent(receipt),
                Err(e) => Answer::Rejected(e.to_string()),
            },
            Err(reason) => Answer::Rejected(reason),
        };
        if answers.send(answer).await.is_err() {
            break;
        }
    }
    drop(answers);
    answering.await.map_err(std::io::Error::other)?
}

enum Answer {
    Sent(Receipt),
    Rejected(String),
}

/// An order line as a record keyed by its customer.
fn order(line: &str) -> Result<Record, String> {
    let order: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let customer = order
        .get("customer")
        .and_then(|c| c.as_str())
        .ok_or("no \"customer\"")?;
    let key = PartitionKey::new(customer).map_err(|e| e.to_string())?;
    Ok(Record::new(key, line.to_owned()))
}

fn describe(outcome: Outcome) -> String {
    match outcome {
        Outcome::Delivered(stored) => format!(
            "stored {} {}",
            stored.shard_id().unwrap_or("-"),
            stored.sequence_number().unwrap_or("-")
        ),
        Outcome::DeadLettered {
            reason,
            error_message,
            ..
        } => format!(
            "not stored {reason}: {}",
            error_message.as_deref().unwrap_or("")
        ),
        Outcome::Failed { message } => format!("not stored {message}"),
    }
}
