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
//! | `/logout` | required | `POST`: `204`, the token revoked here (`401` from then on, although Amazon still calls it valid); other methods `405` |
//! | `/healthz` | none | `200 ok` |
//! | anything else | required | the layer's 401 / 400 / 403 / 503 answer, then `404` |
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
//! Each connection flushes pipelined responses together (`pipeline_flush`), so a pipelining
//! load generator measures the server rather than the number of `write` calls.
//!
//! Reading the environment, the embedded mock, listening and shutting down are shared with the
//! other examples in `examples/common/mod.rs`.

mod common;

use std::convert::Infallible;
use std::error::Error;
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
use tower::{service_fn, ServiceBuilder, ServiceExt as _};
use tower_amazon_auth::future::AuthBody;
use tower_amazon_auth::AmazonUser;

const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3000";
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
    let (allowed, allow) = match request.uri().path() {
        "/me" => (Method::GET, "GET"),
        "/logout" => (Method::POST, "POST"),
        _ => return Ok(respond(StatusCode::NOT_FOUND, "text/plain", "not found")),
    };
    if request.method() != allowed {
        let mut response = respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "wrong method");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
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
    if allowed == Method::POST {
        // Logout: Login with Amazon has no server-side logout, so the token is revoked here;
        // from now on it gets 401 although Amazon still calls it valid.
        return Ok(match user.revoke().await {
            Ok(()) => {
                tracing::info!(user_id = user.user_id(), "POST /logout");
                respond(StatusCode::NO_CONTENT, "text/plain", "")
            }
            Err(error) => {
                tracing::warn!(%error, "logout failed");
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "logout failed")
            }
        });
    }
    tracing::info!(user_id = user.user_id(), "GET /me");
    // `AmazonUser` serializes as Amazon's profile; fields the user did not grant are omitted.
    Ok(match serde_json::to_vec(user) {
        Ok(json) => respond(StatusCode::OK, "application/json", json),
        Err(_) => respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "cannot encode"),
    })
}

async fn run() -> Result<(), Box<dyn Error>> {
    // `demo` keeps the embedded mock serving for as long as the server runs.
    let (auth, demo) = common::auth_from_env().await?;

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

    let (listener, addr) = common::listen(DEFAULT_LISTEN_ADDR).await?;
    if let Some(demo) = &demo {
        demo.print_curl(addr)?;
    }

    let graceful = GracefulShutdown::new();
    let shutdown = common::shutdown_signal();
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
    common::init_tracing();
    common::exit_code(run().await)
}
