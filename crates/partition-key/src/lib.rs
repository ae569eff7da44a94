//! Partition keys: valid by construction, chosen by a strategy per source,
//! and mapped to shards exactly as Kinesis does — with a report of how a
//! strategy would spread sample records before anything is deployed
//! ([`shard_report`]).
//!
//! A [`PartitionKey`] is 1 to 256 Unicode characters, checked when it is
//! built, so an invalid key cannot reach a `PutRecords` call. Kinesis hashes
//! it with MD5 into a 128-bit integer ([`hash_key`]) and stores the record in
//! the shard whose hash-key range holds that integer; an
//! [`ExplicitHashKey`] gives the integer directly.
//!
//! # Example
//!
//! ```
//! use shardline_partition_key::{PartitionKey, hash_key};
//!
//! let key = PartitionKey::new("web_logs:203.0.113.7")?;
//! assert_eq!(key.as_str(), "web_logs:203.0.113.7");
//! // The same key always lands in the same place of the hash-key space.
//! assert_eq!(hash_key(&key), hash_key(&PartitionKey::new("web_logs:203.0.113.7")?));
//!
//! assert!(PartitionKey::new("").is_err());
//! // A composite key that is too long is hashed, never cut.
//! let long = PartitionKey::new_or_hashed(&"x".repeat(300));
//! assert_eq!(long.as_str().len(), 32);
//! # Ok::<(), shardline_partition_key::KeyError>(())
//! ```

#![warn(missing_docs)]

mod report;
mod spec;
mod strategy;

pub use report::{
    HOT_KEY_FACTOR, HOT_SHARD_FACTOR, KeyShare, ShardReport, ShardShare, shard_report,
};
pub use spec::{KeySpec, KeySpecError};
pub use strategy::{
    ExplicitKey, FieldKey, Fields, FixedKey, IotKey, KeyChoice, PartitionKeyStrategy, RandomKey,
    RowKey, StrategyError, TransactionKey, WebLogKey,
};

use smol_str::SmolStr;
use std::fmt;

use md5::{Digest, Md5};

/// The longest partition key Kinesis accepts, in Unicode characters
/// (<https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html>).
pub const PARTITION_KEY_MAX_CHARS: usize = 256;

/// A key that cannot be a partition key or explicit hash key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is empty.
    #[error("a partition key must not be empty")]
    Empty,
    #[error(
        "a partition key has at most {PARTITION_KEY_MAX_CHARS} characters; this one has {chars}"
    )]
    /// The key is longer than 256 characters.
    TooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// An explicit hash key that is not a decimal integer below 2^128.
    #[error("an explicit hash key is a decimal integer from 0 to 2^128 - 1, not {0:?}")]
    InvalidHashKey(String),
}

/// A partition key: 1 to 256 Unicode characters. Cheap to make and to
/// clone: a key of up to 23 bytes is held inline (no allocation), a longer
/// one is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey(SmolStr);

impl PartitionKey {
    /// Checks `key` and makes it a partition key.
    pub fn new(key: &str) -> Result<Self, KeyError> {
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        // No more bytes than the limit's characters: within it, uncounted.
        // Otherwise counting stops just past the limit: a 1 MB key costs
        // 257 steps.
        if key.len() > PARTITION_KEY_MAX_CHARS
            && key.chars().take(PARTITION_KEY_MAX_CHARS + 1).count() > PARTITION_KEY_MAX_CHARS
        {
            return Err(KeyError::TooLong {
                chars: key.chars().count(),
            });
        }
        Ok(PartitionKey(SmolStr::new(key)))
    }

    /// `key` itself when it is a valid partition key; otherwise (too long,
    /// e.g. a composite of many fields) the hex MD5 of it — 32 characters,
    /// stable for the same input, and never a key cut inside a character.
    /// An empty `key` becomes `"-"`.
    pub fn new_or_hashed(key: &str) -> Self {
        match PartitionKey::new(key) {
            Ok(valid) => valid,
            Err(KeyError::Empty) => PartitionKey(SmolStr::new_static("-")),
            Err(_) => {
                let digest = Md5::digest(key.as_bytes());
                let mut hex = String::with_capacity(32);
                for byte in digest {
                    for nibble in [byte >> 4, byte & 0xf] {
                        let digit = HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
                        hex.push(char::from(digit));
                    }
                }
                PartitionKey(SmolStr::from(hex))
            }
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's size in bytes as PutRecords counts it (UTF-8).
    pub fn len_bytes(&self) -> usize {
        self.0.len()
    }
}

const HEX: [u8; 16] = *b"0123456789abcdef";

impl fmt::Debug for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for PartitionKey {
    type Error = KeyError;
    fn try_from(key: &str) -> Result<Self, KeyError> {
        PartitionKey::new(key)
    }
}

impl serde::Serialize for PartitionKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for PartitionKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        PartitionKey::new(&text).map_err(serde::de::Error::custom)
    }
}

