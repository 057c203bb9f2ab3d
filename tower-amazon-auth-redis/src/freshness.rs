//! [`Freshness`]: which messages are fresh. Every message carries a [`Stamp`]: when it was
//! sent, and `(sender, boot, sequence)` — the sender random per process, the boot random per
//! fleet level (each cache built), the sequence counting up from 1 within a boot. A receiver:
//!
//! - applies every *revoke*, however old, seen or not: a revocation is idempotent (applying it
//!   twice refuses a logged-out token twice), and dropping one because the sender's clock is
//!   behind would lose a logout;
//! - drops a *forget* sent more than [`WINDOW`] before or after its own clock (well above any
//!   clock skew a fleet should run with: the core allows 60 s between it and Amazon), or one
//!   whose `(sender, boot, sequence)` it has seen already: a captured message published again.
//!
//! What was seen is kept per `(sender, boot)` for [`WINDOW`] after its last message (older
//! forgets are dropped by their time anyway), as the highest sequence and which of the 64
//! below it were seen: messages sent concurrently by one instance may arrive slightly out of
//! order, and all of them count; a forget more than 64 behind the highest is dropped. At most
//! [`MAX_SENDERS`] boots are remembered (least recently heard out first).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_amazon_auth::second_level::LogLimit;

/// How far from the receiver's clock a forget may have been sent: 5 min.
pub(crate) const WINDOW: Duration = Duration::from_secs(300);
/// How many senders' boots are remembered.
const MAX_SENDERS: u64 = 10_000;
/// How far behind the highest sequence seen a forget may still arrive.
const REORDER: u64 = 64;

/// When and by whom a message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Random per process.
    pub(crate) sender: [u8; 8],
    /// Random per fleet level.
    pub(crate) boot: [u8; 8],
    /// From 1, one more per message (each copy of a message under another secret has its
    /// own).
    pub(crate) sequence: u64,
    /// Milliseconds since the Unix epoch, by the sender's clock.
    pub(crate) sent_ms: u64,
}

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judgement {
    Apply,
    /// A forget sent too long before (or after) the receiver's clock.
    Stale,
    /// A forget seen before.
    Replayed,
}

/// The sequences of one boot seen so far.
#[derive(Debug, Clone, Copy)]
struct Seen {
    highest: u64,
    /// Bit `i`: `highest - i` was seen.
    below: u64,
}

impl Seen {
    /// Records `sequence`; whether it is new.
    fn record(&mut self, sequence: u64) -> bool {
        if sequence > self.highest {
            let shift = sequence - self.highest;
            self.below = if shift >= REORDER {
                1
            } else {
                (self.below << shift) | 1
            };
            self.highest = sequence;
            return true;
        }
        let behind = self.highest - sequence;
        if behind >= REORDER || self.below & (1 << behind) != 0 {
            return false;
        }
        self.below |= 1 << behind;
        true
    }
}

/// This level's stamps, and what it has seen of the others'.
pub(crate) struct Freshness {
    boot: [u8; 8],
    sequence: AtomicU64,
    seen: moka::sync::Cache<([u8; 8], [u8; 8]), Seen>,
    /// Dropped messages, warned about at most every few seconds.
    pub(crate) warn: LogLimit,
}

/// Ours, per process.
static SENDER: OnceLock<[u8; 8]> = OnceLock::new();

impl Freshness {
    /// A new boot: random, as is the process's sender id the first time.
    pub(crate) fn new() -> Result<Self, getrandom::Error> {
        if SENDER.get().is_none() {
            let mut sender = [0; 8];
            getrandom::fill(&mut sender)?;
            SENDER.get_or_init(|| sender);
        }
        let mut boot = [0; 8];
        getrandom::fill(&mut boot)?;
        Ok(Self {
            boot,
            sequence: AtomicU64::new(0),
            seen: moka::sync::Cache::builder()
                .max_capacity(MAX_SENDERS)
                .time_to_live(WINDOW)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
            warn: LogLimit::default(),
        })
    }

    fn sender() -> [u8; 8] {
        SENDER.get().copied().unwrap_or_default()
    }

    /// The stamp of the next message sent at `now`.
    pub(crate) fn stamp(&self, now: SystemTime) -> Stamp {
        Stamp {
            sender: Self::sender(),
            boot: self.boot,
            sequence: self.sequence.fetch_add(1, Relaxed) + 1,
            sent_ms: unix_ms(now),
        }
    }

    /// Whether this level sent it.
    pub(crate) fn is_own(&self, stamp: &Stamp) -> bool {
        stamp.sender == Self::sender() && stamp.boot == self.boot
    }

