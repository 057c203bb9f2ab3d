//! Shared helpers for the integration tests: realistic tokens, an axum app behind the layer,
//! served on 127.0.0.1, a reqwest client, and a harness bundling them with a `MockAmazon`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::routing::get;
use axum::{Extension, Json, Router};
use tower_amazon_auth::{
    AmazonAuthBuilder, AmazonAuthLayer, AmazonUser, BuildError, IdentityCache, IdentityCacheBuilder,
};
use tower_amazon_auth_mock::{MockAmazon, MOCK_CLIENT_ID};

/// A realistic ~400-byte access token whose tag makes it unique.
pub fn token(tag: &str) -> String {
    let filler: String = "IwEBIKq7xZ-wT9sL0_bq3YmNcVd4RfHjE2uPa8Gk5oXnUeW1ytQz6iDrMhC7vBf"
        .chars()
        .cycle()
        .take(380)
        .collect();
    format!("Atza|{tag}{filler}")
}

/// Counts requests that reached the inner service.
#[derive(Clone, Default)]
pub struct Reached(pub Arc<AtomicUsize>);

impl Reached {
    /// How many requests reached it so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A cache builder pointed at `mock`, accepting the mock's client id.
pub fn builder(mock: &MockAmazon) -> IdentityCacheBuilder {
    IdentityCache::builder()
        .client_id(MOCK_CLIENT_ID)
        .base_url(mock.base_url())
}

/// A layer with every layer setting at its default, on the cache `cache` builds.
pub fn build_layer(cache: IdentityCacheBuilder) -> Result<AmazonAuthLayer, BuildError> {
    AmazonAuthLayer::builder(cache.build()?).build()
}

/// A layer with the settings `configure` gives it, on the cache `cache` builds.
pub fn build_layer_with(
    cache: IdentityCacheBuilder,
    configure: impl FnOnce(AmazonAuthBuilder) -> AmazonAuthBuilder,
) -> Result<AmazonAuthLayer, BuildError> {
    configure(AmazonAuthLayer::builder(cache.build()?)).build()
}

/// `/me` answers the user as JSON, plus what it saw of the credentials (to check stripping).
pub fn app(layer: AmazonAuthLayer, reached: Reached) -> Router {
    Router::new()
        .route(
            "/me",
            get(
                |Extension(user): Extension<AmazonUser>, request: Request| async move {
                    reached.0.fetch_add(1, Ordering::SeqCst);
                    Json(serde_json::json!({
                        "user_id": user.user_id(),
                        "email": user.email(),
                        "name": user.name(),
                        "postal_code": user.postal_code(),
                        "aud": user.aud(),
                        "source": user.source().as_str(),
                        "authorization": request.headers().get("authorization").is_some(),
                        "amz_header": request.headers().get("x-amz-access-token").is_some(),
                        "query": request.uri().query(),
                    }))
                },
            ),
        )
        .layer(layer)
}

/// Serves `router` on 127.0.0.1:0 and returns its address.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// Serves `app` on 127.0.0.1 (a free port) for the rest of the test; returns its base URL.
/// For tests that return a `Result`: a failure to listen is an error rather than a panic.
pub async fn serve_base_url(app: Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// A client that never follows redirects and gives up after 10 s.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Waits up to 5 s for `condition`.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// How long a test waits for something to propagate between instances.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `check` until it is true or [`PATIENCE`] has passed; returns how long it took.
pub async fn within_patience<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            let took = started.elapsed();
            let _ = writeln!(std::io::stderr(), "fleet: {what} after {took:?}");
            return took;
        }
        assert!(started.elapsed() < PATIENCE, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Serves `app(layer)` and sends it one `GET /me` with `token` as a bearer token.
pub async fn bearer_once(layer: AmazonAuthLayer, token: &str) -> reqwest::Response {
    let addr = serve(app(layer, Reached::default())).await;
    client()
        .get(format!("http://{addr}/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A `MockAmazon`, a layer on it, and `app` behind that layer served on 127.0.0.1, with a
/// client to call it. Test modules add the request helpers they need through a trait of their
/// own (`impl CoreHarness for Harness`): inherent `impl Harness` blocks in two modules of one
/// binary could not both define a `bearer` or a `good`.
pub struct Harness {
    /// The Amazon the layer verifies with.
    pub mock: MockAmazon,
    /// The layer in front of the app.
    pub layer: AmazonAuthLayer,
    /// Where the app listens.
    pub addr: SocketAddr,
    /// `http://{addr}`.
    pub base: String,
    /// Requests that reached the app behind the layer.
    pub reached: Reached,
    /// A client for it (see [`client`]).
    pub http: reqwest::Client,
}

impl Harness {
    /// Starts a mock and serves a layer on a cache built from `builder(&mock)` as `configure`
    /// adjusts it (the layer's own settings at their defaults).
    pub async fn new(configure: impl FnOnce(IdentityCacheBuilder) -> IdentityCacheBuilder) -> Self {
        Self::with_layer(configure, |layer| layer).await
    }

    /// As [`new`](Self::new), with the layer's own settings as `layer` adjusts them.
    pub async fn with_layer(
        configure: impl FnOnce(IdentityCacheBuilder) -> IdentityCacheBuilder,
        layer: impl FnOnce(AmazonAuthBuilder) -> AmazonAuthBuilder,
    ) -> Self {
        let mock = MockAmazon::start().await.unwrap();
        let layer = build_layer_with(configure(builder(&mock)), layer).unwrap();
        let reached = Reached::default();
        let addr = serve(app(layer.clone(), reached.clone())).await;
        Self {
            mock,
            layer,
            addr,
            base: format!("http://{addr}"),
            reached,
            http: client(),
        }
    }
}
