//! [`Resolver`]: the identity cache. Per-entry expiry, brief memory of rejections, one upstream
//! verification per token at a time (coalescing), an in-flight limit, and counters.
//!
//! Hits are answered by the thread's [`Memo`] when it served the token lately, otherwise by a
//! synchronous `moka` cache read (no future, no cache-handle clone). Misses take the boxed slow
//! path: a `moka` future cache coalesces concurrent first requests for a token into one
//! verification, whose verdict lands in the synchronous cache.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use moka::Expiry;
use siphasher::sip128::SipHasher13;
use tokio::sync::Semaphore;

use crate::client::{AmazonClient, AmazonError};
use crate::error::{AuthError, Rejection, Unavailable};
use crate::identity::Identity;
use crate::memo::Memo;
use crate::stats::Stats;
use crate::token::AccessToken;

/// The cache key: a keyed 128-bit SipHash-1-3 of the token. The raw token is never stored, the
/// key is secret so nobody can aim for a collision, and 128 bits make an accidental one
/// (another user's identity) practically impossible.
pub(crate) type TokenKey = u128;

/// The longest `exp` believed, whatever Amazon says (tokens live one hour).
const MAX_EXP: Duration = Duration::from_secs(24 * 3600);

/// With stale-if-error, how long a stale identity is served without asking Amazon again after
/// a failed re-verification.
const STALE_RECHECK: Duration = Duration::from_secs(5);

/// What the cache remembers about a token.
#[derive(Clone)]
pub(crate) enum Entry {
    /// Verified: the identity, served until `fresh_until`, kept until `until` (later than
    /// `fresh_until` only with stale-if-error, and never past the token's own expiry).
    Valid {
        identity: Arc<Identity>,
        fresh_until: Instant,
        until: Instant,
    },
    /// A definite rejection, remembered until `until`.
    Rejected { error: AuthError, until: Instant },
}

impl Entry {
    fn until(&self) -> Instant {
        match self {
            Self::Valid { until, .. } | Self::Rejected { until, .. } => *until,
        }
    }

    fn is_fresh(&self, now: Instant) -> bool {
        match self {
            Self::Valid { fresh_until, .. } => now < *fresh_until,
            Self::Rejected { .. } => true,
        }
    }

    pub(crate) fn verdict(self) -> Result<Arc<Identity>, AuthError> {
        match self {
            Self::Valid { identity, .. } => Ok(identity),
            Self::Rejected { error, .. } => Err(error),
        }
    }
}

struct EntryExpiry;

impl Expiry<TokenKey, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &TokenKey, entry: &Entry, now: Instant) -> Option<Duration> {
        Some(entry.until().saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &TokenKey,
        entry: &Entry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.until().saturating_duration_since(now))
    }
}

/// How tokens are judged and remembered; set by the layer builder.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Accepted `aud` values; empty only when the audience check is off.
    pub(crate) client_ids: Box<[Arc<str>]>,
    /// Whether `tokeninfo` is asked at all (off only for endpoint families without it).
    pub(crate) check_audience: bool,
    pub(crate) fetch_profile: bool,
    pub(crate) clock_skew: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) deadline: Duration,
    pub(crate) capacity: u64,
    pub(crate) max_in_flight: usize,
    /// Serve an identity past `max_ttl` (never past the token's expiry) when Amazon cannot
    /// answer.
    pub(crate) stale_if_error: bool,
}

