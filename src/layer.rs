//! [`AmazonAuthLayer`] and its validating [`AmazonAuthBuilder`]: the one place configuration
//! lives.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use tower_layer::Layer;

use crate::client::{AmazonClient, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRIES};
use crate::endpoint::{Endpoints, Region};
use crate::error::{AuthError, ErrorContext, ErrorResponder, JsonErrors, Responder};
use crate::resolver::{Policy, Resolver};
use crate::service::AmazonAuth;
use crate::stats::StatsSnapshot;

/// Default realm of the `WWW-Authenticate` challenge.
pub const DEFAULT_REALM: &str = "api";
/// Default safety margin subtracted from a token's remaining life before caching it.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);
/// Default longest time a verified identity is cached (bounds how late a revocation is seen).
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(5 * 60);
/// Default time a definite rejection is remembered.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Default maximum number of cached verdicts.
pub const DEFAULT_CAPACITY: u64 = 100_000;
/// Default maximum number of distinct tokens being verified with Amazon at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Default `Retry-After` on a 503, in seconds.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why [`AmazonAuthBuilder::build`] refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No client id was configured: every token would be refused (or, worse, any accepted).
    #[error("at least one client id is required (client_id)")]
    NoClientId,
    /// A client id was empty.
    #[error("a client id is empty")]
    EmptyClientId,
    /// A base URL was not an absolute `http(s)` URL without query or fragment.
    #[error("invalid base URL {0:?}")]
    InvalidBaseUrl(String),
    /// The realm holds characters that cannot appear in a quoted-string.
    #[error("the realm must be printable ASCII without quotes or backslashes")]
    InvalidRealm,
    /// A setting that must be positive was zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The endpoints offer no `tokeninfo` (Appstore) and the audience check is still on.
    #[error(
        "these endpoints offer no tokeninfo, so the aud check cannot run; \
         call skip_audience_check() if you accept that risk"
    )]
    NoTokenInfo,
    /// The audience check is off and the profile is not fetched: nothing would verify tokens.
    #[error("with the audience check skipped, the profile must be fetched")]
    NothingVerifies,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    /// The operating system's random number generator failed.
    #[error("no system randomness for the cache key: {0}")]
    Randomness(String),
}

/// Settings the service reads on every request.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) realm: Box<str>,
    pub(crate) require_prefix: bool,
    pub(crate) optional: bool,
    pub(crate) strip_token: bool,
    pub(crate) retry_after: Duration,
    pub(crate) responder: Responder,
}

impl Settings {
    /// The response for a refused request.
    pub(crate) fn respond(&self, error: &AuthError) -> Response<Full<Bytes>> {
        tracing::debug!(%error, status = error.status().as_u16(), "request refused");
        let cx = ErrorContext {
            realm: &self.realm,
            retry_after: error.retry_after(self.retry_after),
        };
        self.responder.0.respond(error, cx)
    }
}

/// Everything a service instance shares with its clones, behind one `Arc`.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) resolver: Resolver,
    pub(crate) settings: Settings,
}

/// A [`Layer`] that authenticates requests carrying Amazon access tokens.
///
/// Build one with [`AmazonAuthLayer::builder`] (or [`AmazonAuthLayer::new`] for the
/// defaults), then wrap a service or an axum `Router` with it. Clones share the cache.
///
/// Use a layer within one tokio runtime, as a server does: its connections to Amazon belong to
/// the runtime that opened them, and a layer moved to a second runtime while the first is not
/// running waits on them until the deadline (then answers 503).
///
/// ```
/// use tower_amazon_auth::{AmazonAuthLayer, Region};
///
/// let layer = AmazonAuthLayer::builder()
///     .client_id("amzn1.application-oa2-client.0123456789abcdef")
///     .region(Region::Europe)
///     .build()
///     .expect("valid configuration");
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct AmazonAuthLayer {
    shared: Arc<Shared>,
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

    /// The identity cache, to invalidate a token on logout or share the cache with another
    /// layer ([`AmazonAuthBuilder::resolver`]).
    pub fn resolver(&self) -> &Resolver {
        &self.shared.resolver
    }

    /// A snapshot of the counters (hits, misses, upstream calls, refusals…).
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.resolver.stats()
    }
}

impl<S> Layer<S> for AmazonAuthLayer {
    type Service = AmazonAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AmazonAuth::new(inner, Arc::clone(&self.shared))
    }
}

/// Configures an [`AmazonAuthLayer`]. Every setter documents its default; [`build`] checks
/// the whole configuration once.
///
/// [`build`]: AmazonAuthBuilder::build
#[derive(Debug)]
#[must_use]
pub struct AmazonAuthBuilder {
    client_ids: Vec<String>,
    endpoints: Result<Endpoints, BuildError>,
    check_audience: bool,
    fetch_profile: bool,
    realm: String,
    require_prefix: bool,
    optional: bool,
    strip_token: bool,
    clock_skew: Duration,
    max_ttl: Duration,
    negative_ttl: Duration,
    capacity: u64,
    max_in_flight: usize,
    stale_if_error: bool,
    connect_timeout: Duration,
    deadline: Duration,
    retries: u32,
    retry_after: Duration,
    responder: Responder,
    resolver: Option<Resolver>,
}

