//! Sessions over time: refresh at expiry (once for a thousand concurrent requests), what a
//! refused or failed refresh does, logout racing a refresh, the per-user cap, a full store,
//! optional mode.

use std::time::Duration;

use futures_util::future::join_all;
use tower_amazon_auth_mock::{MockReply, MockUser};

use super::{Browser, Site};

/// A site whose sessions' access tokens have one second of usable life (Amazon's hour less a
/// clock skew of 3 599 s), so a test sees them expire.
async fn short_lived() -> Site {
    Site::with(
        |cache| {
            cache
                .max_ttl(Duration::from_secs(3600))
                .clock_skew(Duration::from_secs(3599))
        },
        |sign_in| sign_in,
        |layer| layer,
    )
    .await
}

/// `n` concurrent `GET /me` with `browser`'s cookies: their statuses.
async fn burst(site: &Site, browser: &Browser, n: usize) -> Vec<u16> {
    let cookie = browser.cookie_header(&site.base);
    let client = reqwest::Client::new();
    join_all((0..n).map(|_| {
        let request = client
            .get(format!("{}/me", site.base))
            .header("cookie", cookie.clone())
            .send();
        async move { request.await.map(|r| r.status().as_u16()).unwrap_or(0) }
    }))
    .await
}

async fn me_status(browser: &mut Browser, site: &Site) -> u16 {
    browser.get(&format!("{}/me", site.base)).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_requests_at_expiry_cost_one_refresh() {
    let site = short_lived().await;
    let mut browser = Browser::new();
    site.sign_in_as(&mut browser, MockUser::new("amzn1.account.HEIDI"), "/")
        .await;
    assert_eq!(me_status(&mut browser, &site).await, 200);
    assert_eq!(site.mock.calls().token, 1, "the code exchange");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The refresh takes a while at Amazon, so the whole burst arrives while it is under way.
    site.mock.set_token_endpoint_reply(Some(
        MockReply::user(MockUser::new("unused")).delayed(Duration::from_millis(300)),
    ));
    let started = std::time::Instant::now();
    let statuses = burst(&site, &browser, 1000).await;
    let took = started.elapsed();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{:?}",
        statuses.iter().filter(|s| **s != 200).count()
    );
    // One refresh for the whole burst. The refreshed token is usable for a second too: on a
    // machine so loaded that the burst outlives it, each further second may take one more.
    let refreshes = site.mock.calls().token - 1;
    let seconds = took.saturating_sub(Duration::from_millis(300)).as_secs();
    let allowed = 1 + usize::try_from(seconds).unwrap_or(usize::MAX);
    assert!(
        (1..=allowed).contains(&refreshes),
        "{refreshes} refreshes for a burst of {took:?}"
    );
}

