//! Decoders: one JSON document (one line) in a CDC tool's format → one
//! [`Decoded`] item.

mod debezium;
mod dms;
mod maxwell;
mod wal2json;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::classify::Classifier;
use crate::event::{ChangeEvent, Row};

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Debezium's change event value, with or without the schema wrapper.
    Debezium,
    /// AWS DMS JSON (`data` + `metadata`).
    Dms,
    /// Maxwell's daemon JSON.
    Maxwell,
    /// wal2json `format-version` 2, one change per line.
    Wal2json,
    /// shardline's own normalized JSON.
    Shardline,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Debezium => "debezium",
            Format::Dms => "dms",
            Format::Maxwell => "maxwell",
            Format::Wal2json => "wal2json",
            Format::Shardline => "shardline",
        })
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "debezium" => Format::Debezium,
            "dms" => Format::Dms,
            "maxwell" => Format::Maxwell,
            "wal2json" => Format::Wal2json,
            "shardline" => Format::Shardline,
            other => {
                return Err(format!(
                    "unknown input format {other:?}: debezium, dms, maxwell, wal2json or shardline"
                ));
            }
        })
    }
}

/// What one input line was.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A row change.
    Change(Box<ChangeEvent>),
    /// A transaction began (wal2json `B`).
    Begin {
        /// The transaction's id, where the format has one.
        transaction_id: Option<String>,
        /// The log position (LSN, binlog file:pos), where known.
        position: Option<String>,
    },
    /// A transaction committed (wal2json `C`, Maxwell's `commit: true` comes
    /// with its last change instead). `position` is where reading resumes
    /// after it.
    Commit {
        /// The transaction's id, where the format has one.
        transaction_id: Option<String>,
        /// The log position (LSN, binlog file:pos), where known.
        position: Option<String>,
    },
    /// Nothing to forward (a DDL or control record, a heartbeat, a
    /// logical-decoding message); why.
    Ignored(String),
}

/// Why a line could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The line is not JSON.
    #[error("{format}: not JSON: {source}")]
    Json {
        /// The format being decoded.
        format: Format,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// A field the format requires is missing.
    #[error("{format}: missing {field}")]
    Missing {
        /// The format being decoded.
        format: Format,
        /// The field, by its name in the format.
        field: &'static str,
    },
    /// A field holds the wrong kind of value.
    #[error("{format}: {field} is not {expected}")]
    Invalid {
        /// The format being decoded.
        format: Format,
        /// The field, by its name in the format.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// The operation is none the format defines.
    #[error("{format}: unknown operation {operation:?}")]
    UnknownOperation {
        /// The format being decoded.
        format: Format,
        /// The operation as written.
        operation: String,
    },
}

/// Key columns per table (`schema.table` or `table`), for formats that do
/// not carry them (Debezium values, DMS).
pub type KeyColumns = BTreeMap<String, Vec<String>>;

/// Turns lines into [`Decoded`] items; keeps what a format spreads over
/// lines (wal2json's transaction, each transaction's sequence numbers).
#[derive(Debug, Clone)]
pub struct Decoder {
    format: Format,
    classifier: Classifier,
    key_columns: KeyColumns,
    transaction: Option<String>,
    timestamp: Option<String>,
    next_sequence: u64,
}

impl Decoder {
    /// A decoder for `format`, with no classifier and no key columns.
    pub fn new(format: Format) -> Self {
        Decoder {
            format,
            classifier: Classifier::new(),
            key_columns: KeyColumns::new(),
            transaction: None,
            timestamp: None,
            next_sequence: 0,
        }
    }

    /// Classify updates with these critical columns.
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// Key columns for tables whose format does not say.
    pub fn key_columns(mut self, key_columns: KeyColumns) -> Self {
        self.key_columns = key_columns;
        self
    }

    /// The format it decodes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Decodes one line (one JSON document). Never panics, whatever the
    /// input.
    pub fn decode(&mut self, line: &[u8]) -> Result<Decoded, DecodeError> {
        let value: Value = serde_json::from_slice(line).map_err(|source| DecodeError::Json {
            format: self.format,
            source,
        })?;
        let mut decoded = match self.format {
            Format::Debezium => debezium::decode(self, value)?,
            Format::Dms => dms::decode(self, value)?,
            Format::Maxwell => maxwell::decode(self, value)?,
            Format::Wal2json => wal2json::decode(self, value)?,
            Format::Shardline => Decoded::Change(Box::new(serde_json::from_value(value).map_err(
                |source| DecodeError::Json {
                    format: self.format,
                    source,
                },
            )?)),
        };
        if let Decoded::Change(event) = &mut decoded {
            if event.primary_key.is_none() {
                event.primary_key = self.configured_key(event);
            }
            if self.format != Format::Shardline {
                self.classifier.classify(event);
            }
        }
        Ok(decoded)
    }

    /// The next sequence number within `transaction`: restarts at 0 when
    /// the transaction changes.
    fn sequence(&mut self, transaction: Option<&str>) -> u64 {
        if transaction.is_none() || transaction != self.transaction.as_deref() {
            self.transaction = transaction.map(str::to_owned);
            self.next_sequence = 0;
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        sequence
    }

    fn configured_key(&self, event: &ChangeEvent) -> Option<Row> {
        let columns = event
            .schema
            .as_ref()
            .or(event.database.as_ref())
            .and_then(|s| self.key_columns.get(&format!("{s}.{}", event.table)))
            .or_else(|| self.key_columns.get(&event.table))?;
        key_of(columns, event.after.as_ref().or(event.before.as_ref()))
    }
}

/// The document as an object, or an error naming the format.
fn object(format: Format, value: Value) -> Result<Map<String, Value>, DecodeError> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(DecodeError::Invalid {
            format,
            field: "record",
            expected: "an object",
        }),
    }
}

