//! Account linking for Amazon Appstore **Quick Subscribe** (or any Login with Amazon
//! authorization-code flow): the app posts the authorization code it received to your server,
//! which exchanges it for tokens, reads the user's profile and creates or links a local account.
//!
//! ```text
//! POST /link  {"code": "…"}
//!   200 {"account_id": "acct-1", "user_id": "amzn1.account.…", "linked": false}   new account
//!   200 {"account_id": "acct-1", "user_id": "amzn1.account.…", "linked": true}    existing account
//!   400 {"error": "invalid_grant", …}            unknown, expired or reused code
//!   400 {"error": "invalid_request", …}          no JSON body with a non-empty "code"
//!   502 {"error": "upstream_unavailable", …}     Amazon down, slow or unreadable
//! ```
//!
//! Run it with no environment to get an embedded `MockAmazon` and ready-to-paste `curl` lines:
//!
//! ```text
//! cargo run --example quick_subscribe --features axum,mock
//! ```
//!
//! Against Amazon, set:
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `AMAZON_CLIENT_ID` | your client id | none: embedded mock (an error if `AMAZON_ENDPOINT` is set) |
//! | `AMAZON_CLIENT_SECRET` | your client secret | required with `AMAZON_CLIENT_ID` |
//! | `AMAZON_ENDPOINT` | a base URL serving `/auth/o2/token` and `/user/profile`, or `appstore`, `na`, `eu`, `fe` | `appstore` (`https://appstore-sdk.amazon.com/version/1.0`) |
//! | `LISTEN_ADDR` | where to listen (port `0` picks a free port) | `127.0.0.1:3001` |
//! | `RUST_LOG` | log filter; logs go to stderr and never contain a token, code or secret | `info` |
//!
//! Reading the environment, listening and shutting down are shared with the other examples in
//! `examples/common/mod.rs`.

mod common;

use std::collections::HashMap;
use std::error::Error;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tower_amazon_auth::client::{AmazonClient, ClientCredentials};
use tower_amazon_auth::endpoint::{Endpoints, Region};
use tower_amazon_auth::AmazonError;
use tower_amazon_auth_mock::{
    mock_access_token, MockAmazon, MockScope, MockUser, MOCK_CLIENT_ID, MOCK_CLIENT_SECRET,
};

const DEFAULT_ENDPOINT: &str = "appstore";
const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3001";

/// A local account, linked to one Amazon user.
#[derive(Debug, Clone)]
struct Account {
    id: String,
}

/// The in-memory account store: Amazon `user_id` → local account.
#[derive(Default)]
struct Accounts {
    by_amazon_user: HashMap<String, Account>,
    next_id: u64,
}

impl Accounts {
    /// Finds the account linked to `user_id`, or creates one. `true` when it already existed.
    fn link(&mut self, user_id: &str) -> (Account, bool) {
        if let Some(account) = self.by_amazon_user.get(user_id) {
            return (account.clone(), true);
        }
        self.next_id += 1;
        let account = Account {
            id: format!("acct-{}", self.next_id),
        };
        self.by_amazon_user.insert(user_id.to_owned(), account.clone());
        (account, false)
    }
}

struct AppState {
    amazon: AmazonClient,
    credentials: ClientCredentials,
    accounts: Mutex<Accounts>,
}

#[derive(Deserialize)]
struct LinkRequest {
    code: String,
}

/// An error answered as `{"error", "error_description"}`.
struct LinkError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl LinkError {
    fn new(status: StatusCode, error: &'static str, description: &'static str) -> Self {
        Self {
            status,
            error,
            description,
        }
    }

    /// Maps a failed code exchange. `AmazonError`'s `Display` holds no token, code or secret.
    fn from_exchange(error: &AmazonError) -> Self {
        tracing::warn!(%error, "code exchange failed");
        match error {
            AmazonError::OAuth { code, .. } if code == "invalid_grant" || code == "invalid_request" => {
                Self::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the authorization code is unknown, expired or already used",
                )
            }
            AmazonError::OAuth { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream_refused",
                "Amazon refused this server's client credentials",
            ),
            _ => Self::upstream(),
        }
    }

    /// Maps a failed profile read with a token Amazon has just issued.
    fn from_profile(error: &AmazonError) -> Self {
        tracing::warn!(%error, "profile read failed");
        match error {
            AmazonError::InsufficientScope { .. } => Self::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "the user did not grant the profile scope",
            ),
            _ => Self::upstream(),
        }
    }

    fn upstream() -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            "Amazon could not be reached or gave no usable answer; try again",
        )
    }
}

impl IntoResponse for LinkError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        (self.status, Json(body)).into_response()
    }
}

