//! [`Breaker`]: honours Amazon's back-off. After a `429`, or a run of failures (5xx, timeouts,
//! broken connections, unreadable answers), no new verification is started until the back-off
//! has passed: those requests are answered `503` with the remaining `Retry-After` at once (or a
//! stale identity, with stale-if-error). Then one probe verification goes through; its answer
//! (any answer Amazon gives, a verdict included) closes the breaker, its failure opens it again.
//!
//! Cached identities never reach the breaker: only verifications do. A second level keeps a
//! breaker of its own in front of its store (public, in [`second_level`](crate::second_level),
//! for that).

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

/// Whether an unreliable service (Amazon, a second level's store) is asked at all, and why not:
/// after 5 failures in a row, or a throttling answer, no call is let through
/// for the back-off; then one probe goes, whose answer closes it again.
///
/// ```
/// use std::time::Duration;
/// use tower_amazon_auth::second_level::{Breaker, Outcome};
///
/// let breaker = Breaker::new(Duration::from_secs(5), Duration::from_millis(50));
/// for _ in 0..5 {
///     breaker.admit().expect("closed").record(Outcome::Failed);
/// }
/// assert!(breaker.is_open());
/// assert!(breaker.admit().is_err(), "backing off");
/// ```
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<Current>,
    /// Back-off after a run of failures without a hint of Amazon's.
    backoff: Duration,
    /// How long a probe may take before another one is let through.
    probe_deadline: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Current {
    state: State,
    /// Bumped whenever the breaker opens or closes: an outcome of a verification admitted in an
    /// older epoch is stale (an answer that was under way when a 429 arrived must not close
    /// the breaker again) and is ignored.
    epoch: u64,
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

/// What one call ended with, for the breaker.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// The service answered (a verdict counts: it is up).
    Answered,
    /// The service throttled us: back off for its `Retry-After` (seconds), if it gave one.
    Throttled(Option<u64>),
    /// No usable answer.
    Failed,
}

/// A call the breaker let through. Record its outcome; dropped without one (its request went
/// away), a probe lets the next request probe at once.
#[must_use]
#[derive(Debug)]
pub struct Admission<'a> {
    breaker: &'a Breaker,
    epoch: u64,
    probe: bool,
    recorded: bool,
}

impl Breaker {
    /// A closed breaker that backs off for `backoff` after a run of failures, and lets a new
    /// probe through when one has not answered within `probe_deadline`.
    /// (`backoff` is held to 1 s – 5 min.)
    pub fn new(backoff: Duration, probe_deadline: Duration) -> Self {
        Self {
            state: Mutex::new(Current {
                state: State::Closed { failures: 0 },
                epoch: 0,
            }),
            backoff: backoff.clamp(MIN_BACKOFF, MAX_BACKOFF),
            probe_deadline,
        }
    }