/// A field that must be there, as text.
fn required(
    format: Format,
    object: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<String, DecodeError> {
    text(object, key).ok_or(DecodeError::Missing { format, field })
}

fn unknown_operation(format: Format, operation: &str) -> DecodeError {
    DecodeError::UnknownOperation {
        format,
        operation: operation.to_owned(),
    }
}

/// The values of key `columns` in `image`; `None` if any is missing.
fn key_of(columns: &[String], image: Option<&Row>) -> Option<Row> {
    let image = image?;
    columns
        .iter()
        .map(|c| Some((c.clone(), image.get(c)?.clone())))
        .collect()
}

/// A JSON object field as a string, if present and a string or number.
fn text(object: &Map<String, Value>, field: &str) -> Option<String> {
    match object.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A row image from a JSON object (`null` or absent: none).
fn row(
    format: Format,
    value: Option<&Value>,
    field: &'static str,
) -> Result<Option<Row>, DecodeError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        )),
        Some(_) => Err(DecodeError::Invalid {
            format,
            field,
            expected: "an object",
        }),
    }
}

/// Milliseconds since the epoch → RFC 3339 (UTC).
pub(crate) fn rfc3339_from_millis(ms: i64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// RFC 3339 → milliseconds since the epoch.
pub(crate) fn millis_from_rfc3339(text: &str) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// PostgreSQL's timestamptz text, as wal2json writes commit times
/// (`2024-01-15 10:30:45.123456+00`), as milliseconds since the epoch.
///
/// ```
/// use shardline_cdc::decode::postgres_time_millis;
/// assert_eq!(postgres_time_millis("2024-01-15 10:30:45.123456+00"), Some(1_705_314_645_123));
/// assert_eq!(postgres_time_millis("2024-01-15 19:30:45+09"), Some(1_705_314_645_000));
/// assert_eq!(postgres_time_millis("yesterday"), None);
/// ```
pub fn postgres_time_millis(text: &str) -> Option<i64> {
    millis_from_rfc3339(&wal2json::rfc3339(text))
}

/// A PostgreSQL LSN as PostgreSQL prints it (`16/B374D848`).
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Parses `16/B374D848`.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    let high = u32::from_str_radix(high, 16).ok()?;
    let low = u32::from_str_radix(low, 16).ok()?;
    Some((u64::from(high) << 32) | u64::from(low))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_and_times() {
        assert_eq!(lsn_text(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("x/1"), None);
        let t = rfc3339_from_millis(1_705_314_645_123).unwrap();
        assert_eq!(t, "2024-01-15T10:30:45.123Z");
        assert_eq!(millis_from_rfc3339(&t), Some(1_705_314_645_123));
    }
}
