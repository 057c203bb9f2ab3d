//! (feature `axum`) axum extractors for [`AmazonUser`]: `user: AmazonUser` on routes that
//! require a signed-in user, `user: Option<AmazonUser>` on routes wrapped by a layer in
//! [`optional`](crate::AmazonAuthBuilder::optional) mode, and their rejection
//! [`AmazonUserRejection`].
//!
//! The extractors only read the [`AmazonUser`] extension that
//! [`AmazonAuthLayer`](crate::AmazonAuthLayer) inserts: no network call, no token. The module is
//! private; the documentation users see lives on [`AmazonUserRejection`] and on the trait impls.

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::identity::AmazonUser;
use crate::service::Anonymous;

/// Why the [`AmazonUser`] axum extractor failed (feature `axum`). Answered as
/// `500 Internal Server Error` with a `text/plain` body that names the misconfiguration.
///
/// With the `axum` feature a handler takes `user: AmazonUser` on routes that require a
/// signed-in user, or `user: Option<AmazonUser>` on routes wrapped by a layer in
/// [`optional`](crate::AmazonAuthBuilder::optional) mode. Authentication itself (401, 400, 403,
/// 503) happens in [`AmazonAuthLayer`](crate::AmazonAuthLayer) before the handler runs; the
/// extractors only read the extension it inserted.
///
/// ```
/// use axum::{routing::get, Router};
/// use tower_amazon_auth::{AmazonAuthLayer, AmazonUser};
///
/// async fn me(user: AmazonUser) -> String {
///     format!("hello {}", user.user_id())
/// }
///
/// async fn home(user: Option<AmazonUser>) -> String {
///     match user {
///         Some(user) => format!("welcome back {}", user.name().unwrap_or("friend")),
///         None => "welcome, stranger".to_owned(),
///     }
/// }
///
/// # fn main() -> Result<(), tower_amazon_auth::BuildError> {
/// let client_id = "amzn1.application-oa2-client.0123456789abcdef";
/// let required = AmazonAuthLayer::new(client_id)?;
/// // The same cache behind both: a token verified on one route is known on the other.
/// let optional = AmazonAuthLayer::builder(required.cache().clone())
///     .optional(true)
///     .build()?;
///
/// let app: Router = Router::new()
///     .route("/me", get(me).layer(required))
///     .route("/", get(home).layer(optional));
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
///
/// # Misconfiguration
///
/// `AmazonUser` on a route that no `AmazonAuthLayer` wraps finds no extension. That is a bug in
/// the server, not in the request, so the extractor answers **500** with a body saying so
/// rather than a 401 that would send clients hunting for a token problem (and logs it at
/// `error` level). `Option<AmazonUser>` cannot tell "no layer" from "no token" and yields
/// `None`.
///
/// In optional mode a request without a token reaches the handler without a user: there
/// `Option<AmazonUser>` yields `None`, and `AmazonUser` answers exactly what the layer answers
/// a request without a token ([`MissingToken`](Self::MissingToken): 401 with its challenge),
/// so one optional layer can serve public and private routes alike.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use tower_amazon_auth::AmazonUserRejection;
///
/// let response = AmazonUserRejection::LayerMissing.into_response();
/// assert_eq!(response.status(), 500);
/// assert_eq!(
///     AmazonUserRejection::LayerMissing.to_string(),
///     "AmazonUser extractor used on a route not wrapped by AmazonAuthLayer",
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AmazonUserRejection {
    /// The request carries no [`AmazonUser`] extension: the route is not wrapped by
    /// [`AmazonAuthLayer`](crate::AmazonAuthLayer). Answered 500.
    #[error("AmazonUser extractor used on a route not wrapped by AmazonAuthLayer")]
    LayerMissing,
    /// A layer in optional mode let a request without a token through to a handler that
    /// requires a user. Answered with the layer's own response to a missing token (401).
    #[error("the request carries no access token")]
    MissingToken(http::Response<http_body_util::Full<bytes::Bytes>>),
}

impl AmazonUserRejection {
    /// The HTTP status of the rejection: `500` when the layer is missing (the server's fault),
    /// the layer's own status (401) for a missing token.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
            Self::MissingToken(response) => response.status(),
        }
    }
}

impl IntoResponse for AmazonUserRejection {
    fn into_response(self) -> Response {
        if let Self::MissingToken(response) = self {
            return response.map(axum_core::body::Body::new);
        }
        let mut response = self.to_string().into_response();
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// `user: AmazonUser` in an axum handler: the user the layer verified, or
/// [`AmazonUserRejection::LayerMissing`] (500) when no layer inserted one.
impl<S> FromRequestParts<S> for AmazonUser
where
    S: Send + Sync,
{
    type Rejection = AmazonUserRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<AmazonUser>() {
            return Ok(user.clone());
        }
        if let Some(anonymous) = parts.extensions.get::<Anonymous>() {
            return Err(AmazonUserRejection::MissingToken(anonymous.refusal()));
        }
        tracing::error!(
            path = parts.uri.path(),
            "AmazonUser extractor used on a route not wrapped by AmazonAuthLayer"
        );
        Err(AmazonUserRejection::LayerMissing)
    }
}

/// `user: Option<AmazonUser>` in an axum handler: `None` when the request carries no verified
/// user (a layer in optional mode let a request without a token through). Never fails.
impl<S> OptionalFromRequestParts<S> for AmazonUser
where
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<AmazonUser>().cloned())
    }
}
