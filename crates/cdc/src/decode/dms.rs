//! AWS DMS JSON records for a Kinesis target: `{"data", "metadata"}`, with
//! `before-image` when `BeforeImageSettings` asks for it.

use serde_json::Value;

use super::{
    DecodeError, Decoded, Decoder, Format, object, required, row, text, unknown_operation,
};
use crate::event::{BeforeImage, ChangeEvent, ChangeType, Operation};

const FORMAT: Format = Format::Dms;

pub(super) fn decode(decoder: &mut Decoder, value: Value) -> Result<Decoded, DecodeError> {
    let record = &object(FORMAT, value)?;
    let metadata =
        record
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or(DecodeError::Missing {
                format: FORMAT,
                field: "metadata",
            })?;
    let record_type = text(metadata, "record-type").unwrap_or_default();
    if record_type != "data" {
        return Ok(Decoded::Ignored(format!("a DMS {record_type:?} record")));
    }
    let op = required(FORMAT, metadata, "operation", "metadata.operation")?;
    let operation = match op.as_str() {
        "insert" => Operation::Insert,
        "update" => Operation::Update,
        "delete" => Operation::Delete,
        "load" => Operation::Read,
        _ => return Err(unknown_operation(FORMAT, &op)),
    };
    let table = required(FORMAT, metadata, "table-name", "metadata.table-name")?;
    let data = row(FORMAT, record.get("data"), "data")?;
    let before_image = row(FORMAT, record.get("before-image"), "before-image")?;
    let (before, after) = match operation {
        Operation::Delete => (data, None),
        _ => (before_image, data),
    };
    let transaction_id = text(metadata, "transaction-id");
    let sequence = match metadata
        .get("transaction-record-id")
        .and_then(Value::as_u64)
    {
        Some(n) => n,
        None => decoder.sequence(transaction_id.as_deref()),
    };
    Ok(Decoded::Change(Box::new(ChangeEvent {
        timestamp: text(metadata, "commit-timestamp").or_else(|| text(metadata, "timestamp")),
        database: None,
        schema: text(metadata, "schema-name"),
        table,
        operation,
        before_image: if before.is_some() {
            BeforeImage::Full
        } else {
            BeforeImage::None
        },
        before,
        after,
        primary_key: None,
        transaction_id,
        position: text(metadata, "stream-position"),
        sequence,
        change_type: ChangeType::GeneralUpdate,
        changed_columns: None,
    })))
}
