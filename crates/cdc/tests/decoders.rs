//! The decoders on fixtures shaped as each tool documents its output
//! (`fixtures/cdc/`), and properties: arbitrary input never panics, and
//! decode → encode → decode is stable.

// The helpers below are assertions: a fixture that does not decode, or an
// item that is not a change, is the test failing.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value, json};
use shardline_cdc::encode::{to_debezium, to_json};
use shardline_cdc::{
    BeforeImage, ChangeEvent, ChangeType, Classifier, Decoded, Decoder, Format, KeyColumns,
    Operation,
};

fn fixture(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/cdc")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn decode_all(decoder: &mut Decoder, name: &str) -> Vec<Decoded> {
    fixture(name)
        .iter()
        .map(|line| decoder.decode(line).unwrap())
        .collect()
}

fn change(decoded: &Decoded) -> &ChangeEvent {
    match decoded {
        Decoded::Change(event) => event,
        other => panic!("not a change: {other:?}"),
    }
}

#[test]
fn debezium_postgres_and_mysql() {
    let mut keys = KeyColumns::new();
    keys.insert("inventory.customers".into(), vec!["id".into()]);
    let mut decoder = Decoder::new(Format::Debezium)
        .classifier(Classifier::parse("inventory.customers:email").unwrap())
        .key_columns(keys);
    let all = decode_all(&mut decoder, "debezium.ndjson");
    assert_eq!(all.len(), 7);

    let insert = change(&all[0]);
    assert_eq!(insert.operation, Operation::Insert);
    assert_eq!(insert.change_type, ChangeType::NewRecord);
    assert_eq!(insert.qualified_table(), "inventory.customers");
    assert_eq!(insert.database.as_deref(), Some("postgres"));
    assert_eq!(insert.transaction_id.as_deref(), Some("555"));
    assert_eq!(insert.position.as_deref(), Some("0/16E9058"));
    assert_eq!(
        insert.timestamp.as_deref(),
        Some("2024-01-15T10:30:45.123Z")
    );
    assert_eq!(insert.primary_key_text().as_deref(), Some("id=1001"));
    assert_eq!(insert.before_image, BeforeImage::None);

    // With the schema wrapper; the critical column changed.
    let update = change(&all[1]);
    assert_eq!(update.change_type, ChangeType::CriticalFieldChange);
    assert_eq!(update.changed_columns, Some(vec!["email".to_owned()]));
    assert_eq!(update.transaction_id.as_deref(), Some("556"));
    assert_eq!(update.sequence, 0, "total_order 1 is the first");

    let delete = change(&all[2]);
    assert_eq!(delete.change_type, ChangeType::RecordDeleted);
    assert_eq!(delete.after, None);
    assert_eq!(delete.primary_key_text().as_deref(), Some("id=1001"));

    assert!(matches!(all[3], Decoded::Ignored(_)), "a tombstone");

    // An unchanged TOAST column is left out, not the placeholder.
    let toast = change(&all[4]);
    let after = toast.after.as_ref().unwrap();
    assert!(!after.contains_key("doc"));
    assert_eq!(after["status"], "shipped");
    assert_eq!(toast.change_type, ChangeType::GeneralUpdate);

    let mysql = change(&all[5]);
    assert_eq!(mysql.position.as_deref(), Some("mysql-bin.000003:484"));
    assert_eq!(mysql.schema, None);
    assert_eq!(mysql.database.as_deref(), Some("inventory"));

    let truncate = change(&all[6]);
    assert_eq!(truncate.change_type, ChangeType::TableTruncated);
}

#[test]
fn dms_records() {
    let mut decoder =
        Decoder::new(Format::Dms).classifier(Classifier::parse("public.products:price").unwrap());
    let all = decode_all(&mut decoder, "dms.ndjson");
    let load = change(&all[0]);
    assert_eq!(load.operation, Operation::Read);
    assert_eq!(load.change_type, ChangeType::SnapshotRead);
    assert_eq!(
        load.timestamp.as_deref(),
        Some("2024-01-15T10:30:45.290940Z")
    );
    let insert = change(&all[1]);
    assert_eq!(insert.transaction_id.as_deref(), Some("8589934593"));
    let update = change(&all[2]);
    assert_eq!(update.change_type, ChangeType::CriticalFieldChange);
    assert_eq!(update.changed_columns, Some(vec!["price".to_owned()]));
    let delete = change(&all[3]);
    assert_eq!(delete.before.as_ref().unwrap()["name"], "Widget");
    assert_eq!(delete.after, None);
    assert!(matches!(&all[4], Decoded::Ignored(why) if why.contains("control")));
}

