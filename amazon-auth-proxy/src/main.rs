//! `amazon-auth-proxy`: an installable Login with Amazon auth server for nginx `auth_request`
//! and Caddy `forward_auth`, built on `tower-amazon-auth`. Run `amazon-auth-proxy --help`.
//!
//! | route | answer |
//! | --- | --- |
//! | any method on `/verify` and paths under it | the forward-auth contract of `tower_amazon_auth::forward_auth`: `200` with `X-Auth-Request-User`, `-Email`, `-Name`; `401` / `403` with the RFC 6750 challenge; `503` + `Retry-After` when Amazon cannot answer |
//! | `GET /healthz` | `200 ok`: the process is alive |
//! | `GET /oauth2/start?rd=…`, `GET /oauth2/callback`, `POST /oauth2/sign_out` | browser sign-in (with `--client-secret`, or `--demo`): the routes of `tower_amazon_auth::sign_in` on oauth2-proxy's paths |
//! | `GET /readyz` | `200` and a JSON body once the configuration is valid and the listener is up; Redis trouble is reported in the body (`fleet`), never as not ready: Redis trouble is never an outage |
//! | anything else | `404` |
//!
//! | file | owns |
//! | --- | --- |
//! | `main.rs` | start-up: the command line, logging, the routes, serving |
//! | `cli` | every flag, with its environment variable |
//! | `config` | what the flags describe, checked before anything listens; `--demo` |
//! | `server` | hardened serving and graceful shutdown |

mod cli;
mod config;
mod server;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use axum::routing::get;
use axum::{Json, Router};
use clap::Parser as _;
use tower_amazon_auth::IdentityCache;
use tower_amazon_auth_redis::FleetStats;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, LogFormat};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), as text or JSON.
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `/readyz`: ready once serving; the fleet level's state for operators.
async fn readyz(cache: IdentityCache) -> Json<serde_json::Value> {
    let fleet = FleetStats::of(&cache).map(|fleet| {
        serde_json::json!({
            "subscribed": fleet.subscribed,
            "breaker_open": fleet.breaker_open,
            "errors": fleet.errors,
        })
    });
    Json(serde_json::json!({ "ready": true, "fleet": fleet }))
}

async fn run(cli: Cli) -> Result<(), String> {
    // Caught before anything says the server is up.
    let signals = server::ShutdownSignals::catch();
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", cli.listen))?;
    let addr = listener.local_addr().map_err(|error| error.to_string())?;
    let config::Served { layer, sign_in, demo } = config::served(&cli, addr).await?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback: only the proxy may reach this server");
    }
    let cache = layer.cache().clone();
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(move || readyz(cache.clone())))
        .fallback_service(layer.forward_auth().pass_access_token(cli.pass_access_token));
    if let Some(sign_in) = &sign_in {
        // `/oauth2/start`, `/oauth2/callback`, `/oauth2/sign_out`: the only routes the proxy
        // passes to this server without `auth_request`.
        app = app.merge(sign_in.router());
    }
    tracing::info!(%addr, "listening");
    if let Some(demo) = &demo {
        // Printed on purpose (it only works against the built-in stand-in); never logged.
        println!(
            "curl -H 'Authorization: Bearer {}' http://{addr}/verify",
            demo.token
        );
    }
    server::serve(listener, app, &cli, signals)
        .await
        .map_err(|never| match never {})
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(refusal) => {
            eprintln!("amazon-auth-proxy: {refusal}");
            ExitCode::FAILURE
        }
    }
}
