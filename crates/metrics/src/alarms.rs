//! Alarms evaluated locally, per source and in total: success rate below
//! 95 % WARNING, below 90 % CRITICAL, a throughput collapse ALERT (the
//! thresholds are settings), and records held through an outage CRITICAL
//! (in total only: the producer holds them for every source).
//!
//! Each interval's figures are judged on their own (the records settled
//! during the interval), so an alarm clears once delivery recovers instead
//! of waiting for a cumulative rate to climb back.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::Snapshot;

/// The scope of the alarms over every source together.
pub const TOTAL_SCOPE: &str = "total";

/// Thresholds; the defaults warn below 95 % success and are critical
/// below 90 %.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlarmConfig {
    /// Success rate (%) below which WARNING is raised.
    pub warning_below: f64,
    /// Success rate (%) below which CRITICAL is raised.
    pub critical_below: f64,
    /// An interval in which fewer records settled says nothing about the
    /// success rate (one failure out of three is not an outage).
    pub min_settled: u64,
    /// Throughput below this share of its trailing average is a collapse.
    pub throughput_drop_ratio: f64,
    /// ... for this many intervals in a row.
    pub throughput_intervals: u32,
    /// Intervals the trailing average is taken over.
    pub trailing_intervals: usize,
    /// A trailing average below this (records/s) is too small to collapse.
    pub min_trailing_throughput: f64,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            warning_below: 95.0,
            critical_below: 90.0,
            min_settled: 10,
            throughput_drop_ratio: 0.5,
            throughput_intervals: 3,
            trailing_intervals: 6,
            min_trailing_throughput: 1.0,
        }
    }
}

/// How serious an alarm is: three levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// The lowest level.
    Warning,
    /// The middle level.
    Critical,
    /// The highest level.
    Alert,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
            Severity::Alert => "ALERT",
        })
    }
}

/// What an alarm watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// The share of records delivered in an interval.
    SuccessRate,
    /// Records delivered per second in an interval.
    Throughput,
    /// Records used up their retries and are held: the service has been
    /// failing (down, or throttling hard) and reading waits for it.
    Held,
}

/// Raised or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    /// The alarm went off.
    Raised,
    /// The alarm is over.
    Cleared,
}

/// One change of an alarm's state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlarmEvent {
    /// A source's name, or [`TOTAL_SCOPE`].
    pub scope: String,
    /// What it watches.
    pub alarm: AlarmKind,
    /// How serious it is.
    pub severity: Severity,
    /// Raised or cleared.
    pub state: AlarmState,
    /// The interval's success rate (%) or throughput (records/s), or the
    /// records held.
    pub value: f64,
    /// The threshold it was judged against.
    pub threshold: f64,
}

#[derive(Debug, Default)]
struct ScopeState {
    sent: u64,
    failed: u64,
    success: Option<Severity>,
    trailing: VecDeque<f64>,
    low_intervals: u32,
    /// The threshold the collapse was raised against, while raised.
    collapse: Option<f64>,
}

/// The alarm evaluator: feed it one snapshot per interval.
#[derive(Debug)]
pub struct Alarms {
    config: AlarmConfig,
    scopes: BTreeMap<String, ScopeState>,
    last: Option<f64>,
    raised: BTreeMap<String, u64>,
    /// Whether the held alarm is raised.
    held: bool,
}

impl Alarms {
    /// Alarms with these thresholds, none raised.
    pub fn new(config: AlarmConfig) -> Self {
        Alarms {
            config,
            scopes: BTreeMap::new(),
            last: None,
            raised: BTreeMap::new(),
            held: false,
        }
    }

    /// Alarms raised so far, by scope.
    pub fn raised(&self) -> &BTreeMap<String, u64> {
        &self.raised
    }

