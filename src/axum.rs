//! (feature `axum`) axum extractors: a handler takes `user: AmazonUser` on routes that require a
//! signed-in user, or `user: Option<AmazonUser>` on routes wrapped by a layer in
//! [`optional`](crate::AmazonAuthBuilder::optional) mode.
//!
//! The extractors only read the [`AmazonUser`] extension that [`AmazonAuthLayer`] inserts: they
//! make no network call and never see the token. Authentication itself (401, 400, 403, 503)
//! happens in the layer, before the handler runs.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_amazon_auth::{AmazonAuthLayer, AmazonUser};
//!
//! async fn me(user: AmazonUser) -> String {
//!     format!("hello {}", user.user_id())
//! }
//!
//! async fn home(user: Option<AmazonUser>) -> String {
//!     match user {
//!         Some(user) => format!("welcome back {}", user.name().unwrap_or("friend")),
//!         None => "welcome, stranger".to_owned(),
//!     }
//! }
//!
//! # fn main() -> Result<(), tower_amazon_auth::BuildError> {
//! let client_id = "amzn1.application-oa2-client.0123456789abcdef";
//! let required = AmazonAuthLayer::new(client_id)?;
//! let optional = AmazonAuthLayer::builder().client_id(client_id).optional(true).build()?;
//!
//! let app: Router = Router::new()
//!     .route("/me", get(me).layer(required))
//!     .route("/", get(home).layer(optional));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! # Misconfiguration
//!
//! `AmazonUser` on a route that no `AmazonAuthLayer` wraps finds no extension. That is a bug in
//! the server, not in the request, so the extractor answers **500** with a body saying so
//! ([`AmazonUserRejection`]) rather than a 401 that would send clients hunting for a token
//! problem. `Option<AmazonUser>` cannot tell "no layer" from "no token" and yields `None`.
//!
//! In [`optional`](crate::AmazonAuthBuilder::optional) mode a request without a token reaches
//! the handler without an extension: take `Option<AmazonUser>` there, as `AmazonUser` would
//! answer that 500 too.

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::identity::AmazonUser;

/// Why the [`AmazonUser`] extractor failed. Answered as `500 Internal Server Error` with a
/// `text/plain` body that names the misconfiguration.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmazonUserRejection {
    /// The request carries no [`AmazonUser`] extension: the route is not wrapped by
    /// [`AmazonAuthLayer`](crate::AmazonAuthLayer) (or the layer runs in optional mode and the
    /// request had no token; use `Option<AmazonUser>` there).
    #[error("AmazonUser extractor used on a route not wrapped by AmazonAuthLayer")]
    LayerMissing,
}

impl AmazonUserRejection {
    /// The HTTP status of the rejection: `500`, as it is the server's fault.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AmazonUserRejection {
    fn into_response(self) -> Response {
        let mut response = self.to_string().into_response();
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

impl<S> FromRequestParts<S> for AmazonUser
where
    S: Send + Sync,
{
    type Rejection = AmazonUserRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AmazonUser>() {
            Some(user) => Ok(user.clone()),
            None => {
                tracing::error!(
                    path = parts.uri.path(),
                    "AmazonUser extractor used on a route not wrapped by AmazonAuthLayer"
                );
                Err(AmazonUserRejection::LayerMissing)
            }
        }
    }
}

impl<S> OptionalFromRequestParts<S> for AmazonUser
where
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<AmazonUser>().cloned())
    }
}
