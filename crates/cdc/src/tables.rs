//! Table include / exclude filters: `schema.table`, `table`, `*.table`,
//! `schema.*` — the pattern form wal2json's `add-tables` takes.

use std::fmt;
use std::str::FromStr;

use crate::event::ChangeEvent;

/// One pattern: `schema.table` with `*` for a whole part; a bare `table`
/// matches that table in every schema (or database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    schema: Option<String>,
    table: String,
}

impl TablePattern {
    fn part_matches(pattern: &str, name: &str) -> bool {
        pattern == "*" || pattern == name
    }

    /// Whether a table in `schema` (a PostgreSQL schema or a MySQL
    /// database) matches.
    pub fn matches(&self, schema: Option<&str>, table: &str) -> bool {
        if !Self::part_matches(&self.table, table) {
            return false;
        }
        match (&self.schema, schema) {
            (None, _) => true,
            (Some(pattern), Some(schema)) => Self::part_matches(pattern, schema),
            (Some(pattern), None) => pattern == "*",
        }
    }

    /// The pattern as wal2json's `add-tables` / `filter-tables` want it:
    /// always schema-qualified.
    pub fn wal2json(&self) -> String {
        format!("{}.{}", self.schema.as_deref().unwrap_or("*"), self.table)
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

/// Why a table pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table pattern {pattern:?}: {reason}")]
pub struct TablePatternError {
    pattern: String,
    reason: &'static str,
}

impl FromStr for TablePattern {
    type Err = TablePatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| TablePatternError {
            pattern: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(error("empty"));
        }
        // wal2json separates patterns with commas and escapes with `\`;
        // names holding them (or spaces) are refused rather than guessed.
        if text.contains([',', '\\', ' ', '"']) {
            return Err(error(
                "names with `,`, `\\`, `\"` or spaces are not supported",
            ));
        }
        let (schema, table) = match text.split_once('.') {
            Some((schema, table)) => (Some(schema), table),
            None => (None, text),
        };
        if table.is_empty() || table.contains('.') || schema.is_some_and(str::is_empty) {
            return Err(error(
                "expected `schema.table`, `table`, `*.table` or `schema.*`",
            ));
        }
        Ok(TablePattern {
            schema: schema.map(str::to_owned),
            table: table.to_owned(),
        })
    }
}

/// Which tables to forward: those matching an include pattern (all when
/// there are none) and no exclude pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableFilter {
    /// Tables to keep; empty: every table.
    pub include: Vec<TablePattern>,
    /// Tables to drop, even if included.
    pub exclude: Vec<TablePattern>,
}

impl TableFilter {
    /// Comma-separated lists, as `--tables` and `--exclude-tables` take
    /// them.
    pub fn parse(include: &str, exclude: &str) -> Result<Self, TablePatternError> {
        fn list(text: &str) -> Result<Vec<TablePattern>, TablePatternError> {
            text.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::parse)
                .collect()
        }
        Ok(TableFilter {
            include: list(include)?,
            exclude: list(exclude)?,
        })
    }

    /// Whether it keeps every table.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether a change of `schema.table` is kept.
    pub fn allows(&self, schema: Option<&str>, table: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(schema, table)))
            && !self.exclude.iter().any(|p| p.matches(schema, table))
    }

    /// Whether an event's table passes (its schema, else its database).
    pub fn allows_event(&self, event: &ChangeEvent) -> bool {
        let schema = event.schema.as_deref().or(event.database.as_deref());
        self.allows(schema, &event.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_wal2json() {
        let filter =
            TableFilter::parse("public.orders, *.users, audit.*", "audit.secrets").unwrap();
        assert!(filter.allows(Some("public"), "orders"));
        assert!(!filter.allows(Some("shop"), "orders"));
        assert!(filter.allows(Some("shop"), "users"));
        assert!(filter.allows(Some("audit"), "log"));
        assert!(!filter.allows(Some("audit"), "secrets"));
        assert!(!filter.allows(None, "orders"));
        assert!(filter.allows(None, "users"));
        let bare: TablePattern = "orders".parse().unwrap();
        assert!(bare.matches(Some("any"), "orders"));
        assert_eq!(bare.wal2json(), "*.orders");
        assert!(TableFilter::parse("", "").unwrap().allows(Some("x"), "y"));
        for bad in ["a.b.c", ".t", "s.", "a,b\\", "has space"] {
            assert!(bad.parse::<TablePattern>().is_err(), "{bad}");
        }
    }
}
