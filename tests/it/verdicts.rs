//! One verdict for the same answers from Amazon, whichever endpoint answers first, and
//! Amazon's back-off honoured: `Retry-After` capped, no new verification while it asked us to
//! wait.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tower_amazon_auth_mock::{MockAmazon, MockReply, MockUser};

use crate::common::{build_layer, builder, client, serve, token, Reached};

/// A random delay up to 30 ms, different for each call.
fn jitter() -> Duration {
    Duration::from_millis(u64::from(rand_byte()) % 31)
}

fn rand_byte() -> u8 {
    // std's hasher is randomly keyed per instance: enough randomness for delays.
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8).to_le_bytes()[0]
}

/// What tokeninfo or profile answers in a row of the table.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Valid,
    Invalid,
    Scope,
    Down,
    Garbage,
    OtherUser,
    Hang,
}

fn reply(answer: Answer, user: &MockUser) -> MockReply {
    let reply = match answer {
        Answer::Valid => MockReply::user(user.clone()),
        Answer::Invalid => MockReply::invalid_token(),
        Answer::Scope => MockReply::json(
            401,
            serde_json::json!({"error": "insufficient_scope", "error_description": "scope"}),
        ),
        Answer::Down => MockReply::status(503),
        Answer::Garbage => MockReply::garbage(),
        Answer::OtherUser => MockReply::user(MockUser::new("amzn1.account.SOMEONEELSE")),
        Answer::Hang => MockReply::hang(),
    };
    reply.delayed(jitter())
}

/// Sends 50 first requests, each with its own token whose two endpoints answer `tokeninfo` and
/// `profile` after random delays; returns their statuses.
async fn row(tokeninfo: Answer, profile: Answer) -> Vec<u16> {
    let mock = MockAmazon::start().await.unwrap();
    // No retries: a retried 503 would only make the row slower. The deadline ends the rows
    // where an endpoint never answers, so it must leave ample time on a loaded machine (the
    // whole suite on two busy cores): for the other endpoint's answer, which decides the row
    // (the table sends 900 first requests, 1 800 upstream calls, at once), and for the row's 50
    // requests to arrive, since each verification of such a row is a failure for the breaker
    // and five of them open it, after which a request gets a 503 (back-off) whatever the
    // answers. With 2 s, CI saw whole rows answered 503.
    let layer = build_layer(builder(&mock).retries(0).deadline(Duration::from_secs(8))).unwrap();
    let addr = serve(crate::common::app(layer, Reached::default())).await;
    // Longer than the deadline: the layer, not the client, must end every request.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let tokens: Vec<String> = (0..50)
        .map(|i| token(&format!("row{tokeninfo:?}{profile:?}{i}")))
        .collect();
    for token in &tokens {
        let user = MockUser::new("amzn1.account.ROW");
        let registered = user
            .clone()
            .tokeninfo_reply(reply(tokeninfo, &user))
            .profile_reply(reply(profile, &user));
        mock.register(token, registered);
    }
    join_all(tokens.iter().map(|token| {
        let request = http.get(format!("http://{addr}/me")).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    }))
    .await
}

#[tokio::test]
async fn the_same_answers_always_give_the_same_status() {
    use Answer::*;
    let table = [
        (Invalid, Valid, 401),
        (Invalid, Down, 401),
        (Invalid, Garbage, 401),
        (Invalid, Scope, 401),
        (Valid, Invalid, 401),
        (Valid, Scope, 403),
        (Valid, Down, 503),
        (Valid, Garbage, 503),
        (Valid, OtherUser, 401),
        (Down, Invalid, 401),
        (Garbage, Invalid, 401),
        (Down, Valid, 503),
        (Down, Scope, 503),
        (Garbage, Down, 503),
        // A call that runs past the deadline is a timeout, and the other's verdict decides.
        (Hang, Invalid, 401),
        (Hang, Valid, 503),
        (Valid, Hang, 503),
        (Invalid, Hang, 401),
    ];
    let rows = join_all(table.iter().map(|&(t, p, _)| row(t, p))).await;
    for ((tokeninfo, profile, expected), statuses) in table.iter().zip(rows) {
        assert!(
            statuses.iter().all(|status| status == expected),
            "tokeninfo {tokeninfo:?} + profile {profile:?}: expected {expected} every time, got {statuses:?}"
        );
    }
}

