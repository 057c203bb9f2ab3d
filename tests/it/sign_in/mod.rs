//! Website sign-in over real HTTP: a site (axum, on 127.0.0.1) with `SignIn`'s routes and a
//! sign-in layer, `MockAmazon` authorizing on another address, and a small cookie-keeping
//! client standing in for the browser (redirects followed by hand, so every hop is checked).

mod attacks;
mod flow;
mod sessions;

use axum::routing::get;
use axum::{Json, Router};
use http::header::COOKIE;
use tower_amazon_auth::sign_in::{SignIn, SignInBuilder};
use tower_amazon_auth::{
    AmazonAuthBuilder, AmazonAuthLayer, AmazonUser, IdentityCache, IdentityCacheBuilder,
};
use tower_amazon_auth_mock::{MockAmazon, MockUser, MOCK_CLIENT_ID, MOCK_CLIENT_SECRET};

/// A site with sign-in, and the Amazon it signs in with.
pub(crate) struct Site {
    pub(crate) mock: MockAmazon,
    pub(crate) sign_in: SignIn,
    pub(crate) base: String,
}

impl Site {
    /// A site on the defaults (required mode).
    pub(crate) async fn new() -> Self {
        Self::with(|cache| cache, |sign_in| sign_in, |layer| layer).await
    }

    /// A site whose cache, sign-in and layer settings the closures adjust.
    pub(crate) async fn with(
        cache: impl FnOnce(IdentityCacheBuilder) -> IdentityCacheBuilder,
        sign_in: impl FnOnce(SignInBuilder) -> SignInBuilder,
        layer: impl FnOnce(AmazonAuthBuilder) -> AmazonAuthBuilder,
    ) -> Self {
        let mock = MockAmazon::start().await.unwrap();
        // Bound now and kept: another test cannot take the port in between.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let cache = cache(
            IdentityCache::builder()
                .client_id(MOCK_CLIENT_ID)
                .base_url(mock.base_url()),
        )
        .build()
        .unwrap();
        let built = sign_in(
            SignIn::builder(cache.clone())
                .client_secret(MOCK_CLIENT_SECRET)
                .public_origin(&base),
        )
        .build()
        .unwrap();
        mock.allow_redirect_uri(built.redirect_uri());
        let auth = layer(AmazonAuthLayer::builder(cache).sign_in(&built))
            .build()
            .unwrap();
        let app = Router::new()
            .route("/me", get(me).post(me))
            .route("/seen", get(seen))
            .route("/revoke", axum::routing::post(revoke))
            .layer(auth)
            .merge(built.router());
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            mock,
            sign_in: built,
            base,
        }
    }

    /// Signs `browser` in as `user` (added to the mock's consent page), going to `return_to`;
    /// answers where the callback sent it.
    pub(crate) async fn sign_in_as(&self, browser: &mut Browser, user: MockUser, return_to: &str) -> String {
        let user_id = user.user_id().to_owned();
        self.mock.add_sign_in_user(user);
        let consent = self.start(browser, return_to).await;
        let callback = browser.consent(&consent, &user_id, "allow").await;
        let landed = browser.get(&callback).await;
        assert_eq!(landed.status(), 303, "the callback signs in");
        location(&landed)
    }

    /// `GET /login?return_to=…`: answers the authorize URL it redirects to.
    pub(crate) async fn start(&self, browser: &mut Browser, return_to: &str) -> String {
        let login = format!(
            "{}/login?{}",
            self.base,
            form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", return_to)
                .finish()
        );
        let response = browser.get(&login).await;
        assert_eq!(response.status(), 303);
        location(&response)
    }
}

/// The signed-in user, as JSON.
async fn me(user: AmazonUser) -> Json<serde_json::Value> {
    Json(
        serde_json::json!({ "user_id": user.user_id(), "name": user.name(), "source": user.source().as_str() }),
    )
}

/// A handler logging its caller out the way handlers do: `AmazonUser::revoke`.
async fn revoke(user: AmazonUser) -> http::StatusCode {
    match user.revoke().await {
        Ok(()) => http::StatusCode::NO_CONTENT,
        Err(_) => http::StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// What the inner service saw of the cookies.
async fn seen(headers: http::HeaderMap) -> String {
    headers
        .get(COOKIE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub(crate) use tower_amazon_auth_test_support::cookies::{location, param, Browser};
