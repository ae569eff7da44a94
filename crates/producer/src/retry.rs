//! When to try a failed record again, and how long to wait first.

use std::time::Duration;

use rand::Rng;
use shardline_core::DeadLetterReason;

use crate::destination::ErrorClass;

/// The longest wait between tries of a held record: once the service has
/// failed a record through all its retries (an outage, long throttling),
/// it is tried at least this often, so delivery resumes within seconds of
/// the service coming back — Fluent Bit's retry base, and a third of
/// Vector's 30 s retry cap.
pub const HOLD_RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// What to do with a record whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after a [`RetryPolicy::delay`].
    Retry,
    /// Its retries are used up and the error is transient: keep it, and
    /// try again after a [`RetryPolicy::hold_delay`]. It keeps its room in
    /// the queue, so a producer full of held records makes its sources wait.
    Hold,
    /// Write it to the dead-letter file, for this reason.
    GiveUp(DeadLetterReason),
}

/// What becomes of a record still failing with a transient error (throttled,
/// a 5xx, the endpoint unreachable) once its retries are used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenRetriesRunOut {
    /// Dead-letter it (`retries_exhausted`).
    DeadLetter,
    /// Hold it and keep trying ([`Decision::Hold`]); with a limit, dead-letter
    /// it once it has been failing that long (since its first attempt).
    /// For sources that can read again (files, a replication slot, an MQTT
    /// session) an outage then pauses reading instead of filling the
    /// dead-letter file; a source that cannot (stdin) sets a limit.
    Hold {
        /// How long a record may keep failing before it is dead-lettered;
        /// `None`: for as long as it takes.
        #[serde(default, with = "humantime_serde")]
        limit: Option<Duration>,
    },
}

/// Capped exponential backoff with full jitter: before retry `n` (1-based)
/// the producer waits a uniformly random time in
/// `0 ..= min(max_delay, initial_delay * 2^(n-1))`, so producers that were
/// throttled together do not come back together.
///
/// The defaults: 1 s initial delay, 60 s cap, 3 retries, then dead-letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The cap on the wait before the first retry (it doubles with each).
    #[serde(with = "humantime_serde")]
    pub initial_delay: Duration,
    /// The cap on any wait.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Retries after the first attempt; `None`: retry until delivered or
    /// shut down.
    pub max_retries: Option<u32>,
    /// After `max_retries`: dead-letter, or hold.
    pub when_retries_run_out: WhenRetriesRunOut,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_retries: Some(3),
            when_retries_run_out: WhenRetriesRunOut::DeadLetter,
        }
    }
}

impl RetryPolicy {
    /// With `delay` as the first retry's cap.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// With `delay` as the cap on any wait.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// With `retries` retries after the first attempt (`None`: until
    /// delivered or shut down).
    pub fn max_retries(mut self, retries: Option<u32>) -> Self {
        self.max_retries = retries;
        self
    }

    /// With `rule` for a record whose retries are used up.
    pub fn when_retries_run_out(mut self, rule: WhenRetriesRunOut) -> Self {
        self.when_retries_run_out = rule;
        self
    }

    /// Whether a record that has failed `attempts` times may be tried again.
    pub fn may_retry(&self, attempts: u32) -> bool {
        match self.max_retries {
            Some(max) => attempts <= max,
            None => true,
        }
    }

    /// What to do with a record that has failed `attempts` times, the last
    /// time with an error of `class`, `failing_for` since its first
    /// attempt, while the producer is `stopping` (past its shutdown
    /// deadline) or not. The one place that decides.
    pub fn decide(
        &self,
        class: ErrorClass,
        attempts: u32,
        failing_for: Duration,
        stopping: bool,
    ) -> Decision {
        match class {
            ErrorClass::Fatal => Decision::GiveUp(DeadLetterReason::Fatal),
            ErrorClass::Retryable if stopping => {
                Decision::GiveUp(DeadLetterReason::ShutdownDeadline)
            }
            ErrorClass::Retryable if self.may_retry(attempts) => Decision::Retry,
            ErrorClass::Retryable => match self.when_retries_run_out {
                WhenRetriesRunOut::Hold { limit } if limit.is_none_or(|l| failing_for < l) => {
                    Decision::Hold
                }
                _ => Decision::GiveUp(DeadLetterReason::RetriesExhausted),
            },
        }
    }

