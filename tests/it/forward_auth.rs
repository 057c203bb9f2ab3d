//! `ForwardAuth`, the forward-auth server: over real HTTP on 127.0.0.1 directly (`service`),
//! behind a real nginx (`auth_request`) and a real Caddy (`forward_auth`) started with
//! `external.rs` (`proxies`), and the README's proxy snippets against the templates the proxy
//! tests run (`snippets`).
//!
//! The templates `forward_auth/nginx.conf` and `forward_auth/Caddyfile` are the configurations
//! the README shows; [`render`] fills in their addresses.

mod proxies;
mod service;
mod snippets;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::Router;
use tower_amazon_auth::{AmazonAuthBuilder, AmazonAuthLayer, IdentityCacheBuilder};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockReply, MockScope, MockUser};

use crate::common;

/// The nginx template (what goes inside `http { … }`).
pub(crate) const NGINX_TEMPLATE: &str = include_str!("forward_auth/nginx.conf");
/// The Caddyfile template (one site).
pub(crate) const CADDY_TEMPLATE: &str = include_str!("forward_auth/Caddyfile");

/// Where a rendered snippet listens, where the auth server and the backend are.
pub(crate) struct Addresses<'a> {
    /// nginx `listen` (`80`, `127.0.0.1:PORT`) or the Caddy site address.
    pub(crate) listen: &'a str,
    /// The forward-auth server, `HOST:PORT`.
    pub(crate) auth: &'a str,
    /// The upstream, `HOST:PORT`.
    pub(crate) backend: &'a str,
}

/// `template` with its `@LISTEN@` / `@SITE@`, `@AUTH@` and `@BACKEND@` filled in.
pub(crate) fn render(template: &str, at: &Addresses<'_>) -> String {
    template
        .replace("@LISTEN@", at.listen)
        .replace("@SITE@", at.listen)
        .replace("@AUTH@", at.auth)
        .replace("@BACKEND@", at.backend)
}

/// The users the tests verify, registered with a `MockAmazon`.
pub(crate) struct Users {
    /// Scope `profile`, with a name that needs encoding.
    pub(crate) good: String,
    /// Scope `profile:user_id`: email and name exist but are not granted.
    pub(crate) user_id_only: String,
    /// Issued to another application.
    pub(crate) foreign: String,
    /// Never registered: Amazon answers `invalid_token`.
    pub(crate) invalid: String,
    /// Valid, but without the profile scope: Amazon answers `insufficient_scope`.
    pub(crate) no_scope: String,
    /// Amazon answers 503 for it.
    pub(crate) amazon_fails: String,
}

pub(crate) const GOOD_USER: &str = "amzn1.account.FWDGOOD";
pub(crate) const GOOD_EMAIL: &str = "zoe@example.com";
/// Non-ASCII, a space and a `%`.
pub(crate) const GOOD_NAME: &str = "Zoë 山田 100%";
/// [`GOOD_NAME`] as the identity header carries it.
pub(crate) const GOOD_NAME_ENCODED: &str = "Zo%C3%AB %E5%B1%B1%E7%94%B0 100%25";
pub(crate) const USER_ID_ONLY: &str = "amzn1.account.FWDUIDONLY";

impl Users {
    pub(crate) fn register(mock: &MockAmazon) -> Self {
        let users = Self {
            good: mock_access_token("forward-auth good"),
            user_id_only: mock_access_token("forward-auth user id only"),
            foreign: mock_access_token("forward-auth foreign"),
            invalid: mock_access_token("forward-auth never registered"),
            no_scope: mock_access_token("forward-auth no scope"),
            amazon_fails: mock_access_token("forward-auth amazon fails"),
        };
        mock.register(
            &users.good,
            MockUser::new(GOOD_USER)
                .email(GOOD_EMAIL)
                .name(GOOD_NAME)
                .scope(MockScope::Profile),
        );
        mock.register(
            &users.user_id_only,
            MockUser::new(USER_ID_ONLY)
                .email("hidden@example.com")
                .name("Hidden Name")
                .scope(MockScope::UserId),
        );
        mock.register(
            &users.foreign,
            MockUser::new("amzn1.account.FWDFOREIGN").aud("amzn1.application-oa2-client.someone-else"),
        );
        mock.register(
            &users.no_scope,
            MockReply::insufficient_scope(MockUser::new("amzn1.account.FWDNOSCOPE")),
        );
        mock.register(&users.amazon_fails, MockReply::status(503));
        users
    }
}

/// A `MockAmazon`, a layer on it, and `ForwardAuth` served on 127.0.0.1 (with `/healthz`, as
/// the example serves it).
pub(crate) struct AuthServer {
    /// `None` once a test took Amazon down.
    pub(crate) mock: Option<MockAmazon>,
    pub(crate) users: Users,
    pub(crate) layer: AmazonAuthLayer,
    pub(crate) addr: SocketAddr,
}

impl AuthServer {
    pub(crate) async fn start(configure: impl FnOnce(IdentityCacheBuilder) -> IdentityCacheBuilder) -> Self {
        Self::with_layer(configure, |l| l).await
    }

    /// [`AuthServer::start`], with the layer's own settings too.
    pub(crate) async fn with_layer(
        configure: impl FnOnce(IdentityCacheBuilder) -> IdentityCacheBuilder,
        layer: impl FnOnce(AmazonAuthBuilder) -> AmazonAuthBuilder,
    ) -> Self {
        let mock = MockAmazon::start().await.unwrap();
        let users = Users::register(&mock);
        let cache = configure(common::builder(&mock));
        let layer = common::build_layer_with(cache, layer).unwrap();
        let app = Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .fallback_service(layer.forward_auth());
        let addr = common::serve(app).await;
        Self {
            mock: Some(mock),
            users,
            layer,
            addr,
        }
    }

    pub(crate) fn mock(&self) -> &MockAmazon {
        self.mock.as_ref().expect("Amazon is down in this test")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// What the backend received.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) uri: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// An upstream that records every request it receives (headers and whole body) and answers
/// `200 backend`.
#[derive(Clone, Default)]
pub(crate) struct Backend {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    /// Serves the backend on 127.0.0.1 and returns its address.
    pub(crate) async fn start(&self) -> SocketAddr {
        let seen = Arc::clone(&self.seen);
        let app = Router::new().fallback(move |request: Request| {
            let seen = Arc::clone(&seen);
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 4 << 20).await.unwrap_or_default();
                seen.lock().unwrap().push(Seen {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                });
                "backend"
            }
        });
        common::serve(app).await
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) fn last(&self) -> Seen {
        self.seen().pop().expect("the backend received no request")
    }
}

impl Seen {
    /// The value of `name` as text, `None` when absent.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}
