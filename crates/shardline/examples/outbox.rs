//! Keeping the records a stream will not take, and sending them again
//! later: a caller's own outbox, driven by each record's outcome.
//!
//! The producer is built without a dead-letter sink, so a record it cannot
//! deliver comes back in its [`Outcome::DeadLettered`]. This program sends
//! orders to a stream that may not exist yet (a service starting before
//! its infrastructure): what comes back waits in the outbox, and the outbox
//! is sent again every second until it is empty.
//!
//! ```text
//! STREAM=orders-later cargo run -p shardline --example outbox
//! aws kinesis create-stream --stream-name orders-later --shard-count 1
//! ```

use std::time::Duration;

use shardline::{Outcome, PartitionKey, Producer, Record};

const ORDERS: usize = 20;
/// How often the outbox is sent again.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Rounds before the program gives up and reports what is left.
const MAX_ROUNDS: u32 = 120;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stream = std::env::var("STREAM").unwrap_or_else(|_| "orders-later".to_owned());
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let producer = Producer::kinesis(&sdk_config, &stream)
        // The stream may not exist yet: records come back instead.
        .check_destination(false)
        .build()
        .await?;

    let mut outbox = Vec::new();
    for n in 0..ORDERS {
        let key = PartitionKey::new(&format!("customer-{}", n % 4))?;
        outbox.push(Record::new(key, format!("{{\"order\":{n}}}")));
    }
    let mut delivered = 0;
    for round in 1..=MAX_ROUNDS {
        let mut receipts = Vec::new();
        for record in outbox.drain(..) {
            receipts.push(producer.send(record).await?);
        }
        let mut last_error = None;
        for receipt in receipts {
            match receipt.await {
                Outcome::Delivered(_) => delivered += 1,
                Outcome::DeadLettered {
                    record: Some(record),
                    error_message,
                    ..
                } => {
                    outbox.push(*record);
                    last_error = error_message;
                }
                other => return Err(format!("unexpected outcome: {other:?}").into()),
            }
        }
        if outbox.is_empty() {
            println!("all {delivered} orders delivered after {round} round(s)");
            producer.shutdown(Duration::from_secs(5)).await;
            return Ok(());
        }
        if round == 1 {
            println!(
                "{} orders in the outbox: {}",
                outbox.len(),
                last_error.as_deref().unwrap_or("no reason given")
            );
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
    producer.shutdown(Duration::from_secs(5)).await;
    Err(format!("{} orders still in the outbox", outbox.len()).into())
}