#[tokio::test]
async fn invalid_grant_ends_the_session_and_invalid_client_keeps_it() {
    let site = short_lived().await;
    let mut browser = Browser::new();
    site.sign_in_as(&mut browser, MockUser::new("amzn1.account.IVAN"), "/")
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // A bad secret deployed: 503, the session kept.
    site.mock.set_token_endpoint_reply(Some(MockReply::json(
        401,
        serde_json::json!({"error": "invalid_client", "error_description": "bad secret"}),
    )));
    assert_eq!(me_status(&mut browser, &site).await, 503);
    // Amazon down: 503, the session kept.
    site.mock.set_token_endpoint_reply(Some(MockReply::status(500)));
    assert_eq!(me_status(&mut browser, &site).await, 503);
    assert_eq!(site.sign_in.session_count(), 1);
    // Back to normal: the refresh goes through.
    site.mock.set_token_endpoint_reply(None);
    assert_eq!(me_status(&mut browser, &site).await, 200);

    // The refresh token revoked at Amazon: the session ends, the cookie is cleared.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    site.mock.set_token_endpoint_reply(Some(MockReply::json(
        400,
        serde_json::json!({"error": "invalid_grant"}),
    )));
    assert_eq!(me_status(&mut browser, &site).await, 401);
    assert!(browser.cookie(&site.base, "taa_session").is_none(), "cleared");
    assert_eq!(site.sign_in.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_during_a_refresh_is_not_undone_by_it() {
    let site = short_lived().await;
    let mut browser = Browser::new();
    site.sign_in_as(&mut browser, MockUser::new("amzn1.account.JUDY"), "/")
        .await;
    let cookie = browser.cookie_header(&site.base);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The refresh takes a while at Amazon; the logout lands meanwhile.
    site.mock.set_token_endpoint_reply(Some(
        MockReply::user(MockUser::new("unused")).delayed(Duration::from_millis(500)),
    ));
    let client = reqwest::Client::new();
    let refreshing = tokio::spawn({
        let request = client
            .get(format!("{}/me", site.base))
            .header("cookie", cookie.clone())
            .send();
        async move { request.await.unwrap().status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = browser
        .post(&format!("{}/logout", site.base), Some(&site.base))
        .await;
    assert_eq!(out.status(), 303);
    assert_eq!(
        refreshing.await.unwrap(),
        401,
        "the refresh finished into an ended session"
    );
    let after = client
        .get(format!("{}/me", site.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401, "no refresh brings a signed-out session back");
}

#[tokio::test]
async fn a_user_beyond_the_cap_loses_the_oldest_session() {
    let site = Site::with(
        |cache| cache,
        |sign_in| sign_in.max_sessions_per_user(2),
        |layer| layer,
    )
    .await;
    let mut browsers: Vec<Browser> = (0..3).map(|_| Browser::new()).collect();
    for browser in &mut browsers {
        site.sign_in_as(browser, MockUser::new("amzn1.account.KIM"), "/")
            .await;
    }
    assert_eq!(me_status(&mut browsers[0], &site).await, 401, "the oldest ended");
    assert_eq!(me_status(&mut browsers[1], &site).await, 200);
    assert_eq!(me_status(&mut browsers[2], &site).await, 200);
}

#[tokio::test]
async fn a_full_store_ends_the_least_recently_used_session_and_admits_the_new_one() {
    let site = Site::with(|cache| cache, |sign_in| sign_in.max_sessions(2), |layer| layer).await;
    let mut first = Browser::new();
    let mut second = Browser::new();
    let mut third = Browser::new();
    site.sign_in_as(&mut first, MockUser::new("amzn1.account.L1"), "/")
        .await;
    site.sign_in_as(&mut second, MockUser::new("amzn1.account.L2"), "/")
        .await;
    // The first is used again: the second is now the least recently used.
    assert_eq!(me_status(&mut first, &site).await, 200);
    site.sign_in_as(&mut third, MockUser::new("amzn1.account.L3"), "/")
        .await;
    assert_eq!(site.sign_in.session_count(), 2);
    assert_eq!(
        me_status(&mut third, &site).await,
        200,
        "a new session is never turned away"
    );
    assert_eq!(me_status(&mut first, &site).await, 200);
    assert_eq!(me_status(&mut second, &site).await, 401);
}

#[tokio::test]
async fn in_optional_mode_an_ended_session_is_a_signed_out_visitor() {
    let site = Site::with(|cache| cache, |sign_in| sign_in, |layer| layer.optional(true)).await;
    let answered = reqwest::Client::new()
        .get(format!("{}/seen", site.base))
        .header(
            "cookie",
            "taa_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; theme=dark",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 200, "not a 401");
    assert!(answered.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        answered.text().await.unwrap(),
        "taa_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; theme=dark"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_requests_waiting_for_a_failed_refresh_share_its_failure() {
    let site = short_lived().await;
    let mut browser = Browser::new();
    site.sign_in_as(&mut browser, MockUser::new("amzn1.account.WAITER"), "/")
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Amazon's token endpoint fails, slowly: every request of the burst arrives meanwhile.
    site.mock
        .set_token_endpoint_reply(Some(MockReply::status(500).delayed(Duration::from_millis(300))));
    let calls = site.mock.calls().token;
    let statuses = burst(&site, &browser, 20).await;
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    assert_eq!(
        site.mock.calls().token - calls,
        1,
        "one refresh tried for the whole burst, not one per waiting request"
    );
    assert_eq!(site.sign_in.session_count(), 1, "the session is kept");
}
