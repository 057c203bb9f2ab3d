//! Cache coherence: `invalidate` and `revoke` win over every cached copy and every
//! verification in flight (the stale-if-error fallback and late joiners included), and a
//! revoked token is refused until it expires although Amazon still calls it valid.

use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use tower_amazon_auth::{AccessToken, AmazonAuthLayer, AmazonUser, IdentityCacheBuilder};
use tower_amazon_auth_mock::{MockAmazon, MockReply, MockUser};

use crate::common::{build_layer, builder, client, serve_base_url, token};

/// Amazon takes this long to verify the tokens these tests race against.
const SLOW: Duration = Duration::from_millis(500);

/// A layer on a fresh mock, `/me` and `POST /logout` behind it, served on 127.0.0.1.
struct Served {
    mock: MockAmazon,
    layer: AmazonAuthLayer,
    base: String,
    http: reqwest::Client,
}

impl Served {
    async fn new(configure: impl FnOnce(IdentityCacheBuilder) -> IdentityCacheBuilder) -> Self {
        let mock = MockAmazon::start().await.unwrap();
        let layer = build_layer(configure(builder(&mock))).unwrap();
        let app = Router::new()
            .route(
                "/me",
                get(|user: AmazonUser| async move { user.user_id().to_owned() }),
            )
            .route(
                "/logout",
                post(|user: AmazonUser| async move {
                    match user.revoke().await {
                        Ok(()) => StatusCode::NO_CONTENT,
                        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                    }
                }),
            )
            .layer(layer.clone());
        let base = serve_base_url(app).await.unwrap();
        Self {
            mock,
            layer,
            base,
            http: client(),
        }
    }

    /// `GET /me` with `token`, in a task of its own: its status when it is done.
    fn me(&self, token: &str) -> tokio::task::JoinHandle<u16> {
        let request = self.http.get(format!("{}/me", self.base)).bearer_auth(token);
        tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
    }

    async fn status(&self, token: &str) -> u16 {
        self.me(token).await.unwrap()
    }

