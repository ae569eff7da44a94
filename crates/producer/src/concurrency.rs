//! Adaptive requests in flight: as many as the service answers quickly,
//! fewer while it slows down or pushes back.
//!
//! A producer that keeps `max_in_flight` requests outstanding against an
//! endpoint that has slowed down only queues more work in front of it (and
//! holds more memory in request copies). So the limit on requests in
//! flight moves, as Vector's adaptive request concurrency and TCP's
//! congestion window do:
//!
//! - Each answered request's latency is compared with the baseline: a slow
//!   moving average of earlier latencies ([`BASELINE_WEIGHT`]). A latency
//!   above [`SLOW_FACTOR`] times the baseline, or a request the service
//!   pushed back (throttled as a whole, 5xx, timed out, connection lost),
//!   cuts the limit by [`DECREASE_FACTOR`], at most once per baseline
//!   latency: one slow round is one signal, not one per request in it.
//! - A quick answer while the limit was in use grows the limit by one
//!   request per round of requests (`1 / limit` per answer).
//! - The limit starts at `max_in_flight` (a producer that meets no
//!   trouble behaves as with a fixed limit) and stays between 1 and it.
//!
//! Throttled entries of a request the service otherwise took are not a
//! signal here: a shard's limit says nothing of the endpoint, and each
//! shard is paced on its own ([`crate::rate_limit`]).

use std::time::{Duration, Instant};

/// The weight of a new latency in the baseline average (1/20: the baseline
/// follows the last few dozen answers, so a burst of slow answers stands
/// out against it).
pub const BASELINE_WEIGHT: f64 = 0.05;
/// An answer this many times slower than the baseline means requests are
/// queueing at the endpoint.
pub const SLOW_FACTOR: f64 = 2.0;
/// A slow round or a push-back cuts the limit to this share (Vector's
/// adaptive concurrency uses 0.9 as well: gentle, since the signal is
/// noisy).
pub const DECREASE_FACTOR: f64 = 0.9;
/// Answers before the baseline is trusted to judge latency.
pub const WARM_UP_ANSWERS: u32 = 10;
/// The shortest time between two cuts, whatever the latency.
const MIN_CUT_SPACING: Duration = Duration::from_millis(10);

/// How an answered request went, as the limit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Answered (entries may have failed on their own).
    Answered,
    /// Pushed back as a whole: throttled, 5xx, timed out, lost.
    PushedBack,
}

/// The limit on requests in flight.
#[derive(Debug, Clone)]
pub(crate) struct Concurrency {
    adaptive: bool,
    ceiling: f64,
    limit: f64,
    baseline: Option<f64>,
    answers: u32,
    last_cut: Option<Instant>,
}

impl Concurrency {
    /// At most `max_in_flight` requests; `adaptive`: fewer while the
    /// service is slow.
    pub(crate) fn new(max_in_flight: usize, adaptive: bool) -> Self {
        let ceiling = max_in_flight.max(1) as f64;
        Concurrency {
            adaptive,
            ceiling,
            limit: ceiling,
            baseline: None,
            answers: 0,
            last_cut: None,
        }
    }

    /// Requests that may be in flight now.
    pub(crate) fn limit(&self) -> usize {
        // Whole requests: the fraction is growth in progress.
        (self.limit.floor() as usize).max(1)
    }

    /// A request sent at `sent` while `in_flight_then` requests were in
    /// flight (itself included) was answered at `now` after `latency`.
    pub(crate) fn answered(
        &mut self,
        answer: Answer,
        latency: Duration,
        sent: Instant,
        in_flight_then: usize,
        now: Instant,
    ) {
        if !self.adaptive {
            return;
        }
        let latency = latency.as_secs_f64();
        let baseline = self.baseline.unwrap_or(latency);
        let warm = self.answers >= WARM_UP_ANSWERS;
        self.answers = self.answers.saturating_add(1);
        let slow = warm && latency > baseline * SLOW_FACTOR;
        if answer == Answer::PushedBack || slow {
            // One cut per round: a request sent before the last cut saw the
            // old limit.
            let spacing = Duration::from_secs_f64(baseline).max(MIN_CUT_SPACING);
            let recent = self
                .last_cut
                .is_some_and(|at| sent <= at || now.saturating_duration_since(at) < spacing);
            if !recent {
                self.limit = (self.limit * DECREASE_FACTOR).max(1.0);
                self.last_cut = Some(now);
            }
        } else if in_flight_then as f64 >= self.limit.floor() {
            self.limit = (self.limit + 1.0 / self.limit).min(self.ceiling);
        }
        if answer == Answer::Answered {
            self.baseline = Some(baseline + BASELINE_WEIGHT * (latency - baseline));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_fixed_limit_does_not_move() {
        let now = Instant::now();
        let mut c = Concurrency::new(4, false);
        c.answered(Answer::PushedBack, ms(10), now, 4, now);
        assert_eq!(c.limit(), 4);
    }

    #[test]
    fn slow_answers_cut_once_per_round_and_quick_ones_grow_it_back() {
        let start = Instant::now();
        let mut c = Concurrency::new(8, true);
        let mut now = start;
        for _ in 0..WARM_UP_ANSWERS {
            now += ms(10);
            c.answered(Answer::Answered, ms(10), now - ms(10), 8, now);
        }
        assert_eq!(c.limit(), 8);
        // A round of eight slow answers to requests sent together: one cut.
        let sent = now;
        now += ms(50);
        for _ in 0..8 {
            c.answered(Answer::Answered, ms(50), sent, 8, now);
        }
        assert_eq!(c.limit(), 7, "8 × 0.9 = 7.2");
        // Requests sent after the cut, still slow: another cut.
        let sent = now + ms(1);
        now += ms(60);
        c.answered(Answer::Answered, ms(59), sent, 7, now);
        assert_eq!(c.limit(), 6, "7.2 × 0.9 = 6.48");
        // Quick answers with the limit in use grow it by one per round.
        for _ in 0..100 {
            now += ms(10);
            c.answered(Answer::Answered, ms(10), now - ms(10), 8, now);
        }
        assert_eq!(c.limit(), 8, "back to the ceiling, and no further");
        // Quick answers with the limit unused do not grow it.
        let mut idle = Concurrency::new(8, true);
        idle.limit = 2.0;
        for _ in 0..100 {
            now += ms(10);
            idle.answered(Answer::Answered, ms(10), now - ms(10), 1, now);
        }
        assert_eq!(idle.limit(), 2);
    }

    #[test]
    fn push_back_cuts_even_before_the_baseline_is_known_down_to_one() {
        let mut now = Instant::now();
        let mut c = Concurrency::new(4, true);
        for _ in 0..50 {
            let sent = now;
            now += ms(20);
            c.answered(Answer::PushedBack, ms(20), sent, 4, now);
        }
        assert_eq!(c.limit(), 1);
    }
}
