//! Every error type of the crate: why a request was refused ([`AuthError`] and its details
//! [`Malformed`], [`Rejection`], [`Unavailable`]), what went wrong talking to Amazon
//! ([`AmazonError`]), why a configuration was refused ([`BuildError`]) and an unknown region
//! name ([`UnknownRegion`]).
//!
//! [`AuthError`] knows its HTTP status, its RFC 6750 error code, its challenge and a human
//! description; [`response`](crate::response) turns it into a response. No error carries a
//! token or a secret, so their `Display` and `Debug` are safe to log.

use std::fmt::Write as _;
use std::time::Duration;

use std::error::Error;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};

/// Why a request did not get an identity.
///
/// Each variant maps to one row of the crate's error table:
///
/// | variant | status | `WWW-Authenticate` error |
/// | --- | --- | --- |
/// | [`MissingToken`](Self::MissingToken) | 401 | none (bare challenge) |
/// | [`InvalidRequest`](Self::InvalidRequest) | 400 | `invalid_request` |
/// | [`InvalidToken`](Self::InvalidToken) | 401 | `invalid_token` |
/// | [`InsufficientScope`](Self::InsufficientScope) | 403 | `insufficient_scope` |
/// | [`Unavailable`](Self::Unavailable) | 503 + `Retry-After` | none |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carried no access token at all.
    #[error("the request carries no access token")]
    MissingToken,
    /// The request was malformed: see [`Malformed`]. No upstream call was made.
    #[error("malformed request: {0}")]
    InvalidRequest(Malformed),
    /// The token is not (or no longer) valid for this service: see [`Rejection`].
    #[error("invalid access token: {0}")]
    InvalidToken(Rejection),
    /// The token is valid but its scope does not allow reading the user's profile.
    #[error("the token's scope does not allow reading the profile")]
    InsufficientScope,
    /// Amazon could not give a definite answer: see [`Unavailable`]. Never cached.
    #[error("cannot verify the token now: {0}")]
    Unavailable(Unavailable),
    /// (website sign-in) A request authenticated by the session cookie with an unsafe method
    /// (not `GET`, `HEAD` or `OPTIONS`) came from another site: its `Origin` is not the public
    /// origin and `Sec-Fetch-Site` is not `same-origin` (cross-site request forgery). Answered
    /// `403`; nothing changes.
    #[error("a cookie-authenticated request from another site")]
    CrossSite,
}

/// What was wrong with a malformed request (answered `400 invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The token was empty (for example `Authorization: Bearer` with nothing after it).
    #[error("the access token is empty")]
    Empty,
    /// The token holds bytes outside visible ASCII (non-UTF-8 header bytes included), spaces,
    /// quotes or backslashes.
    #[error("the access token contains characters that cannot appear in one")]
    BadCharacters,
    /// The token is longer than Amazon's documented maximum of 2048 bytes.
    #[error("the access token is longer than 2048 bytes")]
    TooLong,
    /// The token does not start with `Atza|` (the check can be switched off).
    #[error("the access token does not start with Atza|")]
    BadPrefix,
    /// The token arrived by more than one method (RFC 6750 §2).
    #[error("the access token was sent by more than one method")]
    MultipleMethods,
    /// The same credential header appeared more than once.
    #[error("a credential header appears more than once")]
    DuplicateHeader,
    /// The `access_token` query parameter appeared more than once.
    #[error("the access_token parameter appears more than once")]
    DuplicateParameter,
    /// The query names the `access_token` parameter inside another parameter (after a `;`, or
    /// `access_token=` in a value): a backend whose parser splits differently could read
    /// another token there than the one authenticated.
    #[error("the query names the access_token parameter ambiguously")]
    AmbiguousQuery,
    /// The token came in the query, which this layer refuses
    /// ([`allow_query_token`](crate::AmazonAuthBuilder::allow_query_token)).
    #[error("access tokens are not accepted in the query here: send an Authorization header")]
    QueryNotAllowed,
    /// The request URI could not be rebuilt without its query token (never seen: the request is
    /// refused rather than forwarded with the token).
    #[error("the request URI cannot be rewritten without its access token")]
    Unstrippable,
}

