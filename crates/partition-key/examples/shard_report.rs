//! The shard report for the three per-source strategies on generated data:
//! web logs (session id, else ip hash + hour), IoT readings (device id +
//! location hash) and database changes (table + primary key, and table +
//! transaction id).
//!
//! `cargo run -p shardline-partition-key --example shard_report [-- --json]`

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use shardline_partition_key::{
    Fields, IotKey, PartitionKeyStrategy, RowKey, ShardMap, TransactionKey, WebLogKey, shard_report,
};

const SHARDS: usize = 4;
const RECORDS: usize = 20_000;

fn web_logs(rng: &mut StdRng) -> Vec<Value> {
    (0..RECORDS)
        .map(|_| {
            // A third of requests carry a session id; a crawler sends 15% of
            // all requests from one address.
            let ip = if rng.random_bool(0.15) {
                "66.249.66.1".to_owned()
            } else {
                format!(
                    "203.0.{}.{}",
                    rng.random_range(0..64u8),
                    rng.random_range(1..255u8)
                )
            };
            let timestamp = format!("2024-01-15T{:02}:30:45+00:00", rng.random_range(9..12u8));
            if rng.random_bool(0.33) {
                let session = format!("sess-{}", rng.random_range(0..5_000u32));
                json!({"ip_address": ip, "timestamp": timestamp, "session_id": session})
            } else {
                json!({"ip_address": ip, "timestamp": timestamp})
            }
        })
        .collect()
}

fn iot_readings(rng: &mut StdRng) -> Vec<Value> {
    let locations = ["seoul", "busan", "incheon", "daegu"];
    let location = |device: u32| {
        locations
            .get(device as usize % locations.len())
            .copied()
            .unwrap_or("seoul")
    };
    (0..RECORDS)
        .map(|_| {
            let device = rng.random_range(0..200u32);
            json!({
                "device_id": format!("sensor-{device:04}"),
                "location": location(device),
                "temperature": rng.random_range(-10.0..40.0f64),
            })
        })
        .collect()
}

fn database_changes(rng: &mut StdRng) -> Vec<Value> {
    // Small transactions on users, one bulk transaction of 3,000 order rows.
    let mut changes = Vec::new();
    for txid in 0..2_000u32 {
        for _ in 0..rng.random_range(1..4) {
            changes.push(json!({"table": "public.users", "txid": txid,
                                "id": rng.random_range(0..10_000u32)}));
        }
    }
    for id in 0..3_000u32 {
        changes.push(json!({"table": "public.orders", "txid": 9_999, "id": id}));
    }
    changes
}

fn main() {
    let json_output = std::env::args().any(|a| a == "--json");
    let mut rng = StdRng::seed_from_u64(7);
    let map = ShardMap::even(SHARDS);
    let web = web_logs(&mut rng);
    let iot = iot_readings(&mut rng);
    let cdc = database_changes(&mut rng);
    let row = RowKey {
        table_field: "table".into(),
        key_fields: vec!["id".into()],
    };
    let txn = TransactionKey {
        table_field: "table".into(),
        transaction_field: "txid".into(),
    };
    let cases: [(&str, &dyn PartitionKeyStrategy, &[Value]); 4] = [
        ("web logs", &WebLogKey::default(), &web),
        ("IoT readings", &IotKey::default(), &iot),
        ("database changes, table + primary key", &row, &cdc),
        ("database changes, table + transaction id", &txn, &cdc),
    ];
    for (name, strategy, records) in cases {
        let report = shard_report(strategy, records.iter().map(|r| r as &dyn Fields), &map, 3);
        if json_output {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
        } else {
            println!("== {name}");
            print!("{}", report.to_text());
            println!();
        }
    }
}
