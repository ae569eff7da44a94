//! Realistic test input — web logs, IoT sensor readings, database
//! changes — as [`Source`]s, for demos, load tests and benchmarks.
//!
//! - [`log_line`]: Apache combined or JSON application lines;
//! - [`sensor_reading`]: a reading and the topic it is published to
//!   (`sensors/<location>/temperature`);
//! - [`change_event`]: a Debezium change event (insert, update, delete);
//! - [`Generated`]: any of them at a steady rate as a [`Source`] whose
//!   positions carry the topic, counting what it made.
//!
//! One input in [`MALFORMED_ONE_IN`] is bad on purpose (does not parse or
//! fails its schema), so that every run shows dead letters.
//!
//! # Example
//!
//! Five sensor readings, as fast as they may come, each with its topic:
//!
//! ```
//! use shardline_core::{Position, Source};
//! use shardline_generate::{Generated, Kind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), shardline_core::SourceError> {
//! let mut sensors = Generated::new(Kind::Sensors, 1_000).limit(5);
//! let mut read = Vec::new();
//! while let Some(batch) = sensors.read().await? {
//!     read.extend(batch);
//! }
//! assert_eq!(read.len(), 5);
//! let topic = read[0].position.origin().topic.unwrap_or_default();
//! assert!(topic.starts_with("sensors/") && topic.ends_with("/temperature"));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::json;
use shardline_core::{Input, Origin, Position, Source, SourceError};

/// The share of generated inputs that are bad on purpose (1 in 50):
/// enough to see dead letters in every run, well under the lab's 5 %
/// parse-failure bar.
pub const MALFORMED_ONE_IN: u32 = 50;

/// How often a [`Generated`] source wakes to make what is due.
const TICK: Duration = Duration::from_millis(20);

const IPS: [&str; 8] = [
    "192.168.1.100",
    "10.0.0.50",
    "203.0.113.10",
    "198.51.100.7",
    "2001:db8::1",
    "172.16.4.20",
    "192.168.1.101",
    "10.1.2.3",
];
const REQUESTS: [(&str, &str); 8] = [
    ("GET", "/index.html"),
    ("GET", "/api/orders"),
    ("POST", "/api/users"),
    ("DELETE", "/api/orders/123"),
    ("GET", "/images/logo.png"),
    ("PUT", "/api/users/42"),
    ("GET", "/search?q=kinesis&page=2"),
    ("GET", "/health"),
];
const STATUSES: [u16; 8] = [200, 200, 200, 201, 204, 304, 404, 500];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)",
    "curl/7.68.0",
    "axios/0.21.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
];
const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "ERROR"];
const LOGGERS: [(&str, &str); 3] = [
    ("com.example.UserService", "User login successful"),
    ("com.example.OrderService", "Order processing delayed"),
    ("com.example.PaymentService", "Payment \"authorized\""),
];
const LOCATIONS: [&str; 4] = ["factory-a", "factory-b", "warehouse-1", "office-3f"];
const DEVICES_PER_LOCATION: u64 = 5;
const TABLES: [&str; 2] = ["customers", "orders"];
const ORDER_STATES: [&str; 3] = ["NEW", "PAID", "SHIPPED"];

fn pick<T: Copy + Default>(rng: &mut impl Rng, items: &[T]) -> T {
    items.choose(rng).copied().unwrap_or_default()
}

/// What a log line looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineShape {
    /// Apache / Nginx combined access log.
    Access,
    /// One JSON object: timestamp, level, logger, message, user id,
    /// request id.
    Application,
}

