//! Warnings that would come once per record (a dead letter) or once per
//! request (a failed batch), summarised: the first of a kind is logged at
//! once, with its example; the rest of that kind within
//! [`WARNING_WINDOW`] are counted and logged as one line when the window
//! closes. With 90 % of 3,000 lines refused, one warning per record was
//! 1,966 lines; at real rates that fills the disk holding the process's
//! own logs. (Vector limits its internal logs the same way, per call site
//! and window.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a kind of warning is summarised after its first line.
pub const WARNING_WINDOW: Duration = Duration::from_secs(5);

/// What a warning is about: its message, the source or destination it
/// names, and the reason. Warnings differing in any of these are logged
/// apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Kind {
    pub(crate) message: &'static str,
    pub(crate) about: About,
    pub(crate) reason: String,
}

/// Whose warning it is: logged as the field `source` or `destination`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum About {
    Source(String),
    Destination(String),
}

/// A line to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// The first of its kind in a window.
    First { kind: Kind, example: String },
    /// How many more of its kind came in the window; the first of them.
    More {
        kind: Kind,
        more: u64,
        window: Duration,
        example: String,
    },
}

impl Line {
    /// Logs the line as a warning.
    pub(crate) fn log(&self) {
        let (kind, text, example) = match self {
            Line::First { kind, example } => (kind, kind.message.to_owned(), example),
            Line::More {
                kind,
                more,
                window,
                example,
            } => (
                kind,
                format!(
                    "{} — {more} more in {:.0} s (each counted in the statistics; the first of them: {example})",
                    kind.message,
                    window.as_secs_f64()
                ),
                example,
            ),
        };
        let reason = kind.reason.as_str();
        match (&kind.about, self) {
            (About::Source(source), Line::First { .. }) => tracing::warn!(
                source = source.as_str(),
                reason,
                error = example.as_str(),
                "{text}"
            ),
            (About::Destination(destination), Line::First { .. }) => tracing::warn!(
                destination = destination.as_str(),
                reason,
                error = example.as_str(),
                "{text}"
            ),
            (About::Source(source), Line::More { .. }) => {
                tracing::warn!(source = source.as_str(), reason, "{text}")
            }
            (About::Destination(destination), Line::More { .. }) => {
                tracing::warn!(destination = destination.as_str(), reason, "{text}")
            }
        }
    }
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    more: u64,
    example: Option<String>,
}

/// The warnings of one task, summarised per [`Kind`].
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    open: BTreeMap<Kind, Window>,
}

impl Warnings {
    /// A warning of `kind` at `now`: the line to log at once, if it is the
    /// first of its kind in a window. `example` is called only when its
    /// text is kept.
    pub(crate) fn warn(
        &mut self,
        kind: Kind,
        now: Instant,
        example: impl FnOnce() -> String,
    ) -> Option<Line> {
        match self.open.get_mut(&kind) {
            Some(window) => {
                window.more += 1;
                if window.example.is_none() {
                    window.example = Some(example());
                }
                None
            }
            None => {
                self.open.insert(
                    kind.clone(),
                    Window {
                        opened: now,
                        more: 0,
                        example: None,
                    },
                );
                Some(Line::First {
                    kind,
                    example: example(),
                })
            }
        }
    }

    /// When the next window closes, if any is open.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.open.values().map(|w| w.opened + WARNING_WINDOW).min()
    }

    /// Closes the windows open for [`WARNING_WINDOW`] at `now`, or all of
    /// them with `all` (at the end): a summary line for each that counted
    /// more than its first.
    pub(crate) fn close(&mut self, now: Instant, all: bool) -> Vec<Line> {
        let mut lines = Vec::new();
        self.open.retain(|kind, window| {
            let due = window.opened + WARNING_WINDOW;
            if !all && now < due {
                return true;
            }
            if window.more > 0 {
                lines.push(Line::More {
                    kind: kind.clone(),
                    more: window.more,
                    window: now.min(due).saturating_duration_since(window.opened),
                    example: window.example.take().unwrap_or_default(),
                });
            }
            false
        });
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(reason: &str) -> Kind {
        Kind {
            message: "record dead-lettered",
            about: About::Source("apache".to_owned()),
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn the_first_of_a_kind_is_logged_and_the_rest_summed_per_window() {
        let start = Instant::now();
        let mut warnings = Warnings::default();
        let mut lines = Vec::new();
        // 2,700 refusals and 10 oversized records over 12 s.
        for i in 0..2_710u64 {
            let now = start + Duration::from_millis(i * 12_000 / 2_710);
            let reason = if i % 271 == 0 {
                "too_large"
            } else {
                "rejected"
            };
            lines.extend(warnings.close(now, false));
            lines.extend(warnings.warn(kind(reason), now, || format!("line {i}")));
        }
        lines.extend(warnings.close(start + Duration::from_secs(13), true));
        // Per kind, a first line and a summary for each window of 5 s,
        // never a line per record: refusals open windows at 0, 5 and 10 s;
        // oversized records (every 1.2 s) at 0 and 6 s.
        let firsts = lines
            .iter()
            .filter(|l| matches!(l, Line::First { .. }))
            .count();
        let summaries: Vec<_> = lines
            .iter()
            .filter_map(|l| match l {
                Line::More { kind, more, .. } => Some((kind.reason.as_str(), *more)),
                Line::First { .. } => None,
            })
            .collect();
        assert_eq!(firsts, 5, "{lines:#?}");
        assert_eq!(summaries.len(), 5, "{lines:#?}");
        let counted: u64 = summaries.iter().map(|(_, more)| more).sum();
        assert_eq!(counted + firsts as u64, 2_710, "every warning is counted");
        // A summary's example is the first it counted, not the first
        // logged (refusals begin at line 1).
        assert!(lines.iter().any(|l| matches!(
            l,
            Line::More { example, .. } if example == "line 2"
        )));
    }

    #[test]
    fn a_lone_warning_has_no_summary_and_the_window_reopens() {
        let start = Instant::now();
        let mut warnings = Warnings::default();
        assert!(
            warnings
                .warn(kind("rejected"), start, String::new)
                .is_some()
        );
        assert_eq!(warnings.next_due(), Some(start + WARNING_WINDOW));
        assert!(warnings.close(start + WARNING_WINDOW, false).is_empty());
        assert_eq!(warnings.next_due(), None);
        assert!(
            warnings
                .warn(kind("rejected"), start + WARNING_WINDOW, String::new)
                .is_some(),
            "a new window logs its first again"
        );
    }
}