/// Why a token was refused (answered `401 invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The client sent a refresh token (`Atzr|…`) where an access token belongs.
    #[error("a refresh token is not an access token")]
    RefreshToken,
    /// Amazon says the token is invalid, expired or revoked.
    #[error("Amazon reports the token invalid, expired or revoked")]
    Invalid,
    /// The token has no more time left than the cache's clock skew (Amazon's `exp`, in
    /// seconds remaining, at most `clock_skew`): too close to its expiry to be believed.
    #[error("the token has expired")]
    Expired,
    /// The token was issued to another application (`aud` is not one of our client ids).
    #[error("the token was issued to another application")]
    WrongAudience,
    /// The token was revoked on this service (a logout): see
    /// [`IdentityCache::revoke`](crate::IdentityCache::revoke).
    #[error("the token was revoked")]
    Revoked,
    /// Amazon's `tokeninfo` and `profile` named different users for the token.
    #[error("Amazon's answers about the token disagree")]
    Inconsistent,
    /// (website sign-in) The session cookie names no live session: unknown, tampered with,
    /// signed out, idle or too old, or its refresh token was refused. The cookie is cleared.
    #[error("the session has ended")]
    SessionEnded,
}

/// Why Amazon could not give a definite answer (answered `503` with `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// No answer within the configured deadline.
    #[error("Amazon did not answer in time")]
    Timeout,
    /// The connection to Amazon failed or broke.
    #[error("could not reach Amazon")]
    Connect,
    /// Amazon answered with an HTTP status that carries no verdict (5xx, 429, …).
    #[error("Amazon answered HTTP {status}")]
    Status {
        /// The HTTP status Amazon answered.
        status: u16,
        /// Amazon's `Retry-After`, in seconds, when it sent one.
        retry_after: Option<u64>,
    },
    /// Amazon's answer could not be read: not JSON, the wrong shape, or too large.
    #[error("Amazon's answer could not be read")]
    Unreadable,
    /// Too many distinct tokens are being verified at once (the in-flight limit).
    #[error("too many verifications in flight")]
    Overloaded,
    /// Amazon asked us to back off (a `429`, or a run of failures): no new verification is
    /// started for `retry_after` seconds more.
    #[error("backing off from Amazon")]
    BackingOff {
        /// Seconds until Amazon is asked again.
        retry_after: u64,
    },
    /// (website sign-in) Amazon refused this site's client credentials while refreshing a
    /// session (`invalid_client`, `unauthorized_client`: a wrong secret deployed). Logged as an
    /// error; the sessions are kept.
    #[error("Amazon refused the site's client credentials")]
    ClientRejected,
    /// (website sign-in with a shared session store) The store could not be reached where it
    /// was needed: a session this instance does not hold, or a refresh (which must be one for
    /// the whole fleet). Sessions this instance holds keep being served.
    #[error("the session store could not be reached")]
    SessionStore,
}

/// The most seconds ever sent in `Retry-After`, and the longest back-off from Amazon honoured,
/// whatever Amazon (or a proxy in front of it) asks.
pub(crate) const MAX_RETRY_AFTER_SECS: u64 = 300;

