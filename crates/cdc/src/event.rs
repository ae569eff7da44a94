//! The normalized change event.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A row image: column name → value. A column a source left out (an
/// unchanged TOAST value) is absent — never `null`.
pub type Row = BTreeMap<String, Value>;

/// What happened to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// A row was added.
    Insert,
    /// A row changed.
    Update,
    /// A row was removed.
    Delete,
    /// The whole table was emptied (no row images).
    Truncate,
    /// A row read by an initial snapshot (Debezium `r`, DMS `load`, Maxwell
    /// `bootstrap-insert`).
    Read,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Insert => "INSERT",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Truncate => "TRUNCATE",
            Operation::Read => "READ",
        })
    }
}

/// What kind of change an event is: a new record, a record deleted, a
/// critical field change, a general update, and the rest (truncate,
/// snapshot read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    /// An insert.
    NewRecord,
    /// A delete.
    RecordDeleted,
    /// An update in which a configured critical column changed.
    CriticalFieldChange,
    /// An update in which no critical column changed.
    GeneralUpdate,
    /// An update of a table with critical columns whose before image lacks
    /// them (no `REPLICA IDENTITY FULL`): whether one changed is unknown,
    /// and is not guessed.
    UnclassifiedUpdate,
    /// A truncate.
    TableTruncated,
    /// A row read by an initial snapshot.
    SnapshotRead,
}

impl ChangeType {
    /// The name in the JSON (`new_record`, `critical_field_change`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::NewRecord => "new_record",
            ChangeType::RecordDeleted => "record_deleted",
            ChangeType::CriticalFieldChange => "critical_field_change",
            ChangeType::GeneralUpdate => "general_update",
            ChangeType::UnclassifiedUpdate => "unclassified_update",
            ChangeType::TableTruncated => "table_truncated",
            ChangeType::SnapshotRead => "snapshot_read",
        }
    }
}

/// How much of the row before an update or delete the source gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BeforeImage {
    /// Every column (PostgreSQL `REPLICA IDENTITY FULL`, MySQL binlog
    /// images, Maxwell's `old` over `data`).
    Full,
    /// The replica identity only: the key columns.
    KeyOnly,
    /// Nothing (an insert, or a source that sends no before image).
    None,
}

/// One row change, whatever format it came in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// When the change was committed, RFC 3339, where the source says.
    pub timestamp: Option<String>,
    /// The database, where the source names it.
    pub database: Option<String>,
    /// The schema (PostgreSQL), where the source names it.
    pub schema: Option<String>,
    /// The table.
    pub table: String,
    /// What happened to the row.
    pub operation: Operation,
    /// The row before the change (updates, deletes), as far as the source gives it.
    pub before: Option<Row>,
    /// The row after the change (inserts, updates).
    pub after: Option<Row>,
    /// How much of the row `before` holds.
    pub before_image: BeforeImage,
    /// Key columns and their values, where known.
    pub primary_key: Option<Row>,
    /// The transaction, where the source names it.
    pub transaction_id: Option<String>,
    /// LSN (`16/B374D848`) or binlog `file:pos`.
    pub position: Option<String>,
    /// The change's index within its transaction, from 0.
    pub sequence: u64,
    /// How the change is classified.
    pub change_type: ChangeType,
    /// For updates: the columns whose value changed, when the before image
    /// tells; `None` when it cannot.
    pub changed_columns: Option<Vec<String>>,
}

impl ChangeEvent {
    /// `schema.table` (`database.table` for MySQL sources, which have no
    /// schema), or the table alone.
    pub fn qualified_table(&self) -> String {
        match self.schema.as_ref().or(self.database.as_ref()) {
            Some(qualifier) => format!("{qualifier}.{}", self.table),
            None => self.table.clone(),
        }
    }

    /// The key columns' values as one string (`col=value,...`), for
    /// partition keys: stable for a row across its changes.
    pub fn primary_key_text(&self) -> Option<String> {
        let pk = self.primary_key.as_ref()?;
        if pk.is_empty() {
            return None;
        }
        Some(
            pk.iter()
                .map(|(column, value)| match value {
                    Value::String(s) => format!("{column}={s}"),
                    other => format!("{column}={other}"),
                })
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::ChangeType;

    #[test]
    fn a_change_types_name_is_its_json() {
        for change_type in [
            ChangeType::NewRecord,
            ChangeType::RecordDeleted,
            ChangeType::CriticalFieldChange,
            ChangeType::GeneralUpdate,
            ChangeType::UnclassifiedUpdate,
            ChangeType::TableTruncated,
            ChangeType::SnapshotRead,
        ] {
            let json = serde_json::to_string(&change_type).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", change_type.as_str()));
        }
    }
}