    /// `Ok` when a call may go now; otherwise how long until one may.
    ///
    /// # Errors
    ///
    /// The breaker is open: the time left of its back-off.
    pub fn admit(&self) -> Result<Admission<'_>, Duration> {
        let mut current = self.lock();
        let now = Instant::now();
        let probe = match current.state {
            State::Closed { .. } => false,
            State::Open { until } | State::Probing { until } if now < until => return Err(until - now),
            // The back-off has passed (or the last probe never answered): one probe goes.
            State::Open { .. } | State::Probing { .. } => {
                current.state = State::Probing {
                    until: now + self.probe_deadline,
                };
                true
            }
        };
        Ok(Admission {
            breaker: self,
            epoch: current.epoch,
            probe,
            recorded: false,
        })
    }

    /// Whether it keeps calls out now (open, or waiting for a probe's answer).
    pub fn is_open(&self) -> bool {
        !matches!(self.lock().state, State::Closed { .. })
    }

    fn record(&self, epoch: u64, outcome: Outcome) {
        let mut current = self.lock();
        if epoch != current.epoch {
            return;
        }
        let now = Instant::now();
        let open_for = match (outcome, current.state) {
            (Outcome::Answered, State::Closed { .. }) => {
                current.state = State::Closed { failures: 0 };
                return;
            }
            (Outcome::Answered, _) => {
                current.state = State::Closed { failures: 0 };
                current.epoch += 1;
                return;
            }
            (Outcome::Throttled(hint), _) => hint.map_or(self.backoff, Duration::from_secs),
            (Outcome::Failed, State::Closed { failures }) if failures + 1 < FAILURES_TO_OPEN => {
                current.state = State::Closed {
                    failures: failures + 1,
                };
                return;
            }
            (Outcome::Failed, _) => self.backoff,
        };
        current.state = State::Open {
            until: now + open_for.clamp(MIN_BACKOFF, MAX_BACKOFF),
        };
        current.epoch += 1;
    }

    /// A probe of `epoch` went away without an outcome: the next request probes.
    fn abandon(&self, epoch: u64) {
        let mut current = self.lock();
        if epoch == current.epoch && matches!(current.state, State::Probing { .. }) {
            current.state = State::Open {
                until: Instant::now(),
            };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Admission<'_> {
    /// Records what the admitted call ended with.
    pub fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.breaker.record(self.epoch, outcome);
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            self.breaker.abandon(self.epoch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(breaker: &Breaker, outcome: Outcome) {
        breaker.admit().expect("admitted").record(outcome);
    }

    #[test]
    fn a_throttle_opens_at_once_and_a_run_of_failures_after_five() {
        let breaker = Breaker::new(Duration::from_secs(5), Duration::from_secs(5));
        for _ in 1..FAILURES_TO_OPEN {
            record(&breaker, Outcome::Failed);
        }
        record(&breaker, Outcome::Answered);
        for _ in 1..FAILURES_TO_OPEN {
            record(&breaker, Outcome::Failed);
        }
        record(&breaker, Outcome::Failed);
        let wait = breaker.admit().expect_err("five failures in a row open it");
        assert!(wait > Duration::from_secs(4) && wait <= Duration::from_secs(5));

        let throttled = Breaker::new(Duration::from_secs(5), Duration::from_secs(5));
        record(&throttled, Outcome::Throttled(Some(1_000_000_000_000)));
        let wait = throttled.admit().expect_err("a 429 opens it");
        assert!(wait <= MAX_BACKOFF, "Retry-After is capped");
        let quick = Breaker::new(Duration::from_secs(5), Duration::from_secs(5));
        record(&quick, Outcome::Throttled(Some(0)));
        assert!(quick.admit().expect_err("still open") > Duration::from_millis(900));
    }

    /// Pretends the back-off has passed.
    fn expire(breaker: &Breaker) {
        breaker.lock().state = State::Open {
            until: Instant::now(),
        };
    }

    #[test]
    fn after_the_back_off_one_probe_goes_and_its_answer_closes() {
        let breaker = Breaker::new(Duration::from_secs(1), Duration::from_secs(60));
        record(&breaker, Outcome::Throttled(None));
        assert!(breaker.admit().is_err());
        expire(&breaker);
        let probe = breaker.admit().expect("the probe");
        assert!(breaker.admit().is_err(), "only one probe at a time");
        probe.record(Outcome::Answered);
        assert!(breaker.admit().is_ok());
        assert!(breaker.admit().is_ok(), "closed again");
    }

    #[test]
    fn an_answer_admitted_before_a_throttle_does_not_close_the_breaker() {
        let breaker = Breaker::new(Duration::from_secs(5), Duration::from_secs(60));
        let slow = breaker.admit().expect("admitted while closed");
        record(&breaker, Outcome::Throttled(Some(60)));
        slow.record(Outcome::Answered);
        assert!(breaker.admit().is_err(), "a late answer ended Amazon's back-off");
    }

    #[test]
    fn a_probe_that_goes_away_lets_the_next_request_probe() {
        let breaker = Breaker::new(Duration::from_secs(1), Duration::from_secs(300));
        record(&breaker, Outcome::Throttled(None));
        expire(&breaker);
        drop(breaker.admit().expect("the probe"));
        assert!(breaker.admit().is_ok(), "stalled for the probe's whole deadline");
    }
}