    async fn invalidate(&self, token: &str) {
        self.layer
            .cache()
            .invalidate(&AccessToken::new(token))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_invalidation_during_a_verification_is_not_lost() {
    let s = Served::new(|b| b).await;
    let token = token("inflight");
    s.mock.register(
        &token,
        MockReply::user(MockUser::new("amzn1.account.INFLIGHT")).delayed(SLOW),
    );
    let first = s.me(&token);
    tokio::time::sleep(SLOW / 5).await;
    // Amazon changes its mind while the first verification is under way; we are told.
    s.invalidate(&token).await;
    s.mock.register(&token, MockReply::invalid_token());
    assert_eq!(
        first.await.unwrap(),
        200,
        "the request under way keeps its verdict"
    );
    assert_eq!(
        s.status(&token).await,
        401,
        "the verdict of a flight older than the invalidation was stored"
    );
    assert_eq!(s.mock.calls_for(&token).tokeninfo, 2);
}

#[tokio::test]
async fn a_request_after_an_invalidation_never_joins_the_flight_before_it() {
    let s = Served::new(|b| b).await;
    let token = token("latejoiner");
    s.mock.register(
        &token,
        MockReply::user(MockUser::new("amzn1.account.LATE")).delayed(SLOW),
    );
    let first = s.me(&token);
    tokio::time::sleep(SLOW / 5).await;
    s.invalidate(&token).await;
    s.mock.register(&token, MockReply::invalid_token());
    // Starts while the first verification is still under way, but after the invalidation.
    let late = s.me(&token);
    assert_eq!(
        late.await.unwrap(),
        401,
        "joined a flight older than the invalidation"
    );
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(s.mock.calls_for(&token).tokeninfo, 2);
}

#[tokio::test]
async fn an_invalidation_during_an_outage_is_not_undone_by_stale_if_error() {
    let s = Served::new(|b| {
        b.stale_if_error(true)
            .max_ttl(Duration::from_millis(300))
            .clock_skew(Duration::ZERO)
            .retries(0)
    })
    .await;
    let token = token("stale");
    let user = MockUser::new("amzn1.account.STALE");
    s.mock.register(&token, user);
    assert_eq!(s.status(&token).await, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Past max_ttl; Amazon is down (slowly): the next request would be served the stale
    // identity.
    s.mock.register(&token, MockReply::status(503).delayed(SLOW));
    let during = s.me(&token);
    tokio::time::sleep(SLOW / 5).await;
    s.invalidate(&token).await;
    s.mock.register(&token, MockReply::invalid_token());
    assert_eq!(during.await.unwrap(), 200, "served stale, as configured");
    assert_eq!(
        s.status(&token).await,
        401,
        "the stale identity came back after the invalidation"
    );
}

#[tokio::test]
async fn revoke_refuses_a_token_amazon_still_accepts_without_asking_it() {
    let s = Served::new(|b| b).await;
    let token = token("logout");
    s.mock.register(&token, MockUser::new("amzn1.account.LOGOUT"));
    assert_eq!(s.status(&token).await, 200);
    assert_eq!(
        s.status(&token).await,
        200,
        "hot in the cache and this thread's memo"
    );

    let logout = s
        .http
        .post(format!("{}/logout", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let calls = s.mock.calls_for(&token);
    for _ in 0..3 {
        assert_eq!(s.status(&token).await, 401, "a revoked token was accepted");
    }
    assert_eq!(
        s.mock.calls_for(&token),
        calls,
        "a revoked token cost an upstream call"
    );
    // Forgetting the cache does not undo a logout.
    s.invalidate(&token).await;
    assert_eq!(s.status(&token).await, 401, "invalidate undid the revocation");
    assert_eq!(s.layer.stats().revocations, 1);
    assert_eq!(s.layer.stats().revoked, 4);
}

#[tokio::test]
async fn revoke_wins_over_a_verification_in_flight() {
    let s = Served::new(|b| b).await;
    let token = token("revokeinflight");
    s.mock.register(
        &token,
        MockReply::user(MockUser::new("amzn1.account.REVOKEINFLIGHT")).delayed(SLOW),
    );
    let waiting = s.me(&token);
    tokio::time::sleep(SLOW / 5).await;
    s.layer
        .cache()
        .revoke(&AccessToken::new(token.clone()))
        .await
        .unwrap();
    assert_eq!(
        waiting.await.unwrap(),
        401,
        "a request waiting for Amazon during the logout was let in"
    );
    assert_eq!(s.status(&token).await, 401);
    assert_eq!(s.mock.calls_for(&token).tokeninfo, 1);
}

#[tokio::test]
async fn revocations_are_never_evicted_and_one_too_many_is_refused() {
    const MAX: u64 = 64;
    let s = Served::new(|b| b.max_revocations(MAX)).await;
    let cache = s.layer.cache();
    // Old revocations, their tokens replayed (as a client that keeps a logged-out token does).
    let old: Vec<String> = (0..MAX / 2).map(|i| token(&format!("old-revoked-{i}"))).collect();
    for token in &old {
        s.mock.register(token, MockUser::new("amzn1.account.OLD"));
        cache.revoke(&AccessToken::new(token.clone())).await.unwrap();
    }
    for _ in 0..5 {
        for token in &old {
            assert_eq!(s.status(token).await, 401);
        }
    }
    // A new revocation, read rarely, must not lose to the often-read old ones.
    let fresh = token("fresh-revoked");
    s.mock.register(&fresh, MockUser::new("amzn1.account.FRESH"));
    cache.revoke(&AccessToken::new(fresh.clone())).await.unwrap();
    let more: Vec<String> = (0..MAX / 2 - 1)
        .map(|i| token(&format!("more-revoked-{i}")))
        .collect();
    for token in &more {
        cache.revoke(&AccessToken::new(token.clone())).await.unwrap();
    }
    cache.entry_count();
    assert_eq!(
        s.status(&fresh).await,
        401,
        "a revocation was evicted: a lost logout"
    );
    assert_eq!(s.mock.calls_for(&fresh).total(), 0);
    // Full: one more is refused, not recorded and forgotten.
    let refused = cache.revoke(&AccessToken::new(token("one-too-many"))).await;
    assert_eq!(refused, Err(tower_amazon_auth::CacheError::TooManyRevocations));
}

#[tokio::test]
async fn a_user_made_in_a_test_cannot_revoke_anything() {
    let user = MockUser::new("amzn1.account.UNIT").amazon_user();
    assert_eq!(user.revoke().await, Err(tower_amazon_auth::CacheError::NoCache));
}
