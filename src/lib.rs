//! Tower middleware that authenticates HTTP requests carrying **Login with Amazon** access
//! tokens, for axum, hyper or any `tower::Service<http::Request<B>>`.
//!
//! For each request the layer:
//!
//! 1. finds the token in exactly one of `?access_token=`, `Authorization: Bearer` or
//!    `x-amz-access-token`, and refuses junk (`400`) without any network call;
//! 2. asks Amazon's `tokeninfo` **and** `user/profile` endpoints concurrently, and accepts the
//!    token only if its `aud` is one of your client ids (a token issued to another app is
//!    refused: the confused-deputy check);
//! 3. caches the verified identity until the token expires (bounded by `max_ttl`), keyed by a
//!    keyed 128-bit digest of the token, coalescing concurrent first requests into one
//!    verification and remembering rejections briefly;
//! 4. hands the inner service an [`AmazonUser`] request extension, or answers the RFC 6750
//!    error itself (`401`/`400`/`403` with `WWW-Authenticate`, `503` + `Retry-After` when
//!    Amazon cannot answer). It fails closed.
//!
//! # Quick start
//!
//! ```no_run
//! use axum::{routing::get, Extension, Router};
//! use tower_amazon_auth::{AmazonAuthLayer, AmazonUser};
//!
//! async fn me(Extension(user): Extension<AmazonUser>) -> String {
//!     format!("hello {}", user.user_id())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let auth = AmazonAuthLayer::builder()
//!         .client_id("amzn1.application-oa2-client.0123456789abcdef")
//!         .build()?;
//!     let app = Router::new().route("/me", get(me)).layer(auth);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! With the `axum` feature, handlers can take `user: AmazonUser` or `Option<AmazonUser>`
//! directly. With the `mock` feature, [`mock::MockAmazon`] serves Amazon's endpoints on
//! 127.0.0.1 for tests.
//!
//! # Security
//!
//! No token is kept as a cache key, written to a log, shown by `Debug` or put in an error
//! message. Accepted requests reach the inner service with the token removed (see
//! [`AmazonAuthBuilder::strip_token`]).
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "axum")]
mod axum;
mod client;
mod endpoint;
mod error;
mod exchange;
mod identity;
mod layer;
mod memo;
mod resolver;
mod service;
mod stats;
mod token;

#[cfg(feature = "mock")]
pub mod mock;

#[cfg(feature = "axum")]
pub use axum::AmazonUserRejection;
pub use client::{
    AmazonClient, AmazonError, Verified, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRIES,
    MAX_ANSWER_BYTES,
};
pub use endpoint::{Endpoints, Region, UnknownRegion, APPSTORE_BASE_URL};
pub use error::{
    default_response, AuthError, ErrorContext, ErrorResponder, JsonErrors, Malformed, Rejection, Unavailable,
};
pub use exchange::{ClientCredentials, RefreshToken, TokenResponse};
pub use identity::{AmazonUser, Profile, TokenInfo};
pub use layer::{
    AmazonAuthBuilder, AmazonAuthLayer, BuildError, DEFAULT_CAPACITY, DEFAULT_CLOCK_SKEW,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_TTL, DEFAULT_NEGATIVE_TTL, DEFAULT_REALM, DEFAULT_RETRY_AFTER,
};
pub use resolver::Resolver;
pub use service::{AmazonAuth, AuthBody, ResponseFuture};
pub use stats::StatsSnapshot;
pub use token::{
    extract_token, AccessToken, TokenSource, ACCESS_TOKEN_PARAM, ACCESS_TOKEN_PREFIX, AMZ_ACCESS_TOKEN,
    MAX_TOKEN_LEN, REFRESH_TOKEN_PREFIX,
};

/// Entry points for the fuzz targets under `fuzz/`: not part of the API.
#[doc(hidden)]
pub mod __fuzz {
    use crate::identity::{Profile, TokenInfo};

    /// Decodes an answer of the tokeninfo endpoint as production does.
    pub fn decode_tokeninfo(status: u16, body: &[u8]) -> Result<TokenInfo, crate::AmazonError> {
        crate::client::decode_answer("tokeninfo", status, body, None, None)
    }

    /// Decodes an answer of the profile endpoint as production does.
    pub fn decode_profile(status: u16, body: &[u8]) -> Result<Profile, crate::AmazonError> {
        crate::client::decode_answer("profile", status, body, None, None)
    }
}