#[tokio::test]
async fn answers_naming_two_users_are_refused_and_remembered() {
    let mock = MockAmazon::start().await.unwrap();
    let layer = build_layer(builder(&mock)).unwrap();
    let addr = serve(crate::common::app(layer, Reached::default())).await;
    let token = token("twousers");
    let user = MockUser::new("amzn1.account.ONE");
    mock.register(
        &token,
        user.profile_reply(MockReply::user(MockUser::new("amzn1.account.TWO"))),
    );
    let http = client();
    for _ in 0..3 {
        let response = http
            .get(format!("http://{addr}/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let calls = mock.calls_for(&token);
    assert_eq!(
        (calls.tokeninfo, calls.profile),
        (1, 1),
        "each retry asked Amazon again"
    );
}

#[tokio::test]
async fn a_429_is_heeded_even_when_the_other_answer_decides() {
    let mock = MockAmazon::start().await.unwrap();
    let layer = build_layer(builder(&mock)).unwrap();
    let addr = serve(crate::common::app(layer, Reached::default())).await;
    let http = client();
    let throttled = token("throttled-but-decided");
    mock.register(
        &throttled,
        MockUser::new("amzn1.account.T")
            .tokeninfo_reply(MockReply::status(429).retry_after(30))
            .profile_reply(MockReply::invalid_token()),
    );
    let response = http
        .get(format!("http://{addr}/me"))
        .bearer_auth(&throttled)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the profile's verdict decides");
    let fresh = token("after-hidden-429");
    mock.register(&fresh, MockUser::new("amzn1.account.F"));
    let response = http
        .get(format!("http://{addr}/me"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "Amazon's 429 was ignored");
    assert_eq!(mock.calls_for(&fresh).total(), 0);
}

#[tokio::test]
async fn amazons_retry_after_is_capped() {
    let mock = MockAmazon::start().await.unwrap();
    let layer = build_layer(builder(&mock).retries(0)).unwrap();
    let addr = serve(crate::common::app(layer, Reached::default())).await;
    let token = token("retryafter");
    mock.register(&token, MockReply::status(503).retry_after(1_000_000_000_000));
    let response = client()
        .get(format!("http://{addr}/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=300).contains(&retry_after),
        "Retry-After {retry_after} passed on uncapped"
    );
}

#[tokio::test]
async fn after_a_429_no_new_token_is_verified_until_the_back_off_passes() {
    let mock = MockAmazon::start().await.unwrap();
    let layer = build_layer(builder(&mock)).unwrap();
    let addr = serve(crate::common::app(layer.clone(), Reached::default())).await;
    let http = client();
    let get = |token: String| {
        let request = http.get(format!("http://{addr}/me")).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    let throttled = token("throttled");
    mock.register(&throttled, MockReply::status(429).retry_after(3));
    let started = Instant::now();
    assert_eq!(get(throttled.clone()).await.status(), 503);
    let calls = mock.calls().total();

    let fresh: Vec<String> = (0..50).map(|i| token(&format!("fresh{i}"))).collect();
    for token in &fresh {
        mock.register(token, MockUser::new("amzn1.account.FRESH"));
    }
    let during = join_all(fresh.iter().cloned().map(get)).await;
    for response in &during {
        assert_eq!(response.status(), 503);
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=3).contains(&retry_after),
            "Retry-After {retry_after}: not what remains"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the machine took the whole back-off to send 50 requests: the test proves nothing"
    );
    assert_eq!(
        mock.calls().total(),
        calls,
        "new tokens were verified during the back-off"
    );
    assert_eq!(layer.stats().backed_off, 50, "{:?}", layer.stats());

    // After the window one probe goes through; its success closes the breaker.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()) + Duration::from_millis(100))
        .await;
    assert_eq!(get(fresh[0].clone()).await.status(), 200, "the probe");
    let after = join_all(fresh[1..].iter().cloned().map(get)).await;
    assert!(
        after.iter().all(|response| response.status() == 200),
        "{:?}",
        after.iter().map(reqwest::Response::status).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn while_backing_off_stale_if_error_serves_what_it_verified_before() {
    let mock = MockAmazon::start().await.unwrap();
    let layer = build_layer(
        builder(&mock)
            .stale_if_error(true)
            .max_ttl(Duration::from_millis(300))
            .clock_skew(Duration::ZERO),
    )
    .unwrap();
    let addr = serve(crate::common::app(layer.clone(), Reached::default())).await;
    let http = client();
    let get = |token: &str| http.get(format!("http://{addr}/me")).bearer_auth(token).send();
    let known = token("known-before-429");
    mock.register(&known, MockUser::new("amzn1.account.KNOWN"));
    assert_eq!(get(&known).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(400)).await;

    let throttled = token("opens-the-breaker");
    mock.register(&throttled, MockReply::status(429).retry_after(30));
    assert_eq!(get(&throttled).await.unwrap().status(), 503);
    let calls = mock.calls_for(&known);
    assert_eq!(
        get(&known).await.unwrap().status(),
        200,
        "no stale identity while backing off"
    );
    assert_eq!(
        mock.calls_for(&known),
        calls,
        "Amazon was asked during its back-off"
    );
    assert!(layer.stats().stale_served >= 1);
}
