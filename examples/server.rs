//! An axum site with "Login with Amazon", whose `/me` also takes a Login with Amazon access
//! token (an app's, or curl's).
//!
//! ```text
//! cargo run --example server --all-features
//! ```
//!
//! With neither `AMAZON_CLIENT_ID` nor `AMAZON_ENDPOINT` set, an embedded `MockAmazon` stands in
//! for Amazon: open the printed URL, click "Login with Amazon", choose the demo user on the
//! mock's consent page, and you are signed in. A ready-to-paste command for the token path is
//! printed too:
//!
//! ```text
//! Open http://127.0.0.1:3000/ in a browser to sign in.
//! curl -H 'Authorization: Bearer Atza|IwEBI…' http://127.0.0.1:3000/me
//! ```
//!
//! | route | credential | answer |
//! | --- | --- | --- |
//! | `GET /` | optional | a page: signed out, a "Login with Amazon" button; signed in, "Hello, {name}", the e-mail, a button that calls `/me`, a "Sign out" form |
//! | `GET /me` | token or session | `200 {"user_id","email","name","postal_code"}`; a field the user's scope did not grant is left out |
//! | `GET /login`, `GET /login/callback` | none | website sign-in (see `tower_amazon_auth::sign_in`) |
//! | `POST /logout` | token or session | a token: `204`, the token revoked here and refused with `401` from then on; a session: ended, its cookie cleared, `303` to `/` |
//! | `GET /healthz` | none | `200 ok` |
//! | anything else | required | the layer's 401 / 400 / 403 / 503 answer, then axum's 404 / 405 |
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `AMAZON_CLIENT_ID` | your client id, or several separated by commas | none: embedded mock (an error if `AMAZON_ENDPOINT` is set) |
//! | `AMAZON_CLIENT_SECRET` | the security profile's client secret, for website sign-in; without it the API works and sign-in is off (the page and `/login` say why) | none (the mock's with the embedded mock) |
//! | `AMAZON_ENDPOINT` | base URL serving `/auth/o2/tokeninfo`, `/user/profile`, `/auth/o2/token` | `https://api.amazon.com` |
//! | `AMAZON_AUTHORIZE_URL` | the full authorize URL browsers sign in at | `https://www.amazon.com/ap/oa`, or `{AMAZON_ENDPOINT}/ap/oa` |
//! | `PUBLIC_URL` | the site's origin as browsers see it (register `{PUBLIC_URL}/login/callback` as an Allowed Return URL) | `http://` + `LISTEN_ADDR` when that is loopback; required otherwise |
//! | `SECURE_COOKIES` | `1`: the sign-in cookies are `Secure` with the `__Host-` prefix (production's cookies, which browsers also take on `http://127.0.0.1`); `0`: never | exactly when `PUBLIC_URL` is `https` |
//! | `LISTEN_ADDR` | where to listen (port `0` picks a free port) | `127.0.0.1:3000` |
//! | `REDIS_URL` | turns the fleet level on (the `tower-amazon-auth-redis` crate): a Redis shared by every instance (`redis://host:6379`, `rediss://…`); `POST /logout` with a token then logs out fleet-wide (`503` when Redis cannot be reached) | unset: no fleet level |
//! | `AMAZON_AUTH_CACHE_SECRET` | the fleet secret, at least 32 bytes, the same on every instance; required with `REDIS_URL`, never logged | none |
//! | `RUST_LOG` | log filter; logs go to stderr and never contain a token | `info` |
//!
//! Sessions live in this process's memory: restarting the server signs everyone out.
//!
//! Reading the environment, the embedded mock, listening and shutting down are shared with the
//! other examples in `examples/common/`.

mod common;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_amazon_auth::sign_in::escape_html;
use tower_amazon_auth::{AmazonAuthLayer, AmazonUser};

const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3000";

/// Only reached with a verified token or session: the layer answered every other request.
/// `AmazonUser` serializes as Amazon's profile; fields the user did not grant are omitted.
async fn me(user: AmazonUser) -> Json<AmazonUser> {
    tracing::info!(user_id = user.user_id(), source = %user.source(), "GET /me");
    Json(user)
}

/// Logout of a token when sign-in is off: Login with Amazon has no server-side logout, so the
/// token is revoked here; from now on it gets 401 although Amazon still calls it valid. (With
/// sign-in on, `SignIn`'s own `POST /logout` does this, and ends sessions too.)
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

