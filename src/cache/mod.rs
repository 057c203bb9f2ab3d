//! [`IdentityCache`]: the identity cache. Per-entry expiry, brief memory of rejections,
//! revocations, one upstream verification per token at a time (single-flight), an in-flight
//! limit, and counters.
//!
//! Hits are answered by the thread's [`Memo`] when it served the token lately, otherwise by a
//! synchronous `moka` store read (no future, no cache-handle clone). Misses take the boxed slow
//! path: [`Flights`] lets one request per token ask the [`Verifier`], and the others wait for
//! its verdict, which lands in the store.
//!
//! # Coherence: what a request may still see after `invalidate` or `revoke`
//!
//! Every level (the memos, the store of identities, the store of rejections, the flights) obeys
//! one rule: a verdict computed under an older [generation](generation) of its token is never
//! stored and never served. `invalidate` and `revoke` bump the token's generation *first*, then
//! clear the levels, so whatever a flight stores in between carries the old generation and is
//! ignored by every reader.
//!
//! - A request that **starts after `invalidate(token)` returned** never sees a verdict computed
//!   before it: its memo slot and any store entry carry the old generation, and it boards only a
//!   flight of the current one. It is verified with Amazon again (or joins a verification that
//!   started after the invalidation).
//! - A request that **starts after `revoke(token)` returned** is refused with `401
//!   invalid_token` without any upstream call, until the token's own expiry: the tombstone is
//!   written before the generation is bumped, and every miss checks it first.
//! - A request **already under way** when `invalidate` or `revoke` is called may still be
//!   answered with the verdict it was about to get, exactly as if it had arrived a moment
//!   earlier: a hit that read its level before the bump, or a passenger of a flight that started
//!   before it. One exception in favour of logout: a flight's verdict is checked against the
//!   tombstones when it lands, so even a request that was waiting for Amazon during `revoke` is
//!   refused.
//! - `invalidate` does not undo a `revoke`: the tombstone stays until the token expires.
//!
//! Generations are striped (see [`generation`]), so outdating one token also makes a few
//! unrelated tokens verify again; it never makes anyone serve a wrong verdict.
//!
//! # The fleet level (feature `redis`)
//!
//! With [`Fleet`](crate::Fleet) settings, a miss asks Redis (after the local levels, before
//! Amazon, from the flight's pilot only) and a verdict from Amazon is written there; `revoke`
//! and `invalidate` are applied locally first, then in Redis and published to the other
//! instances, which apply them through [`Inner::forget`] and a local tombstone, the same
//! generation bump as here. So every rule above holds on every instance for a message it has
//! received, and a miss anywhere sees a tombstone written anywhere. What a subscriber that was
//! disconnected may still serve, and for how long, is set out in `src/fleet/mod.rs`.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | the levels and how a verdict moves between them; expiry, revocation, stale-if-error |
//! | [`key`] | the keyed digest every level keys a token by |
//! | [`generation`] | the generation rule all levels obey |
//! | [`entry`] | what a store remembers about a token, and when `moka` drops it |
//! | [`memo`] | each thread's memory of the identities it served last |
//! | [`flight`] | the verifications under way, one per token and generation |
//! | `fleet_level` | (feature `redis`) how these levels meet the fleet level in Redis |

pub(crate) mod entry;
#[cfg(feature = "redis")]
mod fleet_level;
pub(crate) mod flight;
pub(crate) mod generation;
pub(crate) mod key;
pub(crate) mod memo;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;

use self::entry::{Entry, TimeToLive};
use self::flight::{Flights, Seat};
use self::generation::Generations;
use self::key::{KeyedDigest, TokenKey};
use self::memo::Memo;
use crate::client::AmazonClient;
use crate::error::{AuthError, CacheError, Rejection, Unavailable};
#[cfg(feature = "redis")]
use crate::fleet::level::FleetLevel;
use crate::identity::{Identity, Origin};
use crate::log_limit::LogLimit;
use crate::stats::{Stats, StatsSnapshot};
use crate::token::AccessToken;
use crate::verify::Verifier;

/// With stale-if-error, how long a stale identity is served without asking Amazon again after
/// a failed re-verification.
const STALE_RECHECK: Duration = Duration::from_secs(5);