/// Line `n` of `shape` at `now`; one in [`MALFORMED_ONE_IN`] is garbage.
pub fn log_line(shape: LineShape, rng: &mut impl Rng, now: time::OffsetDateTime, n: u64) -> String {
    if rng.random_ratio(1, MALFORMED_ONE_IN) {
        return match rng.random_range(0..3) {
            0 => "this is not a log line".to_owned(),
            1 => format!(
                "{} - - [not a date] \"GET / HTTP/1.1\" abc",
                pick(rng, &IPS)
            ),
            _ => "{\"timestamp\": \"2024-01-15T10:30:45Z\", \"level\": ".to_owned(),
        };
    }
    match shape {
        LineShape::Application => {
            let (logger, message) = pick(rng, &LOGGERS);
            let timestamp = now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            json!({
                "timestamp": timestamp,
                "level": pick(rng, &LEVELS),
                "logger": logger,
                "message": message,
                "user_id": rng.random_range(10_000..20_000),
                "request_id": format!("req-{n:06}"),
            })
            .to_string()
        }
        LineShape::Access => {
            let (method, path) = pick(rng, &REQUESTS);
            let clf = time::macros::format_description!(
                "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
            );
            let timestamp = now.format(&clf).unwrap_or_default();
            let size = rng.random_range(0..50_000);
            format!(
                "{} - - [{timestamp}] \"{method} {path} HTTP/1.1\" {} {size} \"{}\" \"{}\"",
                pick(rng, &IPS),
                pick(rng, &STATUSES),
                if rng.random_ratio(1, 2) {
                    "-"
                } else {
                    "https://example.com/"
                },
                pick(rng, &AGENTS),
            )
        }
    }
}

/// Reading `n` and its topic, `sensors/<location>/temperature`: a device
/// id, temperature and humidity (no device time: the IoT rule step stamps
/// `ingestion_time`). One in [`MALFORMED_ONE_IN`] has humidity over 100 %.
pub fn sensor_reading(rng: &mut impl Rng, n: u64) -> (String, String) {
    let location = pick(rng, &LOCATIONS);
    let device = rng.random_range(1..=DEVICES_PER_LOCATION);
    let humidity = if rng.random_ratio(1, MALFORMED_ONE_IN) {
        140.0
    } else {
        f64::from(rng.random_range(300..800u32)) / 10.0
    };
    let reading = json!({
        "device_id": format!("{location}-sensor-{device:03}"),
        "temperature": f64::from(rng.random_range(150..350u32)) / 10.0,
        "humidity": humidity,
        "reading": n,
    });
    (
        format!("sensors/{location}/temperature"),
        reading.to_string(),
    )
}

/// Change `n` as a Debezium envelope (`inventory.customers` or
/// `inventory.orders`, key column `id`): inserts, updates and deletes of
/// a few hundred rows, transaction `n / 4`. One in [`MALFORMED_ONE_IN`]
/// is cut short.
pub fn change_event(rng: &mut impl Rng, n: u64) -> String {
    let table = pick(rng, &TABLES);
    let id = rng.random_range(1..=300u32);
    let row = |version: u64| match table {
        "orders" => {
            json!({"id": id, "status": ORDER_STATES.get((version % 3) as usize).copied().unwrap_or("NEW"), "amount": 10 + version % 90})
        }
        _ => json!({"id": id, "email": format!("user{id}@example.com"), "tier": version % 4}),
    };
    let (op, before, after) = match rng.random_range(0..10) {
        0..=4 => ("c", serde_json::Value::Null, row(n)),
        5..=8 => ("u", row(n.saturating_sub(1)), row(n)),
        _ => ("d", row(n), serde_json::Value::Null),
    };
    let ts_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let event = json!({
        "before": before,
        "after": after,
        "source": {
            "connector": "postgresql",
            "name": "shardline_generator",
            "ts_ms": ts_ms,
            "db": "shop",
            "schema": "inventory",
            "table": table,
            "txId": 1000 + n / 4,
            "lsn": 100_000 + n * 64,
        },
        "op": op,
        "ts_ms": ts_ms,
    })
    .to_string();
    if rng.random_ratio(1, MALFORMED_ONE_IN) {
        event.chars().take(event.len() / 2).collect()
    } else {
        event
    }
}

/// What a [`Generated`] source makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Apache combined access lines.
    WebLogs,
    /// Sensor readings, each with its topic.
    Sensors,
    /// Debezium change events.
    Changes,
}

/// A generated input's number and, for readings, its topic.
#[derive(Debug, Clone)]
pub struct GeneratedPosition {
    /// Its number, from 0.
    pub n: u64,
    /// The MQTT-style topic, for readings.
    pub topic: Option<Arc<str>>,
}

impl Position for GeneratedPosition {
    fn describe(&self) -> BTreeMap<String, String> {
        let mut described = BTreeMap::from([("generated".to_owned(), self.n.to_string())]);
        if let Some(topic) = &self.topic {
            described.insert("topic".to_owned(), topic.to_string());
        }
        described
    }

    fn origin(&self) -> Origin<'_> {
        match &self.topic {
            Some(topic) => Origin::topic(topic),
            None => Origin::default(),
        }
    }
}