/// Why sign-in is off, if it is.
struct Site {
    sign_in_off: Option<String>,
}

/// The home page: signed out, a "Login with Amazon" button; signed in, the user and a way out.
async fn home(State(site): State<Arc<Site>>, user: Option<AmazonUser>) -> Response {
    let Some(user) = user else {
        let action = match &site.sign_in_off {
            None => r#"<p><a id="login" class="lwa" href="/login?return_to=/">Login with Amazon</a></p>"#
                .to_owned(),
            Some(why) => format!(r#"<p id="sign-in-off">{}</p>"#, escape_html(why)),
        };
        return Html(page("Welcome", &format!("<p>You are not signed in.</p>{action}"))).into_response();
    };
    let name = user.name().unwrap_or(user.user_id());
    let email = user.email().map_or(String::new(), |email| {
        format!(r#"<p>E-mail: <span id="email">{}</span></p>"#, escape_html(email))
    });
    let body = format!(
        r#"<h2 id="hello">Hello, {name}</h2>{email}
<p><button id="call-me" type="button">Call /me</button></p>
<pre id="me-result"></pre>
<form method="post" action="/logout"><button id="logout" type="submit">Sign out</button></form>
<script>
document.getElementById("call-me").addEventListener("click", async () => {{
  const answer = await fetch("/me");
  document.getElementById("me-result").textContent = answer.status + " " + await answer.text();
}});
</script>"#,
        name = escape_html(name),
    );
    // A signed-in page is the user's own: never kept by a cache, nor shown after Back.
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(page("Signed in", &body)),
    )
        .into_response()
}

/// A page of the demo site around `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · tower-amazon-auth</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #232f3e; }}
h1 {{ font-size: 1.4rem; }}
.lwa {{ display: inline-block; background: #ffd814; border: 1px solid #fcd200; border-radius: 8px; padding: .6rem 1.2rem; color: #0f1111; text-decoration: none; font-weight: 600; }}
button {{ background: #ffd814; border: 1px solid #fcd200; border-radius: 8px; padding: .4rem 1rem; font: inherit; cursor: pointer; }}
pre {{ background: #f3f3f3; padding: .8rem; white-space: pre-wrap; word-break: break-all; min-height: 1.2rem; }}
</style></head>
<body><h1>tower-amazon-auth demo</h1>
{body}
</body></html>
"#,
        title = escape_html(title),
    )
}

async fn run() -> Result<(), Box<dyn Error>> {
    // `demo` keeps the embedded mock serving for as long as the server runs.
    let (cache, demo) = common::cache_from_env().await?;
    let (listener, addr) = common::listen(DEFAULT_LISTEN_ADDR).await?;
    let sign_in = common::sign_in::sign_in_from_env(&cache, addr, demo.as_ref())?;

    let required = AmazonAuthLayer::builder(cache.clone());
    let optional = AmazonAuthLayer::builder(cache).optional(true);
    let (required, optional, account) = match &sign_in {
        Ok(sign_in) => (
            required.sign_in(sign_in).build()?,
            optional.sign_in(sign_in).build()?,
            sign_in.router(),
        ),
        Err(why) => {
            tracing::warn!("{why}");
            let why = why.clone();
            let off = move || {
                let why = why.clone();
                async move { (StatusCode::SERVICE_UNAVAILABLE, why) }
            };
            let required = required.build()?;
            let account = Router::new()
                .route("/login", get(off))
                .route("/logout", post(logout).route_layer(required.clone()));
            (required, optional.build()?, account)
        }
    };
    let site = Arc::new(Site {
        sign_in_off: sign_in.as_ref().err().cloned(),
    });

    // Everything merged in from `protected` needs a token or a session, including paths that
    // do not exist: a route added there later is protected by default. `/`, the sign-in routes
    // and `/healthz` are open.
    let protected = Router::new().route("/me", get(me)).layer(required);
    let home = Router::new()
        .route("/", get(home))
        .route_layer(optional)
        .with_state(site);
    let app = Router::new()
        .route("/healthz", get(healthz))
        .merge(home)
        .merge(account)
        .merge(protected);

    if let Some(demo) = &demo {
        println!("Open http://{addr}/ in a browser to sign in.");
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