async fn link(
    State(state): State<Arc<AppState>>,
    request: Result<Json<LinkRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, LinkError> {
    let Ok(Json(request)) = request else {
        return Err(LinkError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            r#"expected a JSON body {"code": "…"}"#,
        ));
    };
    let code = request.code.trim();
    if code.is_empty() {
        return Err(LinkError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code must not be empty",
        ));
    }
    let tokens = state
        .amazon
        .exchange_code(code, &state.credentials)
        .await
        .map_err(|e| LinkError::from_exchange(&e))?;
    let profile = state
        .amazon
        .profile(&tokens.access_token)
        .await
        .map_err(|e| LinkError::from_profile(&e))?;
    // A real server would now store `tokens.refresh_token` (encrypted) next to the account.
    let (account, linked) = state
        .accounts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .link(&profile.user_id);
    tracing::info!(account_id = %account.id, user_id = %profile.user_id, linked, "account linked");
    Ok(Json(json!({
        "account_id": account.id,
        "user_id": profile.user_id,
        "linked": linked,
    })))
}

/// Endpoints from `AMAZON_ENDPOINT`: a base URL (as in the other examples), a region name or
/// `appstore`.
fn endpoints_from(value: &str) -> Result<Endpoints, Box<dyn Error>> {
    Ok(match value.to_ascii_lowercase().as_str() {
        "na" => Region::NorthAmerica.into(),
        "eu" => Region::Europe.into(),
        "fe" => Region::FarEast.into(),
        "appstore" => Endpoints::appstore(),
        _ => Endpoints::base_url(value).map_err(|error| format!("AMAZON_ENDPOINT: {error}"))?,
    })
}

/// A mock Amazon with two authorization codes for one demo user.
async fn start_mock() -> std::io::Result<MockAmazon> {
    let mock = MockAmazon::start().await?;
    let token = mock_access_token("quick-subscribe-demo");
    mock.register(
        &token,
        MockUser::new("amzn1.account.DEMOUSER")
            .email("demo@example.com")
            .name("Demo User")
            .scope(MockScope::Profile),
    );
    mock.register_code("demo-code-1", &token);
    mock.register_code("demo-code-2", &token);
    Ok(mock)
}

/// Where to exchange codes and with which credentials, as the environment asks; the embedded
/// mock (kept alive by the caller) when it asks for nothing.
async fn amazon_from_env() -> Result<(Endpoints, ClientCredentials, Option<MockAmazon>), Box<dyn Error>> {
    match (common::env("AMAZON_CLIENT_ID"), common::env("AMAZON_ENDPOINT")) {
        (None, None) => {
            let mock = start_mock().await?;
            tracing::info!("no AMAZON_CLIENT_ID or AMAZON_ENDPOINT: using an embedded MockAmazon");
            let endpoints = Endpoints::appstore_at(mock.base_url())?;
            let credentials = ClientCredentials::new(MOCK_CLIENT_ID, MOCK_CLIENT_SECRET);
            Ok((endpoints, credentials, Some(mock)))
        }
        (None, Some(_)) => Err(
            "AMAZON_ENDPOINT is set but AMAZON_CLIENT_ID is not: set AMAZON_CLIENT_ID and \
                                AMAZON_CLIENT_SECRET to your security profile's client id and secret"
                .into(),
        ),
        (Some(client_id), endpoint) => {
            let secret = common::env("AMAZON_CLIENT_SECRET")
                .ok_or("AMAZON_CLIENT_SECRET is required with AMAZON_CLIENT_ID")?;
            let endpoints = endpoints_from(endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT))?;
            Ok((endpoints, ClientCredentials::new(client_id, secret), None))
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    // `mock` keeps the embedded mock serving for as long as the server runs.
    let (endpoints, credentials, mock) = amazon_from_env().await?;
    // `credentials` prints its client id and `<redacted>` for the secret.
    tracing::info!(
        token_url = endpoints.token_url(),
        ?credentials,
        "exchanging codes"
    );

    let state = Arc::new(AppState {
        amazon: AmazonClient::new(endpoints)?,
        credentials,
        accounts: Mutex::new(Accounts::default()),
    });
    let app = Router::new().route("/link", post(link)).with_state(state);

    let (listener, addr) = common::listen(DEFAULT_LISTEN_ADDR).await?;
    if mock.is_some() {
        let mut stdout = std::io::stdout().lock();
        let curl = |code: &str| {
            format!("curl -s -X POST http://{addr}/link -H 'content-type: application/json' -d '{{\"code\":\"{code}\"}}'")
        };
        writeln!(stdout, "# a new account (\"linked\": false):")?;
        writeln!(stdout, "{}", curl("demo-code-1"))?;
        writeln!(stdout, "# the same Amazon user again (\"linked\": true):")?;
        writeln!(stdout, "{}", curl("demo-code-2"))?;
        writeln!(
            stdout,
            "# codes are single-use, as with Amazon: repeating one answers 400 invalid_grant"
        )?;
        stdout.flush()?;
    }

    axum::serve(listener, app)
        .with_graceful_shutdown(common::shutdown_signal())
        .await?;
    drop(mock);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    common::init_tracing();
    common::exit_code(run().await)
}
