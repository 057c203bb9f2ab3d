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
//! | `GET /healthz` | none | `200 ok` |
//! | anything else | required | the layer's 401 / 400 / 403 / 503 answer, then axum's 404 / 405 |
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `AMAZON_CLIENT_ID` | your client id, or several separated by commas | none: embedded mock (an error if `AMAZON_ENDPOINT` is set) |
//! | `AMAZON_ENDPOINT` | base URL serving `/auth/o2/tokeninfo` and `/user/profile` | `https://api.amazon.com` |
//! | `LISTEN_ADDR` | where to listen (port `0` picks a free port) | `127.0.0.1:3000` |
//! | `RUST_LOG` | log filter; logs go to stderr and never contain a token | `info` |

use std::error::Error;
use std::io::{IsTerminal as _, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_amazon_auth::mock::{mock_access_token, MockAmazon, MockScope, MockUser, MOCK_CLIENT_ID};
use tower_amazon_auth::{AmazonAuthLayer, AmazonUser};
use tracing_subscriber::EnvFilter;

const DEFAULT_ENDPOINT: &str = "https://api.amazon.com";
const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3000";
/// Guessing a client id would either refuse every token or, worse, trust someone else's app.
const CLIENT_ID_REQUIRED: &str = "AMAZON_ENDPOINT is set but AMAZON_CLIENT_ID is not: \
    set AMAZON_CLIENT_ID to your security profile's client id (several separated by commas)";

/// Only reached with a verified token: the layer answered every other request itself.
/// `AmazonUser` serializes as Amazon's profile; fields the user did not grant are omitted.
async fn me(user: AmazonUser) -> Json<AmazonUser> {
    tracing::info!(user_id = user.user_id(), "GET /me");
    Json(user)
}

async fn healthz() -> &'static str {
    "ok"
}

/// The embedded mock and its demo user's token. Dropping the mock closes its port, so it lives
/// as long as the server.
struct Demo {
    mock: MockAmazon,
    token: String,
}

impl Demo {
    async fn start() -> std::io::Result<Self> {
        let mock = MockAmazon::start().await?;
        let token = mock_access_token("tower-amazon-auth demo");
        mock.register(
            &token,
            MockUser::new("amzn1.account.DEMO7ZQK4XUSER")
                .email("demo@example.com")
                .name("Demo User")
                .postal_code("98109")
                .scope(MockScope::ProfileAndPostalCode)
                // The mock counts `exp` down like Amazon; a day outlasts any demo session.
                .exp(24 * 60 * 60),
        );
        Ok(Self { mock, token })
    }
}

/// Reads a variable, treating an empty value as unset.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// The auth layer as the environment asks, and the demo when it asks for nothing.
async fn auth_from_env() -> Result<(AmazonAuthLayer, Option<Demo>), Box<dyn Error>> {
    let (client_ids, endpoint, demo) = match (env("AMAZON_CLIENT_ID"), env("AMAZON_ENDPOINT")) {
        (None, None) => {
            let demo = Demo::start().await?;
            tracing::info!("no AMAZON_CLIENT_ID or AMAZON_ENDPOINT: using an embedded MockAmazon");
            let endpoint = demo.mock.base_url().to_owned();
            (vec![MOCK_CLIENT_ID.to_owned()], endpoint, Some(demo))
        }
        (None, Some(_)) => return Err(CLIENT_ID_REQUIRED.into()),
        (Some(ids), endpoint) => {
            let ids = ids.split(',').map(str::trim).filter(|id| !id.is_empty());
            let endpoint = endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
            (ids.map(str::to_owned).collect(), endpoint, None)
        }
    };
    tracing::info!(?client_ids, %endpoint, "verifying tokens");
    let auth = AmazonAuthLayer::builder()
        .client_ids(client_ids)
        .base_url(&endpoint)
        .build()
        .map_err(|error| format!("AMAZON_CLIENT_ID / AMAZON_ENDPOINT: {error}"))?;
    Ok((auth, demo))
}

/// Where a client on this machine reaches `addr`: `0.0.0.0` is for binding, not for connecting.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => (Ipv4Addr::LOCALHOST, a.port()).into(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => (Ipv6Addr::LOCALHOST, a.port()).into(),
        _ => addr,
    }
}

/// Resolves on Ctrl-C, or on SIGTERM (what `docker stop` and Kubernetes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn run() -> Result<(), Box<dyn Error>> {
    let (auth, demo) = auth_from_env().await?;

    // Everything merged in from `protected` needs a token, including paths that do not exist:
    // a route added there later is protected by default. `/healthz` stays open for probes.
    let protected = Router::new().route("/me", get(me)).layer(auth);
    let app = Router::new().route("/healthz", get(healthz)).merge(protected);

    let listen = env("LISTEN_ADDR").unwrap_or_else(|| DEFAULT_LISTEN_ADDR.to_owned());
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|error| format!("cannot listen on LISTEN_ADDR={listen}: {error}"))?;
    let addr = reachable(listener.local_addr()?);
    tracing::info!(%addr, "listening");
    if let Some(demo) = &demo {
        // The demo token is printed on purpose (it only works against the embedded mock); it is
        // never logged.
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "curl -H 'Authorization: Bearer {}' http://{addr}/me",
            demo.token
        )?;
        stdout.flush()?;
    }

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