/// The identity cache and the verification behind it. Cheap to clone; clones share the cache,
/// so several layers (or routers) can share one: see
/// [`AmazonAuthBuilder::resolver`](crate::AmazonAuthBuilder::resolver).
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    store: moka::sync::Cache<TokenKey, Entry, RandomState>,
    /// Each thread's memory of the identities it read from `store` lately.
    memo: Memo,
    inflight: moka::future::Cache<TokenKey, Entry, RandomState>,
    digest: SipHasher13,
    client: AmazonClient,
    policy: Policy,
    limiter: Semaphore,
    stats: Stats,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("entries", &self.inner.store.entry_count())
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    pub(crate) fn new(client: AmazonClient, policy: Policy) -> Result<Self, getrandom::Error> {
        let store = moka::sync::Cache::builder()
            .max_capacity(policy.capacity)
            .expire_after(EntryExpiry)
            .build_with_hasher(RandomState::default());
        let inflight = moka::future::Cache::builder()
            .max_capacity(policy.capacity)
            .time_to_live(policy.deadline)
            .build_with_hasher(RandomState::default());
        let digest = SipHasher13::new_with_keys(getrandom::u64()?, getrandom::u64()?);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                memo: Memo::default(),
                inflight,
                digest,
                client,
                limiter: Semaphore::new(policy.max_in_flight),
                policy,
                stats: Stats::default(),
            }),
        })
    }

    /// The cache key of `token`.
    #[inline]
    pub(crate) fn key(&self, token: &str) -> TokenKey {
        let h = self.inner.digest.hash(token.as_bytes());
        (u128::from(h.h1) << 64) | u128::from(h.h2)
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
        // Set when this request's own verification runs; unset, it waited on another's.
        let ran = AtomicBool::new(false);
        let verify = async {
            ran.store(true, Relaxed);
            self.verify(key, token).await
        };
        let result = inner.inflight.try_get_with(key, verify).await;
        inner.inflight.invalidate(&key).await;
        let coalesced = !ran.load(Relaxed);
        if coalesced {
            inner.stats.coalesced.fetch_add(1, Relaxed);
        }
        let verdict = match result {
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
    /// layer.resolver().invalidate(&AccessToken::new("Atza|…")).await;
    /// # }
    /// ```
    pub async fn invalidate(&self, token: &AccessToken) {
        let key = self.key(token.expose());
        self.inner.store.invalidate(&key);
        self.inner.memo.forget(key);
        self.inner.inflight.invalidate(&key).await;
    }

    /// Forgets every cached verdict.
    pub fn invalidate_all(&self) {
        self.inner.store.invalidate_all();
        self.inner.memo.forget_all();
        self.inner.inflight.invalidate_all();
    }

    /// The number of cached verdicts (approximate; `moka` applies writes lazily).
    pub fn entry_count(&self) -> u64 {
        self.inner.store.entry_count()
    }

    /// Applies pending cache maintenance now (evictions, expiry bookkeeping). Useful in tests
    /// and before reading [`entry_count`](Self::entry_count).
    pub fn run_pending_tasks(&self) {
        self.inner.store.run_pending_tasks();
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> crate::stats::StatsSnapshot {
        self.inner.stats.snapshot()
    }

    pub(crate) fn stats_handle(&self) -> &Stats {
        &self.inner.stats
    }

    /// The client used to talk to Amazon.
    pub fn client(&self) -> &AmazonClient {
        &self.inner.client
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
            Ok(_permit) => tokio::time::timeout(inner.policy.deadline, self.ask_amazon(token))
                .await
                .unwrap_or(Err(AuthError::Unavailable(Unavailable::Timeout))),
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

    /// tokeninfo and profile, concurrently; the audience is checked before the profile is
    /// trusted. Returns the identity and when the `exp` clock started.
    async fn ask_amazon(&self, token: &AccessToken) -> Result<(Identity, Instant), AuthError> {
        let inner = &*self.inner;
        let policy = &inner.policy;
        let client = &inner.client;
        let stats = &inner.stats;
        let tokeninfo = async {
            if !policy.check_audience {
                return Ok(None);
            }
            stats.upstream_calls.fetch_add(1, Relaxed);
            let verified = client.tokeninfo(token).await.map_err(upstream)?;
            let aud = policy
                .client_ids
                .iter()
                .find(|id| ***id == *verified.info.aud)
                .cloned()
                .ok_or(AuthError::InvalidToken(Rejection::WrongAudience))?;
            if verified.info.exp <= 0 {
                return Err(AuthError::InvalidToken(Rejection::Expired));
            }
            Ok(Some((verified, aud)))
        };
        let profile = async {
            if !policy.fetch_profile {
                return Ok(None);
            }
            stats.upstream_calls.fetch_add(1, Relaxed);
            client.profile(token).await.map(Some).map_err(upstream)
        };
        let (verified, profile) = futures_util::future::try_join(tokeninfo, profile).await?;
        let received = Instant::now();
        match (verified, profile) {
            (Some((verified, aud)), profile) => {
                if profile
                    .as_ref()
                    .is_some_and(|p| p.user_id != verified.info.user_id)
                {
                    tracing::warn!("tokeninfo and profile disagree on the user");
                    return Err(AuthError::Unavailable(Unavailable::Unreadable));
                }
                let received = verified.received;
                let wall = verified.received_wall;
                Ok((
                    Identity::new(verified.info, aud, profile, received, wall, MAX_EXP),
                    received,
                ))
            }
            // No tokeninfo (audience check off): the profile is the only proof.
            (None, Some(profile)) => {
                let identity = Identity::from_profile(profile, policy.max_ttl, received);
                Ok((identity, received))
            }
            (None, None) => Err(AuthError::Unavailable(Unavailable::Unreadable)),
        }
    }
}

/// Maps a client error to the outward error.
fn upstream(error: AmazonError) -> AuthError {
    match error {
        AmazonError::InvalidToken { .. } => AuthError::InvalidToken(Rejection::Invalid),
        AmazonError::InsufficientScope { .. } => AuthError::InsufficientScope,
        AmazonError::Status {
            status, retry_after, ..
        } => AuthError::Unavailable(Unavailable::Status { status, retry_after }),
        // An error code the verification endpoints do not document: no verdict, fail closed.
        AmazonError::OAuth { status, .. } => AuthError::Unavailable(Unavailable::Status {
            status,
            retry_after: None,
        }),
        AmazonError::Timeout => AuthError::Unavailable(Unavailable::Timeout),
        AmazonError::Connect => AuthError::Unavailable(Unavailable::Connect),
        AmazonError::Unreadable { .. } | AmazonError::NoTokenInfo => {
            AuthError::Unavailable(Unavailable::Unreadable)
        }
    }
}

#[cfg(all(test, feature = "mock"))]
mod tests {
    use super::*;
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
        let resolver = layer.resolver().clone();
        let access = AccessToken::new(token.clone());
        let key = resolver.key(&token);

        assert!(resolver.resolve(key, &access).await.is_ok());
        assert!(matches!(resolver.cached(&key), Some(Ok(_))), "a memo hit");
        resolver.inner.store.invalidate(&key);
        assert!(
            matches!(resolver.cached(&key), Some(Ok(_))),
            "the memo outlives the store's entry"
        );

        mock.register(&token, MockReply::invalid_token());
        let other = resolver.clone();
        // Another OS thread, on this runtime (this thread drives its I/O while waiting).
        let runtime = tokio::runtime::Handle::current();
        let verdict = tokio::task::spawn_blocking(move || runtime.block_on(other.resolve(key, &access)))
            .await
            .unwrap();
        assert_eq!(verdict.err(), Some(AuthError::InvalidToken(Rejection::Invalid)));
        assert_eq!(mock.calls_for(&token).tokeninfo, 2);
        assert_eq!(
            resolver.cached(&key).map(|verdict| verdict.err()),
            Some(Some(AuthError::InvalidToken(Rejection::Invalid))),
            "this thread's memo still answered for a revoked token"
        );
    }
}
