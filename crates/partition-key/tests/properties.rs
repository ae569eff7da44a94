//! Keys are always valid and stable, and the shard mapping agrees with a
//! reference computation for arbitrary keys and shard layouts.

use md5::{Digest, Md5};
use proptest::prelude::*;
use serde_json::{Value, json};
use shardline_partition_key::{
    ExplicitHashKey, FieldKey, Fields, IotKey, PartitionKey, PartitionKeyStrategy, RowKey,
    ShardMap, ShardRange, TransactionKey, WebLogKey, hash_key,
};

/// Kinesis's rule, written the slow and obvious way: MD5 of the key's
/// UTF-8 bytes as a big-endian integer, then the first range holding it.
fn reference_shard(ranges: &[ShardRange], key: &str, explicit: Option<u128>) -> Option<String> {
    let hash = explicit.unwrap_or_else(|| {
        let digest = Md5::digest(key.as_bytes());
        digest
            .iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
    });
    ranges
        .iter()
        .find(|r| r.starting_hash_key <= hash && hash <= r.ending_hash_key)
        .map(|r| r.shard_id.clone())
}

/// A layout of `n` contiguous shards cut at arbitrary points, as splits and
/// merges leave them.
fn layout() -> impl Strategy<Value = Vec<ShardRange>> {
    proptest::collection::btree_set(1u128..u128::MAX, 0..12).prop_map(|cuts| {
        let mut starts = vec![0u128];
        starts.extend(cuts);
        let mut ranges = Vec::new();
        for (i, start) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(u128::MAX, |next| next - 1);
            ranges.push(ShardRange {
                shard_id: format!("shardId-{i:012}"),
                starting_hash_key: *start,
                ending_hash_key: end,
            });
        }
        ranges
    })
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,300}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("ip_address".to_owned()),
                    Just("session_id".to_owned()),
                    Just("device_id".to_owned()),
                    Just("location".to_owned()),
                    Just("table".to_owned()),
                    Just("id".to_owned()),
                    Just("txid".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn strategies() -> Vec<Box<dyn PartitionKeyStrategy>> {
    vec![
        Box::new(WebLogKey::default()),
        Box::new(IotKey::default()),
        Box::new(RowKey {
            table_field: "table".into(),
            key_fields: vec!["id".into()],
        }),
        Box::new(TransactionKey {
            table_field: "table".into(),
            transaction_field: "txid".into(),
        }),
        Box::new(FieldKey("session_id".into())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_mapping_agrees_with_the_reference(
        ranges in layout(),
        key in ".{1,256}",
        explicit in proptest::option::of(any::<u128>()),
    ) {
        let key = PartitionKey::new(&key).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let map = ShardMap::new(ranges.clone());
        let ours = map
            .index_for(&key, explicit.map(ExplicitHashKey))
            .map(|i| map.ranges()[i].shard_id.clone());
        prop_assert_eq!(ours.clone(), reference_shard(&ranges, key.as_str(), explicit));
        prop_assert!(ours.is_some(), "a contiguous layout covers every hash");
        if explicit.is_none() {
            let digest = Md5::digest(key.as_str().as_bytes());
            let ours = hash_key(&key).to_be_bytes();
            prop_assert_eq!(ours.as_slice(), digest.as_slice());
        }
    }

    #[test]
    fn keys_are_valid_and_stable_for_any_record(record in any_json()) {
        for strategy in strategies() {
            // Any field may be missing: an error then, never a panic or an
            // invalid key.
            if let Ok(choice) = strategy.key(&record as &dyn Fields) {
                let chars = choice.partition_key.as_str().chars().count();
                prop_assert!((1..=256).contains(&chars));
                let again = strategy
                    .key(&record as &dyn Fields)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(choice, again, "{} is not stable", strategy.name());
            }
        }
    }

    #[test]
    fn long_composite_keys_are_hashed_whole(table in ".{100,200}", id in ".{100,200}") {
        let record = json!({"table": table, "id": id});
        let strategy = RowKey { table_field: "table".into(), key_fields: vec!["id".into()] };
        let key = strategy
            .key(&record as &dyn Fields)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .partition_key;
        prop_assert!(key.as_str().chars().count() <= 256);
    }
}