/// A position in the 128-bit hash-key space, given instead of letting
/// Kinesis hash the partition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExplicitHashKey(pub u128);

impl ExplicitHashKey {
    /// Parses the decimal form PutRecords takes.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(KeyError::InvalidHashKey(text.to_owned()));
        }
        text.parse()
            .map(ExplicitHashKey)
            .map_err(|_| KeyError::InvalidHashKey(text.to_owned()))
    }
}

impl fmt::Display for ExplicitHashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where Kinesis puts a partition key in the hash-key space: the MD5 of its
/// UTF-8 bytes read as a big-endian 128-bit integer.
pub fn hash_key(key: &PartitionKey) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_str().as_bytes()).into())
}

/// Where a record goes in the hash-key space: its explicit hash key if it
/// has one, else the MD5 of its partition key.
fn record_hash(key: &PartitionKey, explicit: Option<ExplicitHashKey>) -> u128 {
    explicit.map_or_else(|| hash_key(key), |k| k.0)
}

/// One open shard's part of the hash-key space, inclusive at both ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRange {
    /// The shard's id (`shardId-000000000001`).
    pub shard_id: String,
    /// The lowest hash key it holds.
    pub starting_hash_key: u128,
    /// The highest hash key it holds.
    pub ending_hash_key: u128,
}

impl ShardRange {
    /// Whether the shard holds a record's hash key: its explicit hash key
    /// if it has one, else the MD5 of its partition key.
    ///
    /// ```
    /// use shardline_partition_key::{ExplicitHashKey, PartitionKey, ShardRange};
    ///
    /// let low = ShardRange {
    ///     shard_id: "shardId-000000000001".into(),
    ///     starting_hash_key: 0,
    ///     ending_hash_key: u128::MAX / 2,
    /// };
    /// let key = PartitionKey::new("any").unwrap();
    /// assert!(low.holds(&key, Some(ExplicitHashKey(7))));
    /// assert!(!low.holds(&key, Some(ExplicitHashKey(u128::MAX))));
    /// ```
    pub fn holds(&self, key: &PartitionKey, explicit: Option<ExplicitHashKey>) -> bool {
        (self.starting_hash_key..=self.ending_hash_key).contains(&record_hash(key, explicit))
    }
}

/// Which shard holds which hash keys: the open shards of a stream, as
/// `ListShards` gives them (after splits and merges, only the open shards
/// take new records).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShardMap {
    /// Sorted by starting hash key.
    ranges: Vec<ShardRange>,
}

impl ShardMap {
    /// A map of these ranges (any order).
    pub fn new(mut ranges: Vec<ShardRange>) -> Self {
        ranges.sort_by_key(|r| r.starting_hash_key);
        ShardMap { ranges }
    }

    /// `count` shards splitting the hash-key space evenly, as `CreateStream`
    /// does: shard `i` starts at `i * floor(2^128 / count)`, the last one
    /// ends at `2^128 - 1`.
    pub fn even(count: usize) -> Self {
        let count = count.max(1) as u128;
        // floor(2^128 / count) without computing 2^128.
        let width = (u128::MAX / count).saturating_add((u128::MAX % count + 1) / count);
        let ranges = (0..count)
            .map(|i| ShardRange {
                shard_id: format!("shardId-{i:012}"),
                starting_hash_key: i * width,
                ending_hash_key: if i + 1 == count {
                    u128::MAX
                } else {
                    (i + 1) * width - 1
                },
            })
            .collect();
        ShardMap { ranges }
    }

    /// The ranges, sorted by starting hash key.
    pub fn ranges(&self) -> &[ShardRange] {
        &self.ranges
    }

    /// Whether it has no shard.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The index (in [`ShardMap::ranges`]) of the shard holding `hash`.
    pub fn index_for_hash(&self, hash: u128) -> Option<usize> {
        let after = self.ranges.partition_point(|r| r.starting_hash_key <= hash);
        let index = after.checked_sub(1)?;
        let range = self.ranges.get(index)?;
        (hash <= range.ending_hash_key).then_some(index)
    }

