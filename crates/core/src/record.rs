//! What a source's input becomes: a [`Record`] of one [`SourceName`].

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use shardline_partition_key::{ExplicitHashKey, PartitionKey};

/// The name of the source a record came from (`web_logs`, `iot_sensors`,
/// `database_cdc`, …): counted separately in the statistics and written
/// into dead letters. Cheap to clone.
#[derive(Debug, Clone, Eq, PartialOrd, Ord)]
pub struct SourceName(Arc<str>);

/// The same name; the clones of one name (every record of a source) are
/// told equal without comparing their text.
impl PartialEq for SourceName {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

/// The text's hash, as equality is the text's.
impl std::hash::Hash for SourceName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl SourceName {
    pub fn new(name: &str) -> Self {
        SourceName(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SourceName {
    fn from(name: &str) -> Self {
        SourceName::new(name)
    }
}

/// One record to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub data: Bytes,
    pub partition_key: PartitionKey,
    pub explicit_hash_key: Option<ExplicitHashKey>,
    pub source: SourceName,
}

impl Record {
    /// A record with data, key and source, and no explicit hash key.
    pub fn new(data: impl Into<Bytes>, partition_key: PartitionKey, source: SourceName) -> Self {
        Record {
            data: data.into(),
            partition_key,
            explicit_hash_key: None,
            source,
        }
    }
}
