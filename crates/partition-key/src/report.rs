//! The shard report: how a key strategy would spread sample records over a
//! stream's shards, before anything is deployed.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::ShardMap;
use crate::strategy::{Fields, PartitionKeyStrategy};

/// A shard is hot when it gets more than this many times its even share.
pub const HOT_SHARD_FACTOR: f64 = 1.5;
/// A key is hot when it alone takes more than this share of a shard's fair
/// capacity: with one key per shard at most, 1/shards is the even share.
pub const HOT_KEY_FACTOR: f64 = 0.5;

/// One shard's part of the sample.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShardShare {
    /// The shard.
    pub shard_id: String,
    /// Sample records it would get.
    pub records: u64,
    /// Share of the keyed records, 0.0 to 1.0.
    pub share: f64,
    /// Whether it gets much more than an even share ([`HOT_SHARD_FACTOR`]).
    pub hot: bool,
}

/// One of the most frequent keys.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KeyShare {
    /// The key.
    pub key: String,
    /// The shard it maps to.
    pub shard_id: String,
    /// Sample records with this key.
    pub records: u64,
    /// Share of the keyed records, 0.0 to 1.0.
    pub share: f64,
}

/// What [`shard_report`] found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShardReport {
    /// The strategy, as named on the command line.
    pub strategy: String,
    /// Records the strategy keyed.
    pub records: u64,
    /// Records it could not key (a required field missing), with the first
    /// reason.
    pub unkeyed: u64,
    /// Why the first of those could not be keyed.
    pub first_unkeyed_reason: Option<String>,
    /// Distinct keys among the keyed records.
    pub distinct_keys: u64,
    /// Every shard's share, in shard order.
    pub shards: Vec<ShardShare>,
    /// The most frequent keys, most frequent first.
    pub hottest_keys: Vec<KeyShare>,
    /// Human-readable warnings: hot shards, hot keys, too few keys.
    pub warnings: Vec<String>,
}

