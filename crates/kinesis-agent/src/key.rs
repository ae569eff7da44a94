//! `partitionKeyOption`: the partition key the agent gives each record.

use md5::{Digest, Md5};
use rand::Rng;

/// How a flow keys its records (`partitionKeyOption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum PartitionKeyOption {
    /// `RANDOM` (the default): a random number below 1,000,000 as text
    /// (`"483920.1180395172"`), spreading records over every shard.
    #[default]
    #[serde(rename = "RANDOM")]
    Random,
    /// `DETERMINISTIC`: the lower-case hex MD5 of the record's data, so the
    /// same record always goes to the same shard.
    #[serde(rename = "DETERMINISTIC")]
    Deterministic,
}

impl PartitionKeyOption {
    /// The key for a record of `data` (as sent, after processing).
    ///
    /// ```
    /// use shardline_kinesis_agent::PartitionKeyOption;
    ///
    /// assert_eq!(
    ///     PartitionKeyOption::Deterministic.key(b"hello\n"),
    ///     "b1946ac92492d2347c6235b4d2611184"
    /// );
    /// let random = PartitionKeyOption::Random.key(b"hello\n");
    /// assert!(random.parse::<f64>().unwrap() < 1_000_000.0);
    /// ```
    pub fn key(self, data: &[u8]) -> String {
        match self {
            PartitionKeyOption::Deterministic => {
                let digest = Md5::digest(data);
                digest.iter().map(|b| format!("{b:02x}")).collect()
            }
            // Java's `"" + random.nextDouble(1000000)`: always a decimal
            // point (`{:?}` writes `5.0`, not `5`).
            PartitionKeyOption::Random => {
                format!("{:?}", rand::rng().random_range(0.0..1_000_000.0_f64))
            }
        }
    }
}
