//! [`Breaker`]: honours Amazon's back-off. After a `429`, or a run of failures (5xx, timeouts,
//! broken connections, unreadable answers), no new verification is started until the back-off
//! has passed: those requests are answered `503` with the remaining `Retry-After` at once (or a
//! stale identity, with stale-if-error). Then one probe verification goes through; its answer
//! (any answer Amazon gives, a verdict included) closes the breaker, its failure opens it again.
//!
//! Cached identities never reach the breaker: only verifications do.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::MAX_RETRY_AFTER_SECS;

/// Failures in a row that open the breaker.
pub(crate) const FAILURES_TO_OPEN: u32 = 5;

/// The longest back-off honoured, whatever Amazon asks (a proxy sending `Retry-After: 10^12`
/// must not stop verification for good); also the most `Retry-After` sent to clients.
const MAX_BACKOFF: Duration = Duration::from_secs(MAX_RETRY_AFTER_SECS);

/// The shortest back-off: `Retry-After` has a resolution of one second.
const MIN_BACKOFF: Duration = Duration::from_secs(1);

/// Whether Amazon is asked at all, and why not.
#[derive(Debug)]
pub(crate) struct Breaker {
    state: Mutex<State>,
    /// Back-off after a run of failures without a hint of Amazon's.
    backoff: Duration,
    /// How long a probe may take before another one is let through.
    probe_deadline: Duration,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Verifications go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// No verification until `until`.
    Open { until: Instant },
    /// One probe is out (until `until`, its deadline); the others wait for its answer.
    Probing { until: Instant },
}

/// What one verification ended with, for the breaker.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    /// Amazon answered (a verdict counts: it is up).
    Answered,
    /// Amazon throttled us: back off for its `Retry-After` (seconds), if it gave one.
    Throttled(Option<u64>),
    /// No usable answer.
    Failed,
}

impl Breaker {
    /// A closed breaker that backs off for `backoff` after a run of failures, and lets a new
    /// probe through when one has not answered within `probe_deadline`.
    pub(crate) fn new(backoff: Duration, probe_deadline: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            backoff: backoff.clamp(MIN_BACKOFF, MAX_BACKOFF),
            probe_deadline,
        }
    }

    /// `Ok` when a verification may ask Amazon now; otherwise how long until it may.
    pub(crate) fn admit(&self) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } | State::Probing { until } if now < until => Err(until - now),
            // The back-off has passed (or the last probe never answered): one probe goes.
            State::Open { .. } | State::Probing { .. } => {
                *state = State::Probing {
                    until: now + self.probe_deadline,
                };
                Ok(())
            }
        }
    }

    /// Records what an admitted verification ended with.
    pub(crate) fn record(&self, outcome: Outcome) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let open_for = match (outcome, *state) {
            (Outcome::Answered, _) => {
                *state = State::Closed { failures: 0 };
                return;
            }
            (Outcome::Throttled(hint), _) => hint.map_or(self.backoff, Duration::from_secs),
            (Outcome::Failed, State::Closed { failures }) if failures + 1 < FAILURES_TO_OPEN => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                return;
            }
            (Outcome::Failed, _) => self.backoff,
        };
        let until = now + open_for.clamp(MIN_BACKOFF, MAX_BACKOFF);
        // A slow failure landing after a newer back-off must not shorten it.
        if let State::Open { until: later } = *state {
            if later > until {
                return;
            }
        }
        *state = State::Open { until };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_opens_at_once_and_a_run_of_failures_after_five() {
        let breaker = Breaker::new(Duration::from_secs(5), Duration::from_secs(5));
        for _ in 1..FAILURES_TO_OPEN {
            breaker.record(Outcome::Failed);
            assert!(breaker.admit().is_ok());
        }
        breaker.record(Outcome::Answered);
        for _ in 1..FAILURES_TO_OPEN {
            breaker.record(Outcome::Failed);
        }
        assert!(breaker.admit().is_ok(), "an answer resets the run");
        breaker.record(Outcome::Failed);
        let wait = breaker.admit().expect_err("five failures in a row open it");
        assert!(wait > Duration::from_secs(4) && wait <= Duration::from_secs(5));

        let throttled = Breaker::new(Duration::from_secs(5), Duration::from_secs(5));
        throttled.record(Outcome::Throttled(Some(1_000_000_000_000)));
        let wait = throttled.admit().expect_err("a 429 opens it");
        assert!(wait <= MAX_BACKOFF, "Retry-After is capped");
        let quick = Breaker::new(Duration::from_secs(5), Duration::from_secs(5));
        quick.record(Outcome::Throttled(Some(0)));
        assert!(quick.admit().expect_err("still open") > Duration::from_millis(900));
    }

    #[test]
    fn after_the_back_off_one_probe_goes_and_its_answer_closes() {
        let breaker = Breaker::new(Duration::from_secs(1), Duration::from_secs(60));
        breaker.record(Outcome::Throttled(None));
        assert!(breaker.admit().is_err());
        // Pretend the back-off has passed.
        *breaker.state.lock().unwrap() = State::Open {
            until: Instant::now(),
        };
        assert!(breaker.admit().is_ok(), "the probe");
        assert!(breaker.admit().is_err(), "only one probe at a time");
        breaker.record(Outcome::Answered);
        assert!(breaker.admit().is_ok());
        assert!(breaker.admit().is_ok(), "closed again");
    }
}
