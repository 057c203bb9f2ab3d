//! Website sign-in over real HTTP: a site (axum, on 127.0.0.1) with `SignIn`'s routes and a
//! sign-in layer, `MockAmazon` authorizing on another address, and a small cookie-keeping
//! client standing in for the browser (redirects followed by hand, so every hop is checked).

mod attacks;
mod flow;
mod sessions;

use std::collections::HashMap;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use http::header::{COOKIE, LOCATION, SET_COOKIE};
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
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
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
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
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

/// The `Location` of a redirect.
pub(crate) fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A query parameter of a URL.
pub(crate) fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A browser, as far as these tests need one: it keeps cookies per host (no `Secure` or path
/// subtleties: the site and the mock are on different addresses) and follows no redirect by
/// itself.
pub(crate) struct Browser {
    http: reqwest::Client,
    /// Cookies by host, by name.
    pub(crate) jar: HashMap<String, HashMap<String, String>>,
}

impl Browser {
    pub(crate) fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            jar: HashMap::new(),
        }
    }

    fn host(url: &str) -> String {
        url.split('/').nth(2).unwrap_or_default().to_owned()
    }

    /// The `Cookie` header this browser sends to `url`.
    pub(crate) fn cookie_header(&self, url: &str) -> String {
        self.jar
            .get(&Self::host(url))
            .map(|cookies| {
                cookies
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    /// Sends `request` to `url` with this browser's cookies, and keeps the ones it sets.
    pub(crate) async fn send(&mut self, url: &str, request: reqwest::RequestBuilder) -> reqwest::Response {
        let cookies = self.cookie_header(url);
        let request = if cookies.is_empty() {
            request
        } else {
            request.header(COOKIE, cookies)
        };
        let response = request.send().await.unwrap();
        let jar = self.jar.entry(Self::host(url)).or_default();
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        response
    }

    pub(crate) async fn get(&mut self, url: &str) -> reqwest::Response {
        let request = self.http.get(url);
        self.send(url, request).await
    }

    /// A `POST` to `url` as a page of `origin` sends it (`Origin: origin`; none when `None`).
    pub(crate) async fn post(&mut self, url: &str, origin: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(url);
        if let Some(origin) = origin {
            request = request.header(http::header::ORIGIN, origin);
        }
        self.send(url, request).await
    }

    /// On the mock's consent page for `authorize` (its URL), signs in as `user_id` with
    /// `action` (`allow` or `cancel`): answers where the mock sends the browser back.
    pub(crate) async fn consent(&mut self, authorize: &str, user_id: &str, action: &str) -> String {
        let page = self.get(authorize).await;
        assert_eq!(page.status(), 200, "the consent page");
        let (page_url, query) = authorize.split_once('?').unwrap();
        let mut form: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        form.push(("user_id".to_owned(), user_id.to_owned()));
        form.push(("action".to_owned(), action.to_owned()));
        let request = self.http.post(page_url).form(&form);
        let answer = self.send(page_url, request).await;
        assert_eq!(answer.status(), 303, "the consent page redirects back");
        location(&answer)
    }

    /// The value of cookie `name` this browser holds for `url`'s host.
    pub(crate) fn cookie(&self, url: &str, name: &str) -> Option<String> {
        self.jar.get(&Self::host(url))?.get(name).cloned()
    }
}
