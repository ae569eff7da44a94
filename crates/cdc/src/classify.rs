//! Change classification: new record, record deleted, critical field
//! change, general update.

use std::collections::BTreeMap;

use crate::event::{BeforeImage, ChangeEvent, ChangeType, Operation};

/// A `--critical-fields` or `--key-columns` specification that does not
/// parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table columns {spec:?}: {reason} (expected 'schema.table:col1,col2;table2:col')")]
pub struct CriticalFieldsError {
    spec: String,
    reason: &'static str,
}

/// Classifies changes with the critical columns of each table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classifier {
    /// `schema.table` or `table` → critical columns.
    critical: BTreeMap<String, Vec<String>>,
}

impl Classifier {
    /// No critical columns: updates are general updates.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `schema.table:col1,col2;schema.table2:col` (the
    /// `--critical-fields` flag).
    ///
    /// ```
    /// let c = shardline_cdc::Classifier::parse("public.orders:status,amount;users:email").unwrap();
    /// assert_eq!(c.critical_columns(Some("public"), "orders"), ["status", "amount"]);
    /// assert_eq!(c.critical_columns(Some("app"), "users"), ["email"]);
    /// ```
    pub fn parse(spec: &str) -> Result<Self, CriticalFieldsError> {
        Ok(Classifier {
            critical: table_columns(spec)?,
        })
    }

    /// The critical columns of a table: those named for `schema.table`
    /// (`database.table` for MySQL), else for `table`.
    pub fn critical_columns(&self, schema: Option<&str>, table: &str) -> &[String] {
        schema
            .and_then(|s| self.critical.get(&format!("{s}.{table}")))
            .or_else(|| self.critical.get(table))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Sets `change_type` and `changed_columns`.
    pub fn classify(&self, event: &mut ChangeEvent) {
        event.changed_columns = None;
        event.change_type = match event.operation {
            Operation::Insert => ChangeType::NewRecord,
            Operation::Delete => ChangeType::RecordDeleted,
            Operation::Truncate => ChangeType::TableTruncated,
            Operation::Read => ChangeType::SnapshotRead,
            Operation::Update => {
                // MySQL has no schemas: its database is the qualifier.
                let qualifier = event.schema.as_deref().or(event.database.as_deref());
                let critical = self.critical_columns(qualifier, &event.table);
                self.classify_update(event, critical)
            }
        };
    }

    fn classify_update(&self, event: &mut ChangeEvent, critical: &[String]) -> ChangeType {
        let (Some(before), Some(after)) = (&event.before, &event.after) else {
            return if critical.is_empty() {
                ChangeType::GeneralUpdate
            } else {
                ChangeType::UnclassifiedUpdate
            };
        };
        // A column absent from the after image (unchanged TOAST) did not
        // change; one absent from the before image is unknown.
        let changed = |column: &str| -> Option<bool> {
            let new = after.get(column)?;
            Some(before.get(column)? != new)
        };
        if event.before_image == BeforeImage::Full {
            let columns: Vec<String> = after
                .keys()
                .filter(|c| changed(c) == Some(true))
                .cloned()
                .collect();
            let critical_changed = critical.iter().any(|c| columns.contains(c));
            event.changed_columns = Some(columns);
            return if critical_changed {
                ChangeType::CriticalFieldChange
            } else {
                ChangeType::GeneralUpdate
            };
        }
        let mut unknown = false;
        for column in critical {
            match (after.contains_key(column), before.contains_key(column)) {
                (true, true) if changed(column) == Some(true) => {
                    return ChangeType::CriticalFieldChange;
                }
                (true, false) => unknown = true,
                _ => {}
            }
        }
        if unknown {
            ChangeType::UnclassifiedUpdate
        } else {
            ChangeType::GeneralUpdate
        }
    }
}

/// `schema.table:col1,col2;table2:col` → table → columns (the form of
/// `--critical-fields` and `--key-columns`).
pub fn table_columns(spec: &str) -> Result<BTreeMap<String, Vec<String>>, CriticalFieldsError> {
    let error = |reason| CriticalFieldsError {
        spec: spec.to_owned(),
        reason,
    };
    let mut tables = BTreeMap::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (table, columns) = part
            .split_once(':')
            .ok_or_else(|| error("a table without ':'"))?;
        let table = table.trim();
        if table.is_empty() {
            return Err(error("an empty table name"));
        }
        let columns: Vec<String> = columns
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        if columns.is_empty() {
            return Err(error("a table without columns"));
        }
        tables
            .entry(table.to_owned())
            .or_insert_with(Vec::new)
            .extend(columns);
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Row;
    use serde_json::json;

    fn row(value: serde_json::Value) -> Row {
        serde_json::from_value(value).unwrap()
    }

    fn update(before: Option<Row>, image: BeforeImage, after: Row) -> ChangeEvent {
        ChangeEvent {
            timestamp: None,
            database: None,
            schema: Some("public".into()),
            table: "orders".into(),
            operation: Operation::Update,
            before,
            after: Some(after),
            before_image: image,
            primary_key: None,
            transaction_id: None,
            position: None,
            sequence: 0,
            change_type: ChangeType::GeneralUpdate,
            changed_columns: None,
        }
    }

    #[test]
    fn critical_change_general_update_and_unknown() {
        let c = Classifier::parse("public.orders:status").unwrap();
        let mut e = update(
            Some(row(json!({"id": 1, "status": "new", "note": "a"}))),
            BeforeImage::Full,
            row(json!({"id": 1, "status": "paid", "note": "a"})),
        );
        c.classify(&mut e);
        assert_eq!(e.change_type, ChangeType::CriticalFieldChange);
        assert_eq!(e.changed_columns, Some(vec!["status".to_owned()]));

        let mut e = update(
            Some(row(json!({"id": 1, "status": "new", "note": "a"}))),
            BeforeImage::Full,
            // `note` left out: an unchanged TOAST value, not a change.
            row(json!({"id": 1, "status": "new"})),
        );
        c.classify(&mut e);
        assert_eq!(e.change_type, ChangeType::GeneralUpdate);
        assert_eq!(e.changed_columns, Some(vec![]));

        let mut e = update(
            Some(row(json!({"id": 1}))),
            BeforeImage::KeyOnly,
            row(json!({"id": 1, "status": "paid"})),
        );
        c.classify(&mut e);
        assert_eq!(e.change_type, ChangeType::UnclassifiedUpdate);
        assert_eq!(e.changed_columns, None);

        // No critical columns for the table: nothing to guess.
        let mut e = update(None, BeforeImage::None, row(json!({"id": 1})));
        Classifier::new().classify(&mut e);
        assert_eq!(e.change_type, ChangeType::GeneralUpdate);
    }

    #[test]
    fn bad_specs_are_errors() {
        assert!(Classifier::parse("orders").is_err());
        assert!(Classifier::parse("orders:").is_err());
        assert!(Classifier::parse(":a").is_err());
        assert_eq!(Classifier::parse("").unwrap(), Classifier::new());
    }
}
