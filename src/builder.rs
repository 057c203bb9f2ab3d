//! [`AmazonAuthBuilder`]: the settings of one [`AmazonAuthLayer`] (how it finds tokens and how
//! it answers), their defaults (from [`defaults`](crate::defaults)), and their validation, once,
//! at [`build`](AmazonAuthBuilder::build). The verification and cache settings are the
//! [`IdentityCache`]'s, which the builder takes, so a layer sharing a cache cannot be given
//! settings of its own for it.
//!
//! [`AmazonAuthLayer::new`], [`AmazonAuthLayer::for_client`] and [`AmazonAuthLayer::builder`]
//! live here too: the layer itself
//! knows nothing of configuration, so `layer.rs` never imports this file.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::IdentityCache;
use crate::defaults;
use crate::error::BuildError;
use crate::layer::AmazonAuthLayer;
use crate::response::{ErrorResponder, JsonErrors, Responder};
use crate::service::{Settings, Shared};
use crate::sign_in::SignIn;
use crate::token::TokenRules;

/// The longest `Retry-After` a layer may be set to send.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

impl AmazonAuthLayer {
    /// A layer accepting tokens issued to `client_id`, verified in North America, with every
    /// other setting at its default: [`AmazonAuthLayer::for_client`], built.
    ///
    /// ```
    /// # fn main() -> Result<(), tower_amazon_auth::BuildError> {
    /// let layer = tower_amazon_auth::AmazonAuthLayer::new("amzn1.application-oa2-client.0123456789abcdef")?;
    /// # let _ = layer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(client_id: impl Into<String>) -> Result<Self, BuildError> {
        Self::for_client(client_id).build()
    }

    /// A builder for a layer on a cache of its own with every cache setting at its default
    /// (accepting tokens issued to `client_id`, verified in North America): the one-builder
    /// path when only layer settings differ from the defaults. A bad client id is reported by
    /// [`build`](AmazonAuthBuilder::build).
    ///
    /// ```
    /// # fn main() -> Result<(), tower_amazon_auth::BuildError> {
    /// use tower_amazon_auth::AmazonAuthLayer;
    /// let optional = AmazonAuthLayer::for_client("amzn1.application-oa2-client.0123456789abcdef")
    ///     .optional(true)
    ///     .build()?;
    /// # let _ = optional;
    /// # Ok(())
    /// # }
    /// ```
    pub fn for_client(client_id: impl Into<String>) -> AmazonAuthBuilder {
        AmazonAuthBuilder::new(IdentityCache::new(client_id))
    }

    /// A builder for a layer verifying through `cache` (built with [`IdentityCache::builder`],
    /// or a clone of another layer's, to share it), with every layer setting at its default.
    pub fn builder(cache: IdentityCache) -> AmazonAuthBuilder {
        AmazonAuthBuilder::new(Ok(cache))
    }
}

/// Configures an [`AmazonAuthLayer`]: how it finds tokens and how it answers. The cache it
/// verifies through, with every verification and cache setting, comes in
/// [`AmazonAuthLayer::builder`] (several layers given clones of one cache share it), or is a
/// default one for a client id ([`AmazonAuthLayer::for_client`]). Every
/// setter documents its default (each a constant in [`defaults`]); [`build`](Self::build)
/// checks the configuration once and returns a typed [`BuildError`].
///
/// ```
/// use std::time::Duration;
/// use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
///
/// # fn main() -> Result<(), tower_amazon_auth::BuildError> {
/// let cache = IdentityCache::builder()
///     .client_id("amzn1.application-oa2-client.0123456789abcdef")
///     .max_ttl(Duration::from_secs(60))
///     .build()?;
/// let api = AmazonAuthLayer::builder(cache.clone())
///     .allow_query_token(false)
///     .build()?;
/// // Shares the cache: a token verified through `api` is a hit on `admin`'s first request.
/// let admin = AmazonAuthLayer::builder(cache).realm("admin").build()?;
/// # let _ = (api, admin);
/// # Ok(())
/// # }
/// ```
///
/// # Settings
///
/// | setter | default | what it does |
/// | --- | --- | --- |
/// | [`realm`](Self::realm) | [`defaults::REALM`] (`"api"`) | the realm of the `WWW-Authenticate` challenge |
/// | [`require_access_token_prefix`](Self::require_access_token_prefix) | `true` | refuse tokens not starting `Atza\|` with 400, before any upstream call |
/// | [`allow_query_token`](Self::allow_query_token) | `true` | accept a token in `?access_token=` (RFC 6750 §2.3 advises against it) |
/// | [`optional`](Self::optional) | `false` | let requests *without* a token through, without an [`AmazonUser`](crate::AmazonUser) |
/// | [`strip_token`](Self::strip_token) | `true` | remove the token from an accepted request before the inner service sees it |
/// | [`retry_after`](Self::retry_after) | [`defaults::RETRY_AFTER`] (5 s) | `Retry-After` on a 503 (Amazon's own, when longer, wins) |
/// | [`error_responder`](Self::error_responder) | [`JsonErrors`] | shape of error responses (HTML, problem+json…) |
/// | [`sign_in`](Self::sign_in) | none | website sign-in: requests without a token are authenticated by their session cookie |
///
/// The verification and cache settings (client ids, region, TTLs, timeouts, retries, back-off,
/// the fleet level) are [`IdentityCacheBuilder`](crate::IdentityCacheBuilder)'s, so a layer on
/// a shared cache cannot be given settings the cache would ignore; this does not compile:
///
/// ```compile_fail
/// # use std::time::Duration;
/// # use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
/// let cache = IdentityCache::new("amzn1.application-oa2-client.x").unwrap();
/// let layer = AmazonAuthLayer::builder(cache)
///     .max_ttl(Duration::from_secs(60)) // a cache setting: no such method here
///     .build();
/// ```
#[derive(Debug)]
#[must_use]
pub struct AmazonAuthBuilder {
    /// The cache, or why [`AmazonAuthLayer::for_client`] could not build one (reported at
    /// [`build`](Self::build)).
    cache: Result<IdentityCache, BuildError>,
    realm: String,
    rules: TokenRules,
    optional: bool,
    strip_token: bool,
    retry_after: Duration,
    responder: Responder,
    sign_in: Option<SignIn>,
}

