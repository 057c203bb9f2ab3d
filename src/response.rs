//! The one place an error response is written: [`ErrorResponder`], its [`ErrorContext`], the
//! default [`JsonErrors`] and [`default_response`] (RFC 6750 §3 challenge, `Retry-After`, and
//! a JSON body in Amazon's own error shape).

use std::fmt;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response};
use http_body_util::Full;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::error::AuthError;

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
    /// use tower_amazon_auth::AuthError;
    /// use tower_amazon_auth::response::{default_response, ErrorContext};
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
/// use tower_amazon_auth::AuthError;
/// use tower_amazon_auth::response::{default_response, ErrorContext};
///
/// // A closure is an ErrorResponder: plain text bodies, standard status and headers.
/// let responder = |error: &AuthError, cx: ErrorContext<'_>| -> Response<Full<Bytes>> {
///     let mut response = default_response(error, cx);
///     *response.body_mut() = Full::new(Bytes::from(format!("denied: {error}")));
///     response.headers_mut().insert("content-type", "text/plain".parse().unwrap());
///     response
/// };
/// # let cache = tower_amazon_auth::IdentityCache::new("amzn1.application-oa2-client.x").unwrap();
/// # let _ = tower_amazon_auth::AmazonAuthLayer::builder(cache).error_responder(responder);
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
