//! Website sign-in: from a "Login with Amazon" button to a signed-in session. [`SignIn`] serves
//! three routes (`GET /login`, `GET /login/callback`, `POST /logout`: paths configurable), and a
//! layer given it ([`AmazonAuthBuilder::sign_in`](crate::AmazonAuthBuilder::sign_in))
//! authenticates requests by the session cookie when they carry no token of their own.
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Router};
//! use tower_amazon_auth::sign_in::SignIn;
//! use tower_amazon_auth::{AmazonAuthLayer, AmazonUser, IdentityCache};
//!
//! let cache = IdentityCache::new("amzn1.application-oa2-client.0123456789abcdef")?;
//! let sign_in = SignIn::builder(cache.clone())
//!     .client_secret(std::env::var("AMAZON_CLIENT_SECRET")?)
//!     .public_origin("https://shop.example")
//!     .build()?;
//! let auth = AmazonAuthLayer::builder(cache).sign_in(&sign_in).build()?;
//! let app: Router = Router::new()
//!     .route("/me", get(|user: AmazonUser| async move { format!("hello {}", user.user_id()) }))
//!     .layer(auth)
//!     .merge(sign_in.router());
//! # let _ = app; Ok(()) }
//! ```
//!
//! The flow, and the rules it keeps (the guide `docs/sign-in.md` has the whole story):
//!
//! 1. `GET /login?return_to=/orders`: a fresh `state` and PKCE verifier (S256, always sent:
//!    Amazon assumes `plain` without it), kept on the server; a pending-login cookie of this
//!    login's own (`HttpOnly`, `SameSite=Lax`, 10 min) binds it to the browser; `303` to
//!    Amazon. `return_to` is kept only if it is a path on this site.
//! 2. Amazon sends the browser back to `/login/callback?code=…&state=…`. The state must be one
//!    this browser started and not used yet (else a `400` page): it is used up either way. A
//!    cancel (`error=access_denied`) is a signed-out page.
//! 3. The code is exchanged with the verifier, the access token verified through the cache
//!    (the audience check included), and a **new** session created: the cookie holds only an
//!    opaque random id (256 bits; `__Host-` and `Secure` on https), the tokens stay on the
//!    server. `303` to `return_to`.
//! 4. Requests without a token of their own are authenticated by the session: its access token
//!    goes through the same cache, generations and revocations as a bearer token, and is
//!    refreshed near its expiry (one refresh per session at a time). A cookie-authenticated
//!    unsafe request must come from the site itself (`Origin` or `Sec-Fetch-Site`), else `403`.
//! 5. `POST /logout` ends the session (its record is deleted, the cookie expired) or revokes
//!    the bearer token the request carried.
//!
//! Sessions live in this instance's memory (a restart signs everyone out), unless the cache has
//! a second level with a [`SessionStore`](crate::second_level::SessionStore) (the fleet level
//! of `tower-amazon-auth-redis`): then every instance shares them and the logins under way, a
//! logout on one ends the session on all, and one refresh serves the fleet.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | [`SignIn`]: the routes as one service, and the axum router |
//! | `builder` | [`SignInBuilder`]: the settings, checked once |
//! | `routes` | what `/login`, `/login/callback` and `/logout` do |
//! | `auth` | the layer's side: a request authenticated by its session, refreshed when due |
//! | `pending` | logins under way: state, PKCE verifier, single use |
//! | `session` | the sessions on the server: ids, limits, per-user cap |
//! | `session_memo` | each thread's memory of the sessions it served last |
//! | `shared_sessions` | the sessions in a store the fleet shares: read, written, ended everywhere |
//! | `shared_store` | that store, and how long copies and tombstones last |
//! | `record` | the sessions and logins as the shared store keeps them |
//! | `cookies` | the cookies' names and attributes |
//! | `csrf` | the rule for cookie-authenticated unsafe requests |
//! | `return_to` | where a browser may be sent back to |
//! | `page` | the few HTML pages and redirects, [`escape_html`] |

mod auth;
mod builder;
mod cookies;
mod csrf;
mod page;
mod pending;
mod record;
mod return_to;
mod routes;
mod session;
mod session_memo;
mod shared_sessions;
mod shared_store;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::Full;
use tower_service::Service;

