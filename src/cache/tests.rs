//! The cache's unit tests: what only code inside the cache can arrange (an entry the store
//! drops behind the memo's back, a verification started at a chosen generation, one that is
//! never polled).

use std::time::{Duration, Instant};

use super::in_flight::Joined;
use super::lookup::WAIT_MARGIN;
use super::IdentityCache;
use crate::access_token::AccessToken;
use crate::error::{AuthError, Rejection, Unavailable};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockReply, MockUser, MOCK_CLIENT_ID};

/// A cache on `mock` with `deadline`.
fn cache_on(mock: &MockAmazon, deadline: Duration) -> IdentityCache {
    IdentityCache::builder()
        .client_id(MOCK_CLIENT_ID)
        .base_url(mock.base_url())
        .deadline(deadline)
        .build()
        .unwrap()
}
/// The store drops a token to make room while this thread's memo still holds it; another
/// thread's verification then learns that Amazon revoked it. From then on this thread must
/// refuse it too, as the store would. (A unit test: only here can the store drop an entry
/// without the memo being told, as moka's eviction does.)
#[tokio::test]
async fn a_rejection_learned_on_another_thread_reaches_this_threads_memo() {
    let mock = MockAmazon::start().await.unwrap();
    let token = mock_access_token("revoked");
    mock.register(&token, MockUser::new("amzn1.account.REVOKED"));
    let cache = cache_on(&mock, Duration::from_secs(5));
    let access = AccessToken::new(token.clone());
    let key = cache.key(token.as_bytes());

    assert!(cache.resolve(key, &access).await.is_ok());
    assert!(matches!(cache.cached(&key), Some(Ok(_))), "a memo hit");
    cache.inner.store.invalidate(&key);
    assert!(
        matches!(cache.cached(&key), Some(Ok(_))),
        "the memo outlives the store's entry"
    );

    mock.register(&token, MockReply::invalid_token());
    let other = cache.clone();
    // Another OS thread, on this runtime (this thread drives its I/O while waiting).
    let runtime = tokio::runtime::Handle::current();
    let verdict = tokio::task::spawn_blocking(move || runtime.block_on(other.resolve(key, &access)))
        .await
        .unwrap();
    assert_eq!(verdict.err(), Some(AuthError::InvalidToken(Rejection::Invalid)));
    assert_eq!(mock.calls_for(&token).tokeninfo, 2);
    assert_eq!(
        cache.cached(&key).map(|verdict| verdict.err()),
        Some(Some(AuthError::InvalidToken(Rejection::Invalid))),
        "this thread's memo still answered for a revoked token"
    );
}

/// A verification that started between `revoke`'s generation bump and a look at the
/// tombstone (the interleaving a review found when the tombstone was read first): its verdict
/// is never stored, so no later request is served the revoked token from the cache.
#[tokio::test]
async fn a_verification_ending_after_a_revoke_stores_nothing() {
    let mock = MockAmazon::start().await.unwrap();
    let token = mock_access_token("revoke-race");
    mock.register(&token, MockUser::new("amzn1.account.RACE"));
    let cache = cache_on(&mock, Duration::from_secs(5));
    let access = AccessToken::new(token.clone());
    let key = cache.key(token.as_bytes());
    cache.revoke(&access).await.unwrap();
    // Verifies under the bumped generation, as a request that missed the tombstone would.
    let generation = cache.inner.generations.current(key);
    assert!(
        cache.verify_and_store(key, generation, &access).await.is_ok(),
        "Amazon still says valid"
    );
    assert!(
        cache.cached(&key).is_none(),
        "the revoked token was stored and served"
    );
    assert_eq!(
        cache.resolve(key, &access).await.err(),
        Some(AuthError::InvalidToken(Rejection::Revoked))
    );
}

/// A verification kept alive but never polled (its caller dropped the race it was in, say)
/// must not hold the requests waiting for it past the deadline.
#[tokio::test]
async fn a_waiting_request_waits_no_longer_than_the_deadline() {
    let mock = MockAmazon::start().await.unwrap();
    let token = mock_access_token("stuck-verification");
    mock.register(&token, MockUser::new("amzn1.account.STUCK"));
    let deadline = Duration::from_millis(200);
    let cache = cache_on(&mock, deadline);
    let key = cache.key(token.as_bytes());
    let generation = cache.inner.generations.current(key);
    let stuck = cache.inner.in_flight.join(key, generation);
    assert!(matches!(stuck, Joined::Verify(_)));
    let started = Instant::now();
    let verdict = cache.resolve(key, &AccessToken::new(token)).await;
    assert_eq!(verdict.err(), Some(AuthError::Unavailable(Unavailable::Timeout)));
    assert!(started.elapsed() < deadline + WAIT_MARGIN + Duration::from_secs(1));
    drop(stuck);
}
