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
    Insert,
    Update,
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
    NewRecord,
    RecordDeleted,
    /// An update in which a configured critical column changed.
    CriticalFieldChange,
    GeneralUpdate,
    /// An update of a table with critical columns whose before image lacks
    /// them (no `REPLICA IDENTITY FULL`): whether one changed is unknown,
    /// and is not guessed.
    UnclassifiedUpdate,
    TableTruncated,
    SnapshotRead,
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
    pub database: Option<String>,
    pub schema: Option<String>,
    pub table: String,
    pub operation: Operation,
    pub before: Option<Row>,
    pub after: Option<Row>,
    pub before_image: BeforeImage,
    /// Key columns and their values, where known.
    pub primary_key: Option<Row>,
    pub transaction_id: Option<String>,
    /// LSN (`16/B374D848`) or binlog `file:pos`.
    pub position: Option<String>,
    /// The change's index within its transaction, from 0.
    pub sequence: u64,
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
