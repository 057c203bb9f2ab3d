//! [`IdentityCache`]: the identity cache. Per-entry expiry, brief memory of rejections,
//! revocations, one upstream verification per token at a time (single-flight), an in-flight
//! limit, and counters.
//!
//! Hits are answered by the thread's [`Memo`] when it served the token lately, otherwise by a
//! synchronous `moka` store read (no future, no cache-handle clone). Misses take the boxed slow
//! path: [`InFlight`] lets one request per token ask the [`Verifier`], and the others wait for
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
//!   before it: its memo slot and any store entry carry the old generation, and it waits only
//!   for a verification of the current one. It is verified with Amazon again (or joins a verification that
//!   started after the invalidation).
//! - A request that **starts after `revoke(token)` returned** is refused with `401
//!   invalid_token` without any upstream call, until the token's own expiry: the tombstone is
//!   written before the generation is bumped, and every miss checks it first.
//! - A request **already under way** when `invalidate` or `revoke` is called may still be
//!   answered with the verdict it was about to get, exactly as if it had arrived a moment
//!   earlier: a hit that read its level before the bump, or a request waiting for a
//!   verification that started before it. One exception in favour of logout: a verification's
//!   verdict is checked against the tombstones when it ends, so even a request that was waiting
//!   for Amazon during `revoke` is refused.
//! - `invalidate` does not undo a `revoke`: the tombstone stays until the token expires.
//!
//! Generations are striped (see [`generation`]), so outdating one token also makes a few
//! unrelated tokens verify again; it never makes anyone serve a wrong verdict.
//!
//! # A second level
//!
//! With a [second level](crate::second_level) (Redis, shared by the fleet), a miss asks it
//! (after the local levels, before Amazon, from the request doing the verification only) and a
//! verdict from Amazon is written there; `revoke` and `invalidate` are applied locally first,
//! then in the level, which tells the other instances, whose caches apply them through
//! [`Inner::forget`] and a local tombstone, the same generation bump as here. So every rule
//! above holds on every instance for an event it has received, and a miss anywhere sees a
//! tombstone written anywhere. The level's side of this rule is written at the trait.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | the levels ([`IdentityCache`]'s state) and how the cache is set up |
//! | [`builder`] | [`IdentityCacheBuilder`]: every verification, cache and back-off setting, checked once |
//! | `lookup` | the request path: a hit, or a miss that verifies or waits for the verification under way |
//! | `verification` | asking Amazon for a miss and storing its verdict, under the generation rule |
//! | `expiry` | [`CachePolicy`]: how long a verdict is believed, every entry's construction, stale-if-error |
//! | `revocation` | tombstones, and forgetting a token (or all) on every level |
//! | `user_revocations` | each user's revocations in force, capped |
//! | `operations` | what users call: `invalidate`, `revoke`, `invalidate_all`, counts, stats |
//! | [`generation`] | the generation rule all levels obey |
//! | [`entry`] | what a store remembers about a token, and when `moka` drops it |
//! | [`memo`] | each thread's memory of the identities it served last |
//! | [`in_flight`] | the verifications under way, one per token and generation |
//! | `second_level` | how these levels meet a [second level](crate::second_level) |
//! | `payload` | what a second level keeps of a verdict, and the checks on the way back |

mod builder;
pub(crate) mod entry;
mod expiry;
pub(crate) mod generation;
pub(crate) mod in_flight;
mod lookup;
pub(crate) mod memo;
mod operations;
pub(crate) mod payload;
pub(crate) mod revocation;
mod second_level;
#[cfg(test)]
mod tests;
mod user_revocations;
mod verification;

use std::sync::{Arc, Weak};

use foldhash::fast::RandomState;
use tokio::sync::Semaphore;

pub use self::builder::IdentityCacheBuilder;
use self::entry::{Entry, RevokedExpiry, TimeToLive};
pub(crate) use self::expiry::CachePolicy;
use self::generation::Generations;
use self::in_flight::InFlight;
use self::memo::Memo;
use self::user_revocations::UserRevocations;
use crate::error::AuthError;
use crate::log_limit::LogLimit;
use crate::second_level::{RemoteEvents, SecondLevel};
use crate::stats::Stats;
use crate::token_key::{KeyedDigest, TokenKey};
use crate::verify::Verifier;

/// What a verification ends with.
type Verdict = Result<Entry, AuthError>;

/// The identity cache and the verification behind it: every verification, cache and back-off
/// setting, built with [`IdentityCache::builder`] (or [`IdentityCache::new`] for the
/// defaults). Cheap to clone; clones share the cache, so several layers (or routers) can share
/// one: give each [`AmazonAuthLayer::builder`](crate::AmazonAuthLayer::builder) the same cache.
///
/// ```
/// use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
///
/// # fn main() -> Result<(), tower_amazon_auth::BuildError> {
/// let cache = IdentityCache::new("amzn1.application-oa2-client.0123456789abcdef")?;
/// let api = AmazonAuthLayer::builder(cache.clone()).build()?;
/// // A token verified through `api` is a cache hit on `admin`'s first request.
/// let admin = AmazonAuthLayer::builder(cache).realm("admin").build()?;
/// # let _ = (api, admin);
/// # Ok(())
/// # }
/// ```
///
/// What [`invalidate`](Self::invalidate) and [`revoke`](Self::revoke) guarantee to requests
/// that start after them, and to those already under way, is set out in the module
/// documentation of `cache` (in the source: `src/cache/mod.rs`) and summed up on each method.
#[derive(Clone)]
pub struct IdentityCache {
    inner: Arc<Inner>,
}

