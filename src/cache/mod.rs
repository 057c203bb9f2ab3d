//! [`IdentityCache`]: the identity cache. Per-entry expiry, brief memory of rejections, one
//! upstream verification per token at a time (coalescing), an in-flight limit, and counters.
//!
//! Hits are answered by the thread's [`Memo`] when it served the token lately, otherwise by a
//! synchronous `moka` store read (no future, no cache-handle clone). Misses take the boxed slow
//! path: [`Flights`] coalesces concurrent first requests for a token into one verification by
//! the [`Verifier`], whose verdict lands in the store.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | the levels and how a verdict moves between them; expiry and stale-if-error |
//! | [`key`] | the keyed digest every level keys a token by |
//! | [`entry`] | what the store remembers about a token, and when `moka` drops it |
//! | [`memo`] | each thread's memory of the identities it served last |
//! | [`flight`] | the verifications under way, one per token |

pub(crate) mod entry;
pub(crate) mod flight;
pub(crate) mod key;
pub(crate) mod memo;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use tokio::sync::Semaphore;

use self::entry::{Entry, EntryExpiry};
use self::flight::{Flights, Landed};
use self::key::{KeyedDigest, TokenKey};
use self::memo::Memo;
use crate::client::AmazonClient;
use crate::error::{AuthError, Unavailable};
use crate::identity::Identity;
use crate::stats::{Stats, StatsSnapshot};
use crate::token::AccessToken;
use crate::verify::Verifier;

/// With stale-if-error, how long a stale identity is served without asking Amazon again after
/// a failed re-verification.
const STALE_RECHECK: Duration = Duration::from_secs(5);

/// How verdicts are remembered; set by the layer builder.
#[derive(Debug, Clone)]
pub(crate) struct CachePolicy {
    pub(crate) clock_skew: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) capacity: u64,
    pub(crate) max_in_flight: usize,
    /// Serve an identity past `max_ttl` (never past the token's expiry) when Amazon cannot
    /// answer.
    pub(crate) stale_if_error: bool,
}

/// The identity cache and the verification behind it. Cheap to clone; clones share the cache,
/// so several layers (or routers) can share one: see
/// [`AmazonAuthBuilder::shared_cache`](crate::AmazonAuthBuilder::shared_cache).
///
/// Get it from [`AmazonAuthLayer::cache`](crate::AmazonAuthLayer::cache).
#[derive(Clone)]
pub struct IdentityCache {
    inner: Arc<Inner>,
}

struct Inner {
    store: moka::sync::Cache<TokenKey, Entry, RandomState>,
    /// Each thread's memory of the identities it read from `store` lately.
    memo: Memo,
    flights: Flights,
    digest: KeyedDigest,
    verifier: Verifier,
    policy: CachePolicy,
    limiter: Semaphore,
    stats: Stats,
}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("entries", &self.inner.store.entry_count())
            .field("policy", &self.inner.policy)
            .field("verifier", &self.inner.verifier)
            .finish_non_exhaustive()
    }
}