#[test]
fn maxwell_records() {
    let mut decoder = Decoder::new(Format::Maxwell);
    let all = decode_all(&mut decoder, "maxwell.ndjson");
    let insert = change(&all[0]);
    assert_eq!(insert.primary_key_text().as_deref(), Some("id=111"));
    assert_eq!(insert.position.as_deref(), Some("master.000006:800911"));
    assert_eq!(insert.timestamp.as_deref(), Some("2024-01-15T10:30:45Z"));
    // `old` over `data` is the whole row before.
    let update = change(&all[1]);
    assert_eq!(update.before_image, BeforeImage::Full);
    assert_eq!(
        update.before.as_ref().unwrap()["daemon"],
        json!("Stanislaw Lem")
    );
    assert_eq!(update.before.as_ref().unwrap()["id"], json!(111));
    assert_eq!(update.changed_columns, Some(vec!["daemon".to_owned()]));
    assert_eq!(update.change_type, ChangeType::GeneralUpdate);
    assert_eq!(change(&all[2]).operation, Operation::Delete);
    assert!(matches!(all[3], Decoded::Ignored(_)));
    assert_eq!(change(&all[4]).operation, Operation::Read);
}

#[test]
fn wal2json_transactions() {
    let mut decoder = Decoder::new(Format::Wal2json)
        .classifier(Classifier::parse("public.accounts:balance;public.audit:status").unwrap());
    let all = decode_all(&mut decoder, "wal2json.ndjson");
    assert_eq!(
        all[0],
        Decoded::Begin {
            transaction_id: Some("771".into()),
            position: Some("0/16B3748".into())
        }
    );
    let insert = change(&all[1]);
    assert_eq!(insert.sequence, 0);
    assert_eq!(insert.primary_key_text().as_deref(), Some("id=1"));
    assert_eq!(
        insert.timestamp.as_deref(),
        Some("2024-01-15T10:30:45.123456+00:00")
    );
    // REPLICA IDENTITY DEFAULT: the before image is the key; whether the
    // critical `balance` changed is not guessed.
    let update = change(&all[2]);
    assert_eq!(update.sequence, 1);
    assert_eq!(update.before_image, BeforeImage::KeyOnly);
    assert_eq!(update.change_type, ChangeType::UnclassifiedUpdate);
    assert_eq!(
        all[3],
        Decoded::Commit {
            transaction_id: Some("771".into()),
            position: Some("0/16B3930".into())
        }
    );
    // REPLICA IDENTITY FULL, with an unchanged TOAST column (`body`) left
    // out of the new row: not a change.
    let full = change(&all[5]);
    assert_eq!(full.sequence, 0, "a new transaction starts at 0");
    assert_eq!(full.before_image, BeforeImage::Full);
    assert_eq!(full.changed_columns, Some(vec!["status".to_owned()]));
    assert_eq!(full.change_type, ChangeType::CriticalFieldChange);
    assert!(!full.after.as_ref().unwrap().contains_key("body"));
    assert_eq!(
        full.timestamp.as_deref(),
        Some("2024-01-15T10:31:00.5+00:00"),
        "from the transaction's begin"
    );
    let delete = change(&all[6]);
    assert_eq!(delete.primary_key_text().as_deref(), Some("id=1"));
    assert_eq!(change(&all[7]).operation, Operation::Truncate);
    assert!(matches!(all[8], Decoded::Ignored(_)));
    assert!(matches!(all[9], Decoded::Commit { .. }));
}

