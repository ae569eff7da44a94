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
    /// The name records get when their sender names no source.
    pub const DEFAULT: &'static str = "default";

    /// A source called `name`.
    pub fn new(name: &str) -> Self {
        SourceName(Arc::from(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// [`SourceName::DEFAULT`]; every default name shares one allocation.
impl Default for SourceName {
    fn default() -> Self {
        static DEFAULT: std::sync::LazyLock<SourceName> =
            std::sync::LazyLock::new(|| SourceName::new(SourceName::DEFAULT));
        DEFAULT.clone()
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

/// One record to deliver: data, the partition key that picks its shard,
/// an optional explicit hash key that overrides the key's hash, and the
/// source it is counted under.
///
/// ```
/// use shardline_core::{PartitionKey, Record, SourceName};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let record = Record::new(PartitionKey::new("order-1")?, "{\"order\":1}");
/// assert_eq!(record.source.as_str(), "default");
///
/// let web = SourceName::new("web_logs");
/// let record = Record::from_source(web.clone(), PartitionKey::new("10.0.0.1")?, "GET /");
/// assert_eq!(record.source, web);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The payload, sent as is.
    pub data: Bytes,
    /// Picks the shard (its MD5 hash, unless `explicit_hash_key` is set).
    pub partition_key: PartitionKey,
    /// Picks the shard directly, overriding the partition key's hash.
    pub explicit_hash_key: Option<ExplicitHashKey>,
    /// The source it is counted under in the statistics and dead letters.
    pub source: SourceName,
}

impl Record {
    /// A record of the default source ([`SourceName::DEFAULT`]) with no
    /// explicit hash key.
    pub fn new(partition_key: PartitionKey, data: impl Into<Bytes>) -> Self {
        Record::from_source(SourceName::default(), partition_key, data)
    }

    /// A record of `source`, with no explicit hash key.
    pub fn from_source(
        source: SourceName,
        partition_key: PartitionKey,
        data: impl Into<Bytes>,
    ) -> Self {
        Record {
            data: data.into(),
            partition_key,
            explicit_hash_key: None,
            source,
        }
    }
}
