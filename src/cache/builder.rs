//! [`IdentityCacheBuilder`]: every verification, cache and back-off setting of an
//! [`IdentityCache`], its default (from [`defaults`](crate::defaults)), and their validation,
//! once, at [`build`](IdentityCacheBuilder::build). The layer's own settings (realm, optional
//! mode, responses) are [`AmazonAuthBuilder`](crate::AmazonAuthBuilder)'s.

use std::sync::Arc;
use std::time::Duration;

use super::{CachePolicy, IdentityCache};
use crate::breaker::Breaker;
use crate::client::AmazonClient;
use crate::defaults;
use crate::endpoint::{Endpoints, Region};
use crate::error::BuildError;
use crate::second_level::{CacheSettings, IntoSecondLevel, SecondLevel, SecondLevelError};
use crate::verify::Verifier;

/// The documented limits of the duration and count settings: what `build()` accepts at most.
/// None of them is near a sensible value; they keep every deadline on a request path far from
/// overflowing.
const LIMITS: Limits = Limits {
    max_ttl: (Duration::from_secs(24 * 3600), "24 h"),
    clock_skew: (Duration::from_secs(3600), "1 h"),
    negative_ttl: (Duration::from_secs(3600), "1 h"),
    deadline: (Duration::from_secs(300), "5 min"),
    connect_timeout: (Duration::from_secs(300), "5 min"),
    backoff: (Duration::from_secs(300), "5 min"),
    retries: (10, "10"),
    max_in_flight: (1_000_000, "1 000 000"),
};

