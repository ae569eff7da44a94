//! When to try a failed record again, and how long to wait first.

use std::time::Duration;

use rand::Rng;
use shardline_core::DeadLetterReason;

use crate::destination::ErrorClass;

/// What to do with a record whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after a [`RetryPolicy::delay`].
    Retry,
    /// Write it to the dead-letter file, for this reason.
    GiveUp(DeadLetterReason),
}

/// Capped exponential backoff with full jitter: before retry `n` (1-based)
/// the producer waits a uniformly random time in
/// `0 ..= min(max_delay, initial_delay * 2^(n-1))`, so producers that were
/// throttled together do not come back together.
///
/// The defaults: 1 s initial delay, 60 s cap, 3 retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// Retries after the first attempt; `None`: retry until delivered or
    /// shut down.
    pub max_retries: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_retries: Some(3),
        }
    }
}

impl RetryPolicy {
    /// Whether a record that has failed `attempts` times may be tried again.
    pub fn may_retry(&self, attempts: u32) -> bool {
        match self.max_retries {
            Some(max) => attempts <= max,
            None => true,
        }
    }

    /// What to do with a record that has failed `attempts` times, the last
    /// time with an error of `class`, while the producer is `stopping`
    /// (past its shutdown deadline) or not. The one place that decides.
    pub fn decide(&self, class: ErrorClass, attempts: u32, stopping: bool) -> Decision {
        match class {
            ErrorClass::Fatal => Decision::GiveUp(DeadLetterReason::Fatal),
            ErrorClass::Retryable if stopping => {
                Decision::GiveUp(DeadLetterReason::ShutdownDeadline)
            }
            ErrorClass::Retryable if self.may_retry(attempts) => Decision::Retry,
            ErrorClass::Retryable => Decision::GiveUp(DeadLetterReason::RetriesExhausted),
        }
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
            policy.decide(ErrorClass::Retryable, 1, false),
            Decision::Retry
        );
        assert_eq!(
            policy.decide(ErrorClass::Retryable, 3, false),
            Decision::Retry
        );
        assert_eq!(
            policy.decide(ErrorClass::Retryable, 4, false),
            Decision::GiveUp(DeadLetterReason::RetriesExhausted)
        );
        assert_eq!(
            policy.decide(ErrorClass::Retryable, 1, true),
            Decision::GiveUp(DeadLetterReason::ShutdownDeadline)
        );
        assert_eq!(
            policy.decide(ErrorClass::Fatal, 1, false),
            Decision::GiveUp(DeadLetterReason::Fatal)
        );
        assert_eq!(
            policy.decide(ErrorClass::Fatal, 1, true),
            Decision::GiveUp(DeadLetterReason::Fatal)
        );
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
