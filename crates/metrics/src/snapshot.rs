//! The run's statistics as one serializable value.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use shardline_core::{DeliveryStats, LatencySummary, SinkStats};

/// What a source's own counters hold when a snapshot is taken.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reading {
    /// read, bytes_read, parsed, invalid, skipped.
    pub(crate) counters: [u64; 5],
    pub(crate) latency: LatencySummary,
    pub(crate) alarms_raised: u64,
    pub(crate) backlog_bytes: Option<u64>,
    pub(crate) backlog_seconds: Option<f64>,
    pub(crate) redelivered: Option<u64>,
}

/// One source's figures: what it read, and what the producer did with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct SourceSnapshot {
    /// Input items read (lines, changes, messages) and their bytes.
    pub read: u64,
    /// Their bytes.
    pub bytes_read: u64,
    /// Items that became records.
    pub parsed: u64,
    /// Items that did not parse or failed validation (dead-lettered).
    pub invalid: u64,
    /// Items with nothing to send (blank lines).
    pub skipped: u64,
    /// Records the service acknowledged.
    pub sent: u64,
    /// Records the producer could not deliver: dead-lettered after retries
    /// or a fatal error, or failed outright.
    pub failed: u64,
    /// Entry failures retried.
    pub retried: u64,
    /// Everything written to the dead-letter file for this source
    /// (`failed` deliveries and `invalid` input).
    pub dead_lettered: u64,
    /// Copies that may be in the stream twice (unknown-outcome attempts).
    pub possibly_duplicated: u64,
    /// Read → settled (delivered or dead-lettered), as the source saw it.
    pub latency: LatencySummary,
    /// Alarms raised for this source.
    pub alarms_raised: u64,
    /// Bytes the source's upstream holds back (a replication slot's WAL
    /// lag), for sources that have such a figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog_bytes: Option<u64>,
    /// How far behind in time: the age of the newest point the source
    /// settled upstream (a slot: the last settled commit's time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog_seconds: Option<f64>,
    /// Inputs the upstream sent again (an MQTT broker's redeliveries),
    /// for sources that can tell; each may be stored twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redelivered: Option<u64>,
}

impl SourceSnapshot {
    fn new(reading: Reading, producer: DeliveryStats) -> Self {
        let [read, bytes_read, parsed, invalid, skipped] = reading.counters;
        SourceSnapshot {
            read,
            bytes_read,
            parsed,
            invalid,
            skipped,
            sent: producer.delivered,
            failed: producer.dead_lettered.saturating_sub(producer.rejected) + producer.failed,
            retried: producer.retried,
            dead_lettered: producer.dead_lettered,
            possibly_duplicated: producer.possibly_duplicated,
            latency: reading.latency,
            alarms_raised: reading.alarms_raised,
            backlog_bytes: reading.backlog_bytes,
            backlog_seconds: reading.backlog_seconds,
            redelivered: reading.redelivered,
        }
    }
}

/// The statistics of a run (`total_sent`, `total_failed`, `success_rate`
/// in %, `throughput_per_sec`, `by_source`) and the streaming figures (`lines_processed`, `records_sent`, `errors`, `lines_per_sec`,
/// `records_per_sec`, `queue_size`), with a few more.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Snapshot {
    /// Records delivered.
    pub total_sent: u64,
    /// Records not delivered: dead-lettered or failed.
    pub total_failed: u64,
    /// `total_sent / (total_sent + total_failed)` in percent, two decimals;
    /// 0 before anything settled.
    pub success_rate: f64,
    /// Records delivered per second since the start.
    pub throughput_per_sec: f64,
    /// Each source's figures, by name.
    pub by_source: BTreeMap<String, SourceSnapshot>,
    /// Input items read (lines, changes, messages).
    pub lines_processed: u64,
    /// Records delivered (as `total_sent`).
    pub records_sent: u64,
    /// Invalid input plus failed deliveries.
    pub errors: u64,
    /// Items that became records, of those read and not skipped, in %.
    pub parse_success_rate: f64,
    /// Lines (items) read and records delivered per second since the start.
    pub lines_per_sec: f64,
    /// Records delivered per second since the start.
    pub records_per_sec: f64,
    /// Records in the producer now: queued, retrying or in flight.
    pub queue_size: u64,
    /// Of those, records that used up their retries and are held until the
    /// service takes them: above 0 during an outage (see
    /// `shardline_core::SinkStats::held_records`).
    pub held_records: u64,
    /// Batch requests in flight now.
    pub in_flight_requests: u64,
    /// Requests the producer lets be in flight now (below its maximum while
    /// the service is slow); 0 for a sink that does not report it.
    pub in_flight_limit: u64,
    /// Entries a shard refused for its throughput limit, in all.
    pub throttled_entries: u64,
    /// Shards paced now, having throttled.
    pub paced_shards: u64,
    /// Entry failures that were retried.
    pub retried: u64,
    /// Records written to the dead-letter file.
    pub dead_lettered: u64,
    /// Delivered records one of whose attempts had an unknown outcome: they
    /// may be stored twice.
    pub possibly_duplicated: u64,
    /// Read → settled over every source.
    pub latency: LatencySummary,
    /// Alarms raised over every source together (per source in
    /// `by_source`).
    pub alarms_raised: u64,
    /// Seconds since the start.
    pub elapsed_secs: f64,
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round2(part as f64 * 100.0 / whole as f64)
    }
}

