//! Debezium change event values: `{"before", "after", "source", "op",
//! "ts_ms", "transaction"}`, alone or inside `{"schema", "payload"}`.

use serde_json::{Map, Value};

use super::{DecodeError, Decoded, Decoder, Format, lsn_text, rfc3339_from_millis, row, text};
use crate::event::{BeforeImage, ChangeEvent, ChangeType, Operation, Row};

const FORMAT: Format = Format::Debezium;

/// What Debezium puts in place of a TOAST value the database did not send
/// (its default `unavailable.value.placeholder`).
pub(crate) const UNAVAILABLE_PLACEHOLDER: &str = "__debezium_unavailable_value";

pub(super) fn decode(decoder: &mut Decoder, value: Value) -> Result<Decoded, DecodeError> {
    let mut value = value;
    if let Value::Object(map) = &mut value
        && map.contains_key("payload")
        && map.contains_key("schema")
    {
        value = map.remove("payload").unwrap_or(Value::Null);
    }
    let payload = match value {
        Value::Null => return Ok(Decoded::Ignored("a tombstone (null value)".into())),
        Value::Object(map) => map,
        _ => {
            return Err(DecodeError::Invalid {
                format: FORMAT,
                field: "payload",
                expected: "an object",
            });
        }
    };
    let op = payload
        .get("op")
        .and_then(Value::as_str)
        .ok_or(DecodeError::Missing {
            format: FORMAT,
            field: "op",
        })?;
    let operation = match op {
        "c" => Operation::Insert,
        "u" => Operation::Update,
        "d" => Operation::Delete,
        "r" => Operation::Read,
        "t" => Operation::Truncate,
        "m" => return Ok(Decoded::Ignored("a logical decoding message".into())),
        other => {
            return Err(DecodeError::UnknownOperation {
                format: FORMAT,
                operation: other.to_owned(),
            });
        }
    };
    let empty = Map::new();
    let source = match payload.get("source") {
        Some(Value::Object(source)) => source,
        None | Some(Value::Null) => &empty,
        Some(_) => {
            return Err(DecodeError::Invalid {
                format: FORMAT,
                field: "source",
                expected: "an object",
            });
        }
    };
    let table = text(source, "table").ok_or(DecodeError::Missing {
        format: FORMAT,
        field: "source.table",
    })?;
    let transaction = payload.get("transaction").and_then(Value::as_object);
    let transaction_id = text(source, "txId")
        .or_else(|| text(source, "gtid"))
        .or_else(|| transaction.and_then(|t| text(t, "id")));
    let position = match source.get("lsn").and_then(Value::as_u64) {
        Some(lsn) => Some(lsn_text(lsn)),
        None => match (
            text(source, "file"),
            source.get("pos").and_then(Value::as_u64),
        ) {
            (Some(file), Some(pos)) => Some(format!("{file}:{pos}")),
            _ => None,
        },
    };
    let millis = source
        .get("ts_ms")
        .and_then(Value::as_i64)
        .or_else(|| payload.get("ts_ms").and_then(Value::as_i64));
    let sequence = match transaction
        .and_then(|t| t.get("total_order"))
        .and_then(Value::as_u64)
    {
        Some(order) => order.saturating_sub(1),
        None => decoder.sequence(transaction_id.as_deref()),
    };
    let mut before = row(FORMAT, payload.get("before"), "before")?;
    let mut after = row(FORMAT, payload.get("after"), "after")?;
    for image in [&mut before, &mut after].into_iter().flatten() {
        drop_unavailable(image);
    }
    let before_image = if before.is_some() {
        BeforeImage::Full
    } else {
        BeforeImage::None
    };
    Ok(Decoded::Change(Box::new(ChangeEvent {
        timestamp: millis.and_then(rfc3339_from_millis),
        database: text(source, "db"),
        schema: text(source, "schema"),
        table,
        operation,
        before,
        after,
        before_image,
        primary_key: None,
        transaction_id,
        position,
        sequence,
        change_type: ChangeType::GeneralUpdate,
        changed_columns: None,
    })))
}

/// A TOAST value the database did not send is left out: unchanged, not
/// the placeholder text.
fn drop_unavailable(image: &mut Row) {
    image.retain(|_, v| v.as_str() != Some(UNAVAILABLE_PLACEHOLDER));
}
