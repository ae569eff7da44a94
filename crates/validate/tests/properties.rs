//! Validation and masking never panic, whatever JSON arrives, and every
//! violation points into the record.

use proptest::prelude::*;
use serde_json::Value;
use shardline_validate::{IotLimits, MaskRule, Masker, Validator};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("device_id".to_owned()),
                    Just("temperature".to_owned()),
                    Just("humidity".to_owned()),
                    Just("timestamp".to_owned()),
                    Just("ip_address".to_owned()),
                    Just("email".to_owned()),
                    Just("operation".to_owned()),
                    Just("table".to_owned()),
                    "[a-z]{1,5}"
                ],
                inner,
                0..7
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn validation_never_panics_and_paths_point_into_the_record(record in any_json()) {
        let validators = [
            Validator::web_log(),
            Validator::application_log(),
            Validator::application_log_strict(),
            Validator::iot_reading(IotLimits::default()),
            Validator::cdc_event(),
        ];
        for validator in validators {
            let validator = validator.map_err(|e| TestCaseError::fail(e.to_string()))?;
            if let Err(violations) = validator.validate(&record) {
                prop_assert!(!violations.is_empty());
                for violation in violations {
                    prop_assert!(!violation.rule.is_empty());
                    prop_assert!(
                        violation.path.is_empty() || record.pointer(&violation.path).is_some(),
                        "{} points nowhere", violation.path
                    );
                }
            }
        }
    }

    #[test]
    fn masking_never_panics(mut record in any_json()) {
        let masker = Masker::new(b"k".to_vec())
            .rule("ip_address", MaskRule::TruncateIp)
            .rule("email", MaskRule::MaskEmail)
            .rule("device_id", MaskRule::KeyedHash)
            .rule("table.a", MaskRule::Drop);
        masker.apply(&mut record);
    }
}
