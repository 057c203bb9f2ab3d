//! [`CachePolicy`]: how long a verdict is believed. Every cache entry is made here, from a
//! fresh verification, from the fleet level, or as a stale identity served during an outage
//! (stale-if-error), so their lives follow one set of rules:
//!
//! - an identity is fresh for its token's remaining life less the clock skew, at most
//!   `max_ttl` (and at most what the fleet level still allows it);
//! - with stale-if-error it is kept, not served fresh, until the token's own expiry less the
//!   skew, as a fallback for when Amazon cannot answer;
//! - a rejection is remembered for `negative_ttl` at most.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::entry::Entry;
use crate::error::AuthError;
use crate::identity::{Identity, Origin};

/// With stale-if-error, how long a stale identity is served without asking Amazon again after
/// a failed re-verification.
const STALE_RECHECK: Duration = Duration::from_secs(5);

/// How verdicts are remembered; set by the [`IdentityCacheBuilder`](super::IdentityCacheBuilder).
#[derive(Debug, Clone)]
pub(crate) struct CachePolicy {
    pub(crate) clock_skew: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) negative_ttl: Duration,
    /// Most verified identities kept.
    pub(crate) capacity: u64,
    /// Most rejections kept.
    pub(crate) negative_capacity: u64,
    /// Most revocations in force at once.
    pub(crate) max_revocations: u64,
    /// Most revocations of one user's tokens in force at once.
    pub(crate) max_revocations_per_user: u64,
    pub(crate) max_in_flight: usize,
    /// Serve an identity past `max_ttl` (never past the token's expiry) when Amazon cannot
    /// answer.
    pub(crate) stale_if_error: bool,
}

impl CachePolicy {
    /// How long from `since` `identity` may be believed: until its token expires, less the
    /// clock skew (before `max_ttl` bounds its freshness).
    pub(super) fn usable_for(&self, identity: &Identity, since: Instant) -> Duration {
        match identity.token_expires() {
            Some(expires) => expires.saturating_duration_since(since),
            // Profile-only mode: Amazon gave no expiry; believe it for max_ttl.
            None => self.max_ttl,
        }
        .saturating_sub(self.clock_skew)
    }

    /// The entry for `identity`, verified (or read from the fleet level) at `since` under
    /// `generation`: fresh for what the token has left less the skew, at most `max_fresh`
    /// (`max_ttl`, or what the fleet level still allows); kept that long, or with
    /// stale-if-error until the token's expiry less the skew. The identity learns which cache
    /// holds it (for [`AmazonUser::revoke`](crate::AmazonUser::revoke)).
    pub(super) fn identity_entry(
        &self,
        mut identity: Identity,
        origin: Weak<dyn Origin>,
        since: Instant,
        max_fresh: Duration,
        generation: u64,
    ) -> Entry {
        let usable_for = self.usable_for(&identity, since);
        let fresh_until = since + usable_for.min(max_fresh);
        identity.origin = Some(origin);
        Entry::Valid {
            fresh_until,
            kept_until: if self.stale_if_error {
                since + usable_for
            } else {
                fresh_until
            },
            identity: Arc::new(identity),
            generation,
        }
    }

    /// The entry for a definite rejection decided at `since` under `generation`, remembered
    /// for `negative_ttl`, at most `max_life` (what the fleet level still allows).
    pub(super) fn rejection_entry(
        &self,
        error: AuthError,
        since: Instant,
        max_life: Duration,
        generation: u64,
    ) -> Entry {
        Entry::Rejected {
            error,
            kept_until: since + max_life.min(self.negative_ttl),
            generation,
        }
    }
}

/// Stale-if-error: the entry that serves `stale` (a kept identity past its freshness) now that
/// Amazon could not verify it again, for [`STALE_RECHECK`] before asking again, never past its
/// `kept_until` (the token's expiry less the skew). `None` when it is no longer kept: the
/// verification took time.
pub(super) fn serve_stale(stale: Entry, now: Instant) -> Option<Entry> {
    match stale {
        Entry::Valid {
            identity,
            kept_until,
            generation,
            ..
        } if now < kept_until => Some(Entry::Valid {
            identity,
            fresh_until: (now + STALE_RECHECK).min(kept_until),
            kept_until,
            generation,
        }),
        _ => None,
    }
}
