//! What the example servers share: reading the environment, the embedded `MockAmazon` demo,
//! listening, logging and shutting down. Each example keeps its routes, its layer wiring and
//! its server loop in its own file.
//!
//! Cargo does not build this folder as an example of its own (it has no `main.rs`); each
//! example includes it with `mod common;`.

// Every example compiles this module on its own and uses only part of it (`quick_subscribe`
// exchanges codes, so it needs neither `Demo` nor `auth_from_env`); without this, each example
// would warn about the items only the others use.
#![allow(dead_code)]

pub(crate) mod sign_in;

use std::error::Error;
use std::io::{IsTerminal as _, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use tokio::net::TcpListener;
use tower_amazon_auth::{AmazonAuthLayer, IdentityCache, IdentityCacheBuilder};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockScope, MockUser, MOCK_CLIENT_ID};
use tracing_subscriber::EnvFilter;

/// Where tokens are verified when `AMAZON_CLIENT_ID` is set without `AMAZON_ENDPOINT`.
const DEFAULT_ENDPOINT: &str = "https://api.amazon.com";
/// Guessing a client id would either refuse every token or, worse, trust someone else's app.
const CLIENT_ID_REQUIRED: &str = "AMAZON_ENDPOINT is set but AMAZON_CLIENT_ID is not: \
    set AMAZON_CLIENT_ID to your security profile's client id (several separated by commas)";

/// `REDIS_URL` without the fleet secret: a fleet whose instances cannot agree on anything.
const SECRET_REQUIRED: &str = "REDIS_URL is set but AMAZON_AUTH_CACHE_SECRET is not: set it to \
    a secret of at least 32 bytes, the same on every instance (e.g. `openssl rand -hex 32`)";

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), in colour only on a terminal.
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
}

/// The process's exit code for `run`'s result; an error is printed on stderr first.
pub(crate) fn exit_code(result: Result<(), Box<dyn Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Reads a variable, treating an empty value as unset.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// The embedded mock and its demo user's token. Dropping the mock closes its port, so it lives
/// as long as the server.
pub(crate) struct Demo {
    pub(crate) mock: MockAmazon,
    token: String,
}

impl Demo {
    /// Starts the mock and registers the demo user's token.
    async fn start() -> std::io::Result<Self> {
        let mock = MockAmazon::start().await?;
        let token = mock_access_token("tower-amazon-auth demo");
        let user = MockUser::new("amzn1.account.DEMO7ZQK4XUSER")
            .email("demo@example.com")
            .name("Demo User")
            .postal_code("98109")
            .scope(MockScope::ProfileAndPostalCode)
            // The mock counts `exp` down like Amazon; a day outlasts any demo session.
            .exp(24 * 60 * 60);
        mock.register(&token, user.clone());
        // The user the mock's consent page offers (sign-in through the browser).
        mock.add_sign_in_user(user);
        Ok(Self { mock, token })
    }

    /// Prints `curl -H 'Authorization: Bearer <token>' http://ADDR/me` on stdout (tests parse
    /// it). The demo token is printed on purpose (it only works against the embedded mock); it
    /// is never logged.
    pub(crate) fn print_curl(&self, addr: SocketAddr) -> std::io::Result<()> {
        self.print_curl_to(addr, "/me")
    }

    /// Prints the same command for `path` (`/verify` for the forward-auth server).
    pub(crate) fn print_curl_to(&self, addr: SocketAddr, path: &str) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "curl -H 'Authorization: Bearer {}' http://{addr}{path}",
            self.token
        )?;
        stdout.flush()
    }
}

/// The auth layer as the environment asks (`AMAZON_CLIENT_ID`, a comma list, and
/// `AMAZON_ENDPOINT`), and the demo when it asks for nothing. `AMAZON_ENDPOINT` without
/// `AMAZON_CLIENT_ID` is an error.
pub(crate) async fn auth_from_env() -> Result<(AmazonAuthLayer, Option<Demo>), Box<dyn Error>> {
    let (cache, demo) = cache_from_env().await?;
    Ok((AmazonAuthLayer::builder(cache).build()?, demo))
}

/// The identity cache as the environment asks (see [`auth_from_env`]), and the demo when it
/// asks for nothing.
pub(crate) async fn cache_from_env() -> Result<(IdentityCache, Option<Demo>), Box<dyn Error>> {
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
    let builder = IdentityCache::builder()
        .client_ids(client_ids)
        .base_url(&endpoint);
    let cache = with_fleet(builder)?
        .build()
        .map_err(|error| format!("AMAZON_CLIENT_ID / AMAZON_ENDPOINT / REDIS_URL: {error}"))?;
    Ok((cache, demo))
}

/// The fleet level when `REDIS_URL` is set, with the secret from `AMAZON_AUTH_CACHE_SECRET`.
/// Neither the URL (it may hold a password) nor the secret is logged.
fn with_fleet(builder: IdentityCacheBuilder) -> Result<IdentityCacheBuilder, Box<dyn Error>> {
    let Some(url) = env("REDIS_URL") else {
        return Ok(builder);
    };
    let secret = env("AMAZON_AUTH_CACHE_SECRET").ok_or(SECRET_REQUIRED)?;
    if secret.len() < tower_amazon_auth_redis::FLEET_MIN_SECRET_LEN {
        return Err("AMAZON_AUTH_CACHE_SECRET must be at least 32 bytes".into());
    }
    tracing::info!("fleet cache level on: Redis from REDIS_URL");
    Ok(builder.second_level(tower_amazon_auth_redis::Fleet::new(url, secret)))
}

/// Listens on `LISTEN_ADDR`, or on `default` when it is unset, and logs where. Returns the
/// listener and the address a client on this machine reaches it at.
pub(crate) async fn listen(default: &str) -> Result<(TcpListener, SocketAddr), Box<dyn Error>> {
    let listen = env("LISTEN_ADDR").unwrap_or_else(|| default.to_owned());
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|error| format!("cannot listen on LISTEN_ADDR={listen}: {error}"))?;
    let addr = reachable(listener.local_addr()?);
    tracing::info!(%addr, "listening");
    Ok((listener, addr))
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
pub(crate) async fn shutdown_signal() {
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
