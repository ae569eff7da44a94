//! What `shardline` prints: records as JSON lines, a stream and its
//! metrics as tables.

use std::fmt::Write;

use base64::Engine;
use shardline_streams::{MetricFigure, ReadRecord, StreamInfo};

/// One record as `read` prints it, its fields in this order.
#[derive(serde::Serialize)]
struct RecordLine<'a> {
    shard: &'a str,
    sequence_number: &'a str,
    sub_sequence_number: u64,
    partition_key: &'a str,
    explicit_hash_key: Option<&'a str>,
    arrival: Option<String>,
    data: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_encoding: Option<&'static str>,
}

/// One record as a JSON line: `data` as text when it is UTF-8, else
/// base64 with `"data_encoding": "base64"`.
pub(crate) fn record_json(record: &ReadRecord) -> String {
    let (data, data_encoding) = match std::str::from_utf8(&record.data) {
        Ok(text) => (text.into(), None),
        Err(_) => (
            base64::engine::general_purpose::STANDARD
                .encode(&record.data)
                .into(),
            Some("base64"),
        ),
    };
    let line = RecordLine {
        shard: &record.shard_id,
        sequence_number: &record.sequence_number,
        sub_sequence_number: record.sub_sequence_number,
        partition_key: &record.partition_key,
        explicit_hash_key: record.explicit_hash_key.as_deref(),
        arrival: record.arrival_text(),
        data,
        data_encoding,
    };
    // A struct of strings and numbers always serializes.
    serde_json::to_string(&line).unwrap_or_default()
}

/// `1 split`, `2 splits`.
pub(crate) fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `1 open shard`, `4 open shards`.
pub(crate) fn open_shards(n: usize) -> String {
    count(n, "open shard")
}

/// The share of the hash-key space a range holds, in percent.
fn key_space_share(start: &str, end: &str) -> Option<f64> {
    let (start, end) = (start.parse::<u128>().ok()?, end.parse::<u128>().ok()?);
    Some((end.checked_sub(start)? as f64 + 1.0) / (u128::MAX as f64 + 1.0) * 100.0)
}

/// A stream's summary, then one line per shard.
pub(crate) fn stream_table(info: &StreamInfo) -> String {
    let mut text = String::new();
    let metrics = if info.enhanced_monitoring.is_empty() {
        "none".to_owned()
    } else {
        info.enhanced_monitoring.join(", ")
    };
    let rows = [
        ("stream", info.name.clone()),
        ("arn", info.arn.clone()),
        ("status", info.status.clone()),
        ("capacity", info.mode.clone()),
        ("retention", format!("{} hours", info.retention_hours)),
        (
            "shards",
            format!("{} open, {} in all", info.open_shards, info.shards.len()),
        ),
        ("shard-level metrics", metrics),
        ("encryption", info.encryption.clone()),
        ("fan-out consumers", info.consumers.to_string()),
    ];
    for (name, value) in rows {
        let _ = writeln!(text, "{name:<20} {value}");
    }
    let _ = writeln!(
        text,
        "\n{:<22} {:<7} {:<7} {:<45} HASH KEYS",
        "SHARD", "STATE", "SHARE", "PARENTS"
    );
    for shard in &info.shards {
        let parents: Vec<&str> = [&shard.parent, &shard.adjacent_parent]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let share = key_space_share(&shard.starting_hash_key, &shard.ending_hash_key)
            .map_or_else(|| "?".to_owned(), |p| format!("{p:.1}%"));
        let _ = writeln!(
            text,
            "{:<22} {:<7} {:<7} {:<45} {}..{}",
            shard.id,
            if shard.is_open() { "open" } else { "closed" },
            share,
            if parents.is_empty() {
                "-".to_owned()
            } else {
                parents.join(" + ")
            },
            shard.starting_hash_key,
            shard.ending_hash_key
        );
    }
    text
}

/// One line per metric.
pub(crate) fn metrics_table(stream: &str, minutes: u64, figures: &[MetricFigure]) -> String {
    let mut text = format!("{stream}, the last {minutes} minutes\n");
    let _ = writeln!(
        text,
        "{:<36} {:<8} {:>16} {:<13} MINUTES",
        "METRIC", "OF", "VALUE", "UNIT"
    );
    for figure in figures {
        let summary = match figure.summary {
            shardline_streams::Summary::Sum => "sum",
            shardline_streams::Summary::Average => "mean",
            shardline_streams::Summary::Maximum => "highest",
        };
        let value = figure
            .value
            .map_or_else(|| "no data".to_owned(), |v| format!("{v:.0}"));
        let _ = writeln!(
            text,
            "{:<36} {:<8} {:>16} {:<13} {}",
            figure.metric,
            summary,
            value,
            figure.unit.as_deref().unwrap_or("-"),
            figure.datapoints
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn record(data: &[u8]) -> ReadRecord {
        ReadRecord {
            shard_id: "shardId-000000000001".into(),
            sequence_number: "4960".into(),
            sub_sequence_number: 3,
            aggregated: true,
            partition_key: "k".into(),
            explicit_hash_key: None,
            arrival: None,
            data: data.to_vec(),
        }
    }

    #[test]
    fn text_data_is_printed_as_text_and_binary_as_base64() {
        let text: Value = serde_json::from_str(&record_json(&record(b"{\"a\":1}"))).unwrap();
        assert_eq!(text["data"], "{\"a\":1}");
        assert_eq!(text["sub_sequence_number"], 3);
        assert_eq!(text["explicit_hash_key"], Value::Null);
        assert!(text.get("data_encoding").is_none());
        let line = record_json(&record(b"x"));
        let keys = [
            "shard",
            "sequence_number",
            "sub_sequence_number",
            "partition_key",
            "explicit_hash_key",
            "arrival",
            "data",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| line.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
        let binary: Value = serde_json::from_str(&record_json(&record(&[0xff, 0, 1]))).unwrap();
        assert_eq!(binary["data"], "/wAB");
        assert_eq!(binary["data_encoding"], "base64");
    }

    #[test]
    fn half_the_key_space_is_fifty_percent() {
        let half = (u128::MAX / 2).to_string();
        let share = key_space_share("0", &half).unwrap();
        assert!((share - 50.0).abs() < 1e-9, "{share}");
        assert_eq!(key_space_share("5", "4"), None);
    }
}