impl IdentityCache {
    pub(crate) fn new(verifier: Verifier, policy: CachePolicy) -> Result<Self, getrandom::Error> {
        let store = moka::sync::Cache::builder()
            .max_capacity(policy.capacity)
            .expire_after(EntryExpiry)
            .build_with_hasher(RandomState::default());
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                memo: Memo::default(),
                flights: Flights::new(policy.capacity, verifier.deadline),
                digest: KeyedDigest::random()?,
                limiter: Semaphore::new(policy.max_in_flight),
                verifier,
                policy,
                stats: Stats::default(),
            }),
        })
    }

    /// The cache key of `token`.
    #[inline]
    pub(crate) fn key(&self, token: &str) -> TokenKey {
        self.inner.digest.key(token)
    }

    /// The cached verdict for `key`, if any: the hit path, with no upstream call. This thread's
    /// [`Memo`] answers a token it served lately; otherwise the store does, and a fresh identity
    /// it returns is memoized. The only allocation is the memo's copy of an identity at its
    /// first memo hit on a thread.
    #[inline]
    pub(crate) fn cached(&self, key: &TokenKey) -> Option<Result<Arc<Identity>, AuthError>> {
        let inner = &*self.inner;
        let now = Instant::now();
        // Read before the store, so an invalidation racing this read outdates what we memoize.
        let epoch = inner.memo.epoch(*key);
        if let Some(identity) = inner.memo.get(*key, epoch, now) {
            return Some(Ok(identity));
        }
        match inner.store.get(key)? {
            Entry::Rejected { error, .. } => {
                inner.stats.negative_hits.fetch_add(1, Relaxed);
                Some(Err(error))
            }
            // Past its freshness, kept for stale-if-error: verify again, keep it as a fallback.
            Entry::Valid { fresh_until, .. } if now >= fresh_until => None,
            Entry::Valid {
                identity,
                fresh_until,
                ..
            } => {
                inner.memo.put(*key, epoch, fresh_until, &identity);
                Some(Ok(identity))
            }
        }
    }

    /// Verifies `token` with Amazon, coalesced with any verification of the same token already
    /// under way, and remembers the verdict.
    pub(crate) async fn resolve(
        &self,
        key: TokenKey,
        token: &AccessToken,
    ) -> Result<Arc<Identity>, AuthError> {
        let inner = &*self.inner;
        inner.stats.misses.fetch_add(1, Relaxed);
        let epoch = inner.memo.epoch(key);
        let Landed { verdict, coalesced } = inner.flights.run(key, self.verify(key, token)).await;
        if coalesced {
            inner.stats.coalesced.fetch_add(1, Relaxed);
        }
        let verdict = match verdict {
            Ok(entry) => {
                // The next request on this connection likely lands on this thread.
                if let Entry::Valid {
                    identity,
                    fresh_until,
                    ..
                } = &entry
                {
                    inner.memo.put(key, epoch, *fresh_until, identity);
                }
                entry.verdict()
            }
            Err(error) => Err((*error).clone()),
        };
        match &verdict {
            Ok(identity) => tracing::debug!(coalesced, user_id = identity.user_id(), "authenticated"),
            Err(error) => tracing::debug!(coalesced, %error, "not authenticated"),
        }
        verdict
    }

    /// Forgets what is cached about `token` (for logout): the next request verifies it anew.
    ///
    /// ```
    /// # async fn demo(layer: tower_amazon_auth::AmazonAuthLayer) {
    /// use tower_amazon_auth::AccessToken;
    /// layer.cache().invalidate(&AccessToken::new("Atza|…")).await;
    /// # }
    /// ```
    pub async fn invalidate(&self, token: &AccessToken) {
        let key = self.key(token.expose());
        self.inner.store.invalidate(&key);
        self.inner.memo.forget(key);
        self.inner.flights.forget(key).await;
    }

    /// Forgets every cached verdict.
    pub fn invalidate_all(&self) {
        self.inner.store.invalidate_all();
        self.inner.memo.forget_all();
        self.inner.flights.forget_all();
    }

    /// The number of cached verdicts (identities and remembered rejections). Applies the
    /// cache's pending maintenance first (`moka` applies writes and evictions lazily), so the
    /// count is current; that costs a pass over the pending writes, so do not call it per
    /// request.
    pub fn entry_count(&self) -> u64 {
        self.inner.store.run_pending_tasks();
        self.inner.store.entry_count()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    pub(crate) fn stats_handle(&self) -> &Stats {
        &self.inner.stats
    }

    /// The client used to talk to Amazon (for a token exchange with the same connections).
    pub fn client(&self) -> &AmazonClient {
        &self.inner.verifier.client
    }

    /// The coalesced body of a miss: asks Amazon once and stores the verdict.
    async fn verify(&self, key: TokenKey, token: &AccessToken) -> Result<Entry, AuthError> {
        let inner = &*self.inner;
        // A verification that finished between our cache read and joining the flight, or a
        // stale identity kept for stale-if-error.
        let stale = match inner.store.get(&key) {
            Some(entry) if entry.is_fresh(Instant::now()) => return Ok(entry),
            stale => stale,
        };
        let started = Instant::now();
        // Over the in-flight limit is a failure like any other: shed at once, or stale-if-error.
        let outcome = match inner.limiter.try_acquire() {
            Ok(_permit) => inner.verifier.verify(token, &inner.stats).await,
            Err(_) => Err(AuthError::Unavailable(Unavailable::Overloaded)),
        };
        let elapsed_us = started.elapsed().as_micros() as u64;
        let entry = match outcome {
            Ok((identity, received)) => {
                let policy = &inner.policy;
                let usable_for = identity
                    .token_expires
                    .saturating_duration_since(received)
                    .saturating_sub(policy.clock_skew);
                let fresh_until = received + usable_for.min(policy.max_ttl);
                tracing::debug!(user_id = identity.user_id(), elapsed_us, "token verified");
                Entry::Valid {
                    fresh_until,
                    until: if policy.stale_if_error {
                        received + usable_for
                    } else {
                        fresh_until
                    },
                    identity: Arc::new(identity),
                }
            }
            Err(error) if error.is_definite() => {
                tracing::debug!(%error, elapsed_us, "token rejected");
                Entry::Rejected {
                    error,
                    until: Instant::now() + inner.policy.negative_ttl,
                }
            }
            Err(error) => {
                inner.stats.record_error(&error);
                // Stale-if-error: moka drops the entry at `until`, which never passes the
                // token's expiry; check again anyway, the verification took time.
                if let Some(Entry::Valid { identity, until, .. }) = stale {
                    let now = Instant::now();
                    if now < until {
                        tracing::warn!(%error, elapsed_us, "Amazon unavailable: serving a stale identity");
                        inner.stats.stale_served.fetch_add(1, Relaxed);
                        // Spare Amazon (and our clients the deadline) for a moment before retrying.
                        let entry = Entry::Valid {
                            identity,
                            fresh_until: (now + STALE_RECHECK).min(until),
                            until,
                        };
                        inner.store.insert(key, entry.clone());
                        return Ok(entry);
                    }
                }
                tracing::warn!(%error, elapsed_us, "token could not be verified");
                return Err(error);
            }
        };
        inner.store.insert(key, entry.clone());
        if let Entry::Rejected { .. } = entry {
            // A thread may still remember the token as valid, if the store dropped it to make
            // room before this verification: from now on, none does.
            inner.memo.forget(key);
        }
        Ok(entry)
    }
}

