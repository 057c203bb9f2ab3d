//! Why a request was refused, and the one place that writes an error response (RFC 6750 §3).
//!
//! [`AuthError`] knows its HTTP status, its RFC 6750 error code and a human description. None
//! of its variants carries the token, so its `Display` and `Debug` are safe to log.

use std::fmt::{self, Write as _};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

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
    /// The token has no time left (`exp` ≤ 0).
    #[error("the token has expired")]
    Expired,
    /// The token was issued to another application (`aud` is not one of our client ids).
    #[error("the token was issued to another application")]
    WrongAudience,
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
}

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
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 §3.1 error code, where one applies.
    ///
    /// `None` for a request without credentials (RFC 6750 §3.1 forbids the code there) and for
    /// an unavailable upstream, which is no authentication error at all.
    pub fn rfc6750_code(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken | Self::Unavailable(_) => None,
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

    /// Seconds the client should wait before retrying, for a 503.
    pub(crate) fn retry_after(&self, default: Duration) -> Option<u64> {
        let floor = default.as_secs().max(1);
        match self {
            Self::Unavailable(Unavailable::Status {
                retry_after: Some(secs),
                ..
            }) => Some((*secs).max(floor)),
            Self::Unavailable(_) => Some(floor),
            _ => None,
        }
    }

    /// Whether this is a definite verdict on the token (cached briefly) rather than a failure
    /// to get one (never cached).
    pub fn is_definite(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }
}

/// What an [`ErrorResponder`] needs besides the error to answer a request.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ErrorContext<'a> {
    /// The realm of the `WWW-Authenticate` challenge.
    pub realm: &'a str,
    /// Seconds to put in `Retry-After` on a 503 (Amazon's own hint when it gave a longer one).
    pub retry_after: Option<u64>,
}

impl<'a> ErrorContext<'a> {
    /// A context for calling an [`ErrorResponder`] or [`default_response`] yourself, in a test
    /// of your own responder, say.
    ///
    /// ```
    /// use tower_amazon_auth::{default_response, AuthError, ErrorContext};
    /// let response = default_response(&AuthError::MissingToken, ErrorContext::new("api", None));
    /// assert_eq!(response.status(), 401);
    /// ```
    pub fn new(realm: &'a str, retry_after: Option<u64>) -> Self {
        Self { realm, retry_after }
    }
}

/// Shapes the response for a refused request.
///
/// The default, [`JsonErrors`], answers a small JSON body in Amazon's shape
/// `{"error","error_description"}` with the RFC 6750 `WWW-Authenticate` challenge. Implement
/// this trait (or pass a closure) to answer HTML or `application/problem+json` instead; start
/// from [`default_response`] to keep the status and headers right.
///
/// ```
/// use bytes::Bytes;
/// use http::Response;
/// use http_body_util::Full;
/// use tower_amazon_auth::{default_response, AuthError, ErrorContext};
///
/// // A closure is an ErrorResponder: plain text bodies, standard status and headers.
/// let responder = |error: &AuthError, cx: ErrorContext<'_>| -> Response<Full<Bytes>> {
///     let mut response = default_response(error, cx);
///     *response.body_mut() = Full::new(Bytes::from(format!("denied: {error}")));
///     response.headers_mut().insert("content-type", "text/plain".parse().unwrap());
///     response
/// };
/// # let _ = tower_amazon_auth::AmazonAuthLayer::builder().error_responder(responder);
/// ```
pub trait ErrorResponder: Send + Sync + 'static {
    /// Builds the response for `error`.
    fn respond(&self, error: &AuthError, cx: ErrorContext<'_>) -> Response<Full<Bytes>>;
}

impl<F> ErrorResponder for F
where
    F: Fn(&AuthError, ErrorContext<'_>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    fn respond(&self, error: &AuthError, cx: ErrorContext<'_>) -> Response<Full<Bytes>> {
        self(error, cx)
    }
}

/// The default [`ErrorResponder`]: JSON in Amazon's error shape (see [`default_response`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonErrors;

impl ErrorResponder for JsonErrors {
    fn respond(&self, error: &AuthError, cx: ErrorContext<'_>) -> Response<Full<Bytes>> {
        default_response(error, cx)
    }
}

/// The crate's standard error response: status, `WWW-Authenticate` (401/403/400),
/// `Retry-After` (503) and the JSON body `{"error":"…","error_description":"…"}`.
pub fn default_response(error: &AuthError, cx: ErrorContext<'_>) -> Response<Full<Bytes>> {
    // Serializing two strings cannot fail; an empty body would be the only (unreachable) outcome.
    let body = serde_json::to_vec(&ErrorBody(error)).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(challenge) = error.challenge(cx.realm) {
        headers.insert(WWW_AUTHENTICATE, challenge);
    }
    if let Some(secs) = cx.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The JSON body `{"error","error_description"}`, written straight from the error (no
/// intermediate `serde_json::Value` or description `String`).
struct ErrorBody<'a>(&'a AuthError);

impl Serialize for ErrorBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The error's `Display` text as a JSON string.
        struct Description<'a>(&'a AuthError);
        impl Serialize for Description<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self.0)
            }
        }
        let mut body = serializer.serialize_struct("ErrorBody", 2)?;
        body.serialize_field("error", self.0.body_code())?;
        body.serialize_field("error_description", &Description(self.0))?;
        body.end()
    }
}

/// A boxed responder, as the layer stores it.
#[derive(Clone)]
pub(crate) struct Responder(pub(crate) std::sync::Arc<dyn ErrorResponder>);

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErrorResponder")
    }
}
