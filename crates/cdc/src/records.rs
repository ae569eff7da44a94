//! Change lines → records: decode, filter tables, key, encode — the
//! [`Process`] step of every CDC pipeline.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use std::borrow::Cow;

use shardline_core::{Origin, Process, Processed, Record, SourceName};
use shardline_partition_key::{
    Fields, KeyChoice, PartitionKey, PartitionKeyStrategy, RowKey, StrategyError, TransactionKey,
};

use crate::decode::{Decoded, Decoder};
use crate::encode;
use crate::event::ChangeEvent;
use crate::tables::TableFilter;

/// How a change is keyed (`--partition-key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyBy {
    /// `<schema.table>:<primary key>` — each row's changes on one shard,
    /// in order (default). A row without a key falls back to the table.
    #[default]
    PrimaryKey,
    /// `<schema.table>` — a table's changes in order on one shard (hot).
    Table,
    /// `<schema.table>:<transaction id>` — a
    /// transaction's changes together; one row's changes in different
    /// transactions may be read out of order, and a large transaction
    /// loads one shard.
    TableTransaction,
}

impl FromStr for KeyBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pk" => Ok(KeyBy::PrimaryKey),
            "table" => Ok(KeyBy::Table),
            "table-txid" => Ok(KeyBy::TableTransaction),
            other => Err(format!(
                "unknown partition key {other:?}: pk, table or table-txid"
            )),
        }
    }
}

impl fmt::Display for KeyBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyBy::PrimaryKey => "pk",
            KeyBy::Table => "table",
            KeyBy::TableTransaction => "table-txid",
        })
    }
}

/// A change's fields for key strategies and shard reports: `table`
/// (`schema.table`), `primary_key` (`col=value,...`), `transaction_id`,
/// `operation`, and `after.<column>` / `before.<column>`.
impl Fields for ChangeEvent {
    fn text(&self, path: &str) -> Option<Cow<'_, str>> {
        let column = |image: &Option<crate::Row>, column: &str| match image.as_ref()?.get(column)? {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(Cow::Owned(s.clone())),
            other => Some(Cow::Owned(other.to_string())),
        };
        match path {
            "table" => Some(Cow::Owned(self.qualified_table())),
            "primary_key" => self.primary_key_text().map(Cow::Owned),
            "transaction_id" => self.transaction_id.as_deref().map(Cow::Borrowed),
            "operation" => Some(Cow::Owned(self.operation.to_string())),
            _ => match path.split_once('.') {
                Some(("after", name)) => column(&self.after, name),
                Some(("before", name)) => column(&self.before, name),
                _ => None,
            },
        }
    }
}

/// The three CDC strategies over a change's [`Fields`]; a row without a
/// key falls back to its table under [`KeyBy::PrimaryKey`].
impl PartitionKeyStrategy for KeyBy {
    fn name(&self) -> &'static str {
        match self {
            KeyBy::PrimaryKey => "table+pk",
            KeyBy::Table => "table",
            KeyBy::TableTransaction => "table+txid",
        }
    }

    fn key(&self, record: &dyn Fields) -> Result<KeyChoice, StrategyError> {
        let by_table = || -> Result<KeyChoice, StrategyError> {
            let table = record.text("table").ok_or(StrategyError::MissingField {
                strategy: "table",
                field: "table".into(),
            })?;
            Ok(KeyChoice {
                partition_key: PartitionKey::new_or_hashed(&table),
                explicit_hash_key: None,
            })
        };
        match self {
            KeyBy::Table => by_table(),
            KeyBy::PrimaryKey if record.text("primary_key").is_none() => by_table(),
            KeyBy::PrimaryKey => RowKey {
                table_field: "table".into(),
                key_fields: vec!["primary_key".into()],
            }
            .key(record),
            KeyBy::TableTransaction => TransactionKey {
                table_field: "table".into(),
                transaction_field: "transaction_id".into(),
            }
            .key(record),
        }
    }
}

/// The JSON a record carries (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// shardline's normalized event (`docs/cdc.md`).
    #[default]
    Normalized,
    /// The Debezium envelope.
    Debezium,
}

impl FromStr for Encoding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normalized" | "shardline" => Ok(Encoding::Normalized),
            "debezium" => Ok(Encoding::Debezium),
            other => Err(format!("unknown output {other:?}: normalized or debezium")),
        }
    }
}

/// Decodes change lines in read order and makes one record per change:
/// Begin / Commit / ignored lines and filtered tables are skipped, lines
/// that do not decode are rejected (dead-lettered with the reason).
#[derive(Debug)]
pub struct ChangeRecords {
    decoder: Mutex<Decoder>,
    tables: TableFilter,
    key_by: KeyBy,
    encoding: Encoding,
    source: SourceName,
    keyless_tables: Mutex<BTreeSet<String>>,
}

impl ChangeRecords {
    /// The step for changes decoded by `decoder`, counted under `source`: every
    /// table, keyed by row, encoded as shardline's JSON.
    pub fn new(decoder: Decoder, source: SourceName) -> Self {
        ChangeRecords {
            decoder: Mutex::new(decoder),
            tables: TableFilter::default(),
            key_by: KeyBy::default(),
            encoding: Encoding::default(),
            source,
            keyless_tables: Mutex::new(BTreeSet::new()),
        }
    }

