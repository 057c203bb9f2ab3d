//! A forward-auth server: answers nginx `auth_request`, Caddy `forward_auth`, Traefik
//! `ForwardAuth` and Envoy `ext_authz` subrequests with this crate's verification, for
//! upstreams that are not written in Rust.
//!
//! ```text
//! cargo run --example forward_auth --all-features
//! ```
//!
//! With neither `AMAZON_CLIENT_ID` nor `AMAZON_ENDPOINT` set, tokens are verified against an
//! embedded `MockAmazon` that knows one demo user, and a ready-to-paste command is printed on
//! stdout once the server listens:
//!
//! ```text
//! curl -H 'Authorization: Bearer Atza|IwEBI…' http://127.0.0.1:4180/verify
//! ```
//!
//! | route | answer |
//! | --- | --- |
//! | any method on `/verify` and paths under it | `200` with `X-Auth-Request-User`, `-Email`, `-Name`; `401` / `403` with the RFC 6750 challenge; `503` + `Retry-After` when Amazon cannot answer (the contract is in the `forward_auth` module docs) |
//! | `GET /healthz` | `200 ok` |
//! | anything else | `404` |
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `AMAZON_CLIENT_ID` | your client id, or several separated by commas | none: embedded mock (an error if `AMAZON_ENDPOINT` is set) |
//! | `AMAZON_ENDPOINT` | base URL serving `/auth/o2/tokeninfo` and `/user/profile` | `https://api.amazon.com` |
//! | `LISTEN_ADDR` | where to listen (port `0` picks a free port) | `127.0.0.1:4180` |
//! | `RUST_LOG` | log filter; logs go to stderr and never contain a token | `info` |
//! | `REDIS_URL` | turns the fleet level on (the `tower-amazon-auth-redis` crate): a Redis shared by every auth server instance (and by the Rust services using the layer with the same secret and client ids), so a token costs one verification for the fleet and a logout anywhere is refused everywhere | unset: no fleet level |
//! | `AMAZON_AUTH_CACHE_SECRET` | the fleet secret, at least 32 bytes, the same on every instance; required with `REDIS_URL`, never logged | none |
//!
//! The server listens on loopback by default and logs a warning when `LISTEN_ADDR` is anything
//! else: it tells whoever asks who a token belongs to, so only the proxy may reach it.
//!
//! Reading the environment, the embedded mock, listening and shutting down are shared with the
//! other examples in `examples/common/mod.rs`.

mod common;

use std::error::Error;
use std::process::ExitCode;

use axum::routing::get;
use axum::Router;

const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:4180";

async fn healthz() -> &'static str {
    "ok"
}

async fn run() -> Result<(), Box<dyn Error>> {
    // `demo` keeps the embedded mock serving for as long as the server runs.
    let (auth, demo) = common::auth_from_env().await?;

    // The forward-auth service answers `/verify` (and paths under it) and 404 elsewhere.
    let app = Router::new()
        .route("/healthz", get(healthz))
        .fallback_service(auth.forward_auth());

    let (listener, addr) = common::listen(DEFAULT_LISTEN_ADDR).await?;
    if !listener.local_addr()?.ip().is_loopback() {
        tracing::warn!(
            addr = %listener.local_addr()?,
            "listening beyond loopback: a forward-auth server answers who any token belongs \
             to, so make sure only the proxy can reach it"
        );
    }
    if let Some(demo) = &demo {
        demo.print_curl_to(addr, "/verify")?;
    }

    axum::serve(listener, app)
        .with_graceful_shutdown(common::shutdown_signal())
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    common::init_tracing();
    common::exit_code(run().await)
}