impl AmazonAuthBuilder {
    /// Every layer setting at its default, verifying through `cache`.
    fn new(cache: Result<IdentityCache, BuildError>) -> Self {
        Self {
            cache,
            realm: defaults::REALM.to_owned(),
            rules: TokenRules::default(),
            optional: false,
            strip_token: true,
            retry_after: defaults::RETRY_AFTER,
            responder: Responder(Arc::new(JsonErrors)),
            sign_in: None,
        }
    }

    /// The realm of the `WWW-Authenticate` challenge. Default: [`defaults::REALM`] (`"api"`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Whether a token must start `Atza|` (refused with 400 before any upstream call
    /// otherwise). Turn off only if Amazon changes its token format. Default: `true`.
    pub fn require_access_token_prefix(mut self, require: bool) -> Self {
        self.rules = self.rules.require_access_token_prefix(require);
        self
    }

    /// Whether a token may come in the `access_token` query parameter. RFC 6750 §2.3 advises
    /// against it (URLs end up in logs and browser history), but Amazon documents it, so it is
    /// accepted by default. When `false`, a query token is refused with `400 invalid_request`
    /// before any upstream call. Default: `true`.
    pub fn allow_query_token(mut self, allow: bool) -> Self {
        self.rules = self.rules.allow_query_token(allow);
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

    /// `Retry-After` sent with this layer's 503s (Amazon's own, when longer, wins, up to 5 min).
    /// Only the header: how long the cache backs off after Amazon failed is its own
    /// [`backoff`](crate::IdentityCacheBuilder::backoff). Not zero, at most 5 min.
    /// Default: [`defaults::RETRY_AFTER`] (5 s).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Shapes error responses: see [`ErrorResponder`]. Default: [`JsonErrors`].
    pub fn error_responder(mut self, responder: impl ErrorResponder) -> Self {
        self.responder = Responder(Arc::new(responder));
        self
    }

    /// Website sign-in (see [`sign_in`](crate::sign_in)): a request that carries no token of
    /// its own is authenticated by its session cookie (a token in the request always decides
    /// alone: a bad one never falls back to the cookie); a cookie-authenticated unsafe request
    /// must come from the site itself (else `403`); with [`strip_token`](Self::strip_token),
    /// the session cookie is removed before the inner service runs; in optional mode an ended
    /// session is a signed-out visitor (its cookie cleared). `sign_in` must verify through this
    /// layer's cache. Default: none.
    pub fn sign_in(mut self, sign_in: &SignIn) -> Self {
        self.sign_in = Some(sign_in.clone());
        self
    }

    /// Checks the configuration and builds the layer.
    pub fn build(self) -> Result<AmazonAuthLayer, BuildError> {
        let cache = self.cache?;
        if self
            .sign_in
            .as_ref()
            .is_some_and(|sign_in| !sign_in.verifies_through(&cache))
        {
            return Err(BuildError::SignIn("cache"));
        }
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
        if self.retry_after > MAX_RETRY_AFTER {
            return Err(BuildError::TooLarge {
                setting: "retry_after",
                limit: "5 min",
            });
        }
        let settings = Settings {
            realm: self.realm.into_boxed_str(),
            rules: self.rules,
            optional: self.optional,
            strip_token: self.strip_token,
            retry_after: self.retry_after,
            responder: self.responder,
            sign_in: self.sign_in,
        };
        Ok(AmazonAuthLayer::from_shared(Shared { cache, settings }))
    }
}
