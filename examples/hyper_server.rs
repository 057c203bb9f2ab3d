//! The `server` example without axum: plain hyper 1 + hyper-util + tower, to show the layer
//! works with any `tower::Service<http::Request<B>>`.
//!
//! ```text
//! cargo run --example hyper_server --all-features
//! ```
//!
//! Same routes, environment and embedded-mock default as `examples/server.rs`:
//!
//! | route | token | answer |
//! | --- | --- | --- |
//! | `/me` | required | `GET`: `200 {"user_id","email","name","postal_code"}`, a field the user's scope did not grant left out; other methods `405` |
//! | `/healthz` | none | `200 ok` |
//! | anything else | required | the layer's 401 / 400 / 403 / 503 answer, then `404` |
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `AMAZON_CLIENT_ID` | your client id, or several separated by commas | none: embedded mock (an error if `AMAZON_ENDPOINT` is set) |
//! | `AMAZON_ENDPOINT` | base URL serving `/auth/o2/tokeninfo` and `/user/profile` | `https://api.amazon.com` |
//! | `LISTEN_ADDR` | where to listen (port `0` picks a free port) | `127.0.0.1:3000` |
//! | `RUST_LOG` | log filter; logs go to stderr and never contain a token | `info` |
//!
//! Each connection flushes pipelined responses together (`pipeline_flush`), so a pipelining
//! load generator measures the server rather than the number of `write` calls.

use std::convert::Infallible;
use std::error::Error;
use std::io::{IsTerminal as _, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{service_fn, ServiceBuilder, ServiceExt as _};
use tower_amazon_auth::mock::{mock_access_token, MockAmazon, MockScope, MockUser, MOCK_CLIENT_ID};
use tower_amazon_auth::{AmazonAuthLayer, AmazonUser, AuthBody};
use tracing_subscriber::EnvFilter;

const DEFAULT_ENDPOINT: &str = "https://api.amazon.com";
const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3000";
/// Guessing a client id would either refuse every token or, worse, trust someone else's app.
const CLIENT_ID_REQUIRED: &str = "AMAZON_ENDPOINT is set but AMAZON_CLIENT_ID is not: \
    set AMAZON_CLIENT_ID to your security profile's client id (several separated by commas)";
/// How long shutdown waits for connections to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The body every route answers with: what the layer makes of our `Full` bodies
/// (`Either<Full, Full>`), so the open and the protected routes have one response type.
type Body = AuthBody<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The open route: no token, no layer.
fn healthz() -> Response<Body> {
    // `Either::Left` is what the layer makes of the inner service's own responses.
    respond(StatusCode::OK, "text/plain", "ok").map(Either::Left)
}

/// The routes behind the layer: a request only gets here with a verified token.
async fn protected_routes(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/me" {
        return Ok(respond(StatusCode::NOT_FOUND, "text/plain", "not found"));
    }
    if request.method() != Method::GET {
        let mut response = respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return Ok(response);
    }
    // Absent only if this service were mounted without the layer: a server bug, answered 500
    // rather than served anonymously.
    let Some(user) = request.extensions().get::<AmazonUser>() else {
        return Ok(respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "no AmazonAuthLayer",
        ));
    };
    tracing::info!(user_id = user.user_id(), "GET /me");
    // `AmazonUser` serializes as Amazon's profile; fields the user did not grant are omitted.
    Ok(match serde_json::to_vec(user) {
        Ok(json) => respond(StatusCode::OK, "application/json", json),
        Err(_) => respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "cannot encode"),
    })
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

    // Everything but /healthz goes through the layer, including paths that do not exist: a
    // route added to `protected` later is protected by default.
    let protected = ServiceBuilder::new().layer(auth).service_fn(protected_routes);
    let app = service_fn(move |request: Request<Incoming>| {
        let protected = protected.clone();
        async move {
            if request.uri().path() == "/healthz" {
                return Ok(healthz());
            }
            protected.oneshot(request).await
        }
    });

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

    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: back off rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = http1::Builder::new()
            .pipeline_flush(true)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        // Watched connections finish the request in flight, then close, on shutdown.
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection error");
            }
        });
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("connections still open; exiting anyway"),
    }
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
