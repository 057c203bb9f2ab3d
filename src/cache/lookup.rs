//! The request path through the cache: [`IdentityCache::cached`], the hit (no upstream call),
//! and [`IdentityCache::resolve`], a miss, which verifies the token or waits for the
//! verification of it already under way, then hands the verdict to this thread's memo.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::entry::Entry;
use super::in_flight::Joined;
use super::{IdentityCache, Inner};
use crate::access_token::AccessToken;
use crate::error::{AuthError, Unavailable};
use crate::identity::Identity;
use crate::token_key::TokenKey;

/// How much longer than a verification's deadline a request waits for another's.
pub(super) const WAIT_MARGIN: Duration = Duration::from_secs(1);

impl IdentityCache {
    /// The cached verdict for `key`, if any: the hit path, with no upstream call. This thread's
    /// [`Memo`](super::memo::Memo) answers a token it memoized; otherwise the store does, and
    /// tells the memo (which memoizes a token the store served it twice in a row). Only entries
    /// of the token's current generation count. The only allocation is the memo's copy of an
    /// identity when it memoizes one.
    #[inline]
    pub(crate) fn cached(&self, key: &TokenKey) -> Option<Result<Arc<Identity>, AuthError>> {
        let inner = &*self.inner;
        let now = Instant::now();
        // Read before any level, so an invalidation racing these reads outdates what we saw.
        let generation = inner.generations.current(*key);
        let stamp = inner.memo.stamp(*key, generation);
        if let Some(identity) = inner.memo.get(*key, stamp, now) {
            return Some(Ok(identity));
        }
        match inner.store.get(key) {
            Some(Entry::Valid {
                identity,
                fresh_until,
                generation: stamped,
                ..
            }) if stamped == generation => {
                // Past its freshness, kept for stale-if-error: verify again, keep it as a
                // fallback.
                if now >= fresh_until {
                    return None;
                }
                inner.memo.offer(*key, stamp, now, fresh_until, &identity);
                return Some(Ok(identity));
            }
            _ => {}
        }
        match inner.rejected.get(key)? {
            Entry::Rejected {
                error,
                kept_until,
                generation: stamped,
            } if stamped == generation && now < kept_until => {
                inner.stats.negative_hits.incr();
                Some(Err(error))
            }
            _ => None,
        }
    }

    /// The verified identity the store holds for `key` under its current generation, with that
    /// generation and until when it is fresh: for a level of its own that keeps the identity
    /// beside what names the token (a session), and serves it only while
    /// [`is_current`](Self::is_current) says the generation still stands.
    pub(crate) fn cached_stamped(&self, key: &TokenKey) -> Option<(Arc<Identity>, u64, Instant)> {
        let inner = &*self.inner;
        let generation = inner.generations.current(*key);
        match inner.store.get(key)? {
            Entry::Valid {
                identity,
                fresh_until,
                generation: stamped,
                ..
            } if stamped == generation && Instant::now() < fresh_until => {
                Some((identity, generation, fresh_until))
            }
            _ => None,
        }
    }

    /// Whether a verdict about `key` stamped with `generation` may still be served: no
    /// `invalidate` or `revoke` (here or, heard, elsewhere) outdated it since.
    #[inline]
    pub(crate) fn is_current(&self, key: TokenKey, generation: u64) -> bool {
        self.inner.generations.current(key) == generation
    }

    /// Verifies `token` with Amazon, or waits for the verification of it already under way,
    /// and remembers the verdict.
    pub(crate) async fn resolve(
        &self,
        key: TokenKey,
        token: &AccessToken,
    ) -> Result<Arc<Identity>, AuthError> {
        let inner = &*self.inner;
        inner.stats.misses.incr();
        let (stamp, verdict, coalesced) = loop {
            // The generation first, then the tombstone: `revoke` writes the tombstone before it
            // bumps the generation, so a request that reads the bumped generation also sees the
            // tombstone, and one that read the older generation stores nothing anyone serves.
            let generation = inner.generations.current(key);
            if inner.is_revoked(key) {
                return Err(inner.refuse_revoked());
            }
            let stamp = inner.memo.stamp(key, generation);
            match inner.in_flight.join(key, generation) {
                Joined::Verify(verifying) => {
                    let verdict = self.verify_and_store(key, generation, token).await;
                    verifying.finish(verdict.clone());
                    break (stamp, verdict, false);
                }
                Joined::Wait(waiting) => {
                    // Bounded: a verification kept alive but never polled must not hold anyone.
                    let patience = inner.verifier.deadline + inner.second_level_wait() + WAIT_MARGIN;
                    match tokio::time::timeout(patience, waiting.verdict()).await {
                        Ok(Some(verdict)) => break (stamp, verdict, true),
                        // The request doing it went away before finishing: join again.
                        Ok(None) => {}
                        Err(_) => {
                            let error = AuthError::Unavailable(Unavailable::Timeout);
                            inner.stats.record_error(&error);
                            return Err(error);
                        }
                    }
                }
            }
        };
        if coalesced {
            inner.stats.coalesced.incr();
        }
        // Revoked while this request waited for Amazon: logout wins.
        if inner.is_revoked(key) {
            return Err(inner.refuse_revoked());
        }
        let verdict = verdict.and_then(|entry| {
            // The next request on this connection likely lands on this thread.
            if let Entry::Valid {
                identity,
                fresh_until,
                ..
            } = &entry
            {
                inner.memo.put(key, stamp, *fresh_until, identity);
            }
            entry.verdict()
        });
        match &verdict {
            Ok(identity) => tracing::debug!(coalesced, user_id = identity.user_id(), "authenticated"),
            Err(error) => tracing::debug!(coalesced, %error, "not authenticated"),
        }
        verdict
    }
}

impl Inner {
    /// How much longer than a verification the request doing it may take with a second level
    /// (see [`SecondLevel::extra_wait`](crate::second_level::SecondLevel::extra_wait)): the
    /// requests waiting for it wait that much longer.
    fn second_level_wait(&self) -> Duration {
        self.second_level
            .as_ref()
            .map_or(Duration::ZERO, |level| level.extra_wait())
    }
}