/// Found by fuzzing (`cargo xtask fuzz cdc`): Maxwell's `ts` is in
/// seconds, and one too large to be a time overflowed when turned into
/// milliseconds (a panic with overflow checks, a wrong time without).
#[test]
fn a_maxwell_time_too_large_to_be_a_time_has_none() {
    let line = br#"{"database":"test","table":"maxwell","type":"insert","ts":1705314088888888752,"xoffset":0,"data":{"id":1}}"#;
    let decoded = Decoder::new(Format::Maxwell).decode(line).unwrap();
    let event = change(&decoded);
    assert_eq!(event.timestamp, None);
    assert_eq!(event.table, "maxwell");
}

#[test]
fn bad_input_is_an_error_naming_what_is_wrong() {
    let mut decoder = Decoder::new(Format::Debezium);
    let error = decoder
        .decode(b"{\"op\":\"x\",\"source\":{\"table\":\"t\"}}")
        .unwrap_err();
    assert_eq!(error.to_string(), "debezium: unknown operation \"x\"");
    let error = decoder.decode(b"{\"op\":\"c\"}").unwrap_err();
    assert_eq!(error.to_string(), "debezium: missing source.table");
    let error = Decoder::new(Format::Wal2json)
        .decode(b"{\"action\":\"I\",\"table\":\"t\",\"columns\":3}")
        .unwrap_err();
    assert!(
        error.to_string().contains("columns is not a list"),
        "{error}"
    );
    assert!(Decoder::new(Format::Maxwell).decode(b"\xff\xfe").is_err());
}

#[test]
fn every_fixture_survives_debezium_and_normalized_round_trips() {
    for (format, name) in [
        (Format::Debezium, "debezium.ndjson"),
        (Format::Dms, "dms.ndjson"),
        (Format::Maxwell, "maxwell.ndjson"),
        (Format::Wal2json, "wal2json.ndjson"),
    ] {
        let mut decoder = Decoder::new(format);
        for decoded in decode_all(&mut decoder, name) {
            let Decoded::Change(event) = decoded else {
                continue;
            };
            let normalized = Decoder::new(Format::Shardline)
                .decode(&to_json(&event))
                .unwrap();
            assert_eq!(change(&normalized), &*event, "{name}: normalized");
            assert_debezium_stable(&event);
        }
    }
}

/// decode(encode(e)) keeps everything the Debezium envelope carries.
fn assert_debezium_stable(event: &ChangeEvent) {
    let once = to_debezium(event);
    let line = serde_json::to_vec(&once).unwrap();
    let decoded = Decoder::new(Format::Debezium).decode(&line).unwrap();
    let again = change(&decoded);
    assert_eq!(to_debezium(again), once, "{event:?}");
    assert_eq!(again.after, event.after);
    assert_eq!(again.operation, event.operation);
    assert_eq!(
        again.sequence,
        if event.transaction_id.is_some() {
            event.sequence
        } else {
            0
        }
    );
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z_]{0,8}".prop_map(Value::from),
        prop_oneof![
            Just("c"),
            Just("u"),
            Just("d"),
            Just("I"),
            Just("B"),
            Just("C"),
            Just("update")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("op".to_owned()),
                    Just("action".to_owned()),
                    Just("type".to_owned()),
                    Just("source".to_owned()),
                    Just("table".to_owned()),
                    Just("data".to_owned()),
                    Just("old".to_owned()),
                    Just("before".to_owned()),
                    Just("after".to_owned()),
                    Just("columns".to_owned()),
                    Just("identity".to_owned()),
                    Just("metadata".to_owned()),
                    Just("record-type".to_owned()),
                    Just("operation".to_owned()),
                    Just("table-name".to_owned()),
                    Just("payload".to_owned()),
                    Just("schema".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn arbitrary_json_never_panics(value in arbitrary_json(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let line = serde_json::to_vec(&value).unwrap();
        for format in [Format::Debezium, Format::Dms, Format::Maxwell, Format::Wal2json, Format::Shardline] {
            let mut decoder = Decoder::new(format)
                .classifier(Classifier::parse("t:a,b").unwrap());
            if let Ok(Decoded::Change(event)) = decoder.decode(&line) {
                assert_debezium_stable(&event);
            }
            let _ = decoder.decode(&bytes);
        }
    }
}
