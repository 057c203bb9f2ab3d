//! Counters for dashboards: [`StatsSnapshot`], read with
//! [`AmazonAuthLayer::stats`](crate::AmazonAuthLayer::stats).
//!
//! Hits are counted on the hot path in per-thread stripes so two cores never fight over one
//! cache line; everything else is rare enough for a plain atomic.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

use crate::error::{AuthError, Unavailable};

const STRIPES: usize = 16;

/// A counter split in cache-line-sized stripes, one per thread (modulo [`STRIPES`]).
#[derive(Default)]
pub(crate) struct StripedCounter([CachePadded<AtomicU64>; STRIPES]);

impl StripedCounter {
    #[inline]
    pub(crate) fn incr(&self) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local!(static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) });
        let stripe = STRIPE.with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT.fetch_add(1, Relaxed) % STRIPES);
            }
            s.get()
        });
        self.0[stripe].fetch_add(1, Relaxed);
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|p| p.load(Relaxed)).sum()
    }
}

/// A counter of rare events: one atomic, counted with [`incr`](Self::incr).
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Counts one more.
    #[inline]
    pub(crate) fn incr(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// The count so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The live counters.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) hits: StripedCounter,
    pub(crate) negative_hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) coalesced: Counter,
    pub(crate) upstream_calls: Counter,
    pub(crate) upstream_errors: Counter,
    pub(crate) overloaded: Counter,
    pub(crate) backed_off: Counter,
    pub(crate) stale_served: Counter,
    pub(crate) revocations: Counter,
    pub(crate) revoked: Counter,
    pub(crate) missing: Counter,
    pub(crate) malformed: Counter,
}

impl Stats {
    /// Counts a request refused before any cache or upstream work.
    pub(crate) fn record_refusal(&self, error: &AuthError) {
        match error {
            AuthError::MissingToken => self.missing.incr(),
            _ => self.malformed.incr(),
        }
    }

    /// Counts a verification that got no verdict.
    pub(crate) fn record_error(&self, error: &AuthError) {
        let counter = match error {
            AuthError::Unavailable(Unavailable::Overloaded) => &self.overloaded,
            AuthError::Unavailable(Unavailable::BackingOff { .. }) => &self.backed_off,
            _ => &self.upstream_errors,
        };
        counter.incr();
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            hits: self.hits.sum(),
            negative_hits: self.negative_hits.get(),
            misses: self.misses.get(),
            coalesced: self.coalesced.get(),
            upstream_calls: self.upstream_calls.get(),
            upstream_errors: self.upstream_errors.get(),
            overloaded: self.overloaded.get(),
            backed_off: self.backed_off.get(),
            stale_served: self.stale_served.get(),
            revocations: self.revocations.get(),
            revoked: self.revoked.get(),
            missing_token: self.missing.get(),
            malformed: self.malformed.get(),
        }
    }
}

/// A point-in-time copy of the counters. All counts are since the layer was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Requests answered from a cached identity.
    pub hits: u64,
    /// Requests refused from a cached rejection.
    pub negative_hits: u64,
    /// Requests that found nothing cached and joined or started a verification.
    pub misses: u64,
    /// Misses that waited on a verification another request had started (coalescing), rather
    /// than asking Amazon themselves.
    pub coalesced: u64,
    /// Verification calls made to Amazon: tokeninfo and profile count one each, however many
    /// times a call was retried.
    pub upstream_calls: u64,
    /// Verifications that ended without a verdict (timeout, 5xx, unreadable answer…).
    pub upstream_errors: u64,
    /// Verifications refused because the in-flight limit was reached.
    pub overloaded: u64,
    /// Verifications not started because Amazon asked us to back off (a `429`, or a run of
    /// failures): answered 503 with the remaining `Retry-After` at once.
    pub backed_off: u64,
    /// Failed re-verifications that fell back to a stale identity (stale-if-error). Counted
    /// once per fallback: the requests that shared that verification, and those served the
    /// stale identity in the 5 s before Amazon is asked again, are not counted again.
    pub stale_served: u64,
    /// Tokens revoked ([`IdentityCache::revoke`](crate::IdentityCache::revoke),
    /// [`AmazonUser::revoke`](crate::AmazonUser::revoke)).
    pub revocations: u64,
    /// Requests refused because their token was revoked.
    pub revoked: u64,
    /// Requests without any token.
    pub missing_token: u64,
    /// Requests refused as malformed or carrying a refresh token, before any upstream call.
    pub malformed: u64,
}
