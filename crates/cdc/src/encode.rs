//! Encoders: the normalized JSON (`docs/cdc.md`) and the Debezium envelope
//! for consumers that already speak it.

use serde_json::{Map, Value, json};

use crate::decode::{millis_from_rfc3339, parse_lsn};
use crate::event::{ChangeEvent, Operation};

/// The normalized JSON of one event, as one line's bytes (no newline).
pub fn to_json(event: &ChangeEvent) -> Vec<u8> {
    // A ChangeEvent holds only strings, numbers, maps and JSON values:
    // serializing it cannot fail.
    serde_json::to_vec(event).unwrap_or_default()
}

/// The event as a Debezium change event value (no schema wrapper):
/// `op` c/u/d/r/t, `before`, `after`, `source` (`db`, `schema`, `table`,
/// `txId`, `lsn` or `file`/`pos`, `ts_ms`), `transaction` (`id`,
/// `total_order`) and `ts_ms`.
pub fn to_debezium(event: &ChangeEvent) -> Value {
    let op = match event.operation {
        Operation::Insert => "c",
        Operation::Update => "u",
        Operation::Delete => "d",
        Operation::Read => "r",
        Operation::Truncate => "t",
    };
    let millis = event.timestamp.as_deref().and_then(millis_from_rfc3339);
    let mut source = Map::new();
    source.insert("connector".into(), json!("shardline"));
    source.insert("name".into(), json!("shardline"));
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            source.insert(key.to_owned(), value);
        }
    };
    put("db", json!(event.database));
    put("schema", json!(event.schema));
    put("table", json!(event.table));
    put("ts_ms", json!(millis));
    if let Some(tx) = &event.transaction_id {
        match tx.parse::<u64>() {
            Ok(n) => put("txId", json!(n)),
            Err(_) => put("gtid", json!(tx)),
        }
    }
    if let Some(position) = &event.position {
        match parse_lsn(position) {
            Some(lsn) => put("lsn", json!(lsn)),
            None => match position.rsplit_once(':') {
                Some((file, pos)) if pos.parse::<u64>().is_ok() => {
                    put("file", json!(file));
                    put("pos", json!(pos.parse::<u64>().unwrap_or_default()));
                }
                _ => put("position", json!(position)),
            },
        }
    }
    let transaction = event.transaction_id.as_ref().map(|id| {
        json!({
            "id": id,
            "total_order": event.sequence + 1,
        })
    });
    json!({
        "before": event.before,
        "after": event.after,
        "source": source,
        "op": op,
        "ts_ms": millis,
        "transaction": transaction,
    })
}