impl AuthError {
    /// The HTTP status this error is answered with.
    ///
    /// ```
    /// use tower_amazon_auth::{AuthError, Rejection};
    /// assert_eq!(AuthError::InvalidToken(Rejection::WrongAudience).status(), 401);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope | Self::CrossSite => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 §3.1 error code, where one applies.
    ///
    /// `None` for a request without credentials (RFC 6750 §3.1 forbids the code there) and for
    /// an unavailable upstream, which is no authentication error at all.
    pub fn rfc6750_code(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken | Self::Unavailable(_) | Self::CrossSite => None,
            Self::InvalidRequest(_) => Some("invalid_request"),
            Self::InvalidToken(_) => Some("invalid_token"),
            Self::InsufficientScope => Some("insufficient_scope"),
        }
    }

    /// The `error` field of the JSON body (Amazon's own error shape).
    pub fn body_code(&self) -> &'static str {
        match self {
            Self::MissingToken => "unauthorized",
            Self::Unavailable(_) => "temporarily_unavailable",
            Self::CrossSite => "forbidden",
            _ => self.rfc6750_code().unwrap_or("unauthorized"),
        }
    }

    /// The `WWW-Authenticate` challenge for this error in `realm`, or `None` for a 503.
    ///
    /// ```
    /// use tower_amazon_auth::AuthError;
    /// let challenge = AuthError::MissingToken.challenge("api").unwrap();
    /// assert_eq!(challenge, r#"Bearer realm="api""#);
    /// ```
    pub fn challenge(&self, realm: &str) -> Option<HeaderValue> {
        if matches!(self, Self::Unavailable(_)) {
            return None;
        }
        // Sized for the longest challenge (147 bytes besides the realm): written without growing.
        let mut value = String::with_capacity(realm.len() + 160);
        let _ = write!(value, "Bearer realm=\"{realm}\"");
        if let Some(code) = self.rfc6750_code() {
            // Descriptions are fixed ASCII text of ours without quotes: safe in a quoted-string.
            let _ = write!(value, ", error=\"{code}\", error_description=\"{self}\"");
        }
        // From the `String` itself: validated, not copied.
        HeaderValue::try_from(value).ok()
    }

    /// Seconds the client should wait before retrying, for a 503: `default` (at least 1 s), or
    /// Amazon's own hint when longer, never more than 300 s; while backing off, what remains of
    /// the back-off.
    pub(crate) fn retry_after(&self, default: Duration) -> Option<u64> {
        let floor = default.as_secs().clamp(1, MAX_RETRY_AFTER_SECS);
        let hint = match self {
            // Exactly what remains of the back-off: the breaker lets a request through then.
            Self::Unavailable(Unavailable::BackingOff { retry_after }) => {
                return Some((*retry_after).clamp(1, MAX_RETRY_AFTER_SECS));
            }
            Self::Unavailable(Unavailable::Status {
                retry_after: Some(secs),
                ..
            }) => *secs,
            Self::Unavailable(_) => 0,
            _ => return None,
        };
        Some(hint.clamp(floor, MAX_RETRY_AFTER_SECS))
    }

    /// Whether this is a definite verdict on the token (cached briefly) rather than a failure
    /// to get one (never cached).
    pub fn is_definite(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }
}

/// What went wrong talking to Amazon. Never holds a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmazonError {
    /// Amazon says the token is invalid, expired or revoked (`invalid_token`, or
    /// `invalid_request` about the token).
    #[error("Amazon rejected the token (request id {request_id:?})")]
    InvalidToken {
        /// Amazon's `x-amzn-RequestId`, for support.
        request_id: Option<String>,
    },
    /// The profile endpoint says the token's scope is insufficient.
    #[error("the token's scope is insufficient (request id {request_id:?})")]
    InsufficientScope {
        /// Amazon's `x-amzn-RequestId`, for support.
        request_id: Option<String>,
    },
    /// An OAuth error from the token endpoint (`invalid_grant`, `invalid_client`, …).
    #[error("Amazon refused the grant: {code} (HTTP {status}, request id {request_id:?})")]
    OAuth {
        /// Amazon's `error` code.
        code: String,
        /// The HTTP status.
        status: u16,
        /// Amazon's `x-amzn-RequestId`, for support.
        request_id: Option<String>,
    },
    /// An HTTP status without a verdict on the token (5xx, 429, an unexpected 4xx).
    #[error("Amazon answered HTTP {status} (request id {request_id:?})")]
    Status {
        /// The HTTP status.
        status: u16,
        /// Amazon's `Retry-After` in seconds, when sent.
        retry_after: Option<u64>,
        /// Amazon's `x-amzn-RequestId`, for support.
        request_id: Option<String>,
    },
    /// No answer in time.
    #[error("Amazon did not answer in time")]
    Timeout,
    /// The connection failed or broke before a whole answer arrived.
    #[error("the connection to Amazon failed")]
    Connect,
    /// The answer was not the JSON expected, or longer than [`MAX_ANSWER_BYTES`](crate::client::MAX_ANSWER_BYTES).
    #[error("Amazon's answer could not be read (request id {request_id:?})")]
    Unreadable {
        /// Amazon's `x-amzn-RequestId`, for support.
        request_id: Option<String>,
    },
    /// This client has no `tokeninfo` endpoint (the Appstore API).
    #[error("this endpoint family offers no tokeninfo")]
    NoTokenInfo,
}

impl AmazonError {
    /// Whether the error is a definite verdict on the token rather than a failure to get one.
    pub fn is_definite(&self) -> bool {
        matches!(self, Self::InvalidToken { .. } | Self::InsufficientScope { .. })
    }

    /// Whether asking again may help: a broken connection or a 5xx. Never a verdict, never a
    /// 429 (asking again sooner is what Amazon asked us not to do).
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, Self::Connect) || matches!(self, Self::Status { status, .. } if *status >= 500)
    }
}

