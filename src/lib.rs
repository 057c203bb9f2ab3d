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
//! For websites, [`sign_in`] adds "Login with Amazon": the authorize request with PKCE, the
//! callback, server-side sessions the same layer accepts by cookie, refresh, logout and CSRF.
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
//!     let auth = AmazonAuthLayer::new("amzn1.application-oa2-client.0123456789abcdef")?;
//!     let app = Router::new().route("/me", get(me)).layer(auth);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! For services behind nginx, Caddy, Traefik or Envoy that are not written in Rust,
//! [`ForwardAuth`](forward_auth::ForwardAuth) answers the proxy's authorization subrequest
//! with the same verification (see [`forward_auth`]).
//!
//! With the `axum` feature, handlers can take `user: AmazonUser` or `Option<AmazonUser>`
//! directly. For tests, the `tower-amazon-auth-mock` crate serves Amazon's endpoints on
//! 127.0.0.1 (a dev-dependency, as `wiremock` is).
//!
//! # Security
//!
//! No token is kept as a cache key, written to a log, shown by `Debug` or put in an error
//! message. Accepted requests reach the inner service with the token removed (see
//! [`AmazonAuthBuilder::strip_token`]).
//!
//! # Configuration
//!
//! Settings are split by what they configure, so none can be given twice:
//!
//! - [`IdentityCacheBuilder`] (from [`IdentityCache::builder`]) holds every verification, cache
//!   and back-off setting: client ids, region, TTLs, capacities, timeouts, retries, a second
//!   level. Several layers given clones of one cache share it.
//! - [`AmazonAuthBuilder`] (from [`AmazonAuthLayer::builder`], which takes the cache) holds
//!   what is one layer's own: realm, optional mode, token sources and prefix rule, stripping,
//!   the 503's `Retry-After`, the error responses.
//!
//! ```
//! use std::time::Duration;
//! use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
//!
//! # fn main() -> Result<(), tower_amazon_auth::BuildError> {
//! let cache = IdentityCache::builder()
//!     .client_id("amzn1.application-oa2-client.0123456789abcdef")
//!     .max_ttl(Duration::from_secs(60))
//!     .build()?;
//! let layer = AmazonAuthLayer::builder(cache).allow_query_token(false).build()?;
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! Every setter documents its default (all defaults are in [`defaults`]); each `build()`
//! checks its configuration once and returns a typed [`BuildError`].
//!
//! # Where things live
//!
//! Each file owns one concept, and a file only imports files above it in this list:
//!
//! | module | owns |
//! | --- | --- |
//! | `defaults` | every default |
//! | `error` | every error type: [`AuthError`], [`AmazonError`], [`BuildError`], [`SecondLevelError`](second_level::SecondLevelError), … |
//! | `token_key` | the keyed digest every cache level knows a token by |
//! | `access_token` | [`AccessToken`], [`TokenRules`](token::TokenRules): what a token must be |
//! | [`token`] | where a token is in a request: extraction and stripping |
//! | [`endpoint`] | [`Region`](endpoint::Region), [`Endpoints`](endpoint::Endpoints) |
//! | `identity` | [`AmazonUser`], and the identity the cache keeps |
//! | [`response`] | [`ErrorResponder`](response::ErrorResponder): the one place an error response is written |
//! | `stats` | the counters, [`StatsSnapshot`] |
//! | `log_limit` | rate-limited warnings |
//! | `metrics` | (feature `metrics`) the figures through the `metrics` facade |
//! | [`client`] | [`AmazonClient`](client::AmazonClient): the only code that speaks HTTP to Amazon; answer decoding; the grants |
//! | `breaker` | honouring Amazon's back-off: no verification while it asked us to wait (a second level's store gets one too) |
//! | `verify` | the verification policy: tokeninfo ∥ profile, `aud`, how the two answers combine |
//! | [`second_level`] | [`SecondLevel`](second_level::SecondLevel): the one boundary where the cache meets a store shared by the fleet (Redis: the `tower-amazon-auth-redis` crate), and the coherence rule it keeps |
//! | `cache/` | [`IdentityCache`], [`IdentityCacheBuilder`]: the levels (per-thread memo, `moka` store, a second level), coalescing, expiry |
//! | [`sign_in`] | [`SignIn`](sign_in::SignIn): website sign-in (login, callback, logout routes, server-side sessions, refresh, CSRF) |
//! | [`future`] | [`ResponseFuture`](future::ResponseFuture), [`AuthBody`](future::AuthBody) |
//! | `service` | [`AmazonAuth`]: decide, admit, refuse |
//! | `layer` | [`AmazonAuthLayer`] |
//! | `builder` | [`AmazonAuthBuilder`]: the layer's own settings |
//! | [`forward_auth`] | [`ForwardAuth`](forward_auth::ForwardAuth): the verification answered to a proxy's subrequest (nginx, Caddy, Traefik, Envoy) |
//! | `axum` | (feature `axum`) the extractors |
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod access_token;
#[cfg(feature = "axum")]
mod axum;
mod breaker;
mod builder;
mod cache;
pub mod client;
pub mod defaults;
pub mod endpoint;
mod error;
pub mod forward_auth;
pub mod future;
mod identity;
mod layer;
mod log_limit;
#[cfg(feature = "metrics")]
mod metrics;
pub mod response;
pub mod second_level;
mod service;
pub mod sign_in;
mod stats;
pub mod token;
mod token_key;
mod verify;

pub use access_token::AccessToken;
#[cfg(feature = "axum")]
pub use axum::AmazonUserRejection;
pub use builder::AmazonAuthBuilder;
pub use cache::{IdentityCache, IdentityCacheBuilder};
pub use error::{
    AmazonError, AuthError, BuildError, CacheError, Malformed, Rejection, Unavailable, UnknownRegion,
};
pub use identity::AmazonUser;
pub use layer::AmazonAuthLayer;
pub use service::AmazonAuth;
pub use stats::StatsSnapshot;

/// The guides under `docs/`, whose `rust` blocks `cargo test` compiles and runs: a guide cannot
/// drift from the code it shows. Only doctests see it.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../docs/testing.md")]
pub struct TestingGuide;

/// The website sign-in guide, `docs/sign-in.md`, compiled like the testing guide.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../docs/sign-in.md")]
pub struct SignInGuide;

/// (feature `fuzz`) Entry points for the fuzz targets under `fuzz/`: not part of the API.
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub use client::decode::fuzz;
