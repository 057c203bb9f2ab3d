//! The per-thread memo in front of the identity cache, over real HTTP on 127.0.0.1 against
//! `MockAmazon`. Each test runs server and client on one thread (`#[tokio::test]` is
//! current-thread), so every hit after the first is the memo's to answer: it must never hand
//! one token's user to another, and an invalidation from any other thread must reach it.

use crate::common::{build_layer, builder, client, serve_base_url};
use axum::routing::get;
use axum::{Extension, Router};
use tower_amazon_auth::{AccessToken, AmazonAuthLayer, AmazonUser};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockUser};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `/me` answers the user id the layer handed over.
fn app(layer: AmazonAuthLayer) -> Router {
    async fn me(Extension(user): Extension<AmazonUser>) -> String {
        user.user_id().to_owned()
    }
    Router::new().route("/me", get(me)).layer(layer)
}

/// GET `{base}/me` with `token`: the status and the user id answered.
async fn me(http: &reqwest::Client, base: &str, token: &str) -> reqwest::Result<(u16, String)> {
    let response = http.get(format!("{base}/me")).bearer_auth(token).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test]
async fn tokens_sharing_memo_slots_never_get_each_others_user() -> TestResult {
    // Far more tokens than a thread's memo has slots (64), so many share a slot.
    const USERS: usize = 300;
    let mock = MockAmazon::start().await?;
    let tokens: Vec<(String, String)> = (0..USERS)
        .map(|i| {
            (
                mock_access_token(format!("slot{i}")),
                format!("amzn1.account.SLOT{i}"),
            )
        })
        .collect();
    for (token, user) in &tokens {
        mock.register(token, MockUser::new(user));
    }
    let layer = build_layer(builder(&mock))?;
    let base = serve_base_url(app(layer.clone())).await?;
    let http = client();

    // A miss then a hit for each in turn, then every token again from the far end: each time
    // the slot may hold another token's identity.
    let order = tokens.iter().chain(tokens.iter()).chain(tokens.iter().rev());
    for (token, user) in order {
        assert_eq!(me(&http, &base, token).await?, (200, user.clone()));
    }
    let stats = layer.stats();
    assert_eq!(stats.misses, USERS as u64, "one verification per token");
    assert_eq!(stats.hits, 2 * USERS as u64);
    Ok(())
}

/// Runs `f` on a new OS thread (with a runtime of its own) and waits for it.
fn on_another_thread(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(f).join().expect("the other thread panicked");
}

#[tokio::test]
async fn invalidations_from_another_thread_reach_this_threads_memo() -> TestResult {
    let mock = MockAmazon::start().await?;
    let token = mock_access_token("memo");
    mock.register(&token, MockUser::new("amzn1.account.MEMO"));
    let layer = build_layer(builder(&mock))?;
    let base = serve_base_url(app(layer.clone())).await?;
    let http = client();
    let verifications = || mock.calls_for(&token).tokeninfo;

    assert_eq!(me(&http, &base, &token).await?.0, 200);
    assert_eq!(me(&http, &base, &token).await?.0, 200);
    assert_eq!(verifications(), 1, "the second request was a hit");

    let cache = layer.cache().clone();
    let logout = AccessToken::new(token.clone());
    on_another_thread(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(cache.invalidate(&logout)).unwrap();
    });
    assert_eq!(me(&http, &base, &token).await?.0, 200);
    assert_eq!(verifications(), 2, "invalidate missed this thread's memo");
    assert_eq!(me(&http, &base, &token).await?.0, 200);
    assert_eq!(verifications(), 2, "memoized again after the new verification");

    let cache = layer.cache().clone();
    on_another_thread(move || cache.invalidate_all());
    assert_eq!(me(&http, &base, &token).await?.0, 200);
    assert_eq!(verifications(), 3, "invalidate_all missed this thread's memo");
    Ok(())
}