/// How much longer than a verification's deadline a request waits for another's.
const PASSENGER_MARGIN: Duration = Duration::from_secs(1);

/// The longest a revocation learned from the fleet is kept here (Redis's word is not trusted
/// to overflow a deadline).
#[cfg(feature = "redis")]
const MAX_TOMBSTONE: Duration = Duration::from_secs(24 * 3600);

/// How long a revocation lasts when the token's expiry is unknown (Amazon's tokens live an
/// hour).
const REVOKED_UNKNOWN_EXPIRY: Duration = Duration::from_secs(3600);

/// How verdicts are remembered; set by the layer builder.
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
    pub(crate) max_in_flight: usize,
    /// Serve an identity past `max_ttl` (never past the token's expiry) when Amazon cannot
    /// answer.
    pub(crate) stale_if_error: bool,
}

impl CachePolicy {
    /// How long from `since` `identity` may be believed: until its token expires, less the
    /// clock skew (before `max_ttl` bounds its freshness).
    fn usable_for(&self, identity: &Identity, since: Instant) -> Duration {
        match identity.token_expires() {
            Some(expires) => expires.saturating_duration_since(since),
            // Profile-only mode: Amazon gave no expiry; believe it for max_ttl.
            None => self.max_ttl,
        }
        .saturating_sub(self.clock_skew)
    }
}

/// What a flight lands with.
type Verdict = Result<Entry, AuthError>;

/// The fleet level a cache may have (none without the `redis` feature).
#[cfg(feature = "redis")]
pub(crate) type Fleet = FleetLevel;
/// The fleet level a cache may have (none without the `redis` feature).
#[cfg(not(feature = "redis"))]
pub(crate) type Fleet = std::convert::Infallible;

/// The identity cache and the verification behind it. Cheap to clone; clones share the cache,
/// so several layers (or routers) can share one: see
/// [`AmazonAuthBuilder::shared_cache`](crate::AmazonAuthBuilder::shared_cache).
///
/// Get it from [`AmazonAuthLayer::cache`](crate::AmazonAuthLayer::cache). What
/// [`invalidate`](Self::invalidate) and [`revoke`](Self::revoke) guarantee to requests that
/// start after them, and to those already under way, is set out in the module documentation
/// of `cache` (in the source: `src/cache/mod.rs`) and summed up on each method.
#[derive(Clone)]
pub struct IdentityCache {
    inner: Arc<Inner>,
}

struct Inner {
    /// Verified identities.
    store: moka::sync::Cache<TokenKey, Entry, RandomState>,
    /// Definite rejections, bounded apart so a flood of bad tokens cannot evict identities.
    rejected: moka::sync::Cache<TokenKey, Entry, RandomState>,
    /// Revoked tokens (logout), each until the token's own expiry.
    revoked: moka::sync::Cache<TokenKey, Instant, RandomState>,
    generations: Generations,
    /// Each thread's memory of the identities it read from `store` lately.
    memo: Memo,
    flights: Flights<Verdict>,
    digest: KeyedDigest,
    verifier: Verifier,
    policy: CachePolicy,
    limiter: Semaphore,
    stats: Stats,
    /// "token could not be verified", at most so often.
    warn_unverified: LogLimit,
    /// "serving a stale identity", at most so often.
    warn_stale: LogLimit,
    /// This cache, for the identities it stores (see [`Origin`]).
    this: Weak<Inner>,
    /// The second level in Redis, shared by the fleet.
    #[cfg(feature = "redis")]
    fleet: Option<Arc<FleetLevel>>,
}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("identities", &self.inner.store.entry_count())
            .field("rejections", &self.inner.rejected.entry_count())
            .field("revocations", &self.inner.revoked.entry_count())
            .field("policy", &self.inner.policy)
            .field("verifier", &self.inner.verifier)
            .finish_non_exhaustive()
    }
}

/// Per-entry expiry of a revocation: at the token's expiry.
struct RevokedExpiry;

impl moka::Expiry<TokenKey, Instant> for RevokedExpiry {
    fn expire_after_create(&self, _: &TokenKey, until: &Instant, now: Instant) -> Option<Duration> {
        Some(until.saturating_duration_since(now))
    }
}