/// Inputs of one [`Kind`] at `rate` a second, for as long as it is read.
/// Nothing to checkpoint: what it made is counted ([`Generated::made`]).
#[derive(Debug)]
pub struct Generated {
    kind: Kind,
    rate: u64,
    started: Option<Instant>,
    made: Arc<AtomicU64>,
    limit: Option<u64>,
}

impl Generated {
    /// `rate` inputs a second (at least 1).
    pub fn new(kind: Kind, rate: u32) -> Self {
        Generated {
            kind,
            rate: u64::from(rate.max(1)),
            started: None,
            made: Arc::new(AtomicU64::new(0)),
            limit: None,
        }
    }

    /// End (read returns `None`) after `count` inputs.
    pub fn limit(mut self, count: u64) -> Self {
        self.limit = Some(count);
        self
    }

    /// How many inputs it has handed out so far.
    pub fn made(&self) -> Arc<AtomicU64> {
        self.made.clone()
    }

    fn make(
        &self,
        rng: &mut impl Rng,
        now: time::OffsetDateTime,
        n: u64,
    ) -> Input<GeneratedPosition> {
        let (topic, data) = match self.kind {
            Kind::WebLogs => (None, log_line(LineShape::Access, rng, now, n)),
            Kind::Sensors => {
                let (topic, reading) = sensor_reading(rng, n);
                (Some(Arc::from(topic)), reading)
            }
            Kind::Changes => (None, change_event(rng, n)),
        };
        Input {
            data: data.into_bytes().into(),
            position: GeneratedPosition { n, topic },
        }
    }
}

#[async_trait::async_trait]
impl Source for Generated {
    type Position = GeneratedPosition;

    async fn read(&mut self) -> Result<Option<Vec<Input<GeneratedPosition>>>, SourceError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        loop {
            let made = self.made.load(Ordering::Relaxed);
            if self.limit.is_some_and(|limit| made >= limit) {
                return Ok(None);
            }
            let elapsed = started.elapsed().as_millis() as u64;
            let mut due = elapsed.saturating_mul(self.rate) / 1000;
            if let Some(limit) = self.limit {
                due = due.min(limit);
            }
            if due > made {
                let mut rng = rand::rng();
                let now = time::OffsetDateTime::now_utc();
                let batch: Vec<_> = (made + 1..=due)
                    .map(|n| self.make(&mut rng, now, n))
                    .collect();
                // Counted when handed out: a cancelled read made nothing.
                self.made.store(due, Ordering::Relaxed);
                return Ok(Some(batch));
            }
            tokio::time::sleep(TICK).await;
        }
    }

    fn settler(&self) -> Box<dyn FnMut(Vec<GeneratedPosition>) + Send> {
        Box::new(|_| {})
    }

    async fn checkpoint(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_look_like_their_sources() {
        let mut rng = rand::rng();
        let now = time::OffsetDateTime::now_utc();
        let lines: Vec<String> = (0..200)
            .map(|n| log_line(LineShape::Access, &mut rng, now, n))
            .collect();
        assert!(lines.iter().filter(|l| l.contains("HTTP/1.1\" ")).count() > 150);
        for n in 0..200 {
            let (topic, reading) = sensor_reading(&mut rng, n);
            assert!(topic.starts_with("sensors/") && topic.ends_with("/temperature"));
            let reading: serde_json::Value = serde_json::from_str(&reading).unwrap();
            assert_eq!(reading["reading"], n);
        }
        let changes: Vec<String> = (0..200).map(|n| change_event(&mut rng, n)).collect();
        let whole = changes
            .iter()
            .filter(|c| serde_json::from_str::<serde_json::Value>(c).is_ok())
            .count();
        assert!(whole > 150 && whole <= 200);
    }

    #[tokio::test]
    async fn a_limited_source_makes_exactly_its_count_in_order() {
        let mut source = Generated::new(Kind::Sensors, 5000).limit(120);
        let made = source.made();
        let mut numbers = Vec::new();
        while let Some(batch) = source.read().await.unwrap() {
            for input in batch {
                assert!(input.position.origin().topic.is_some());
                numbers.push(input.position.n);
            }
        }
        assert_eq!(numbers, (1..=120).collect::<Vec<_>>());
        assert_eq!(made.load(Ordering::Relaxed), 120);
    }
}