    /// A random wait before the next try of a held record that has failed
    /// `attempts` times: full jitter under the backoff's ceiling, capped at
    /// [`HOLD_RETRY_MAX_DELAY`].
    pub fn hold_delay(&self, attempts: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempts).min(HOLD_RETRY_MAX_DELAY);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }

    /// The upper bound of the wait before retry `retry` (1-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(31);
        self.initial_delay
            .checked_mul(1u32 << exponent)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// A random wait before retry `retry` (1-based): full jitter under
    /// [`RetryPolicy::ceiling`].
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.decide(ErrorClass::Retryable, 1, Duration::ZERO, false),
            Decision::Retry
        );
        assert_eq!(
            policy.decide(ErrorClass::Retryable, 3, Duration::ZERO, false),
            Decision::Retry
        );
        assert_eq!(
            policy.decide(ErrorClass::Retryable, 4, Duration::ZERO, false),
            Decision::GiveUp(DeadLetterReason::RetriesExhausted)
        );
        assert_eq!(
            policy.decide(ErrorClass::Retryable, 1, Duration::ZERO, true),
            Decision::GiveUp(DeadLetterReason::ShutdownDeadline)
        );
        assert_eq!(
            policy.decide(ErrorClass::Fatal, 1, Duration::ZERO, false),
            Decision::GiveUp(DeadLetterReason::Fatal)
        );
        assert_eq!(
            policy.decide(ErrorClass::Fatal, 1, Duration::ZERO, true),
            Decision::GiveUp(DeadLetterReason::Fatal)
        );
    }

    #[test]
    fn held_records_are_kept_until_their_limit() {
        let hold = RetryPolicy {
            when_retries_run_out: WhenRetriesRunOut::Hold { limit: None },
            ..RetryPolicy::default()
        };
        let day = Duration::from_secs(86_400);
        assert_eq!(
            hold.decide(ErrorClass::Retryable, 3, day, false),
            Decision::Retry
        );
        assert_eq!(
            hold.decide(ErrorClass::Retryable, 4, day, false),
            Decision::Hold
        );
        assert_eq!(
            hold.decide(ErrorClass::Retryable, 1000, day, false),
            Decision::Hold
        );
        // Fatal errors and the shutdown deadline still end it.
        assert_eq!(
            hold.decide(ErrorClass::Fatal, 4, day, false),
            Decision::GiveUp(DeadLetterReason::Fatal)
        );
        assert_eq!(
            hold.decide(ErrorClass::Retryable, 4, day, true),
            Decision::GiveUp(DeadLetterReason::ShutdownDeadline)
        );
        let limited = RetryPolicy {
            when_retries_run_out: WhenRetriesRunOut::Hold {
                limit: Some(Duration::from_secs(300)),
            },
            ..RetryPolicy::default()
        };
        assert_eq!(
            limited.decide(ErrorClass::Retryable, 9, Duration::from_secs(299), false),
            Decision::Hold
        );
        assert_eq!(
            limited.decide(ErrorClass::Retryable, 9, Duration::from_secs(300), false),
            Decision::GiveUp(DeadLetterReason::RetriesExhausted)
        );
        let mut rng = rand::rng();
        for attempts in [1, 4, 40] {
            assert!(hold.hold_delay(attempts, &mut rng) <= HOLD_RETRY_MAX_DELAY);
        }
    }

    #[test]
    fn defaults() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.ceiling(1), Duration::from_secs(1));
        assert_eq!(policy.ceiling(2), Duration::from_secs(2));
        assert_eq!(policy.ceiling(3), Duration::from_secs(4));
        assert_eq!(policy.ceiling(7), Duration::from_secs(60));
        assert_eq!(policy.ceiling(1000), Duration::from_secs(60));
        // Three retries: the 4th failure is final.
        assert!(policy.may_retry(1) && policy.may_retry(3));
        assert!(!policy.may_retry(4));
        let unlimited = RetryPolicy {
            max_retries: None,
            ..policy
        };
        assert!(unlimited.may_retry(u32::MAX));
    }

    #[test]
    fn delays_stay_under_the_ceiling() {
        let policy = RetryPolicy::default();
        let mut rng = rand::rng();
        for retry in 1..10 {
            for _ in 0..100 {
                assert!(policy.delay(retry, &mut rng) <= policy.ceiling(retry));
            }
        }
    }
}
