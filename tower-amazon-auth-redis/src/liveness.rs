//! [`Liveness`]: how the subscriber proves its own subscription alive. A subscription that a
//! NAT or firewall dropped without a reset looks open and simply goes quiet, and a quiet
//! channel is what an idle fleet looks like too. So the subscriber sends `PING` on its
//! subscribing connection (Redis answers it there, in subscribed mode too) every quarter of
//! [`Fleet::liveness`](crate::Fleet::liveness): a cost of one round trip per instance, O(N)
//! for the fleet. Whatever arrives on the connection (a reply or a message) counts as heard;
//! three quarters of the bound without a word and the subscription is lost.
//!
//! Why that is the bound: pings go out every quarter, and the check runs at each of them, so
//! the subscription is declared lost less than a quarter after three quarters of silence have
//! passed since the last word heard, which came no later than the connection's death. A
//! message published after the death (the one that was lost) was so published less than the
//! bound before the subscriber notices.

use std::time::{Duration, Instant};

/// The liveness of one subscription (one connection).
#[derive(Debug)]
pub(crate) struct Liveness {
    bound: Duration,
    last_heard: Instant,
}

impl Liveness {
    /// A subscription made `now`, to be held to `bound`.
    pub(crate) fn new(bound: Duration, now: Instant) -> Self {
        Self {
            bound,
            last_heard: now,
        }
    }

    /// How often to ping: a quarter of the bound.
    pub(crate) fn ping_every(&self) -> Duration {
        self.bound / 4
    }

    /// Something arrived on the connection.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// Whether, at `now`, the connection has been silent too long (three quarters of the
    /// bound).
    pub(crate) fn is_lost(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_heard) >= self.bound / 4 * 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_quarters_of_silence_lose_the_subscription_and_a_word_resets_it() {
        let start = Instant::now();
        let mut liveness = Liveness::new(Duration::from_secs(4), start);
        assert_eq!(liveness.ping_every(), Duration::from_secs(1));
        assert!(!liveness.is_lost(start + Duration::from_millis(2999)));
        assert!(liveness.is_lost(start + Duration::from_secs(3)));
        liveness.heard(start + Duration::from_secs(2));
        assert!(!liveness.is_lost(start + Duration::from_secs(4)));
        assert!(liveness.is_lost(start + Duration::from_secs(5)));
        // A word heard out of order never moves the clock back.
        liveness.heard(start);
        assert!(liveness.is_lost(start + Duration::from_secs(5)));
    }

    #[test]
    fn lost_is_noticed_within_the_bound_of_the_death() {
        // Pings every quarter, the last answered just before the connection dies at `death`;
        // the checks at each tick notice it before `death + bound`.
        let bound = Duration::from_secs(4);
        let start = Instant::now();
        let mut liveness = Liveness::new(bound, start);
        let death = start + Duration::from_millis(2500);
        let mut tick = start;
        loop {
            tick += liveness.ping_every();
            if tick <= death {
                liveness.heard(tick);
                continue;
            }
            if liveness.is_lost(tick) {
                assert!(tick < death + bound, "noticed at {:?}", tick - death);
                break;
            }
        }
    }
}
