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
//! For services behind nginx, Caddy, Traefik or Envoy that are not written in Rust,
//! [`ForwardAuth`] answers the proxy's authorization subrequest with the same verification
//! (see [`forward_auth`]).
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
//!
//! # Configuration
//!
//! Every setting is a method of [`AmazonAuthBuilder`], documented with its default (all
//! defaults are in [`defaults`]); [`AmazonAuthBuilder::build`] checks the whole configuration
//! once and returns a typed [`BuildError`].
//!
//! # Where things live
//!
//! Each file owns one concept, and a file only imports files below it in this list:
//!
//! | module | owns |
//! | --- | --- |
//! | `defaults` | every default |
//! | `error` | every error type: [`AuthError`], [`AmazonError`], [`BuildError`], … |
//! | `token` | [`AccessToken`], [`TokenSource`], extraction and stripping |
//! | `endpoint` | [`Region`], [`Endpoints`] |
//! | `identity` | [`TokenInfo`], [`Profile`], [`AmazonUser`] |
//! | `response` | [`ErrorResponder`], [`default_response`]: the one place an error response is written |
//! | `stats` | the counters, [`StatsSnapshot`] |
//! | `log_limit` | rate-limited warnings |
//! | `metrics` | (feature `metrics`) the figures through the `metrics` facade |
//! | `client/` | [`AmazonClient`]: the only code that speaks HTTP to Amazon; pure answer decoding; the grants |
//! | `breaker` | honouring Amazon's back-off: no verification while it asked us to wait |
//! | `verify` | the verification policy: tokeninfo ∥ profile, `aud`, how the two answers combine |
//! | `fleet/` | (feature `redis`) `Fleet`: the second cache level in Redis, fleet-wide logout |
//! | `cache/` | [`IdentityCache`]: the levels (per-thread memo, `moka` store, the fleet level), coalescing, expiry |
//! | `future` | [`ResponseFuture`], [`AuthBody`] |
//! | `service` | [`AmazonAuth`]: decide, admit, refuse |
//! | `layer` | [`AmazonAuthLayer`] |
//! | `builder` | [`AmazonAuthBuilder`]: the only place configuration is read |
//! | [`forward_auth`] | [`ForwardAuth`]: the verification answered to a proxy's subrequest (nginx, Caddy, Traefik, Envoy) |
//! | `axum` | (feature `axum`) the extractors |
//! | [`mock`] | (feature `mock`) `MockAmazon`, a Login with Amazon server on 127.0.0.1 |
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "axum")]
mod axum;
mod breaker;
mod builder;
mod cache;
mod client;
pub mod defaults;
mod endpoint;
mod error;
#[cfg(feature = "redis")]
mod fleet;
pub mod forward_auth;
mod future;
mod identity;
mod layer;
mod log_limit;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "mock")]
pub mod mock;
mod response;
mod service;
mod stats;
mod token;
mod verify;

#[cfg(feature = "axum")]
pub use axum::AmazonUserRejection;
pub use builder::AmazonAuthBuilder;
pub use cache::IdentityCache;
pub use client::exchange::{ClientCredentials, RefreshToken, TokenResponse};
pub use client::{AmazonClient, MAX_ANSWER_BYTES};
pub use endpoint::{Endpoints, Region, APPSTORE_BASE_URL};
pub use error::{
    AmazonError, AuthError, BuildError, CacheError, Malformed, Rejection, Unavailable, UnknownRegion,
};
#[cfg(feature = "redis")]
pub use fleet::{Fleet, FLEET_MIN_SECRET_LEN};
pub use forward_auth::ForwardAuth;
pub use future::{AuthBody, ResponseFuture};
pub use identity::{AmazonUser, Profile, TokenInfo};
pub use layer::AmazonAuthLayer;
pub use response::{default_response, ErrorContext, ErrorResponder, JsonErrors};
pub use service::AmazonAuth;
pub use stats::StatsSnapshot;
pub use token::{
    extract_token, AccessToken, TokenRules, TokenSource, ACCESS_TOKEN_PARAM, ACCESS_TOKEN_PREFIX,
    AMZ_ACCESS_TOKEN, MAX_TOKEN_LEN, REFRESH_TOKEN_PREFIX,
};

/// (feature `fuzz`) Entry points for the fuzz targets under `fuzz/`: not part of the API.
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub use client::decode::fuzz;
