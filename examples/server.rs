//! An axum app whose `/me` needs a Login with Amazon access token.
//!
//! ```text
//! cargo run --example server --all-features
//! ```
//!
//! With neither `AMAZON_CLIENT_ID` nor `AMAZON_ENDPOINT` set, tokens are verified against an
//! embedded `MockAmazon` that knows one demo user, and a ready-to-paste command is printed on
//! stdout once the server listens:
//!
//! ```text
//! curl -H 'Authorization: Bearer Atza|IwEBI…' http://127.0.0.1:3000/me
//! ```
//!
//! | route | token | answer |
//! | --- | --- | --- |
//! | `GET /me` | required | `200 {"user_id","email","name","postal_code"}`; a field the user's scope did not grant is left out |
//! | `POST /logout` | required | `204`: the token is revoked here, and refused with `401` from then on (Amazon would still call it valid until it expires) |
//! | `GET /healthz` | none | `200 ok` |
//! | anything else | required | the layer's 401 / 400 / 403 / 503 answer, then axum's 404 / 405 |
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `AMAZON_CLIENT_ID` | your client id, or several separated by commas | none: embedded mock (an error if `AMAZON_ENDPOINT` is set) |
//! | `AMAZON_ENDPOINT` | base URL serving `/auth/o2/tokeninfo` and `/user/profile` | `https://api.amazon.com` |
//! | `LISTEN_ADDR` | where to listen (port `0` picks a free port) | `127.0.0.1:3000` |
//! | `REDIS_URL` | turns the fleet level on (the `tower-amazon-auth-redis` crate): a Redis shared by every instance (`redis://host:6379`, `rediss://…`); `POST /logout` then logs out fleet-wide (`503` when Redis cannot be reached) | unset: no fleet level |
//! | `AMAZON_AUTH_CACHE_SECRET` | the fleet secret, at least 32 bytes, the same on every instance; required with `REDIS_URL`, never logged | none |
//! | `RUST_LOG` | log filter; logs go to stderr and never contain a token | `info` |
//!
//! Reading the environment, the embedded mock, listening and shutting down are shared with the
//! other examples in `examples/common/mod.rs`.

mod common;

use std::error::Error;
use std::process::ExitCode;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_amazon_auth::AmazonUser;

const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3000";

/// Only reached with a verified token: the layer answered every other request itself.
/// `AmazonUser` serializes as Amazon's profile; fields the user did not grant are omitted.
async fn me(user: AmazonUser) -> Json<AmazonUser> {
    tracing::info!(user_id = user.user_id(), "GET /me");
    Json(user)
}

/// Logout: Login with Amazon has no server-side logout, so the token is revoked here; from now
/// on it gets 401 although Amazon still calls it valid.
async fn logout(user: AmazonUser) -> StatusCode {
    match user.revoke().await {
        Ok(()) => {
            tracing::info!(user_id = user.user_id(), "POST /logout");
            StatusCode::NO_CONTENT
        }
        Err(error) => {
            tracing::warn!(%error, "logout failed");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn run() -> Result<(), Box<dyn Error>> {
    // `demo` keeps the embedded mock serving for as long as the server runs.
    let (auth, demo) = common::auth_from_env().await?;

    // Everything merged in from `protected` needs a token, including paths that do not exist:
    // a route added there later is protected by default. `/healthz` stays open for probes.
    let protected = Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .layer(auth);
    let app = Router::new().route("/healthz", get(healthz)).merge(protected);

    let (listener, addr) = common::listen(DEFAULT_LISTEN_ADDR).await?;
    if let Some(demo) = &demo {
        demo.print_curl(addr)?;
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