/// The levels and the verification behind them, shared by every clone of the cache.
struct Inner {
    /// Verified identities.
    store: moka::sync::Cache<TokenKey, Entry, RandomState>,
    /// Definite rejections, bounded apart so a flood of bad tokens cannot evict identities.
    rejected: moka::sync::Cache<TokenKey, Entry, RandomState>,
    /// Revoked tokens (logout), each until the token's own expiry.
    revoked: moka::sync::Cache<TokenKey, std::time::Instant, RandomState>,
    /// How many of them each user has.
    user_revocations: UserRevocations,
    generations: Generations,
    /// Each thread's memory of the identities it read from `store` lately.
    memo: Memo,
    in_flight: InFlight<Verdict>,
    digest: KeyedDigest,
    verifier: Verifier,
    policy: CachePolicy,
    limiter: Semaphore,
    stats: Stats,
    /// "token could not be verified", at most so often.
    warn_unverified: LogLimit,
    /// "serving a stale identity", at most so often.
    warn_stale: LogLimit,
    /// This cache, for the identities it stores (see [`Origin`](crate::identity::Origin)).
    this: Weak<Inner>,
    /// The second level (Redis, shared by the fleet), if any.
    second_level: Option<Arc<dyn SecondLevel>>,
    /// With a second level: when this instance last forgot each token (its own `invalidate`
    /// or `revoke`, or another instance's, heard), for the longest a verdict may be kept: a
    /// verdict in the second level verified before that is a miss, whatever the level holds (a
    /// copy written back there after the invalidation).
    forgotten: moka::sync::Cache<TokenKey, std::time::Instant, RandomState>,
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

impl IdentityCache {
    /// A cache from settings [`IdentityCacheBuilder::build`] checked.
    fn from_parts(
        verifier: Verifier,
        policy: CachePolicy,
        second_level: Option<Arc<dyn SecondLevel>>,
    ) -> Result<Self, getrandom::Error> {
        // With a second level, every instance names a token the same way.
        let digest = match second_level.as_ref().and_then(|level| level.digest_key()) {
            Some(key) => KeyedDigest::with_key(key),
            None => KeyedDigest::random()?,
        };
        let entries = |capacity, time_to_live| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(time_to_live)
                .build_with_hasher(RandomState::default())
        };
        let (forgotten_capacity, forgotten_life) = (policy.capacity, policy.max_ttl.max(policy.negative_ttl));
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
            user_revocations: UserRevocations::new(policy.max_revocations_per_user, policy.max_revocations),
            generations: Generations::default(),
            memo: Memo::default(),
            in_flight: InFlight::default(),
            digest,
            limiter: Semaphore::new(policy.max_in_flight),
            verifier,
            policy,
            stats: Stats::default(),
            warn_unverified: LogLimit::default(),
            warn_stale: LogLimit::default(),
            this: this.clone(),
            forgotten: moka::sync::Cache::builder()
                .max_capacity(forgotten_capacity)
                .time_to_live(forgotten_life)
                .build_with_hasher(RandomState::default()),
            second_level,
        });
        if let Some(level) = &inner.second_level {
            let local = Arc::downgrade(&inner) as Weak<dyn crate::second_level::LocalLevels>;
            level.subscribe(RemoteEvents::new(local));
        }
        Ok(Self { inner })
    }

    /// The cache key of `token`.
    #[inline]
    pub(crate) fn key(&self, token: &[u8]) -> TokenKey {
        self.inner.digest.key(token)
    }

    /// The live counters, for the layer's refusals and hits.
    pub(crate) fn stats_handle(&self) -> &Stats {
        &self.inner.stats
    }

    /// Whether `other` is a clone of this cache.
    pub(crate) fn same_as(&self, other: &IdentityCache) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The client the cache verifies with (website sign-in's grants go through it too).
    pub(crate) fn amazon_client(&self) -> &crate::client::AmazonClient {
        &self.inner.verifier.client
    }

    /// The accepted client ids.
    pub(crate) fn client_ids(&self) -> &[Arc<str>] {
        &self.inner.verifier.client_ids
    }

    /// The time allowed to verify one token (also what a sign-in refresh may take).
    pub(crate) fn deadline(&self) -> std::time::Duration {
        self.inner.verifier.deadline
    }

    /// The longest a verdict is kept (also a shared session's copy's life).
    pub(crate) fn max_ttl(&self) -> std::time::Duration {
        self.inner.policy.max_ttl
    }

    /// The second level's store for website sign-in's sessions, if it offers one.
    pub(crate) fn session_store(&self) -> Option<Arc<dyn crate::second_level::SessionStore>> {
        self.inner.second_level.as_ref()?.session_store()
    }

    /// How long before its expiry a token stops being usable.
    pub(crate) fn clock_skew(&self) -> std::time::Duration {
        self.inner.policy.clock_skew
    }
}