impl Default for AmazonAuthBuilder {
    fn default() -> Self {
        Self {
            client_ids: Vec::new(),
            endpoints: Ok(Endpoints::default()),
            check_audience: true,
            fetch_profile: true,
            realm: DEFAULT_REALM.to_owned(),
            require_prefix: true,
            optional: false,
            strip_token: true,
            clock_skew: DEFAULT_CLOCK_SKEW,
            max_ttl: DEFAULT_MAX_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            capacity: DEFAULT_CAPACITY,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            stale_if_error: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            deadline: DEFAULT_REQUEST_TIMEOUT,
            retries: DEFAULT_RETRIES,
            retry_after: DEFAULT_RETRY_AFTER,
            responder: Responder(Arc::new(JsonErrors)),
            resolver: None,
        }
    }
}

impl AmazonAuthBuilder {
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

    /// The realm of the `WWW-Authenticate` challenge. Default: [`DEFAULT_REALM`] (`"api"`).
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
    pub fn strip_token(mut self, strip: bool) -> Self {
        self.strip_token = strip;
        self
    }

    /// Safety margin subtracted from a token's remaining life before caching it.
    /// Default: [`DEFAULT_CLOCK_SKEW`] (30 s).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// The longest a verified identity is cached, whatever the token's life: how late a
    /// revoked token can still be accepted. Default: [`DEFAULT_MAX_TTL`] (5 min).
    pub fn max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = max_ttl;
        self
    }

    /// How long a definite rejection (`invalid_token`, wrong `aud`, insufficient scope) is
    /// remembered, so a replayed bad token costs no upstream call. Transient failures are
    /// never remembered. Default: [`DEFAULT_NEGATIVE_TTL`] (30 s).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The most verdicts cached; the least valuable are evicted beyond it. Besides the cache,
    /// each thread remembers up to 64 identities it served lately (never past their cache
    /// entry's freshness). Default: [`DEFAULT_CAPACITY`] (100 000).
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// The most distinct tokens verified with Amazon at once; a request for one more is
    /// answered 503 at once instead of queueing. Default: [`DEFAULT_MAX_IN_FLIGHT`] (256).
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

    /// Time allowed to connect to Amazon. Default: [`DEFAULT_CONNECT_TIMEOUT`] (2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Deadline for verifying one token (both calls, connection included); past it the request
    /// is answered 503. Default: [`DEFAULT_REQUEST_TIMEOUT`] (5 s).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Retries of a `tokeninfo` or `profile` call after a connection failure or a 5xx, with
    /// jittered exponential backoff (25 ms, 50 ms, …), all within the [`deadline`]. A verdict
    /// (`invalid_token`, …) and a 429 are never retried. Default: [`DEFAULT_RETRIES`] (2).
    ///
    /// [`deadline`]: Self::deadline
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// `Retry-After` sent with a 503 (Amazon's own, when longer, wins).
    /// Default: [`DEFAULT_RETRY_AFTER`] (5 s).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Shapes error responses: see [`ErrorResponder`]. Default: [`JsonErrors`].
    pub fn error_responder(mut self, responder: impl ErrorResponder) -> Self {
        self.responder = Responder(Arc::new(responder));
        self
    }

    /// Shares the cache (and its verification settings) of another layer's resolver, e.g.
    /// [`AmazonAuthLayer::resolver`]. The client ids, endpoints, timeouts, TTLs, capacity and
    /// in-flight limit of this builder are then ignored. Default: a new resolver.
    pub fn resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = Some(resolver);
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
        let resolver = match self.resolver {
            Some(resolver) => resolver,
            None => Self::new_resolver(
                self.client_ids,
                self.endpoints?,
                Policy {
                    client_ids: Box::new([]),
                    check_audience: self.check_audience,
                    fetch_profile: self.fetch_profile,
                    clock_skew: self.clock_skew,
                    max_ttl: self.max_ttl,
                    negative_ttl: self.negative_ttl,
                    deadline: self.deadline,
                    capacity: self.capacity,
                    max_in_flight: self.max_in_flight,
                    stale_if_error: self.stale_if_error,
                },
                self.connect_timeout,
                self.retries,
            )?,
        };
        let settings = Settings {
            realm: self.realm.into_boxed_str(),
            require_prefix: self.require_prefix,
            optional: self.optional,
            strip_token: self.strip_token,
            retry_after: self.retry_after,
            responder: self.responder,
        };
        Ok(AmazonAuthLayer {
            shared: Arc::new(Shared { resolver, settings }),
        })
    }

    fn new_resolver(
        client_ids: Vec<String>,
        endpoints: Endpoints,
        mut policy: Policy,
        connect_timeout: Duration,
        retries: u32,
    ) -> Result<Resolver, BuildError> {
        for (name, value) in [
            ("max_ttl", policy.max_ttl),
            ("negative_ttl", policy.negative_ttl),
            ("deadline", policy.deadline),
            ("connect_timeout", connect_timeout),
        ] {
            if value.is_zero() {
                return Err(BuildError::Zero(name));
            }
        }
        if policy.capacity == 0 {
            return Err(BuildError::Zero("capacity"));
        }
        if policy.max_in_flight == 0 {
            return Err(BuildError::Zero("max_in_flight"));
        }
        if client_ids.iter().any(|id| id.trim().is_empty()) {
            return Err(BuildError::EmptyClientId);
        }
        if policy.check_audience {
            if client_ids.is_empty() {
                return Err(BuildError::NoClientId);
            }
            if endpoints.tokeninfo_url().is_none() {
                return Err(BuildError::NoTokenInfo);
            }
        } else if !policy.fetch_profile {
            return Err(BuildError::NothingVerifies);
        }
        policy.client_ids = client_ids.into_iter().map(Arc::from).collect();
        let client =
            AmazonClient::with_timeouts(endpoints, connect_timeout, policy.deadline)?.with_retries(retries);
        Resolver::new(client, policy).map_err(|e| BuildError::Randomness(e.to_string()))
    }
}