    /// Judges the interval since the previous snapshot; returns what
    /// changed.
    pub fn observe(&mut self, snapshot: &Snapshot) -> Vec<AlarmEvent> {
        let seconds = snapshot.elapsed_secs - self.last.unwrap_or(0.0);
        self.last = Some(snapshot.elapsed_secs);
        let mut events = Vec::new();
        let scopes = std::iter::once((TOTAL_SCOPE, snapshot.total_sent, snapshot.total_failed))
            .chain(
                snapshot
                    .by_source
                    .iter()
                    .map(|(name, s)| (name.as_str(), s.sent, s.failed)),
            );
        for (scope, sent, failed) in scopes {
            let state = self.scopes.entry(scope.to_owned()).or_default();
            let (d_sent, d_failed) = (
                sent.saturating_sub(state.sent),
                failed.saturating_sub(state.failed),
            );
            state.sent = sent;
            state.failed = failed;
            let before = events.len();
            judge_success(&self.config, scope, state, d_sent, d_failed, &mut events);
            if seconds > 0.0 {
                judge_throughput(
                    &self.config,
                    scope,
                    state,
                    d_sent as f64 / seconds,
                    &mut events,
                );
            }
            let raised = events
                .iter()
                .skip(before)
                .filter(|e| e.state == AlarmState::Raised)
                .count() as u64;
            if raised > 0 {
                *self.raised.entry(scope.to_owned()).or_default() += raised;
            }
        }
        let held = snapshot.held_records > 0;
        if held != self.held {
            self.held = held;
            events.push(AlarmEvent {
                scope: TOTAL_SCOPE.to_owned(),
                alarm: AlarmKind::Held,
                severity: Severity::Critical,
                state: if held {
                    AlarmState::Raised
                } else {
                    AlarmState::Cleared
                },
                value: snapshot.held_records as f64,
                threshold: 0.0,
            });
            if held {
                *self.raised.entry(TOTAL_SCOPE.to_owned()).or_default() += 1;
            }
        }
        events
    }
}

fn judge_success(
    config: &AlarmConfig,
    scope: &str,
    state: &mut ScopeState,
    sent: u64,
    failed: u64,
    events: &mut Vec<AlarmEvent>,
) {
    let settled = sent + failed;
    if settled < config.min_settled.max(1) {
        return;
    }
    let rate = sent as f64 * 100.0 / settled as f64;
    let level = if rate < config.critical_below {
        Some(Severity::Critical)
    } else if rate < config.warning_below {
        Some(Severity::Warning)
    } else {
        None
    };
    if level == state.success {
        return;
    }
    let threshold = |severity| match severity {
        Severity::Critical => config.critical_below,
        _ => config.warning_below,
    };
    let event = |severity, state| AlarmEvent {
        scope: scope.to_owned(),
        alarm: AlarmKind::SuccessRate,
        severity,
        state,
        value: (rate * 100.0).round() / 100.0,
        threshold: threshold(severity),
    };
    if let Some(old) = state.success {
        events.push(event(old, AlarmState::Cleared));
    }
    if let Some(new) = level {
        events.push(event(new, AlarmState::Raised));
    }
    state.success = level;
}