/// Why [`IdentityCacheBuilder::build`](crate::IdentityCacheBuilder::build),
/// [`AmazonAuthBuilder::build`](crate::AmazonAuthBuilder::build) (or an
/// [`AmazonClient`](crate::client::AmazonClient) or [`Endpoints`](crate::endpoint::Endpoints) constructor) refused a configuration.
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
    /// An `http://` endpoint on a host other than loopback, without
    /// [`Endpoints::allow_cleartext`](crate::endpoint::Endpoints::allow_cleartext): tokens and secrets
    /// would cross the network in clear.
    #[error("{0:?} is plain http to another host; use https, or Endpoints::allow_cleartext() for a trusted network")]
    CleartextBaseUrl(String),
    /// The realm holds characters that cannot appear in a quoted-string.
    #[error("the realm must be printable ASCII without quotes or backslashes")]
    InvalidRealm,
    /// A setting that must be positive was zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A setting was above its documented limit (each setter says its own).
    #[error("{setting} must be at most {limit}")]
    TooLarge {
        /// The setter.
        setting: &'static str,
        /// Its limit, as the setter documents it.
        limit: &'static str,
    },
    /// `clock_skew` was not below `max_ttl`: no identity could ever be cached.
    #[error("clock_skew must be below max_ttl")]
    ClockSkewNotBelowMaxTtl,
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
    /// A [website sign-in](crate::sign_in) setting is missing or invalid: `client_secret`,
    /// `public_origin` (an `https` origin, or `http` on loopback, with no path), `client_id`
    /// (required when the cache accepts several), `scopes`, `path` (absolute, distinct),
    /// `sessions` (a zero limit), `authorize_url`; or `cache`: a layer was given a sign-in
    /// that verifies through another cache.
    #[error("website sign-in: {0} is missing or invalid")]
    SignIn(&'static str),
    /// The [second level](crate::second_level) refused its settings, or could not start here
    /// (for Redis: a short secret, an invalid URL, a build outside a Tokio runtime, …). Its
    /// own error is inside: [`SecondLevelError::downcast_ref`].
    #[error("second cache level: {0}")]
    SecondLevel(SecondLevelError),
}

/// The text named no [`Region`](crate::endpoint::Region).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown region: expected na, eu or fe")]
pub struct UnknownRegion;

/// Why a cache operation ([`IdentityCache::invalidate`](crate::IdentityCache::invalidate),
/// [`IdentityCache::revoke`](crate::IdentityCache::revoke),
/// [`AmazonUser::revoke`](crate::AmazonUser::revoke)) did not take effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The user was not verified by a layer (it was made in a test), or the layer and its
    /// cache no longer exist.
    #[error("this user did not come from a live identity cache")]
    NoCache,
    /// [`max_revocations`](crate::IdentityCacheBuilder::max_revocations) revocations are in force
    /// (each until its token expires): this one was not recorded, so the logout did not happen.
    #[error("too many revocations in force: this one was not recorded")]
    TooManyRevocations,
    /// The [second level](crate::second_level) could not be reached (for Redis: down, slow,
    /// refusing, or left alone by the breaker after repeated failures): the revocation or
    /// invalidation was applied on this instance only. For a logout, answer 503 and let the
    /// client try again.
    #[error("the second cache level is unavailable: applied on this instance only")]
    SecondLevel,
}

/// An error of a second level: its settings refused at `build()` (in
/// [`BuildError::SecondLevel`](crate::BuildError::SecondLevel)), or its store unreachable. It
/// carries the level's own error type: reach it with [`downcast_ref`](Self::downcast_ref).
///
/// Its message is the level's; a level must keep secrets and tokens out of it.
///
/// ```
/// use tower_amazon_auth::second_level::SecondLevelError;
///
/// #[derive(Debug, thiserror::Error, PartialEq)]
/// #[error("the secret is too short")]
/// struct ShortSecret;
///
/// let error = SecondLevelError::new(ShortSecret);
/// assert_eq!(error.downcast_ref::<ShortSecret>(), Some(&ShortSecret));
/// assert_eq!(error.to_string(), "the secret is too short");
/// ```
#[derive(Clone)]
pub struct SecondLevelError(Arc<dyn Error + Send + Sync>);

impl SecondLevelError {
    /// Wraps a level's own error.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// The level's own error, if it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Debug for SecondLevelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for SecondLevelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl Error for SecondLevelError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

/// Two errors are equal when they say the same (the level's error types need not be
/// comparable), so [`BuildError`](crate::BuildError) stays comparable in tests.
impl PartialEq for SecondLevelError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for SecondLevelError {}
