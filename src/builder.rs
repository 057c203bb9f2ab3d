//! [`AmazonAuthBuilder`]: every setting of an [`AmazonAuthLayer`], its default (from
//! [`defaults`](crate::defaults)), and all validation, once, at
//! [`build`](AmazonAuthBuilder::build). The only place configuration is read.
//!
//! [`AmazonAuthLayer::new`] and [`AmazonAuthLayer::builder`] live here too: the layer itself
//! knows nothing of configuration, so `layer.rs` never imports this file.

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::Breaker;
use crate::cache::{CachePolicy, IdentityCache};
use crate::client::AmazonClient;
use crate::defaults;
use crate::endpoint::{Endpoints, Region};
use crate::error::BuildError;
use crate::layer::AmazonAuthLayer;
use crate::response::{ErrorResponder, JsonErrors, Responder};
use crate::service::{Settings, Shared};
use crate::token::TokenRules;
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
    retry_after: (Duration::from_secs(300), "5 min"),
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
    retry_after: (Duration, &'static str),
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

/// Checks the fleet level's settings: the secrets' length, the key prefix, the durations'
/// limits (documented on each setter of [`Fleet`](crate::Fleet)).
#[cfg(feature = "redis")]
fn check_fleet(fleet: &crate::fleet::Fleet) -> Result<(), BuildError> {
    use crate::fleet::FLEET_MIN_SECRET_LEN;
    let short = |secret: &[u8]| secret.len() < FLEET_MIN_SECRET_LEN;
    if short(&fleet.secret) || fleet.previous.as_deref().is_some_and(short) {
        return Err(BuildError::FleetSecretTooShort);
    }
    let prefix_ok =
        (1..=64).contains(&fleet.prefix.len()) && fleet.prefix.bytes().all(|b| b.is_ascii_graphic());
    if !prefix_ok {
        return Err(BuildError::FleetKeyPrefix);
    }
    if fleet.command_timeout < Duration::from_millis(1) {
        return Err(BuildError::Zero("command_timeout"));
    }
    at_most(
        "command_timeout",
        fleet.command_timeout,
        (Duration::from_secs(5), "5 s"),
    )?;
    if let Some(wait) = fleet.lock_wait {
        at_most("lock_wait", wait, (Duration::from_secs(300), "5 min"))?;
    }
    at_most("backoff", fleet.backoff, (Duration::from_secs(300), "5 min"))
}

impl AmazonAuthLayer {
    /// A layer accepting tokens issued to `client_id`, verified in North America, with every
    /// other setting at its default.
    pub fn new(client_id: impl Into<String>) -> Result<Self, BuildError> {
        Self::builder().client_id(client_id).build()
    }

    /// A builder with every setting at its default.
    pub fn builder() -> AmazonAuthBuilder {
        AmazonAuthBuilder::default()
    }
}

/// Configures an [`AmazonAuthLayer`]. Every setter documents its default (each a constant in
/// [`defaults`]); [`build`](Self::build) checks the whole configuration once and returns a
/// typed [`BuildError`].
///
/// ```
/// use std::time::Duration;
/// use tower_amazon_auth::{AmazonAuthLayer, Region};
///
/// let layer = AmazonAuthLayer::builder()
///     .client_id("amzn1.application-oa2-client.0123456789abcdef")
///     .region(Region::Europe)
///     .max_ttl(Duration::from_secs(60))
///     .build()
///     .expect("valid configuration");
/// # let _ = layer;
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
/// | [`realm`](Self::realm) | [`defaults::REALM`] (`"api"`) | the realm of the `WWW-Authenticate` challenge |
/// | [`require_access_token_prefix`](Self::require_access_token_prefix) | `true` | refuse tokens not starting `Atza\|` with 400, before any upstream call |
/// | [`allow_query_token`](Self::allow_query_token) | `true` | accept a token in `?access_token=` (RFC 6750 §2.3 advises against it) |
/// | [`optional`](Self::optional) | `false` | let requests *without* a token through, without an [`AmazonUser`](crate::AmazonUser) |
/// | [`strip_token`](Self::strip_token) | `true` | remove the token from an accepted request before the inner service sees it |
/// | [`clock_skew`](Self::clock_skew) | [`defaults::CLOCK_SKEW`] (30 s) | subtracted from the token's remaining life before caching |
/// | [`max_ttl`](Self::max_ttl) | [`defaults::MAX_TTL`] (5 min) | longest an identity is cached: how late a revocation can be noticed |
/// | [`negative_ttl`](Self::negative_ttl) | [`defaults::NEGATIVE_TTL`] (30 s) | how long a definite rejection is remembered |
/// | [`capacity`](Self::capacity) | [`defaults::CAPACITY`] (100 000) | most cached verdicts (each thread also remembers up to 64 identities it served lately) |
/// | [`negative_capacity`](Self::negative_capacity) | [`defaults::NEGATIVE_CAPACITY`] (10 000) | most remembered rejections, apart from the identities |
/// | [`max_revocations`](Self::max_revocations) | [`defaults::MAX_REVOCATIONS`] (100 000) | most revocations (logouts) in force at once; never evicted, one more is refused |
/// | [`max_in_flight`](Self::max_in_flight) | [`defaults::MAX_IN_FLIGHT`] (256) | most distinct tokens being verified at once; beyond it, 503 at once |
/// | [`stale_if_error`](Self::stale_if_error) | `false` | during an Amazon outage, keep serving an identity past `max_ttl` (never past the token's expiry) |
/// | [`connect_timeout`](Self::connect_timeout) | [`defaults::CONNECT_TIMEOUT`] (2 s) | time allowed to connect to Amazon |
/// | [`deadline`](Self::deadline) | [`defaults::DEADLINE`] (5 s) | time allowed to verify one token, retries included; then 503 |
/// | [`retries`](Self::retries) | [`defaults::RETRIES`] (2) | retries after a connection failure or a 5xx (jittered backoff), within the deadline |
/// | [`retry_after`](Self::retry_after) | [`defaults::RETRY_AFTER`] (5 s) | `Retry-After` on a 503 (Amazon's own, when longer, wins) |
/// | [`backoff`](Self::backoff) | [`defaults::BACKOFF`] (5 s) | no verification for this long after a run of failures at Amazon |
/// | [`error_responder`](Self::error_responder) | [`JsonErrors`] | shape of error responses (HTML, problem+json…) |
/// | [`shared_cache`](Self::shared_cache) | a new cache per layer | share another layer's cache and verification settings |
/// | `fleet` (feature `redis`) | off | a second cache level in Redis shared by the fleet, and fleet-wide logout |
#[derive(Debug)]
#[must_use]
pub struct AmazonAuthBuilder {
    client_ids: Vec<String>,
    endpoints: Result<Endpoints, BuildError>,
    check_audience: bool,
    fetch_profile: bool,
    realm: String,
    require_prefix: bool,
    allow_query: bool,
    optional: bool,
    strip_token: bool,
    clock_skew: Duration,
    max_ttl: Duration,
    negative_ttl: Duration,
    capacity: u64,
    negative_capacity: u64,
    max_revocations: u64,
    max_in_flight: usize,
    stale_if_error: bool,
    connect_timeout: Duration,
    deadline: Duration,
    retries: u32,
    retry_after: Duration,
    backoff: Duration,
    responder: Responder,
    shared_cache: Option<IdentityCache>,
    /// The cache and verification setters called, refused alongside a shared cache.
    cache_settings: Vec<&'static str>,
    #[cfg(feature = "redis")]
    fleet: Option<crate::fleet::Fleet>,
}

impl Default for AmazonAuthBuilder {
    fn default() -> Self {
        Self {
            client_ids: Vec::new(),
            endpoints: Ok(Endpoints::default()),
            check_audience: true,
            fetch_profile: true,
            realm: defaults::REALM.to_owned(),
            require_prefix: true,
            allow_query: true,
            optional: false,
            strip_token: true,
            clock_skew: defaults::CLOCK_SKEW,
            max_ttl: defaults::MAX_TTL,
            negative_ttl: defaults::NEGATIVE_TTL,
            capacity: defaults::CAPACITY,
            negative_capacity: defaults::NEGATIVE_CAPACITY,
            max_revocations: defaults::MAX_REVOCATIONS,
            max_in_flight: defaults::MAX_IN_FLIGHT,
            stale_if_error: false,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            deadline: defaults::DEADLINE,
            retries: defaults::RETRIES,
            retry_after: defaults::RETRY_AFTER,
            backoff: defaults::BACKOFF,
            responder: Responder(Arc::new(JsonErrors)),
            shared_cache: None,
            cache_settings: Vec::new(),
            #[cfg(feature = "redis")]
            fleet: None,
        }
    }
}

impl AmazonAuthBuilder {
    /// Accepts tokens issued to this client id (`amzn1.application-oa2-client.…`). Call once per
    /// client id (e.g. one per app platform). At least one is required.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.cache_settings.push("client_id");
        self.client_ids.push(client_id.into());
        self
    }

    /// Accepts tokens issued to any of these client ids (added to those already set).
    pub fn client_ids<I, T>(mut self, client_ids: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.cache_settings.push("client_ids");
        self.client_ids.extend(client_ids.into_iter().map(Into::into));
        self
    }

    /// Verifies tokens in `region`. Default: [`Region::NorthAmerica`].
    pub fn region(mut self, region: Region) -> Self {
        self.cache_settings.push("region");
        self.endpoints = Ok(region.into());
        self
    }

    /// Verifies tokens against these endpoints. Default: North America.
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.cache_settings.push("endpoints");
        self.endpoints = Ok(endpoints);
        self
    }

    /// Verifies tokens under this base URL (a mock, a proxy), laid out as Login with Amazon
    /// is. Checked at [`build`](Self::build). Default: `https://api.amazon.com`.
    pub fn base_url(mut self, base_url: &str) -> Self {
        self.cache_settings.push("base_url");
        self.endpoints = Endpoints::base_url(base_url);
        self
    }

    /// Asks only `tokeninfo`, not the profile: for apps that need nothing but `user_id`.
    /// Halves the upstream calls; `email`, `name` and `postal_code` stay `None`.
    /// Default: the profile is fetched.
    pub fn tokeninfo_only(mut self) -> Self {
        self.cache_settings.push("tokeninfo_only");
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
        self.cache_settings.push("skip_audience_check");
        self.check_audience = false;
        self
    }

    /// The realm of the `WWW-Authenticate` challenge. Default: [`defaults::REALM`] (`"api"`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Whether a token must start `Atza|` (refused with 400 before any upstream call
    /// otherwise). Turn off only if Amazon changes its token format. Default: `true`.
    pub fn require_access_token_prefix(mut self, require: bool) -> Self {
        self.require_prefix = require;
        self
    }

    /// Whether a token may come in the `access_token` query parameter. RFC 6750 §2.3 advises
    /// against it (URLs end up in logs and browser history), but Amazon documents it, so it is
    /// accepted by default. When `false`, a query token is refused with `400 invalid_request`
    /// before any upstream call. Default: `true`.
    pub fn allow_query_token(mut self, allow: bool) -> Self {
        self.allow_query = allow;
        self
    }

    /// Lets requests **without any token** through without an [`AmazonUser`] extension, for
    /// routes that serve everyone but personalise for signed-in users. A request with a bad
    /// token is still refused. Default: `false` (no token is a 401).
    ///
    /// [`AmazonUser`]: crate::AmazonUser
    pub fn optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    /// Removes the token (the header, or the `access_token` query parameter) from an accepted
    /// request before it reaches the inner service, so its access logs cannot record it.
    /// Turn off if the inner service forwards the token to Amazon itself. Default: `true`.
    ///
    /// With the `axum` feature, a query token is also removed from axum's `OriginalUri`, which
    /// the router sets before any layer runs. What this cannot reach: a layer wrapped *around*
    /// this one (a `TraceLayer` on the whole app) sees the request before the token is removed,
    /// query and headers included. Put such layers inside, or have them skip
    /// `Authorization`, `x-amz-access-token` and the `access_token` parameter, or refuse query
    /// tokens with [`allow_query_token(false)`](Self::allow_query_token).
    pub fn strip_token(mut self, strip: bool) -> Self {
        self.strip_token = strip;
        self
    }

    /// Safety margin subtracted from a token's remaining life before caching it. At most 1 h,
    /// and below [`max_ttl`](Self::max_ttl). Default: [`defaults::CLOCK_SKEW`] (30 s).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.cache_settings.push("clock_skew");
        self.clock_skew = skew;
        self
    }

    /// The longest a verified identity is cached, whatever the token's life: how late a
    /// revoked token can still be accepted. At most 24 h. Default: [`defaults::MAX_TTL`]
    /// (5 min).
    pub fn max_ttl(mut self, max_ttl: Duration) -> Self {
        self.cache_settings.push("max_ttl");
        self.max_ttl = max_ttl;
        self
    }

    /// How long a definite rejection (`invalid_token`, wrong `aud`, insufficient scope) is
    /// remembered, so a replayed bad token costs no upstream call. Transient failures are
    /// never remembered. At most 1 h. Default: [`defaults::NEGATIVE_TTL`] (30 s).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.cache_settings.push("negative_ttl");
        self.negative_ttl = ttl;
        self
    }

    /// The most verdicts cached; the least valuable are evicted beyond it. Besides the cache,
    /// each thread remembers up to 64 identities it served lately (never past their cache
    /// entry's freshness). Default: [`defaults::CAPACITY`] (100 000).
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.cache_settings.push("capacity");
        self.capacity = capacity;
        self
    }

    /// The most definite rejections remembered, apart from the [`capacity`](Self::capacity) of
    /// verified identities, so a flood of bad tokens never evicts a good one. Default:
    /// [`defaults::NEGATIVE_CAPACITY`] (10 000).
    pub fn negative_capacity(mut self, capacity: u64) -> Self {
        self.cache_settings.push("negative_capacity");
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
        self.cache_settings.push("max_revocations");
        self.max_revocations = max;
        self
    }

    /// The most distinct tokens verified with Amazon at once; a request for one more is
    /// answered 503 at once instead of queueing. At most 1 000 000. Default:
    /// [`defaults::MAX_IN_FLIGHT`] (256).
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.cache_settings.push("max_in_flight");
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
        self.cache_settings.push("stale_if_error");
        self.stale_if_error = enabled;
        self
    }

    /// Time allowed to connect to Amazon. At most 5 min. Default: [`defaults::CONNECT_TIMEOUT`]
    /// (2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.cache_settings.push("connect_timeout");
        self.connect_timeout = timeout;
        self
    }

    /// Deadline for verifying one token (both calls, connection included); past it the request
    /// is answered 503. At most 5 min. Default: [`defaults::DEADLINE`] (5 s).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.cache_settings.push("deadline");
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
        self.cache_settings.push("retries");
        self.retries = retries;
        self
    }

    /// `Retry-After` sent with a 503 (Amazon's own, when longer, wins, up to 5 min). At most
    /// 5 min. Default: [`defaults::RETRY_AFTER`] (5 s).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// How long no verification is started after a run of failures at Amazon (5xx, timeouts,
    /// broken connections) without a `Retry-After` of Amazon's: those requests are answered
    /// 503 at once with what remains of it. A cache setting: it is not the layer's
    /// [`retry_after`](Self::retry_after). At least 1 s, at most 5 min. Default:
    /// [`defaults::BACKOFF`] (5 s).
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.cache_settings.push("backoff");
        self.backoff = backoff;
        self
    }

    /// Shapes error responses: see [`ErrorResponder`]. Default: [`JsonErrors`].
    pub fn error_responder(mut self, responder: impl ErrorResponder) -> Self {
        self.responder = Responder(Arc::new(responder));
        self
    }

    /// Shares the cache (and its verification settings) of another layer, e.g.
    /// [`AmazonAuthLayer::cache`]. The cache keeps its own verification settings (client ids,
    /// endpoints, timeouts, retries, TTLs, capacities, in-flight limit, stale-if-error): setting
    /// any of them here too is refused at [`build`](Self::build) with
    /// [`BuildError::SharedCacheWith`], since a layer that seems to accept only its own client
    /// ids would accept the other layer's. The per-layer settings (realm, optional mode,
    /// stripping, prefix, `Retry-After`, error responder) stay this builder's. Default: a new
    /// cache per layer.
    ///
    /// ```
    /// use tower_amazon_auth::AmazonAuthLayer;
    ///
    /// # fn main() -> Result<(), tower_amazon_auth::BuildError> {
    /// let api = AmazonAuthLayer::new("amzn1.application-oa2-client.0123456789abcdef")?;
    /// // A token verified through `api` is a cache hit on `admin`'s first request.
    /// let admin = AmazonAuthLayer::builder()
    ///     .shared_cache(api.cache().clone())
    ///     .realm("admin")
    ///     .build()?;
    /// # let _ = admin;
    /// # Ok(())
    /// # }
    /// ```
    pub fn shared_cache(mut self, cache: IdentityCache) -> Self {
        self.shared_cache = Some(cache);
        self
    }

    /// (feature `redis`) Adds the fleet level: a second cache level in Redis shared by every
    /// instance given the same [`Fleet`](crate::Fleet) settings, so a token costs one
    /// verification per fleet rather than per instance, and [`revoke`] logs a token out on
    /// every instance. Checked at [`build`](Self::build), which must then run inside a Tokio
    /// runtime; no connection is opened there, and a Redis that is down (at startup or later)
    /// only sends requests to Amazon directly. See [`Fleet`](crate::Fleet). Default: off.
    ///
    /// [`revoke`]: crate::IdentityCache::revoke
    #[cfg(feature = "redis")]
    pub fn fleet(mut self, fleet: crate::fleet::Fleet) -> Self {
        self.cache_settings.push("fleet");
        self.fleet = Some(fleet);
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<AmazonAuthLayer, BuildError> {
        let realm_ok = self
            .realm
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\');
        if !realm_ok || self.realm.is_empty() {
            return Err(BuildError::InvalidRealm);
        }
        if self.retry_after.is_zero() {
            return Err(BuildError::Zero("retry_after"));
        }
        at_most("retry_after", self.retry_after, LIMITS.retry_after)?;
        let settings = Settings {
            realm: self.realm.clone().into_boxed_str(),
            rules: TokenRules::default()
                .require_access_token_prefix(self.require_prefix)
                .allow_query_token(self.allow_query),
            optional: self.optional,
            strip_token: self.strip_token,
            retry_after: self.retry_after,
            responder: self.responder.clone(),
        };
        let cache = match self.shared_cache {
            Some(cache) => match self.cache_settings.first() {
                Some(setting) => return Err(BuildError::SharedCacheWith(setting)),
                None => cache,
            },
            None => self.new_cache()?,
        };
        Ok(AmazonAuthLayer::from_shared(Shared { cache, settings }))
    }

    /// A new identity cache from this builder's verification and cache settings.
    fn new_cache(self) -> Result<IdentityCache, BuildError> {
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
            max_in_flight: self.max_in_flight,
            stale_if_error: self.stale_if_error,
        };
        #[cfg(feature = "redis")]
        let fleet = match self.fleet {
            Some(fleet) => {
                check_fleet(&fleet)?;
                Some(crate::fleet::level::FleetLevel::new(
                    fleet,
                    &verifier,
                    policy.capacity,
                )?)
            }
            None => None,
        };
        #[cfg(not(feature = "redis"))]
        let fleet = None;
        IdentityCache::new(verifier, policy, fleet).map_err(|e| BuildError::Randomness(e.to_string()))
    }
}
