//! (forward-auth) [`ForwardAuth`]: the crate's verification as a service that answers a reverse
//! proxy's authorization subrequest (nginx `auth_request`, Caddy `forward_auth`, Traefik
//! `ForwardAuth`, Envoy `ext_authz`), for upstreams that are not written in Rust.
//!
//! Build it from an [`AmazonAuthLayer`](crate::AmazonAuthLayer) with
//! [`AmazonAuthLayer::forward_auth`](crate::AmazonAuthLayer::forward_auth) (or
//! [`ForwardAuth::new`]): it shares the layer's cache, coalescing, extraction rules, realm,
//! error responder and counters, so a token verified here is a cache hit for the layer and the
//! other way round.
//!
//! # The contract
//!
//! **Requests.** Any method, on [`VERIFY_PATH`] (`/verify`) and any path under it (Envoy appends
//! the original path to its path prefix); every other path answers `404`. The body is ignored
//! and never read, whatever the request announces, so a proxy that forwards a body (or a
//! `Content-Length` without one) is answered at once.
//!
//! **Token.** Exactly one of `Authorization: Bearer`, `x-amz-access-token`, or the
//! `access_token` parameter in the query of the *original* request's URI, with the layer's own
//! rules (prefix check, junk refusal, one method only,
//! [`allow_query_token`](crate::AmazonAuthBuilder::allow_query_token)). The original URI is the
//! [`X_ORIGINAL_URI`] header (nginx: `proxy_set_header X-Original-URI $request_uri`), else
//! [`X_FORWARDED_URI`] (Caddy and Traefik send it), else the subrequest's own URI (Envoy). Both
//! headers present with different values, or one repeated, is refused as ambiguous.
//!
//! **Allow.** `200` with [`X_AUTH_REQUEST_USER`] (the Amazon `user_id`), [`X_AUTH_REQUEST_EMAIL`]
//! and [`X_AUTH_REQUEST_NAME`] (the names oauth2-proxy uses). Each is always present, empty when
//! the user's scope did not grant it, so a proxy that copies them overwrites whatever a client
//! sent under those names.
//!
//! **Deny.** Every refusal is `401` with the layer's RFC 6750 `WWW-Authenticate` challenge: no
//! token (bare challenge), an invalid, expired, revoked or foreign-`aud` token
//! (`error="invalid_token"`), and a malformed request too, which the layer itself answers
//! `400`: here it is `401` with `error="invalid_request"`, because nginx turns any status other
//! than 2xx, 401 and 403 into a 500. A token without the profile scope is `403`
//! (`error="insufficient_scope"`). The body is the layer's error body (its
//! [`ErrorResponder`](crate::response::ErrorResponder)).
//!
//! **Amazon unavailable.** `503` with `Retry-After`, as the layer answers it (never cached).
//!
//! **Hygiene.** Every answer (allow, deny, `404`) carries `Cache-Control: no-store`. Profile values are encoded so
//! that header values stay valid and unambiguous: every byte of the UTF-8 value outside
//! printable ASCII (`0x20`–`0x7E`), every `%` and `,` (a backend may split a header on
//! commas), and a space at the start or the end, is written `%XX` (uppercase hex); every other
//! byte is itself. Plain percent-decoding (as UTF-8) gives the value back: `Zoë 100%` is sent
//! as `Zo%C3%AB 100%25`, `Doe, Jane` as `Doe%2C Jane`, `Demo User` as itself.
//!
//! **Access token, on request only.** A service built with
//! [`pass_access_token(true)`](ForwardAuth::pass_access_token) sets the token to [`X_AUTH_REQUEST_ACCESS_TOKEN`] on an allow: the request's own token, or for a
//! session the session's current one (which the browser never holds), for an upstream that
//! calls Amazon itself (oauth2-proxy's `--pass-access-token`). Off by default, the header is
//! then empty (always present, like the others, so a proxy that copies it overwrites a
//! client's own), and the upstream never sees a session's token.
//!
//! A layer built with [`optional(true)`](crate::AmazonAuthBuilder::optional) still refuses a
//! request without a token here: a forward-auth answer has no anonymous pass.
//!
//! **Sessions** (a layer with [website sign-in](crate::sign_in)): a subrequest without a token
//! is answered by its session cookie, under the same CSRF rule as the layer's, judged by the
//! original request's method as the proxy reports it ([`X_ORIGINAL_METHOD`], set by the nginx
//! snippet; [`X_FORWARDED_METHOD`], set by Caddy and Traefik). The request is unsafe if *any*
//! of them names an unsafe method (a client can send the other proxy's header itself); a
//! cookie subrequest with neither header is refused (`403`) and logged as an error, since the
//! rule could not be kept. A signed-out browser navigation (`Sec-Fetch-Mode: navigate`, or
//! `text/html` in `Accept`) gets its `401` with [`X_AUTH_REQUEST_REDIRECT`]: the sign-in
//! path with the original URI, percent-encoded, for the proxy to redirect to.
//!
//! An auth server answers, for any token, who it belongs to: keep it reachable by the proxy
//! only (loopback or a private network), never by clients.
//!
//! # Example
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tower_amazon_auth::AmazonAuthLayer;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let layer = AmazonAuthLayer::new("amzn1.application-oa2-client.0123456789abcdef")?;
//!     // `/verify` (and paths under it) answer the proxy; `/healthz` is for probes.
//!     let app = Router::new()
//!         .route("/healthz", get(|| async { "ok" }))
//!         .fallback_service(layer.forward_auth());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:4180").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! The README has the nginx and Caddy configurations the tests run, and Traefik and Envoy
//! ones.

// Layout: `headers` (the header names, encoding a profile value), `original_uri` (where a
// query token is looked for), `original_method` (what the CSRF rule judges a session by),
// `answer` (the responses: allow, deny, not found), `future` (the response future), `service`
// (`ForwardAuth`). `service` uses the others; `answer` and `original_method` use `headers`.
mod answer;
mod future;
mod headers;
mod original_method;
mod original_uri;
mod service;

pub use future::ForwardAuthFuture;
pub use headers::{
    X_AUTH_REQUEST_ACCESS_TOKEN, X_AUTH_REQUEST_EMAIL, X_AUTH_REQUEST_NAME, X_AUTH_REQUEST_REDIRECT,
    X_AUTH_REQUEST_USER, X_FORWARDED_METHOD, X_FORWARDED_URI, X_ORIGINAL_METHOD, X_ORIGINAL_URI,
};
pub use service::{ForwardAuth, VERIFY_PATH};