impl IdentityCache {
    pub(crate) fn new(
        verifier: Verifier,
        policy: CachePolicy,
        fleet: Option<Fleet>,
    ) -> Result<Self, getrandom::Error> {
        // With the fleet level, every instance names a token the same way.
        #[cfg(feature = "redis")]
        let (digest, fleet) = match fleet {
            Some(fleet) => (fleet.digest(), Some(Arc::new(fleet))),
            None => (KeyedDigest::random()?, None),
        };
        #[cfg(not(feature = "redis"))]
        let digest = match fleet {
            Some(never) => match never {},
            None => KeyedDigest::random()?,
        };
        let entries = |capacity, time_to_live| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(time_to_live)
                .build_with_hasher(RandomState::default())
        };
        let time_to_live = TimeToLive::new(policy.max_ttl, policy.negative_ttl, policy.stale_if_error);
        let inner = Arc::new_cyclic(|this| Inner {
            store: entries(policy.capacity, time_to_live.identities),
            rejected: entries(policy.negative_capacity, time_to_live.rejections),
            // No admission filter (TinyLFU would drop a new, rarely read tombstone in favour
            // of old ones), and room beyond the bound `revoke` enforces, so the cache itself
            // never evicts a revocation.
            revoked: moka::sync::Cache::builder()
                .max_capacity(policy.max_revocations.saturating_mul(2))
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .expire_after(RevokedExpiry)
                .build_with_hasher(RandomState::default()),
            generations: Generations::default(),
            memo: Memo::default(),
            flights: Flights::default(),
            digest,
            limiter: Semaphore::new(policy.max_in_flight),
            verifier,
            policy,
            stats: Stats::default(),
            warn_unverified: LogLimit::default(),
            warn_stale: LogLimit::default(),
            this: this.clone(),
            #[cfg(feature = "redis")]
            fleet,
        });
        #[cfg(feature = "redis")]
        if let Some(fleet) = &inner.fleet {
            let local = Arc::downgrade(&inner) as Weak<dyn crate::fleet::subscriber::Local>;
            crate::fleet::subscriber::spawn(fleet, local);
        }
        Ok(Self { inner })
    }

    /// The cache key of `token`.
    #[inline]
    pub(crate) fn key(&self, token: &[u8]) -> TokenKey {
        self.inner.digest.key(token)
    }

    /// The cached verdict for `key`, if any: the hit path, with no upstream call. This thread's
    /// [`Memo`] answers a token it memoized; otherwise the store does, and tells the memo (which
    /// memoizes a token the store served it twice in a row). Only entries of the token's
    /// current generation count. The only allocation is the memo's copy of an identity when it
    /// memoizes one.
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
                until,
                generation: stamped,
            } if stamped == generation && now < until => {
                inner.stats.negative_hits.fetch_add(1, Relaxed);
                Some(Err(error))
            }
            _ => None,
        }
    }

    /// Verifies `token` with Amazon, or waits for the verification of it already under way,
    /// and remembers the verdict.
    pub(crate) async fn resolve(
        &self,
        key: TokenKey,
        token: &AccessToken,
    ) -> Result<Arc<Identity>, AuthError> {
        let inner = &*self.inner;
        inner.stats.misses.fetch_add(1, Relaxed);
        let (stamp, verdict, coalesced) = loop {
            // The generation first, then the tombstone: `revoke` writes the tombstone before it
            // bumps the generation, so a request that reads the bumped generation also sees the
            // tombstone, and one that read the older generation stores nothing anyone serves.
            let generation = inner.generations.current(key);
            if inner.is_revoked(key) {
                return Err(inner.refuse_revoked());
            }
            let stamp = inner.memo.stamp(key, generation);
            match inner.flights.board(key, generation) {
                Seat::Pilot(pilot) => {
                    let verdict = self.fly(key, generation, token).await;
                    pilot.land(verdict.clone());
                    break (stamp, verdict, false);
                }
                Seat::Passenger(passenger) => {
                    // Bounded: a pilot kept alive but never polled must not hold anyone.
                    let patience = inner.verifier.deadline + inner.fleet_wait() + PASSENGER_MARGIN;
                    match tokio::time::timeout(patience, passenger.arrive()).await {
                        Ok(Some(verdict)) => break (stamp, verdict, true),
                        // Its pilot went away before landing: board again.
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
            inner.stats.coalesced.fetch_add(1, Relaxed);
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

    /// Forgets what is cached about `token`: the next request verifies it with Amazon again
    /// (for a token Amazon may have changed its mind about). A request that starts after this
    /// returns never gets a verdict computed before it; a request already under way may still
    /// get the one it was about to. It does not undo a [`revoke`](Self::revoke).
    ///
    /// This does **not** log the user out: Login with Amazon has no server-side logout, and
    /// Amazon keeps calling the token valid until it expires. Use [`revoke`](Self::revoke) for
    /// that.
    ///
    /// With the fleet level, the token's verdict is also deleted from Redis and every instance
    /// is told to forget it.
    ///
    /// # Errors
    ///
    /// [`CacheError::Fleet`] when the fleet level could not reach Redis: the token was
    /// forgotten on this instance only.
    ///
    /// ```
    /// # async fn demo(layer: tower_amazon_auth::AmazonAuthLayer) -> Result<(), tower_amazon_auth::CacheError> {
    /// use tower_amazon_auth::AccessToken;
    /// layer.cache().invalidate(&AccessToken::new("Atza|…")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, token: &AccessToken) -> Result<(), CacheError> {
        let key = self.key(token.expose().as_bytes());
        self.inner.forget(key);
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.inner.fleet {
            fleet
                .forget(key, Some(token.expose()), None)
                .await
                .map_err(|()| CacheError::Fleet)?;
        }
        Ok(())
    }

    /// Refuses `token` on this cache until it expires (logout): from now on every request
    /// carrying it gets `401 invalid_token` without any upstream call, although Amazon still
    /// calls it valid. The revocation outlives every cached copy and every verification in
    /// flight: a request that was waiting for Amazon's answer is refused too. It lasts for the
    /// token's remaining life by its cached `exp` (an hour when unknown). Revocations are never
    /// evicted: at most [`max_revocations`](crate::AmazonAuthBuilder::max_revocations) are in
    /// force at once, and one more is refused with an error rather than lost.
    ///
    /// A handler, which never sees the token, revokes its caller's with
    /// [`AmazonUser::revoke`](crate::AmazonUser::revoke).
    ///
    /// # Errors
    ///
    /// [`CacheError::TooManyRevocations`] when `max_revocations` are in force (the logout did
    /// not happen: answer it with a 5xx). With the fleet level, [`CacheError::Fleet`] when the
    /// tombstone could not be written to Redis: the token is refused on this instance, and
    /// the instance keeps trying to write the tombstone in the background (every second while
    /// its subscriber is connected, until the token expires), but until then other instances
    /// may still accept it: answer 503, so the client knows the logout is not complete.
    ///
    /// With the fleet level, the tombstone is also written to Redis for the token's remaining
    /// life (under the previous secret too, during a rotation), the token's verdicts there are
    /// deleted, and every instance is told: each refuses the token from its next request on, or,
    /// if it missed the message, from its next miss, which reads the tombstone.
    ///
    /// ```
    /// # async fn demo(layer: tower_amazon_auth::AmazonAuthLayer) -> Result<(), tower_amazon_auth::CacheError> {
    /// use tower_amazon_auth::AccessToken;
    /// layer.cache().revoke(&AccessToken::new("Atza|…")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self, token: &AccessToken) -> Result<(), CacheError> {
        let key = self.key(token.expose().as_bytes());
        let _until = self.inner.revoke_key(key)?;
        #[cfg(feature = "redis")]
        self.inner.revoke_fleet(key, Some(token.expose()), _until).await?;
        Ok(())
    }

    /// Forgets every cached verdict (revocations stay), on this instance: with the fleet
    /// level, Redis and the other instances keep theirs.
    ///
    /// # Errors
    ///
    /// None today.
    pub async fn invalidate_all(&self) -> Result<(), CacheError> {
        self.inner.flush();
        Ok(())
    }

    /// The number of cached verdicts (identities and remembered rejections, not revocations).
    /// Applies the cache's pending maintenance first (`moka` applies writes and evictions
    /// lazily), so the count is current; that costs a pass over the pending writes, so do not
    /// call it per request.
    pub fn entry_count(&self) -> u64 {
        let inner = &*self.inner;
        inner.store.run_pending_tasks();
        inner.rejected.run_pending_tasks();
        inner.store.entry_count() + inner.rejected.entry_count()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        #[allow(unused_mut)]
        let mut snapshot = self.inner.stats.snapshot();
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.inner.fleet {
            fleet.counters.fill(&mut snapshot);
            snapshot.fleet_subscribed = fleet.subscribed.load(Relaxed);
            snapshot.fleet_breaker_open = fleet.breaker_open();
        }
        snapshot
    }

    /// (feature `metrics`) Publishes every counter of [`stats`](Self::stats) through the
    /// `metrics` facade (absolute values; names in the `metrics` module docs:
    /// `tower_amazon_auth_hits_total`, …). Call it where your exporter is scraped, or from a
    /// periodic task; the latency histograms of Amazon and Redis calls are recorded as they
    /// happen without it.
    ///
    /// ```no_run
    /// # async fn demo(layer: tower_amazon_auth::AmazonAuthLayer) {
    /// let cache = layer.cache().clone();
    /// tokio::spawn(async move {
    ///     let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
    ///     loop {
    ///         every.tick().await;
    ///         cache.export_metrics();
    ///     }
    /// });
    /// # }
    /// ```
    #[cfg(feature = "metrics")]
    pub fn export_metrics(&self) {
        crate::metrics::export(&self.stats());
    }

    pub(crate) fn stats_handle(&self) -> &Stats {
        &self.inner.stats
    }

    /// The client used to talk to Amazon (for a token exchange with the same connections).
    pub fn client(&self) -> &AmazonClient {
        &self.inner.verifier.client
    }

    /// A flight's work: asks Amazon once and stores the verdict, if it is still of the token's
    /// current generation.
    async fn fly(&self, key: TokenKey, generation: u64, token: &AccessToken) -> Verdict {
        let inner = &*self.inner;
        // A verification that landed between our cache read and boarding, or a stale identity
        // kept for stale-if-error.
        let now = Instant::now();
        let stale = match inner.store.get(&key) {
            Some(entry) if entry.generation() == generation && entry.is_kept(now) => {
                if entry.is_fresh(now) {
                    return Ok(entry);
                }
                Some(entry)
            }
            _ => None,
        };
        let standing = |entry: &Entry| entry.generation() == generation && entry.is_kept(now);
        if let Some(entry) = inner.rejected.get(&key).filter(standing) {
            return Ok(entry);
        }
        #[cfg(feature = "redis")]
        let claim = match self.ask_fleet(key, generation, token).await {
            Ok(verdict) => return verdict,
            Err(claim) => claim,
        };
        let started = Instant::now();
        // Over the in-flight limit is a failure like any other: shed at once, or stale-if-error.
        let outcome = match inner.limiter.try_acquire() {
            Ok(_permit) => inner.verifier.verify(token, &inner.stats).await,
            Err(_) => Err(AuthError::Unavailable(Unavailable::Overloaded)),
        };
        let elapsed_us = started.elapsed().as_micros() as u64;
        match outcome {
            Ok((mut identity, received)) => {
                let policy = &inner.policy;
                let usable_for = policy.usable_for(&identity, received);
                let fresh_until = received + usable_for.min(policy.max_ttl);
                tracing::debug!(user_id = identity.user_id(), elapsed_us, "token verified");
                identity.origin = Some(inner.this.clone() as Weak<dyn Origin>);
                let entry = Entry::Valid {
                    fresh_until,
                    until: if policy.stale_if_error {
                        received + usable_for
                    } else {
                        fresh_until
                    },
                    identity: Arc::new(identity),
                    generation,
                };
                // Stamped with `generation`: if an invalidation bumps it after this check,
                // readers ignore the entry.
                let storable = inner.storable(key, generation);
                if storable {
                    inner.store.insert(key, entry.clone());
                }
                #[cfg(feature = "redis")]
                inner.tell_fleet(storable.then_some(&entry), claim);
                Ok(entry)
            }
            Err(error) if error.is_definite() => {
                tracing::debug!(%error, elapsed_us, "token rejected");
                let entry = Entry::Rejected {
                    error,
                    until: Instant::now() + inner.policy.negative_ttl,
                    generation,
                };
                let _stored = inner.remember_rejection(key, generation, &entry);
                #[cfg(feature = "redis")]
                inner.tell_fleet(_stored.then_some(&entry), claim);
                Ok(entry)
            }
            Err(error) => {
                inner.stats.record_error(&error);
                // No verdict for the fleet: let another instance try.
                #[cfg(feature = "redis")]
                inner.tell_fleet(None, claim);
                // Stale-if-error: `until` never passes the token's expiry; check it again, the
                // verification took time.
                if let Some(Entry::Valid { identity, until, .. }) = stale {
                    let now = Instant::now();
                    if now < until {
                        if let Some(suppressed) = inner.warn_stale.admit() {
                            tracing::warn!(%error, elapsed_us, suppressed, "Amazon unavailable: serving a stale identity");
                        }
                        inner.stats.stale_served.fetch_add(1, Relaxed);
                        // Spare Amazon (and our clients the deadline) for a moment before retrying.
                        let entry = Entry::Valid {
                            identity,
                            fresh_until: (now + STALE_RECHECK).min(until),
                            until,
                            generation,
                        };
                        if inner.storable(key, generation) {
                            inner.store.insert(key, entry.clone());
                        }
                        return Ok(entry);
                    }
                }
                match inner.warn_unverified.admit() {
                    Some(suppressed) => {
                        tracing::warn!(%error, elapsed_us, suppressed, "token could not be verified");
                    }
                    None => tracing::debug!(%error, elapsed_us, "token could not be verified"),
                }
                Err(error)
            }
        }
    }
}

impl Inner {
    /// How much longer than a verification a pilot may take with the fleet level: the wait for
    /// another instance's verification (see [`Fleet::lock_wait`](crate::Fleet::lock_wait)) and
    /// its own Redis commands. Its passengers wait that much longer.
    fn fleet_wait(&self) -> Duration {
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.fleet {
            return fleet.lock_wait() + fleet.command_time();
        }
        Duration::ZERO
    }

    /// Whether a verdict computed under `generation` may be stored for `key`: it is still the
    /// current generation, and the token is not revoked (a second line of defence: `resolve`
    /// checks the tombstone before boarding).
    fn storable(&self, key: TokenKey, generation: u64) -> bool {
        self.generations.current(key) == generation && !self.is_revoked(key)
    }

    /// Whether `key` is revoked now.
    fn is_revoked(&self, key: TokenKey) -> bool {
        self.revoked.get(&key).is_some_and(|until| Instant::now() < until)
    }

    /// Counts and returns the refusal of a revoked token.
    fn refuse_revoked(&self) -> AuthError {
        self.stats.revoked.fetch_add(1, Relaxed);
        AuthError::InvalidToken(Rejection::Revoked)
    }

    /// Remembers a definite rejection computed under `generation`, if that is still current;
    /// whether it did.
    fn remember_rejection(&self, key: TokenKey, generation: u64, entry: &Entry) -> bool {
        if self.generations.current(key) != generation {
            return false;
        }
        self.store.invalidate(&key);
        self.rejected.insert(key, entry.clone());
        // A thread may still remember the token as valid, if the store dropped it to make room
        // before this verification: from now on, none does.
        self.memo.forget(key);
        true
    }

    /// Outdates every token on every level, then clears them (revocations stay).
    fn flush(&self) {
        self.generations.bump_all();
        self.store.invalidate_all();
        self.rejected.invalidate_all();
        self.flights.forget_all();
    }

    /// Outdates `key` on every level, then clears them.
    fn forget(&self, key: TokenKey) {
        self.generations.bump(key);
        self.store.invalidate(&key);
        self.rejected.invalidate(&key);
        self.flights.forget(key);
    }

    /// Writes `key`'s tombstone, then forgets it everywhere; refuses when `max_revocations` are
    /// in force. Returns until when the token is revoked.
    fn revoke_key(&self, key: TokenKey) -> Result<Instant, CacheError> {
        let now = Instant::now();
        let expires = match self.store.get(&key) {
            Some(Entry::Valid { identity, .. }) => identity.token_expires(),
            _ => None,
        };
        let until = expires
            .unwrap_or(now + REVOKED_UNKNOWN_EXPIRY)
            .max(now + self.policy.negative_ttl);
        if !self.revoked.contains_key(&key) {
            // `moka` counts lazily: apply the pending writes and sweep the expired first (a
            // logout is rare enough to pay for it).
            self.revoked.run_pending_tasks();
            if self.revoked.entry_count() >= self.policy.max_revocations {
                tracing::warn!(
                    max_revocations = self.policy.max_revocations,
                    "revocation refused: too many in force"
                );
                return Err(CacheError::TooManyRevocations);
            }
        }
        self.revoked.insert(key, until);
        self.stats.revocations.fetch_add(1, Relaxed);
        self.forget(key);
        Ok(until)
    }
}

impl Origin for Inner {
    fn revoke(&self, key: TokenKey) -> BoxFuture<'_, Result<(), CacheError>> {
        Box::pin(async move {
            let _until = self.revoke_key(key)?;
            #[cfg(feature = "redis")]
            self.revoke_fleet(key, None, _until).await?;
            Ok(())
        })
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
        let key = cache.key(token.as_bytes());

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

#[cfg(all(test, feature = "mock"))]
mod race_tests {
    use std::time::Duration;

    use super::*;
    use crate::mock::{mock_access_token, MockAmazon, MockUser, MOCK_CLIENT_ID};
    use crate::AmazonAuthLayer;

    async fn cache_on(mock: &MockAmazon, deadline: Duration) -> IdentityCache {
        AmazonAuthLayer::builder()
            .client_id(MOCK_CLIENT_ID)
            .base_url(mock.base_url())
            .deadline(deadline)
            .build()
            .unwrap()
            .cache()
            .clone()
    }

    /// A pilot that started between `revoke`'s generation bump and a look at the tombstone
    /// (the interleaving a review found when the tombstone was read first): what it lands with
    /// is never stored, so no later request is served the revoked token from the cache.
    #[tokio::test]
    async fn a_flight_landing_after_a_revoke_stores_nothing() {
        let mock = MockAmazon::start().await.unwrap();
        let token = mock_access_token("revoke-race");
        mock.register(&token, MockUser::new("amzn1.account.RACE"));
        let cache = cache_on(&mock, Duration::from_secs(5)).await;
        let access = AccessToken::new(token.clone());
        let key = cache.key(token.as_bytes());
        cache.revoke(&access).await.unwrap();
        // Flies under the bumped generation, as a request that missed the tombstone would.
        let generation = cache.inner.generations.current(key);
        assert!(
            cache.fly(key, generation, &access).await.is_ok(),
            "Amazon still says valid"
        );
        assert!(
            cache.cached(&key).is_none(),
            "the revoked token was stored and served"
        );
        assert_eq!(
            cache.resolve(key, &access).await.err(),
            Some(AuthError::InvalidToken(Rejection::Revoked))
        );
    }

    /// A pilot kept alive but never polled (its caller dropped the race it was in, say) must
    /// not hold its passengers past the deadline.
    #[tokio::test]
    async fn a_passenger_waits_no_longer_than_the_deadline() {
        let mock = MockAmazon::start().await.unwrap();
        let token = mock_access_token("stuck-pilot");
        mock.register(&token, MockUser::new("amzn1.account.STUCK"));
        let deadline = Duration::from_millis(200);
        let cache = cache_on(&mock, deadline).await;
        let key = cache.key(token.as_bytes());
        let generation = cache.inner.generations.current(key);
        let stuck = cache.inner.flights.board(key, generation);
        assert!(matches!(stuck, Seat::Pilot(_)));
        let started = Instant::now();
        let verdict = cache.resolve(key, &AccessToken::new(token)).await;
        assert_eq!(verdict.err(), Some(AuthError::Unavailable(Unavailable::Timeout)));
        assert!(started.elapsed() < deadline + PASSENGER_MARGIN + Duration::from_secs(1));
        drop(stuck);
    }
}
