// Property tests: failing is the point, so unwrap and panics are the
// assertions here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use serde_json::{Value, json};
use shardline_core::{Origin, Process, Processed, SourceName};
use shardline_iot::{Filter, SensorRecords, TopicTemplate};
use shardline_validate::{IotLimits, Validator};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|n| json!(n)),
        "[a-z0-9 _-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("device_id".to_owned()),
                    Just("temperature".to_owned()),
                    Just("humidity".to_owned()),
                    Just("location".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_filter_text_parses_or_fails_cleanly(text in "[ a-z0-9_.()!&|<>=\"'-]{0,80}") {
        if let Ok(filter) = Filter::parse(&text) {
            // Whatever parsed evaluates without panicking.
            let _ = filter.matches(&json!({"a": 1, "b": "x"}));
        }
    }

    #[test]
    fn comparisons_agree_with_rust(a in -1000i32..1000, b in -1000i32..1000) {
        let record = json!({"a": a});
        for (op, expected) in [
            ("<", a < b), ("<=", a <= b), (">", a > b),
            (">=", a >= b), ("==", a == b), ("!=", a != b),
        ] {
            let filter = Filter::parse(&format!("a {op} {b}")).unwrap();
            prop_assert_eq!(filter.matches(&record), expected, "a={} {} {}", a, op, b);
            // Negation is the opposite when the field is there.
            let negated = Filter::parse(&format!("!(a {op} {b})")).unwrap();
            prop_assert_eq!(negated.matches(&record), !expected);
        }
    }

    #[test]
    fn any_payload_is_a_record_a_rejection_or_a_skip(
        payload in json_value(),
        topic in "[a-z+/]{0,24}",
    ) {
        let records = SensorRecords::new(
            SourceName::new("iot_sensors"),
            Some(Validator::iot_reading(IotLimits::default()).unwrap()),
        )
        .filter(Some(Filter::parse("temperature > 0 && temperature < 100").unwrap()));
        let data = serde_json::to_vec(&payload).unwrap();
        match records.process(&data, Origin::topic(&topic)) {
            Processed::Record(record) => {
                let sent: Value = serde_json::from_slice(&record.data).unwrap();
                let t = sent["temperature"].as_f64().unwrap();
                prop_assert!(t > 0.0 && t < 100.0);
                prop_assert!(sent["ingestion_time"].is_string());
            }
            Processed::Rejected(reason) => prop_assert!(!reason.is_empty()),
            Processed::Skip => {}
        }
    }

    #[test]
    fn templates_never_panic(template in "[a-z<>+#/]{0,20}", topic in "[a-z/]{0,20}") {
        if let Ok(template) = TopicTemplate::parse(&template) {
            let _ = template.fields(&topic);
        }
    }
}