fn per_second(count: u64, elapsed: f64) -> f64 {
    if elapsed <= 0.0 {
        0.0
    } else {
        round2(count as f64 / elapsed)
    }
}

impl Snapshot {
    pub(crate) fn build(
        sources: &[(String, Reading)],
        producer: &SinkStats,
        elapsed: Duration,
    ) -> Snapshot {
        let mut by_source = BTreeMap::new();
        for (name, counters) in sources {
            let stats = producer.by_source.get(name).copied().unwrap_or_default();
            by_source.insert(name.clone(), SourceSnapshot::new(*counters, stats));
        }
        // Sources the producer knows that counted nothing themselves (a
        // library user sending straight to the producer).
        for (name, stats) in &producer.by_source {
            by_source
                .entry(name.clone())
                .or_insert_with(|| SourceSnapshot::new(Reading::default(), *stats));
        }
        let sum = |f: fn(&SourceSnapshot) -> u64| by_source.values().map(f).sum::<u64>();
        let total_sent = sum(|s| s.sent);
        let total_failed = sum(|s| s.failed);
        let lines = sum(|s| s.read);
        let invalid = sum(|s| s.invalid);
        let parsed = sum(|s| s.parsed);
        let elapsed = elapsed.as_secs_f64();
        Snapshot {
            total_sent,
            total_failed,
            success_rate: percent(total_sent, total_sent + total_failed),
            throughput_per_sec: per_second(total_sent, elapsed),
            lines_processed: lines,
            records_sent: total_sent,
            errors: invalid + total_failed,
            parse_success_rate: percent(parsed, parsed + invalid),
            lines_per_sec: per_second(lines, elapsed),
            records_per_sec: per_second(total_sent, elapsed),
            queue_size: producer.queued_records,
            held_records: producer.held_records,
            in_flight_requests: producer.in_flight_requests,
            in_flight_limit: producer.in_flight_limit,
            throttled_entries: producer.throttled_entries,
            paced_shards: producer.paced_shards,
            retried: sum(|s| s.retried),
            dead_lettered: sum(|s| s.dead_lettered),
            possibly_duplicated: sum(|s| s.possibly_duplicated),
            latency: LatencySummary::default(),
            alarms_raised: 0,
            elapsed_secs: round2(elapsed),
            by_source,
        }
    }

    /// The periodic figures as one line, for a terminal.
    pub fn status_line<'a>(&'a self, rates: Option<(f64, f64)>) -> StatusLine<'a> {
        StatusLine {
            snapshot: self,
            rates,
        }
    }
}

/// The log lab's statistics block as one line: lines processed, records
/// sent, errors, lines/s, records/s, queue size. Rates are over the recent
/// window when given ([`crate::Rates`]), since the start otherwise.
#[derive(Debug)]
pub struct StatusLine<'a> {
    snapshot: &'a Snapshot,
    rates: Option<(f64, f64)>,
}

impl fmt::Display for StatusLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.snapshot;
        let (lines, records) = self.rates.unwrap_or((s.lines_per_sec, s.records_per_sec));
        write!(
            f,
            "lines {} | sent {} | errors {} | {lines:.1} lines/s | {records:.1} records/s | queue {} | success {:.2}%",
            s.lines_processed, s.records_sent, s.errors, s.queue_size, s.success_rate
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_source_and_producer_counts() {
        let mut producer = SinkStats::default();
        producer.by_source.insert(
            "web_logs".into(),
            DeliveryStats {
                records_in: 100,
                delivered: 90,
                dead_lettered: 10,
                rejected: 6,
                retried: 5,
                ..DeliveryStats::default()
            },
        );
        producer.queued_records = 0;
        let reading = Reading {
            counters: [100, 10_000, 94, 6, 0],
            ..Reading::default()
        };
        let sources = vec![("web_logs".to_owned(), reading)];
        let snapshot = Snapshot::build(&sources, &producer, Duration::from_secs(10));
        assert_eq!(snapshot.total_sent, 90);
        assert_eq!(snapshot.total_failed, 4);
        assert_eq!(snapshot.errors, 10);
        assert_eq!(snapshot.success_rate, 95.74);
        assert_eq!(snapshot.throughput_per_sec, 9.0);
        assert_eq!(snapshot.parse_success_rate, 94.0);
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["by_source"]["web_logs"]["sent"], 90);
        assert_eq!(json["by_source"]["web_logs"]["failed"], 4);
        let line = snapshot.status_line(None).to_string();
        assert!(
            line.starts_with("lines 100 | sent 90 | errors 10 | 10.0 lines/s"),
            "{line}"
        );
    }

    #[test]
    fn nothing_settled_is_zero_percent() {
        let snapshot = Snapshot::build(&[], &SinkStats::default(), Duration::ZERO);
        assert_eq!(snapshot.success_rate, 0.0);
        assert_eq!(snapshot.throughput_per_sec, 0.0);
    }
}