    /// The shard a record goes to: its explicit hash key if it has one,
    /// else the MD5 of its partition key.
    pub fn index_for(
        &self,
        key: &PartitionKey,
        explicit: Option<ExplicitHashKey>,
    ) -> Option<usize> {
        self.index_for_hash(record_hash(key, explicit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(PartitionKey::new(&"é".repeat(256)).is_ok());
        assert_eq!(
            PartitionKey::new(&"é".repeat(257)),
            Err(KeyError::TooLong { chars: 257 })
        );
        assert_eq!(PartitionKey::new(""), Err(KeyError::Empty));
        assert_eq!(PartitionKey::new("é").map(|k| k.len_bytes()), Ok(2));
    }

    #[test]
    fn long_keys_are_hashed_not_cut() {
        let long = "日本".repeat(200);
        let key = PartitionKey::new_or_hashed(&long);
        assert_eq!(key.as_str().len(), 32);
        assert_eq!(key, PartitionKey::new_or_hashed(&long));
        assert_eq!(PartitionKey::new_or_hashed("").as_str(), "-");
        assert_eq!(PartitionKey::new_or_hashed("short").as_str(), "short");
    }

    #[test]
    fn md5_of_known_keys() {
        // MD5("") is d41d8cd98f00b204e9800998ecf8427e; "a" is
        // 0cc175b9c0f1b6a831c399e269772661.
        let a = PartitionKey::new("a").unwrap();
        assert_eq!(hash_key(&a), 0x0cc1_75b9_c0f1_b6a8_31c3_99e2_6977_2661);
    }

    #[test]
    fn even_maps_cover_the_space_without_gaps() {
        for count in [1usize, 2, 3, 4, 7, 50] {
            let map = ShardMap::even(count);
            let ranges = map.ranges();
            assert_eq!(ranges.len(), count);
            assert_eq!(ranges[0].starting_hash_key, 0);
            assert_eq!(ranges[count - 1].ending_hash_key, u128::MAX);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].ending_hash_key + 1, pair[1].starting_hash_key);
            }
            assert_eq!(map.index_for_hash(0), Some(0));
            if count == 2 {
                assert_eq!(ranges[1].starting_hash_key, 1u128 << 127);
            }
            if count == 3 {
                // As Kinesis creates a 3-shard stream.
                assert_eq!(
                    ranges[0].ending_hash_key,
                    113_427_455_640_312_821_154_458_202_477_256_070_484
                );
            }
            assert_eq!(map.index_for_hash(u128::MAX), Some(count - 1));
        }
    }

    #[test]
    fn lookups_after_a_split() {
        // Shard 0 split into 1 and 2; shard 3 unchanged.
        let half = u128::MAX / 2;
        let map = ShardMap::new(vec![
            ShardRange {
                shard_id: "3".into(),
                starting_hash_key: half + 1,
                ending_hash_key: u128::MAX,
            },
            ShardRange {
                shard_id: "1".into(),
                starting_hash_key: 0,
                ending_hash_key: half / 2,
            },
            ShardRange {
                shard_id: "2".into(),
                starting_hash_key: half / 2 + 1,
                ending_hash_key: half,
            },
        ]);
        let id = |h| {
            map.index_for_hash(h)
                .map(|i| map.ranges()[i].shard_id.clone())
        };
        assert_eq!(id(0).as_deref(), Some("1"));
        assert_eq!(id(half / 2 + 1).as_deref(), Some("2"));
        assert_eq!(id(half).as_deref(), Some("2"));
        assert_eq!(id(half + 1).as_deref(), Some("3"));
        // A gap (a shard missing from the map) maps to nothing.
        let gappy = ShardMap::new(vec![ShardRange {
            shard_id: "x".into(),
            starting_hash_key: 10,
            ending_hash_key: 20,
        }]);
        assert_eq!(gappy.index_for_hash(5), None);
        assert_eq!(gappy.index_for_hash(21), None);
        assert_eq!(gappy.index_for_hash(15), Some(0));
    }

    #[test]
    fn explicit_hash_keys() {
        assert_eq!(ExplicitHashKey::parse("0"), Ok(ExplicitHashKey(0)));
        assert_eq!(
            ExplicitHashKey::parse("340282366920938463463374607431768211455"),
            Ok(ExplicitHashKey(u128::MAX))
        );
        assert!(ExplicitHashKey::parse("340282366920938463463374607431768211456").is_err());
        assert!(ExplicitHashKey::parse("-1").is_err());
        assert!(ExplicitHashKey::parse("").is_err());
    }

    #[test]
    fn deserializing_checks_the_key() {
        assert!(serde_json::from_str::<PartitionKey>("\"\"").is_err());
        assert_eq!(
            serde_json::from_str::<PartitionKey>("\"k\"")
                .unwrap()
                .as_str(),
            "k"
        );
    }
}