fn judge_throughput(
    config: &AlarmConfig,
    scope: &str,
    state: &mut ScopeState,
    rate: f64,
    events: &mut Vec<AlarmEvent>,
) {
    let event = |state, threshold: f64| AlarmEvent {
        scope: scope.to_owned(),
        alarm: AlarmKind::Throughput,
        severity: Severity::Alert,
        state,
        value: (rate * 100.0).round() / 100.0,
        threshold: (threshold * 100.0).round() / 100.0,
    };
    if let Some(threshold) = state.collapse {
        if rate >= threshold {
            events.push(event(AlarmState::Cleared, threshold));
            state.collapse = None;
            state.low_intervals = 0;
            state.trailing.clear();
            state.trailing.push_back(rate);
        }
        return;
    }
    let full = state.trailing.len() >= config.trailing_intervals.max(1);
    let average = state.trailing.iter().sum::<f64>() / state.trailing.len().max(1) as f64;
    let threshold = average * config.throughput_drop_ratio;
    if full && average >= config.min_trailing_throughput && rate < threshold {
        // A low interval does not enter the average it is judged against.
        state.low_intervals += 1;
        if state.low_intervals >= config.throughput_intervals.max(1) {
            events.push(event(AlarmState::Raised, threshold));
            state.collapse = Some(threshold);
        }
        return;
    }
    state.low_intervals = 0;
    state.trailing.push_back(rate);
    while state.trailing.len() > config.trailing_intervals.max(1) {
        state.trailing.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceSnapshot;

    fn snapshot(at: f64, sent: u64, failed: u64) -> Snapshot {
        let mut s = Snapshot {
            total_sent: sent,
            total_failed: failed,
            elapsed_secs: at,
            ..Snapshot::default()
        };
        s.by_source.insert(
            "web_logs".into(),
            SourceSnapshot {
                sent,
                failed,
                ..SourceSnapshot::default()
            },
        );
        s
    }

    fn kinds(events: &[AlarmEvent]) -> Vec<(&str, Severity, AlarmState)> {
        events
            .iter()
            .map(|e| (e.scope.as_str(), e.severity, e.state))
            .collect()
    }

    #[test]
    fn held_records_raise_one_alarm_until_none_is_held() {
        let mut alarms = Alarms::new(AlarmConfig::default());
        let mut held = snapshot(1.0, 100, 0);
        held.held_records = 250;
        let raised = alarms.observe(&held);
        assert_eq!(
            raised
                .iter()
                .map(|e| (e.alarm, e.state, e.value))
                .collect::<Vec<_>>(),
            [(AlarmKind::Held, AlarmState::Raised, 250.0)]
        );
        held.elapsed_secs = 2.0;
        held.held_records = 40;
        assert!(
            alarms
                .observe(&held)
                .iter()
                .all(|e| e.alarm != AlarmKind::Held)
        );
        let cleared = alarms.observe(&snapshot(3.0, 100, 0));
        assert!(
            cleared
                .iter()
                .any(|e| e.alarm == AlarmKind::Held && e.state == AlarmState::Cleared)
        );
        assert_eq!(alarms.raised()[TOTAL_SCOPE], 1);
    }

    #[test]
    fn success_rate_warns_then_escalates_then_clears() {
        let mut alarms = Alarms::new(AlarmConfig::default());
        assert!(alarms.observe(&snapshot(1.0, 100, 0)).is_empty());
        // 93 of 100 in the interval: WARNING.
        let events = alarms.observe(&snapshot(2.0, 193, 7));
        assert_eq!(
            kinds(&events),
            [
                ("total", Severity::Warning, AlarmState::Raised),
                ("web_logs", Severity::Warning, AlarmState::Raised)
            ]
        );
        assert_eq!(events[0].value, 93.0);
        assert_eq!(events[0].threshold, 95.0);
        // 80 of 100: CRITICAL replaces WARNING.
        let events = alarms.observe(&snapshot(3.0, 273, 27));
        assert_eq!(
            kinds(&events)[..2],
            [
                ("total", Severity::Warning, AlarmState::Cleared),
                ("total", Severity::Critical, AlarmState::Raised)
            ]
        );
        // Too few settled to judge: nothing changes.
        assert!(alarms.observe(&snapshot(4.0, 275, 28)).is_empty());
        // All delivered again: cleared.
        let events = alarms.observe(&snapshot(5.0, 375, 28));
        assert_eq!(
            kinds(&events)[..1],
            [("total", Severity::Critical, AlarmState::Cleared)]
        );
        assert_eq!(alarms.raised()["total"], 2);
        assert_eq!(alarms.raised()["web_logs"], 2);
    }

    #[test]
    fn throughput_collapse_alerts_after_n_intervals_and_clears() {
        let config = AlarmConfig {
            trailing_intervals: 3,
            throughput_intervals: 2,
            ..AlarmConfig::default()
        };
        let mut alarms = Alarms::new(config);
        let mut sent = 0;
        let mut at = 0.0;
        let mut step = |alarms: &mut Alarms, per_sec: u64| {
            at += 1.0;
            sent += per_sec;
            alarms
                .observe(&snapshot(at, sent, 0))
                .into_iter()
                .filter(|e| e.scope == TOTAL_SCOPE && e.alarm == AlarmKind::Throughput)
                .collect::<Vec<_>>()
        };
        for _ in 0..3 {
            assert!(step(&mut alarms, 100).is_empty());
        }
        assert!(
            step(&mut alarms, 10).is_empty(),
            "one low interval is not a collapse"
        );
        let raised = step(&mut alarms, 10);
        assert_eq!(
            kinds(&raised),
            [("total", Severity::Alert, AlarmState::Raised)]
        );
        assert_eq!(raised[0].threshold, 50.0);
        assert!(step(&mut alarms, 20).is_empty(), "still collapsed");
        let cleared = step(&mut alarms, 90);
        assert_eq!(
            kinds(&cleared),
            [("total", Severity::Alert, AlarmState::Cleared)]
        );
    }
}