#[cfg(all(test, feature = "mock"))]
mod tests {
    use super::*;
    use crate::error::Rejection;
    use crate::mock::{mock_access_token, MockAmazon, MockReply, MockUser, MOCK_CLIENT_ID};
    use crate::AmazonAuthLayer;

    /// The store drops a token to make room while this thread's memo still holds it; another
    /// thread's verification then learns that Amazon revoked it. From then on this thread must
    /// refuse it too, as the store would. (A unit test: only here can the store drop an entry
    /// without the memo being told, as moka's eviction does.)
    #[tokio::test]
    async fn a_rejection_learned_on_another_thread_reaches_this_threads_memo() {
        let mock = MockAmazon::start().await.unwrap();
        let token = mock_access_token("revoked");
        mock.register(&token, MockUser::new("amzn1.account.REVOKED"));
        let layer = AmazonAuthLayer::builder()
            .client_id(MOCK_CLIENT_ID)
            .base_url(mock.base_url())
            .build()
            .unwrap();
        let cache = layer.cache().clone();
        let access = AccessToken::new(token.clone());
        let key = cache.key(&token);

        assert!(cache.resolve(key, &access).await.is_ok());
        assert!(matches!(cache.cached(&key), Some(Ok(_))), "a memo hit");
        cache.inner.store.invalidate(&key);
        assert!(
            matches!(cache.cached(&key), Some(Ok(_))),
            "the memo outlives the store's entry"
        );

        mock.register(&token, MockReply::invalid_token());
        let other = cache.clone();
        // Another OS thread, on this runtime (this thread drives its I/O while waiting).
        let runtime = tokio::runtime::Handle::current();
        let verdict = tokio::task::spawn_blocking(move || runtime.block_on(other.resolve(key, &access)))
            .await
            .unwrap();
        assert_eq!(verdict.err(), Some(AuthError::InvalidToken(Rejection::Invalid)));
        assert_eq!(mock.calls_for(&token).tokeninfo, 2);
        assert_eq!(
            cache.cached(&key).map(|verdict| verdict.err()),
            Some(Some(AuthError::InvalidToken(Rejection::Invalid))),
            "this thread's memo still answered for a revoked token"
        );
    }
}
