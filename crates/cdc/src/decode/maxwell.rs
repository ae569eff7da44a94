//! Maxwell's daemon JSON: `{"database", "table", "type", "ts", "xid",
//! "xoffset", "commit", "position", "data", "old", "primary_key"}`.

use serde_json::Value;

use super::{
    DecodeError, Decoded, Decoder, Format, object, required, rfc3339_from_millis, row, text,
    unknown_operation,
};
use crate::event::{BeforeImage, ChangeEvent, ChangeType, Operation, Row};

const FORMAT: Format = Format::Maxwell;

/// Maxwell record types that carry no row change.
const NOT_ROWS: [&str; 9] = [
    "table-create",
    "table-alter",
    "table-drop",
    "database-create",
    "database-alter",
    "database-drop",
    "bootstrap-start",
    "bootstrap-complete",
    "heartbeat",
];

pub(super) fn decode(decoder: &mut Decoder, value: Value) -> Result<Decoded, DecodeError> {
    let record = &object(FORMAT, value)?;
    let kind = required(FORMAT, record, "type", "type")?;
    let operation = match kind.as_str() {
        "insert" => Operation::Insert,
        "update" => Operation::Update,
        "delete" => Operation::Delete,
        "bootstrap-insert" => Operation::Read,
        other if NOT_ROWS.contains(&other) => {
            return Ok(Decoded::Ignored(format!("a Maxwell {other} record")));
        }
        other => return Err(unknown_operation(FORMAT, other)),
    };
    let table = required(FORMAT, record, "table", "table")?;
    let data = row(FORMAT, record.get("data"), "data")?;
    let old = row(FORMAT, record.get("old"), "old")?;
    // `old` holds the previous values of the changed columns only: over
    // `data` it is the whole row before.
    let (before, after, before_image) = match operation {
        Operation::Delete => (data, None, BeforeImage::Full),
        Operation::Update => {
            let before = data.as_ref().map(|data| {
                let mut before = data.clone();
                before.extend(old.clone().unwrap_or_default());
                before
            });
            (before, data, BeforeImage::Full)
        }
        _ => (None, data, BeforeImage::None),
    };
    let transaction_id = text(record, "xid");
    let sequence = match record.get("xoffset").and_then(Value::as_u64) {
        Some(n) => n,
        None => decoder.sequence(transaction_id.as_deref()),
    };
    let millis = record.get("ts_ms").and_then(Value::as_i64).or_else(|| {
        record
            .get("ts")
            .and_then(Value::as_i64)
            .and_then(|s| s.checked_mul(1000))
    });
    let primary_key = primary_key(record, after.as_ref().or(before.as_ref()));
    Ok(Decoded::Change(Box::new(ChangeEvent {
        timestamp: millis.and_then(rfc3339_from_millis),
        database: text(record, "database"),
        schema: None,
        table,
        operation,
        before,
        after,
        before_image,
        primary_key,
        transaction_id,
        position: text(record, "position"),
        sequence,
        change_type: ChangeType::GeneralUpdate,
        changed_columns: None,
    })))
}

/// `primary_key_columns` with `primary_key` values (or the row's values).
fn primary_key(record: &serde_json::Map<String, Value>, image: Option<&Row>) -> Option<Row> {
    let columns: Vec<&str> = record
        .get("primary_key_columns")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let values = record.get("primary_key").and_then(Value::as_array);
    columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let value = match values {
                Some(values) => values.get(i)?.clone(),
                None => image?.get(*column)?.clone(),
            };
            Some(((*column).to_owned(), value))
        })
        .collect()
}