/// Keys every record with `strategy`, maps the keys onto `map` exactly as
/// Kinesis does (MD5 or explicit hash key into the shards' ranges), and
/// reports each shard's share and the `top` most frequent keys.
pub fn shard_report<'r>(
    strategy: &dyn PartitionKeyStrategy,
    records: impl IntoIterator<Item = &'r dyn Fields>,
    map: &ShardMap,
    top: usize,
) -> ShardReport {
    let mut per_shard = vec![0u64; map.ranges().len()];
    let mut per_key: HashMap<(String, usize), u64> = HashMap::new();
    let mut keyed = 0u64;
    let mut unkeyed = 0u64;
    let mut first_unkeyed_reason = None;
    for record in records {
        match strategy.key(record) {
            Ok(choice) => {
                let Some(shard) = map.index_for(&choice.partition_key, choice.explicit_hash_key)
                else {
                    unkeyed += 1;
                    first_unkeyed_reason
                        .get_or_insert_with(|| "a key maps to no open shard".to_owned());
                    continue;
                };
                keyed += 1;
                if let Some(count) = per_shard.get_mut(shard) {
                    *count += 1;
                }
                *per_key
                    .entry((choice.partition_key.as_str().to_owned(), shard))
                    .or_insert(0) += 1;
            }
            Err(e) => {
                unkeyed += 1;
                first_unkeyed_reason.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let share = |n: u64| {
        if keyed == 0 {
            0.0
        } else {
            n as f64 / keyed as f64
        }
    };
    let even = 1.0 / map.ranges().len().max(1) as f64;
    let shards: Vec<ShardShare> = map
        .ranges()
        .iter()
        .zip(&per_shard)
        .map(|(range, &records)| ShardShare {
            shard_id: range.shard_id.clone(),
            records,
            share: share(records),
            hot: map.ranges().len() > 1 && share(records) > even * HOT_SHARD_FACTOR,
        })
        .collect();
    let distinct_keys = per_key.len() as u64;
    let mut keys: Vec<((String, usize), u64)> = per_key.into_iter().collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let hottest_keys: Vec<KeyShare> = keys
        .into_iter()
        .take(top)
        .map(|((key, shard), records)| KeyShare {
            key,
            shard_id: map
                .ranges()
                .get(shard)
                .map(|r| r.shard_id.clone())
                .unwrap_or_default(),
            records,
            share: share(records),
        })
        .collect();

    let mut warnings = Vec::new();
    for shard in shards.iter().filter(|s| s.hot) {
        warnings.push(format!(
            "hot shard {}: {:.1}% of records, {:.1}x its even share of {:.1}%",
            shard.shard_id,
            shard.share * 100.0,
            shard.share / even,
            even * 100.0
        ));
    }
    for key in hottest_keys
        .iter()
        .filter(|k| k.share > even * HOT_KEY_FACTOR && keyed > 0)
    {
        warnings.push(format!(
            "hot key {:?}: {:.1}% of records go to {} through this one key",
            key.key,
            key.share * 100.0,
            key.shard_id
        ));
    }
    if (distinct_keys as usize) < map.ranges().len() && keyed > 0 {
        warnings.push(format!(
            "only {distinct_keys} distinct keys for {} shards: some shards get nothing",
            map.ranges().len()
        ));
    }
    ShardReport {
        strategy: strategy.name().to_owned(),
        records: keyed,
        unkeyed,
        first_unkeyed_reason,
        distinct_keys,
        shards,
        hottest_keys,
        warnings,
    }
}

impl ShardReport {
    /// The report as text for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "strategy {}: {} records, {} distinct keys{}",
            self.strategy,
            self.records,
            self.distinct_keys,
            if self.unkeyed > 0 {
                format!(", {} not keyed", self.unkeyed)
            } else {
                String::new()
            }
        );
        for shard in &self.shards {
            let bar = "#".repeat((shard.share * 50.0).round() as usize);
            let _ = writeln!(
                out,
                "  {:<22} {:>9} {:>6.1}% {bar}{}",
                shard.shard_id,
                shard.records,
                shard.share * 100.0,
                if shard.hot { "  HOT" } else { "" }
            );
        }
        if !self.hottest_keys.is_empty() {
            let _ = writeln!(out, "hottest keys:");
            for key in &self.hottest_keys {
                let _ = writeln!(
                    out,
                    "  {:<40} {:>9} {:>6.1}%  {}",
                    key.key,
                    key.records,
                    key.share * 100.0,
                    key.shard_id
                );
            }
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        if let Some(reason) = &self.first_unkeyed_reason {
            let _ = writeln!(out, "not keyed, e.g.: {reason}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{FieldKey, WebLogKey};
    use serde_json::json;

    #[test]
    fn a_skewed_sample_flags_the_hot_key_and_shard() {
        // 1,000 records: 600 from one client IP, the rest from 400 others.
        let mut sample = Vec::new();
        for i in 0..1000 {
            let ip = if i < 600 {
                "203.0.113.7".to_owned()
            } else {
                format!("10.0.{}.{}", i / 256, i % 256)
            };
            sample.push(json!({"ip_address": ip, "timestamp": "2024-01-15T10:30:45+00:00"}));
        }
        let report = shard_report(
            &WebLogKey::default(),
            sample.iter().map(|v| v as &dyn Fields),
            &ShardMap::even(4),
            3,
        );
        assert_eq!(report.records, 1000);
        assert_eq!(report.shards.len(), 4);
        assert_eq!(report.shards.iter().map(|s| s.records).sum::<u64>(), 1000);
        let hot: Vec<&ShardShare> = report.shards.iter().filter(|s| s.hot).collect();
        assert_eq!(hot.len(), 1);
        assert!(hot[0].share >= 0.6);
        assert_eq!(report.hottest_keys[0].records, 600);
        assert_eq!(report.hottest_keys[0].shard_id, hot[0].shard_id);
        assert!(report.warnings.iter().any(|w| w.starts_with("hot shard")));
        assert!(report.warnings.iter().any(|w| w.starts_with("hot key")));
        let text = report.to_text();
        assert!(text.contains("HOT"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["hottest_keys"][0]["records"], 600);
    }

    #[test]
    fn an_even_sample_has_no_warnings_and_unkeyed_records_are_counted() {
        let sample: Vec<serde_json::Value> = (0..4000)
            .map(|i| json!({"user": format!("u{i}")}))
            .chain(std::iter::once(json!({"other": 1})))
            .collect();
        let report = shard_report(
            &FieldKey("user".into()),
            sample.iter().map(|v| v as &dyn Fields),
            &ShardMap::even(4),
            5,
        );
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(report.unkeyed, 1);
        assert!(report.first_unkeyed_reason.unwrap().contains("`user`"));
        for shard in &report.shards {
            assert!((0.2..0.3).contains(&shard.share), "{shard:?}");
        }
    }
}