    /// What to do with an authenticated message stamped `stamp`, received at `now` (a revoke
    /// when `revoke`). Call once per message: it records the stamp.
    pub(crate) fn judge(&self, stamp: &Stamp, revoke: bool, now: SystemTime) -> Judgement {
        let skew = unix_ms(now).abs_diff(stamp.sent_ms);
        if !revoke && skew > WINDOW.as_millis() as u64 {
            return Judgement::Stale;
        }
        let key = (stamp.sender, stamp.boot);
        let mut new = true;
        let seen = match self.seen.get(&key) {
            Some(mut seen) => {
                new = seen.record(stamp.sequence);
                seen
            }
            None => Seen {
                highest: stamp.sequence,
                below: 1,
            },
        };
        self.seen.insert(key, seen);
        match (revoke, new) {
            (false, false) => Judgement::Replayed,
            _ => Judgement::Apply,
        }
    }
}

/// Milliseconds since the Unix epoch (0 for a clock before it).
fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORGET: bool = false;
    const REVOKE: bool = true;

    fn other(sent: SystemTime, sequence: u64) -> Stamp {
        Stamp {
            sender: [1; 8],
            boot: [2; 8],
            sequence,
            sent_ms: unix_ms(sent),
        }
    }

    #[test]
    fn a_forget_applies_once_and_a_revoke_always() {
        let fresh = Freshness::new().unwrap();
        let now = SystemTime::now();
        assert_eq!(fresh.judge(&other(now, 1), FORGET, now), Judgement::Apply);
        assert_eq!(fresh.judge(&other(now, 1), FORGET, now), Judgement::Replayed);
        assert_eq!(fresh.judge(&other(now, 2), REVOKE, now), Judgement::Apply);
        assert_eq!(
            fresh.judge(&other(now, 2), REVOKE, now),
            Judgement::Apply,
            "idempotent"
        );
        assert_eq!(
            fresh.judge(&other(now, 2), FORGET, now),
            Judgement::Replayed,
            "a revoke's sequence counts as seen"
        );
        // Another boot of the same sender starts afresh.
        let reboot = Stamp {
            boot: [3; 8],
            ..other(now, 1)
        };
        assert_eq!(fresh.judge(&reboot, FORGET, now), Judgement::Apply);
    }

    #[test]
    fn a_forget_outside_the_window_is_stale_and_a_revoke_from_a_clock_behind_applies() {
        let fresh = Freshness::new().unwrap();
        let now = SystemTime::now();
        let behind = now - WINDOW - Duration::from_secs(1);
        let ahead = now + WINDOW + Duration::from_secs(1);
        assert_eq!(fresh.judge(&other(behind, 1), FORGET, now), Judgement::Stale);
        assert_eq!(fresh.judge(&other(ahead, 2), FORGET, now), Judgement::Stale);
        assert_eq!(fresh.judge(&other(behind, 3), REVOKE, now), Judgement::Apply);
        let day_behind = now - Duration::from_secs(86_400);
        assert_eq!(fresh.judge(&other(day_behind, 4), REVOKE, now), Judgement::Apply);
        // Within the window, whichever way: fresh.
        let skewed = now - WINDOW + Duration::from_secs(1);
        assert_eq!(fresh.judge(&other(skewed, 5), FORGET, now), Judgement::Apply);
    }

    #[test]
    fn messages_out_of_order_all_count_and_a_forget_far_behind_is_dropped() {
        let fresh = Freshness::new().unwrap();
        let now = SystemTime::now();
        for sequence in [3, 1, 2, 10, 5] {
            assert_eq!(
                fresh.judge(&other(now, sequence), FORGET, now),
                Judgement::Apply,
                "{sequence}"
            );
        }
        for sequence in [1, 2, 3, 5, 10] {
            assert_eq!(
                fresh.judge(&other(now, sequence), FORGET, now),
                Judgement::Replayed,
                "{sequence}"
            );
        }
        assert_eq!(
            fresh.judge(&other(now, 10 + REORDER), FORGET, now),
            Judgement::Apply
        );
        assert_eq!(fresh.judge(&other(now, 9), FORGET, now), Judgement::Replayed);
        assert_eq!(fresh.judge(&other(now, 11), FORGET, now), Judgement::Apply);
        assert_eq!(fresh.judge(&other(now, 4), REVOKE, now), Judgement::Apply);
    }

    #[test]
    fn stamps_count_up_and_are_known_as_own() {
        let fresh = Freshness::new().unwrap();
        let now = SystemTime::now();
        let (a, b) = (fresh.stamp(now), fresh.stamp(now));
        assert_eq!((a.sequence, b.sequence), (1, 2));
        assert!(fresh.is_own(&a));
        let another = Freshness::new().unwrap();
        assert_eq!(another.stamp(now).sender, a.sender, "one sender per process");
        assert!(!another.is_own(&a), "but a boot per level");
        assert!(!fresh.is_own(&other(now, 1)));
    }
}