pub(crate) use self::auth::{SessionDecision, SessionRequest};
pub use self::builder::SignInBuilder;
use self::cookies::CookieRules;
pub use self::page::escape_html;
use self::pending::PendingLogins;
use self::session::Sessions;
use crate::cache::IdentityCache;
use crate::client::ClientCredentials;

/// Website sign-in: the `/login`, `/login/callback` and `/logout` routes, and the sessions
/// they create (see the [module documentation](self)). A `tower::Service` serving the three
/// routes (anything else is `404`); with the `axum` feature, [`router`](Self::router) mounts
/// them. Cheap to clone; clones share the sessions.
#[derive(Clone)]
pub struct SignIn {
    shared: Arc<SignInShared>,
}

/// The routes' paths.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) login: String,
    pub(crate) callback: String,
    pub(crate) logout: String,
    /// The login path's query parameter naming where to go once signed in.
    pub(crate) return_param: String,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            login: "/login".to_owned(),
            callback: "/login/callback".to_owned(),
            logout: "/logout".to_owned(),
            return_param: "return_to".to_owned(),
        }
    }
}

/// What every clone of a [`SignIn`] shares.
pub(crate) struct SignInShared {
    cache: IdentityCache,
    credentials: ClientCredentials,
    authorize_url: String,
    /// `scheme://host[:port]`.
    public_origin: String,
    redirect_uri: String,
    /// Space-separated.
    scope: String,
    paths: Paths,
    cookies: CookieRules,
    pending: PendingLogins,
    sessions: Sessions,
    /// A session's longest life (the session cookie's `Max-Age`).
    absolute: Duration,
}

impl SignIn {
    /// A builder for sign-in verifying through `cache` (the one the site's layer uses).
    pub fn builder(cache: IdentityCache) -> SignInBuilder {
        SignInBuilder::new(cache)
    }

    /// The redirect URI Amazon sends browsers back to: register it in the Amazon developer
    /// console as an Allowed Return URL.
    pub fn redirect_uri(&self) -> &str {
        &self.shared.redirect_uri
    }

    /// Whether this sign-in verifies through `cache` (a layer given it must).
    pub(crate) fn verifies_through(&self, cache: &IdentityCache) -> bool {
        self.shared.cache.same_as(cache)
    }

    /// Where a signed-out browser asking for `original` (a path and query on this site) is sent
    /// to sign in: the login path with `original` as its return parameter.
    pub(crate) fn login_location(&self, original: &str) -> String {
        let paths = &self.shared.paths;
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair(&paths.return_param, original)
            .finish();
        format!("{}?{query}", paths.login)
    }

    /// Whether `headers` carry this site's session cookie (live or not).
    pub(crate) fn has_session_cookie(&self, headers: &http::HeaderMap) -> bool {
        cookies::find(headers, self.shared.cookies.session_name()).is_some()
    }

    /// The current access token of the session `user` came from, while it is signed in.
    pub(crate) fn session_access_token(&self, user: &crate::AmazonUser) -> Option<crate::AccessToken> {
        let key = user.session_key()?;
        let session = self.shared.sessions.get(&key, std::time::Instant::now())?;
        Some(session.tokens().access)
    }

    /// The number of live sessions.
    pub fn session_count(&self) -> u64 {
        self.shared.sessions.count()
    }

    /// (feature `axum`) The three routes as a `Router`, to merge into the site's (outside the
    /// layer: they authenticate for themselves).
    #[cfg(feature = "axum")]
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let paths = &self.shared.paths;
        axum::Router::new()
            .route_service(&paths.login, self.clone())
            .route_service(&paths.callback, self.clone())
            .route_service(&paths.logout, self.clone())
    }
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No secret, no session.
        f.debug_struct("SignIn")
            .field("public_origin", &self.shared.public_origin)
            .field("redirect_uri", &self.shared.redirect_uri)
            .field("scope", &self.shared.scope)
            .finish_non_exhaustive()
    }
}

impl<B: Send + 'static> Service<Request<B>> for SignIn {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let (parts, _body) = request.into_parts();
        Box::pin(async move { Ok(shared.route(&parts).await) })
    }
}