    /// Only the changes of these tables.
    pub fn tables(mut self, tables: TableFilter) -> Self {
        self.tables = tables;
        self
    }

    /// How records are keyed.
    pub fn key_by(mut self, key_by: KeyBy) -> Self {
        self.key_by = key_by;
        self
    }

    /// How records are written.
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The record of one event, or why it has no key.
    pub fn record(&self, event: &ChangeEvent) -> Result<Record, StrategyError> {
        let key = self.key(event)?;
        let data = match self.encoding {
            Encoding::Normalized => encode::to_json(event),
            Encoding::Debezium => {
                serde_json::to_vec(&encode::to_debezium(event)).unwrap_or_default()
            }
        };
        Ok(Record::from_source(self.source.clone(), key, data))
    }

    fn key(&self, event: &ChangeEvent) -> Result<PartitionKey, StrategyError> {
        // Checked on the map itself: no key text is built twice per change.
        if self.key_by == KeyBy::PrimaryKey
            && event.primary_key.as_ref().is_none_or(|key| key.is_empty())
        {
            self.keyless(event);
        }
        Ok(self.key_by.key(event)?.partition_key)
    }

    /// Says once per table that its rows have no key.
    fn keyless(&self, event: &ChangeEvent) {
        let table = event.qualified_table();
        let mut seen = self
            .keyless_tables
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if seen.insert(table.clone()) {
            tracing::warn!(
                "{table}: changes carry no primary key; keyed by the table instead (one shard, in order)"
            );
        }
    }
}

impl Process for ChangeRecords {
    fn process(&self, data: &[u8], _origin: Origin<'_>) -> Processed {
        let decoded = {
            let mut decoder = self.decoder.lock().unwrap_or_else(|e| e.into_inner());
            decoder.decode(data)
        };
        match decoded {
            Ok(Decoded::Change(event)) if self.tables.allows_event(&event) => {
                match self.record(&event) {
                    Ok(record) => Processed::Record(record),
                    Err(e) => Processed::Rejected(e.to_string()),
                }
            }
            Ok(_) => Processed::Skip,
            Err(e) => Processed::Rejected(e.to_string()),
        }
    }

    fn sequential(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Format;

    fn records(key_by: KeyBy) -> ChangeRecords {
        ChangeRecords::new(Decoder::new(Format::Wal2json), SourceName::new("db"))
            .key_by(key_by)
            .tables(TableFilter::parse("public.*", "public.secrets").unwrap())
    }

    const BEGIN: &[u8] = br#"{"action":"B","xid":9,"lsn":"0/10","nextlsn":"0/90"}"#;
    const INSERT: &[u8] = br#"{"action":"I","xid":9,"lsn":"0/20","schema":"public","table":"t","columns":[{"name":"id","type":"integer","value":1}],"pk":[{"name":"id","type":"integer"}]}"#;
    const KEYLESS: &[u8] = br#"{"action":"I","xid":9,"lsn":"0/30","schema":"public","table":"log","columns":[{"name":"m","type":"text","value":"x"}]}"#;
    const SECRET: &[u8] = br#"{"action":"I","xid":9,"lsn":"0/40","schema":"public","table":"secrets","columns":[{"name":"id","type":"integer","value":1}]}"#;

    fn key(processed: Processed) -> String {
        match processed {
            Processed::Record(record) => record.partition_key.as_str().to_owned(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn keys_filters_and_rejections() {
        let by_pk = records(KeyBy::PrimaryKey);
        assert!(matches!(
            by_pk.process(BEGIN, Origin::default()),
            Processed::Skip
        ));
        assert_eq!(
            key(by_pk.process(INSERT, Origin::default())),
            "public.t:id=1"
        );
        assert_eq!(key(by_pk.process(KEYLESS, Origin::default())), "public.log");
        assert!(matches!(
            by_pk.process(SECRET, Origin::default()),
            Processed::Skip
        ));
        assert!(matches!(
            by_pk.process(b"{not json", Origin::default()),
            Processed::Rejected(_)
        ));
        let by_txid = records(KeyBy::TableTransaction);
        assert_eq!(
            key(by_txid.process(INSERT, Origin::default())),
            "public.t:9"
        );
        let by_table = records(KeyBy::Table);
        assert_eq!(key(by_table.process(INSERT, Origin::default())), "public.t");
        assert!(by_pk.sequential());
    }

    #[test]
    fn records_carry_the_chosen_encoding() {
        let debezium = records(KeyBy::PrimaryKey).encoding(Encoding::Debezium);
        let Processed::Record(record) = debezium.process(INSERT, Origin::default()) else {
            panic!("no record")
        };
        let value: serde_json::Value = serde_json::from_slice(&record.data).unwrap();
        assert_eq!(value["op"], "c");
        assert_eq!(value["after"]["id"], 1);
        let Processed::Record(record) =
            records(KeyBy::PrimaryKey).process(INSERT, Origin::default())
        else {
            panic!("no record")
        };
        let event: ChangeEvent = serde_json::from_slice(&record.data).unwrap();
        assert_eq!(event.table, "t");
        assert_eq!(event.transaction_id.as_deref(), Some("9"));
    }
}
