//! wal2json `format-version` 2: one JSON object per line — `B` (begin),
//! `I` / `U` / `D` (row changes), `T` (truncate), `M` (message), `C`
//! (commit). With `include-xids`, `include-timestamp`, `include-lsn` and
//! `include-pk`, changes carry their transaction, time, position and key
//! columns.

use serde_json::{Map, Value};

use super::{
    DecodeError, Decoded, Decoder, Format, key_of, object, required, text, unknown_operation,
};
use crate::event::{BeforeImage, ChangeEvent, ChangeType, Operation, Row};

const FORMAT: Format = Format::Wal2json;

pub(super) fn decode(decoder: &mut Decoder, value: Value) -> Result<Decoded, DecodeError> {
    let record = &object(FORMAT, value)?;
    let action = required(FORMAT, record, "action", "action")?;
    let xid = text(record, "xid");
    let position = text(record, "nextlsn").or_else(|| text(record, "lsn"));
    let operation = match action.as_str() {
        "B" => {
            decoder.transaction = xid.clone();
            decoder.timestamp = text(record, "timestamp").map(|t| rfc3339(&t));
            decoder.next_sequence = 0;
            return Ok(Decoded::Begin {
                transaction_id: xid,
                position: text(record, "lsn"),
            });
        }
        "C" => {
            let transaction_id = xid.or_else(|| decoder.transaction.take());
            decoder.timestamp = None;
            return Ok(Decoded::Commit {
                transaction_id,
                position,
            });
        }
        "M" => return Ok(Decoded::Ignored("a logical decoding message".into())),
        "I" => Operation::Insert,
        "U" => Operation::Update,
        "D" => Operation::Delete,
        "T" => Operation::Truncate,
        other => return Err(unknown_operation(FORMAT, other)),
    };
    let table = required(FORMAT, record, "table", "table")?;
    let columns = columns(record.get("columns"), "columns")?;
    let identity = columns_or_none(record.get("identity"), "identity")?;
    let pk: Option<Vec<String>> = record.get("pk").and_then(Value::as_array).map(|pk| {
        pk.iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    });
    let transaction_id = xid.or_else(|| decoder.transaction.clone());
    let sequence = decoder.sequence(transaction_id.as_deref());
    let (before, after) = match operation {
        Operation::Insert => (None, Some(columns)),
        Operation::Update => (identity, Some(columns)),
        Operation::Delete => (identity, None),
        _ => (None, None),
    };
    let before_image = match (&before, &after, &pk) {
        (None, _, _) => BeforeImage::None,
        (Some(before), _, Some(pk)) if before.keys().all(|c| pk.contains(c)) => {
            BeforeImage::KeyOnly
        }
        (Some(before), Some(after), _) if after.keys().any(|c| !before.contains_key(c)) => {
            BeforeImage::KeyOnly
        }
        _ => BeforeImage::Full,
    };
    let primary_key = pk
        .as_ref()
        .and_then(|pk| key_of(pk, after.as_ref().or(before.as_ref())));
    Ok(Decoded::Change(Box::new(ChangeEvent {
        timestamp: text(record, "timestamp")
            .map(|t| rfc3339(&t))
            .or_else(|| decoder.timestamp.clone()),
        database: None,
        schema: text(record, "schema"),
        table,
        operation,
        before,
        after,
        before_image,
        primary_key,
        transaction_id,
        position: text(record, "lsn"),
        sequence,
        change_type: ChangeType::GeneralUpdate,
        changed_columns: None,
    })))
}

/// `[{"name", "type", "value"}]` → row.
fn columns(value: Option<&Value>, field: &'static str) -> Result<Row, DecodeError> {
    Ok(columns_or_none(value, field)?.unwrap_or_default())
}

fn columns_or_none(value: Option<&Value>, field: &'static str) -> Result<Option<Row>, DecodeError> {
    let invalid = DecodeError::Invalid {
        format: FORMAT,
        field,
        expected: "a list of {name, value} objects",
    };
    let list = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid),
    };
    let mut row = Row::new();
    for column in list {
        let column: &Map<String, Value> = column.as_object().ok_or(DecodeError::Invalid {
            format: FORMAT,
            field,
            expected: "a list of {name, value} objects",
        })?;
        let name = text(column, "name").ok_or(DecodeError::Missing {
            format: FORMAT,
            field: "column name",
        })?;
        row.insert(name, column.get("value").cloned().unwrap_or(Value::Null));
    }
    Ok(Some(row))
}

/// PostgreSQL's timestamptz text (`2024-01-15 10:30:45.123456+00`) as
/// RFC 3339 (`2024-01-15T10:30:45.123456+00:00`); other text unchanged.
pub(super) fn rfc3339(text: &str) -> String {
    let Some((date, time)) = text.split_once(' ') else {
        return text.to_owned();
    };
    let split = time.rfind(['+', '-']);
    let (clock, offset) = match split {
        Some(i) if i > 0 => time.split_at(i),
        _ => return format!("{date}T{time}"),
    };
    let offset = match offset.len() {
        3 => format!("{offset}:00"),
        5 if !offset.contains(':') => match (offset.get(..3), offset.get(3..)) {
            (Some(hours), Some(minutes)) => format!("{hours}:{minutes}"),
            _ => offset.to_owned(),
        },
        _ => offset.to_owned(),
    };
    format!("{date}T{clock}{offset}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_times_become_rfc3339() {
        assert_eq!(
            super::rfc3339("2024-01-15 10:30:45.123456+00"),
            "2024-01-15T10:30:45.123456+00:00"
        );
        assert_eq!(
            super::rfc3339("2024-01-15 19:30:45+0930"),
            "2024-01-15T19:30:45+09:30"
        );
        assert_eq!(super::rfc3339("garbage"), "garbage");
    }
}
