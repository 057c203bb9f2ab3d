//! What one request, one layer or one flood can do to another: a query token is gone from
//! axum's `OriginalUri` too and can be refused outright, an `AmazonUser` set before the layer
//! never passes as its verified user, a flood of rejected tokens evicts no verified identity,
//! a profile-only identity claims no expiry, and a flood of failures writes few warnings.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::OriginalUri;
use axum::routing::get;
use axum::Router;
use futures_util::future::join_all;
use tower_amazon_auth::endpoint::Endpoints;
use tower_amazon_auth::{AmazonAuthLayer, AmazonUser, IdentityCache};
use tower_amazon_auth_mock::{MockAmazon, MockReply, MockUser};

use crate::common::{build_layer, build_layer_with, builder, client, serve_base_url, token};

#[tokio::test]
async fn a_query_token_is_stripped_from_axums_original_uri_too() {
    let mock = MockAmazon::start().await.unwrap();
    let token = token("originaluri");
    mock.register(&token, MockUser::new("amzn1.account.ORIGINAL"));
    let layer = build_layer(builder(&mock)).unwrap();
    let app =
        Router::new()
            .route(
                "/me",
                get(|OriginalUri(original): OriginalUri, uri: http::Uri| async move {
                    format!("{original} {uri}")
                }),
            )
            .layer(layer);
    let base = serve_base_url(app).await.unwrap();
    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let response = client()
        .get(format!("{base}/me?a=1&access_token={encoded}&b=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = response.text().await.unwrap();
    assert_eq!(seen, "/me?a=1&b=2 /me?a=1&b=2", "the handler saw the token");
}

#[tokio::test]
async fn query_tokens_can_be_refused() {
    let mock = MockAmazon::start().await.unwrap();
    let token = token("noquery");
    mock.register(&token, MockUser::new("amzn1.account.NOQUERY"));
    let layer = build_layer_with(builder(&mock), |l| l.allow_query_token(false)).unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|user: AmazonUser| async move { user.user_id().to_owned() }),
        )
        .layer(layer);
    let base = serve_base_url(app).await.unwrap();
    let http = client();
    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let response = http
        .get(format!("{base}/me?access_token={encoded}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains(r#"error="invalid_request""#), "{challenge}");
    assert_eq!(
        mock.calls().total(),
        0,
        "a refused query token cost an upstream call"
    );
    let response = http
        .get(format!("{base}/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "headers still work");
}

#[tokio::test]
async fn an_amazon_user_set_before_an_optional_layer_is_not_its_user() {
    let mock = MockAmazon::start().await.unwrap();
    let outer_token = token("outer");
    mock.register(
        &outer_token,
        MockUser::new("amzn1.account.OUTER").aud("amzn1.application-oa2-client.OUTER"),
    );
    // The inner layer, for another app, lets anonymous requests through.
    let inner = build_layer_with(builder(&mock), |l| l.optional(true)).unwrap();
    let outer = IdentityCache::builder()
        .client_id("amzn1.application-oa2-client.OUTER")
        .base_url(mock.base_url());
    let outer = build_layer(outer).unwrap();
    let app = Router::new()
        .route(
            "/home",
            get(|user: Option<AmazonUser>| async move {
                user.map_or_else(|| "anonymous".to_owned(), |u| u.user_id().to_owned())
            }),
        )
        .layer(inner)
        .layer(outer);
    let base = serve_base_url(app).await.unwrap();
    let response = client()
        .get(format!("{base}/home"))
        .bearer_auth(&outer_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "anonymous",
        "the outer layer's user passed as the inner layer's"
    );
}

#[tokio::test]
async fn a_flood_of_rejected_tokens_evicts_no_verified_identity() {
    const CAPACITY: usize = 50;
    let mock = MockAmazon::start().await.unwrap();
    let layer = build_layer(builder(&mock).capacity(CAPACITY as u64)).unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|user: AmazonUser| async move { user.user_id().to_owned() }),
        )
        .layer(layer.clone());
    let base = serve_base_url(app).await.unwrap();
    let http = client();
    let get = |token: String| {
        let request = http.get(format!("{base}/me")).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let users: Vec<String> = (0..CAPACITY).map(|i| token(&format!("verified{i}"))).collect();
    for token in &users {
        mock.register(token, MockUser::new("amzn1.account.VERIFIED"));
        assert_eq!(get(token.clone()).await, 200);
    }
    // Twice the capacity of made-up tokens, each replayed (as a flood does).
    let flood: Vec<String> = (0..2 * CAPACITY).map(|i| token(&format!("madeup{i}"))).collect();
    for _ in 0..3 {
        let statuses = join_all(flood.iter().cloned().map(get)).await;
        assert!(statuses.iter().all(|status| *status == 401));
    }
    layer.cache().entry_count();
    for token in &users {
        assert_eq!(get(token.clone()).await, 200);
    }
    let verified: usize = users.iter().map(|t| mock.calls_for(t).tokeninfo).sum();
    assert_eq!(verified, CAPACITY, "the flood evicted verified identities");
}

#[tokio::test]
async fn a_profile_only_identity_reports_no_expiry() {
    let mock = MockAmazon::start().await.unwrap();
    let token = token("profileonly");
    mock.register(&token, MockUser::new("amzn1.account.APPSTORE"));
    let cache = IdentityCache::builder()
        .endpoints(Endpoints::appstore_at(mock.base_url()).unwrap())
        .skip_audience_check()
        .build()
        .unwrap();
    let layer = AmazonAuthLayer::builder(cache).build().unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|user: AmazonUser| async move { format!("{:?}", user.expires_at()) }),
        )
        .layer(layer);
    let base = serve_base_url(app).await.unwrap();
    let response = client()
        .get(format!("{base}/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "None", "an invented expiry");
}

/// The log lines a scoped `tracing` subscriber saw.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(bytes).into_owned());
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_flood_of_failed_verifications_writes_few_warnings() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Scoped to this thread, and a current-thread runtime runs everything on it.
    let elapsed = tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mock = MockAmazon::start().await.unwrap();
            let layer = build_layer(builder(&mock).retries(0)).unwrap();
            let app = Router::new()
                .route(
                    "/me",
                    get(|user: AmazonUser| async move { user.user_id().to_owned() }),
                )
                .layer(layer);
            let base = serve_base_url(app).await.unwrap();
            let http = client();
            let started = Instant::now();
            for i in 0..100 {
                let token = token(&format!("flood{i}"));
                mock.register(&token, MockReply::status(500));
                let response = http
                    .get(format!("{base}/me"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 503);
            }
            started.elapsed()
        })
    });
    let lines = lines.0.lock().unwrap();
    let warnings: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("WARN") && line.contains("token could not be verified"))
        .collect();
    // One line per 5 s window, at most.
    let allowed = 1 + usize::try_from(elapsed.as_secs() / 5).unwrap() + 1;
    assert!(
        !warnings.is_empty() && warnings.len() <= allowed,
        "{} warnings for 100 failures in {elapsed:?}",
        warnings.len()
    );
    if warnings.len() > 1 {
        assert!(warnings[1].contains("suppressed="), "{}", warnings[1]);
    }
}

/// `extract_token` finds a token "the way the layer does", so it must follow the layer's rules:
/// a layer built with `allow_query_token(false)` refuses a query token, and so must it.
#[tokio::test]
async fn extract_token_follows_the_layers_rules() {
    let mock = MockAmazon::start().await.unwrap();
    let layer = build_layer_with(builder(&mock), |l| l.allow_query_token(false)).unwrap();
    let token = token("extract-rules");
    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let request = http::Request::get(format!("/me?access_token={encoded}"))
        .body(())
        .unwrap();
    let found =
        tower_amazon_auth::token::extract_token(request.uri(), request.headers(), layer.token_rules());
    assert!(
        found.is_err(),
        "the layer refuses a query token, extract_token took it"
    );
}