struct Limits {
    max_ttl: (Duration, &'static str),
    clock_skew: (Duration, &'static str),
    negative_ttl: (Duration, &'static str),
    deadline: (Duration, &'static str),
    connect_timeout: (Duration, &'static str),
    backoff: (Duration, &'static str),
    retries: (u32, &'static str),
    max_in_flight: (usize, &'static str),
}

/// `Err(TooLarge)` when `value` is above `limit`.
fn at_most<T: PartialOrd>(
    setting: &'static str,
    value: T,
    limit: (T, &'static str),
) -> Result<(), BuildError> {
    if value > limit.0 {
        return Err(BuildError::TooLarge {
            setting,
            limit: limit.1,
        });
    }
    Ok(())
}

impl IdentityCache {
    /// A cache accepting tokens issued to `client_id`, verified in North America, with every
    /// other setting at its default.
    ///
    /// ```
    /// # fn main() -> Result<(), tower_amazon_auth::BuildError> {
    /// let cache = tower_amazon_auth::IdentityCache::new("amzn1.application-oa2-client.0123456789abcdef")?;
    /// assert_eq!(cache.entry_count(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(client_id: impl Into<String>) -> Result<Self, BuildError> {
        Self::builder().client_id(client_id).build()
    }

    /// A builder with every setting at its default.
    pub fn builder() -> IdentityCacheBuilder {
        IdentityCacheBuilder::default()
    }
}

/// Configures an [`IdentityCache`]: whose tokens it accepts, where it verifies them, how long
/// it believes the verdicts, and how it treats Amazon when Amazon struggles. Every setter
/// documents its default (each a constant in [`defaults`]); [`build`](Self::build) checks the
/// whole configuration once and returns a typed [`BuildError`].
///
/// ```
/// use std::time::Duration;
/// use tower_amazon_auth::endpoint::Region;
/// use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
///
/// # fn main() -> Result<(), tower_amazon_auth::BuildError> {
/// let cache = IdentityCache::builder()
///     .client_id("amzn1.application-oa2-client.0123456789abcdef")
///     .region(Region::Europe)
///     .max_ttl(Duration::from_secs(60))
///     .build()?;
/// let layer = AmazonAuthLayer::builder(cache).realm("api").build()?;
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// # Settings
///
/// | setter | default | what it does |
/// | --- | --- | --- |
/// | [`client_id`](Self::client_id) / [`client_ids`](Self::client_ids) | none: at least one is required | accept tokens whose `aud` is one of these |
/// | [`region`](Self::region) | [`Region::NorthAmerica`] | `NorthAmerica` (`api.amazon.com`), `Europe` (`api.amazon.co.uk`), `FarEast` (`api.amazon.co.jp`) |
/// | [`base_url`](Self::base_url) | `https://api.amazon.com` | any base URL laid out like Login with Amazon (a mock, a proxy) |
/// | [`endpoints`](Self::endpoints) | North America | explicit endpoints, e.g. [`Endpoints::appstore`] |
/// | [`tokeninfo_only`](Self::tokeninfo_only) | off: the profile is fetched too | one upstream call instead of two; `email`, `name`, `postal_code` stay `None` |
/// | [`skip_audience_check`](Self::skip_audience_check) | off: `aud` is checked | only for endpoints without `tokeninfo` (Appstore) and tokens your own server obtained |
/// | [`clock_skew`](Self::clock_skew) | [`defaults::CLOCK_SKEW`] (30 s) | subtracted from the token's remaining life before caching; a token with no more left is refused as expired |
/// | [`max_ttl`](Self::max_ttl) | [`defaults::MAX_TTL`] (5 min) | longest an identity is cached: how late a revocation can be noticed |
/// | [`negative_ttl`](Self::negative_ttl) | [`defaults::NEGATIVE_TTL`] (30 s) | how long a definite rejection is remembered |
/// | [`capacity`](Self::capacity) | [`defaults::CAPACITY`] (100 000) | most cached verdicts (each thread also remembers up to 64 identities it served lately) |
/// | [`negative_capacity`](Self::negative_capacity) | [`defaults::NEGATIVE_CAPACITY`] (10 000) | most remembered rejections, apart from the identities |
/// | [`max_revocations`](Self::max_revocations) | [`defaults::MAX_REVOCATIONS`] (100 000) | most revocations (logouts) in force at once; never evicted, one more is refused |
/// | [`max_revocations_per_user`](Self::max_revocations_per_user) | [`defaults::MAX_REVOCATIONS_PER_USER`] (100) | most of them for one user's tokens, so one account cannot fill the rest |
/// | [`max_in_flight`](Self::max_in_flight) | [`defaults::MAX_IN_FLIGHT`] (256) | most distinct tokens being verified at once; beyond it, 503 at once |
/// | [`stale_if_error`](Self::stale_if_error) | `false` | during an Amazon outage, keep serving an identity past `max_ttl` (never past the token's expiry) |
/// | [`connect_timeout`](Self::connect_timeout) | [`defaults::CONNECT_TIMEOUT`] (2 s) | time allowed to connect to Amazon |
/// | [`deadline`](Self::deadline) | [`defaults::DEADLINE`] (5 s) | time allowed to verify one token, retries included; then 503 |
/// | [`retries`](Self::retries) | [`defaults::RETRIES`] (2) | retries after a connection failure or a 5xx (jittered backoff), within the deadline |
/// | [`backoff`](Self::backoff) | [`defaults::BACKOFF`] (5 s) | no verification for this long after a run of failures at Amazon |
/// | [`second_level`](Self::second_level) | none | a second cache level shared by the fleet (Redis: the `tower-amazon-auth-redis` crate), and fleet-wide logout |
#[derive(Debug)]
#[must_use]
pub struct IdentityCacheBuilder {
    client_ids: Vec<String>,
    endpoints: Result<Endpoints, BuildError>,
    check_audience: bool,
    fetch_profile: bool,
    clock_skew: Duration,
    max_ttl: Duration,
    negative_ttl: Duration,
    capacity: u64,
    negative_capacity: u64,
    max_revocations: u64,
    max_revocations_per_user: u64,
    max_in_flight: usize,
    stale_if_error: bool,
    connect_timeout: Duration,
    deadline: Duration,
    retries: u32,
    backoff: Duration,
    second_level: Option<PendingLevel>,
}

/// A second level's settings, until `build()` attaches them.
type Attach = Box<dyn FnOnce(&CacheSettings<'_>) -> Result<Arc<dyn SecondLevel>, SecondLevelError> + Send>;

/// A second level given to the builder, not yet attached.
struct PendingLevel(Attach);

impl std::fmt::Debug for PendingLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Its settings may hold secrets: only that there is one.
        f.write_str("PendingLevel")
    }
}

impl Default for IdentityCacheBuilder {
    fn default() -> Self {
        Self {
            client_ids: Vec::new(),
            endpoints: Ok(Endpoints::default()),
            check_audience: true,
            fetch_profile: true,
            clock_skew: defaults::CLOCK_SKEW,
            max_ttl: defaults::MAX_TTL,
            negative_ttl: defaults::NEGATIVE_TTL,
            capacity: defaults::CAPACITY,
            negative_capacity: defaults::NEGATIVE_CAPACITY,
            max_revocations: defaults::MAX_REVOCATIONS,
            max_revocations_per_user: defaults::MAX_REVOCATIONS_PER_USER,
            max_in_flight: defaults::MAX_IN_FLIGHT,
            stale_if_error: false,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            deadline: defaults::DEADLINE,
            retries: defaults::RETRIES,
            backoff: defaults::BACKOFF,
            second_level: None,
        }
    }
}

impl IdentityCacheBuilder {
    /// Accepts tokens issued to this client id (`amzn1.application-oa2-client.…`). Call once per
    /// client id (e.g. one per app platform). At least one is required.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_ids.push(client_id.into());
        self
    }

    /// Accepts tokens issued to any of these client ids (added to those already set).
    pub fn client_ids<I, T>(mut self, client_ids: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.client_ids.extend(client_ids.into_iter().map(Into::into));
        self
    }

    /// Verifies tokens in `region`. Default: [`Region::NorthAmerica`].
    pub fn region(mut self, region: Region) -> Self {
        self.endpoints = Ok(region.into());
        self
    }

    /// Verifies tokens against these endpoints. Default: North America.
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.endpoints = Ok(endpoints);
        self
    }

    /// Verifies tokens under this base URL (a mock, a proxy), laid out as Login with Amazon
    /// is. Checked at [`build`](Self::build). Default: `https://api.amazon.com`.
    pub fn base_url(mut self, base_url: &str) -> Self {
        self.endpoints = Endpoints::base_url(base_url);
        self
    }

    /// Asks only `tokeninfo`, not the profile: for apps that need nothing but `user_id`.
    /// Halves the upstream calls; `email`, `name` and `postal_code` stay `None`.
    /// Default: the profile is fetched.
    pub fn tokeninfo_only(mut self) -> Self {
        self.fetch_profile = false;
        self
    }

    /// Skips the `tokeninfo` audience check and trusts any token the profile endpoint
    /// accepts. Needed for endpoint families without `tokeninfo` (the Appstore API).
    ///
    /// **Only safe when every token this layer sees was obtained by your own server** (for
    /// example through [`AmazonClient`]'s code exchange); otherwise a token issued to any other
    /// app would be accepted (the confused-deputy attack). Default: the check runs.
    pub fn skip_audience_check(mut self) -> Self {
        self.check_audience = false;
        self
    }

    /// Safety margin subtracted from a token's remaining life before caching it. At most 1 h,
    /// and below [`max_ttl`](Self::max_ttl). Default: [`defaults::CLOCK_SKEW`] (30 s).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// The longest a verified identity is cached, whatever the token's life: how late a
    /// revoked token can still be accepted. At most 24 h. Default: [`defaults::MAX_TTL`]
    /// (5 min).
    pub fn max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = max_ttl;
        self
    }

    /// How long a definite rejection (`invalid_token`, wrong `aud`, insufficient scope) is
    /// remembered, so a replayed bad token costs no upstream call. Transient failures are
    /// never remembered. At most 1 h. Default: [`defaults::NEGATIVE_TTL`] (30 s).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The most verdicts cached; the least valuable are evicted beyond it. Besides the cache,
    /// each thread remembers up to 64 identities it served lately (never past their cache
    /// entry's freshness). Default: [`defaults::CAPACITY`] (100 000).
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// The most definite rejections remembered, apart from the [`capacity`](Self::capacity) of
    /// verified identities, so a flood of bad tokens never evicts a good one. Default:
    /// [`defaults::NEGATIVE_CAPACITY`] (10 000).
    pub fn negative_capacity(mut self, capacity: u64) -> Self {
        self.negative_capacity = capacity;
        self
    }

    /// The most revocations ([`IdentityCache::revoke`], [`AmazonUser::revoke`]) in force at
    /// once, each until its token expires (at most an hour for Amazon's tokens). A revocation
    /// is never evicted to make room, since that would be a lost logout: one more is refused
    /// with [`CacheError::TooManyRevocations`](crate::CacheError::TooManyRevocations). Each
    /// takes about 100 bytes. Default: [`defaults::MAX_REVOCATIONS`] (100 000).
    ///
    /// [`AmazonUser::revoke`]: crate::AmazonUser::revoke
    pub fn max_revocations(mut self, max: u64) -> Self {
        self.max_revocations = max;
        self
    }

    /// The most revocations of one user's tokens in force at once (counted when the cache knows
    /// the token's user), so one account logging in and out in a loop cannot fill
    /// [`max_revocations`](Self::max_revocations) for everyone: one more is refused with
    /// [`CacheError::TooManyRevocations`](crate::CacheError::TooManyRevocations). A website
    /// session's logout never fails on it (the session ends; revoking its token is best
    /// effort). Default: [`defaults::MAX_REVOCATIONS_PER_USER`] (100).
    pub fn max_revocations_per_user(mut self, max: u64) -> Self {
        self.max_revocations_per_user = max;
        self
    }

    /// The most distinct tokens verified with Amazon at once; a request for one more is
    /// answered 503 at once instead of queueing. At most 1 000 000. Default:
    /// [`defaults::MAX_IN_FLIGHT`] (256).
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Stale-if-error: when Amazon cannot answer (timeout, 5xx, connection failure, in-flight
    /// limit), keep serving an identity verified earlier whose [`max_ttl`] has passed but whose
    /// token, by Amazon's own `exp`, has not expired (less [`clock_skew`]). Never serves past
    /// the token's expiry and never a rejected token. A stale identity is verified again
    /// first; when that fails it is served, and Amazon is asked again after 5 s. Trades
    /// revocation latency for availability during an outage. Default: `false`.
    ///
    /// [`max_ttl`]: Self::max_ttl
    /// [`clock_skew`]: Self::clock_skew
    pub fn stale_if_error(mut self, enabled: bool) -> Self {
        self.stale_if_error = enabled;
        self
    }

    /// Time allowed to connect to Amazon. At most 5 min. Default: [`defaults::CONNECT_TIMEOUT`]
    /// (2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Deadline for verifying one token (both calls, connection included); past it the request
    /// is answered 503. At most 5 min. Default: [`defaults::DEADLINE`] (5 s).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Retries of a `tokeninfo` or `profile` call after a connection failure or a 5xx, with
    /// jittered exponential backoff (25 ms, 50 ms, …), all within the [`deadline`]. A verdict
    /// (`invalid_token`, …) and a 429 are never retried. At most 10. Default:
    /// [`defaults::RETRIES`] (2).
    ///
    /// [`deadline`]: Self::deadline
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// How long no verification is started after a run of failures at Amazon (5xx, timeouts,
    /// broken connections) without a `Retry-After` of Amazon's: those requests are answered
    /// 503 at once with what remains of it. Not the layer's
    /// [`retry_after`](crate::AmazonAuthBuilder::retry_after), the header of its 503s. At least
    /// 1 s, at most 5 min. Default:
    /// [`defaults::BACKOFF`] (5 s).
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Adds a [second level](crate::second_level) behind the local one, shared by every
    /// instance given the same settings, so a token costs one verification per fleet rather than
    /// per instance, and [`revoke`] logs a token out on every instance. For Redis, the
    /// `tower-amazon-auth-redis` crate's `Fleet`. Attached at [`build`](Self::build), where its
    /// own settings are checked too ([`BuildError::SecondLevel`]). Default: none.
    ///
    /// [`revoke`]: crate::IdentityCache::revoke
    pub fn second_level(mut self, level: impl IntoSecondLevel) -> Self {
        self.second_level = Some(PendingLevel(Box::new(move |cache| level.attach(cache))));
        self
    }

    /// Checks the settings and builds the cache, attaching the second level, if any (the Redis
    /// level must be built inside a Tokio runtime; it opens no connection here).
    pub fn build(self) -> Result<IdentityCache, BuildError> {
        let endpoints = self.endpoints?;
        for (name, value) in [
            ("max_ttl", self.max_ttl),
            ("negative_ttl", self.negative_ttl),
            ("deadline", self.deadline),
            ("connect_timeout", self.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(BuildError::Zero(name));
            }
        }
        at_most("max_ttl", self.max_ttl, LIMITS.max_ttl)?;
        at_most("clock_skew", self.clock_skew, LIMITS.clock_skew)?;
        at_most("negative_ttl", self.negative_ttl, LIMITS.negative_ttl)?;
        at_most("deadline", self.deadline, LIMITS.deadline)?;
        at_most("connect_timeout", self.connect_timeout, LIMITS.connect_timeout)?;
        at_most("retries", self.retries, LIMITS.retries)?;
        if self.backoff < Duration::from_secs(1) {
            return Err(BuildError::Zero("backoff"));
        }
        at_most("backoff", self.backoff, LIMITS.backoff)?;
        at_most("max_in_flight", self.max_in_flight, LIMITS.max_in_flight)?;
        if self.clock_skew >= self.max_ttl {
            return Err(BuildError::ClockSkewNotBelowMaxTtl);
        }
        if self.capacity == 0 {
            return Err(BuildError::Zero("capacity"));
        }
        if self.negative_capacity == 0 {
            return Err(BuildError::Zero("negative_capacity"));
        }
        if self.max_revocations == 0 {
            return Err(BuildError::Zero("max_revocations"));
        }
        if self.max_revocations_per_user == 0 {
            return Err(BuildError::Zero("max_revocations_per_user"));
        }
        if self.max_in_flight == 0 {
            return Err(BuildError::Zero("max_in_flight"));
        }
        if self.client_ids.iter().any(|id| id.trim().is_empty()) {
            return Err(BuildError::EmptyClientId);
        }
        if self.check_audience {
            if self.client_ids.is_empty() {
                return Err(BuildError::NoClientId);
            }
            if endpoints.tokeninfo_url().is_none() {
                return Err(BuildError::NoTokenInfo);
            }
        } else if !self.fetch_profile {
            return Err(BuildError::NothingVerifies);
        }
        let client = AmazonClient::with_timeouts(endpoints, self.connect_timeout, self.deadline)?
            .with_retries(self.retries);
        let verifier = Verifier {
            client,
            client_ids: self.client_ids.into_iter().map(Arc::from).collect(),
            check_audience: self.check_audience,
            fetch_profile: self.fetch_profile,
            deadline: self.deadline,
            min_life: self.clock_skew,
            breaker: Breaker::new(self.backoff, self.deadline),
        };
        let policy = CachePolicy {
            clock_skew: self.clock_skew,
            max_ttl: self.max_ttl,
            negative_ttl: self.negative_ttl,
            capacity: self.capacity,
            negative_capacity: self.negative_capacity,
            max_revocations: self.max_revocations,
            max_revocations_per_user: self.max_revocations_per_user,
            max_in_flight: self.max_in_flight,
            stale_if_error: self.stale_if_error,
        };
        let second_level = match self.second_level {
            Some(PendingLevel(attach)) => Some(
                attach(&CacheSettings {
                    client_ids: &verifier.client_ids,
                    endpoints: verifier.client.endpoints(),
                    check_audience: verifier.check_audience,
                    fetch_profile: verifier.fetch_profile,
                    payload_version: super::payload::FORMAT_VERSION,
                    deadline: verifier.deadline,
                    capacity: policy.capacity,
                })
                .map_err(BuildError::SecondLevel)?,
            ),
            None => None,
        };
        IdentityCache::from_parts(verifier, policy, second_level)
            .map_err(|e| BuildError::Randomness(e.to_string()))
    }
}
