//! The core layer end to end: a real axum server on 127.0.0.1 behind the layer, a real mock
//! Amazon, real HTTP. Every row of the error table, the three token sources, caching,
//! coalescing, expiry, negative caching and Amazon failures.

use std::time::{Duration, Instant};

use crate::common::{bearer_once, eventually, token, Harness};
use reqwest::StatusCode;
use serde_json::Value;
use tower_amazon_auth::{AmazonAuthLayer, BuildError, IdentityCache};
use tower_amazon_auth_mock::{MockAmazon, MockReply, MockScope, MockUser};

// The harness's own request helpers; the rest of it is `common::Harness`. A trait rather
// than an inherent `impl`: the other test modules add helpers of the same names.
trait CoreHarness {
    async fn default() -> Self;
    fn user(&self, tag: &str) -> String;
    async fn bearer(&self, token: &str) -> reqwest::Response;
    async fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> reqwest::Response;
}

impl CoreHarness for Harness {
    async fn default() -> Self {
        Self::new(|b| b).await
    }

    fn user(&self, tag: &str) -> String {
        let token = token(tag);
        self.mock.register(
            &token,
            MockUser::new(format!("amzn1.account.{tag}"))
                .email(format!("{tag}@example.com"))
                .name("Pat Example")
                .postal_code("98109")
                .scope(MockScope::ProfileAndPostalCode),
        );
        token
    }

    async fn bearer(&self, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/me", self.base))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path_and_query}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn expect_refusal(response: reqwest::Response, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status);
    let www = challenge(&response);
    assert!(www.starts_with("Bearer realm=\"api\""), "{www}");
    assert!(www.contains(&format!("error=\"{code}\"")), "{www}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], code);
    // Amazon's shape, two fields; the body and the challenge describe the error alike.
    assert_eq!(body.as_object().map(|fields| fields.len()), Some(2), "{body}");
    let described = www
        .split("error_description=\"")
        .nth(1)
        .and_then(|d| d.strip_suffix('"'));
    assert!(described.is_some_and(|d| !d.is_empty()), "{www}");
    assert_eq!(body["error_description"].as_str(), described, "{www}");
}

#[tokio::test]
async fn accepts_a_good_token_from_each_source() {
    let h = Harness::default().await;
    let token = h.user("sources");
    let encoded = token.replace('|', "%7C");
    let cases = [
        (format!("/me?access_token={token}"), vec![], "query"),
        (format!("/me?access_token={encoded}"), vec![], "query"),
        (
            "/me".to_owned(),
            vec![("authorization", format!("bearer {token}"))],
            "bearer",
        ),
        (
            "/me".to_owned(),
            vec![("authorization", format!("BEARER {token}"))],
            "bearer",
        ),
        (
            "/me".to_owned(),
            vec![("x-amz-access-token", token.clone())],
            "x-amz-access-token",
        ),
    ];
    for (path, headers, source) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = h.get(&path, &headers).await;
        assert_eq!(response.status(), 200, "{source}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user_id"], "amzn1.account.sources");
        assert_eq!(body["email"], "sources@example.com");
        assert_eq!(body["name"], "Pat Example");
        assert_eq!(body["postal_code"], "98109");
        assert_eq!(body["aud"], tower_amazon_auth_mock::MOCK_CLIENT_ID);
        assert_eq!(body["source"], source);
    }
    // One verification served all five requests.
    assert_eq!(h.mock.calls().tokeninfo, 1);
    assert_eq!(h.mock.calls().profile, 1);
    assert_eq!(h.reached.count(), 5);
}

#[tokio::test]
async fn no_token_is_a_bare_challenge() {
    let h = Harness::default().await;
    for headers in [vec![], vec![("authorization", "Basic dXNlcjpwYXNz")]] {
        let response = h.get("/me?other=1", &headers).await;
        assert_eq!(response.status(), 401);
        assert_eq!(challenge(&response), "Bearer realm=\"api\"");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    assert_eq!(h.mock.calls().total(), 0);
    assert_eq!(h.reached.count(), 0);
}

#[tokio::test]
async fn junk_is_refused_without_an_upstream_call() {
    let h = Harness::default().await;
    let good = h.user("junk");
    let long = format!("Atza|{}", "x".repeat(3000));
    let two = [
        ("authorization", format!("Bearer {good}")),
        ("x-amz-access-token", good.clone()),
    ];
    let two: Vec<(&str, &str)> = two.iter().map(|(k, v)| (*k, v.as_str())).collect();
    expect_refusal(
        h.get(&format!("/me?access_token={good}"), &two[..1]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    expect_refusal(
        h.get("/me", &two).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    expect_refusal(h.bearer(&long).await, StatusCode::BAD_REQUEST, "invalid_request").await;
    expect_refusal(
        h.bearer("not-an-amazon-token").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    expect_refusal(
        h.get("/me", &[("authorization", "Bearer")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    expect_refusal(
        h.get("/me?access_token=", &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    expect_refusal(
        h.get("/me?access_token=Atza%7Ca%22b", &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    expect_refusal(
        h.get("/me?access_token=Atza%7Ca%20b", &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    // A refresh token is a token, just the wrong kind: 401 invalid_token.
    let refresh = good.replacen("Atza|", "Atzr|", 1);
    expect_refusal(
        h.bearer(&refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(h.mock.calls().total(), 0);
    assert_eq!(h.reached.count(), 0);
}

#[tokio::test]
async fn prefix_check_can_be_switched_off() {
    let h = Harness::with_layer(|b| b, |l| l.require_access_token_prefix(false)).await;
    let odd = "Xyz|custom-token-format-0123456789";
    h.mock.register(odd, MockUser::new("amzn1.account.odd"));
    assert_eq!(h.bearer(odd).await.status(), 200);
    // A refresh token stays refused either way.
    expect_refusal(
        h.bearer("Atzr|refresh").await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn a_token_for_another_app_is_refused_and_remembered() {
    let h = Harness::default().await;
    let token = token("otherapp");
    h.mock.register(
        &token,
        MockUser::new("amzn1.account.x").aud("amzn1.application-oa2-client.someone-else"),
    );
    for _ in 0..5 {
        expect_refusal(h.bearer(&token).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    assert_eq!(h.mock.calls_for(&token).tokeninfo, 1, "the rejection is cached");
    assert_eq!(h.reached.count(), 0);
}

#[tokio::test]
async fn an_invalid_token_is_remembered_briefly() {
    let h = Harness::new(|b| b.negative_ttl(Duration::from_millis(600))).await;
    let token = token("revoked");
    h.mock.register(&token, MockReply::invalid_token());
    for _ in 0..5 {
        expect_refusal(h.bearer(&token).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    assert_eq!(h.mock.calls_for(&token).tokeninfo, 1);
    // Once the negative entry lapses, Amazon is asked again (and now says yes).
    h.mock.register(&token, MockUser::new("amzn1.account.back"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(h.bearer(&token).await.status(), 200);
    assert_eq!(h.mock.calls_for(&token).tokeninfo, 2);
}

#[tokio::test]
async fn scope_limited_profiles_and_insufficient_scope() {
    let h = Harness::default().await;
    let minimal = token("minimal");
    h.mock.register(
        &minimal,
        MockUser::new("amzn1.account.min")
            .email("hidden@example.com")
            .scope(MockScope::UserId),
    );
    let response = h.bearer(&minimal).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user_id"], "amzn1.account.min");
    assert_eq!(body["email"], Value::Null);
    assert_eq!(body["postal_code"], Value::Null);

    let scoped = token("scoped");
    h.mock.register(
        &scoped,
        MockReply::insufficient_scope(MockUser::new("amzn1.account.s")),
    );
    expect_refusal(
        h.bearer(&scoped).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
    assert_eq!(h.reached.count(), 1);
}

#[tokio::test]
async fn tokeninfo_and_profile_are_asked_concurrently() {
    let h = Harness::default().await;
    let token = token("concurrent");
    // Neither endpoint ever answers: if the calls were sequential, the profile call could
    // not start before tokeninfo answered.
    h.mock.register(&token, MockReply::hang());
    let request = h.bearer(&token);
    let watch = async {
        assert!(
            eventually(|| h.mock.calls_for(&token).tokeninfo == 1 && h.mock.calls_for(&token).profile == 1)
                .await
        );
    };
    tokio::select! {
        _ = request => panic!("a hanging Amazon cannot produce an answer this fast"),
        _ = watch => {}
    }
}

#[tokio::test]
async fn tokeninfo_only_mode_skips_the_profile() {
    let h = Harness::new(|b| b.tokeninfo_only()).await;
    let token = h.user("only");
    let body: Value = h.bearer(&token).await.json().await.unwrap();
    assert_eq!(body["user_id"], "amzn1.account.only");
    assert_eq!(body["email"], Value::Null);
    assert_eq!(h.mock.calls().profile, 0);
    assert_eq!(h.mock.calls().tokeninfo, 1);
}

#[tokio::test]
async fn concurrent_first_requests_make_one_call_of_each_kind() {
    let h = Harness::default().await;
    h.mock.set_latency(Duration::from_millis(300));
    let token = h.user("herd");
    let requests = (0..64).map(|_| h.bearer(&token));
    let responses = futures_util::future::join_all(requests).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(h.mock.calls().tokeninfo, 1);
    assert_eq!(h.mock.calls().profile, 1);
    assert_eq!(h.reached.count(), 64);
}

#[tokio::test]
async fn concurrent_requests_with_an_invalid_token_are_coalesced_too() {
    let h = Harness::default().await;
    h.mock.set_latency(Duration::from_millis(300));
    let token = token("herd-invalid");
    h.mock.register(&token, MockReply::invalid_token());
    let responses = futures_util::future::join_all((0..64).map(|_| h.bearer(&token))).await;
    assert!(responses.iter().all(|r| r.status() == 401));
    assert_eq!(h.mock.calls().tokeninfo, 1);
    assert!(h.mock.calls().profile <= 1);
}

#[tokio::test]
async fn expiry_counts_seconds_remaining_from_the_answer() {
    let h = Harness::new(|b| b.clock_skew(Duration::ZERO)).await;
    let token = token("short");
    h.mock
        .register(&token, MockUser::new("amzn1.account.short").exp(2));
    assert_eq!(h.bearer(&token).await.status(), 200);
    assert_eq!(h.bearer(&token).await.status(), 200);
    assert_eq!(
        h.mock.calls_for(&token).tokeninfo,
        1,
        "cached while the token lives"
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    // Lapsed: verified again, and the mock (like Amazon) now calls it expired.
    expect_refusal(h.bearer(&token).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(h.mock.calls_for(&token).tokeninfo, 2);
}

#[tokio::test]
async fn max_ttl_bounds_the_cache() {
    // clock_skew must stay below max_ttl.
    let h = Harness::new(|b| b.max_ttl(Duration::from_millis(500)).clock_skew(Duration::ZERO)).await;
    let token = h.user("maxttl");
    assert_eq!(h.bearer(&token).await.status(), 200);
    assert_eq!(h.bearer(&token).await.status(), 200);
    assert_eq!(h.mock.calls_for(&token).tokeninfo, 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(h.bearer(&token).await.status(), 200);
    assert_eq!(h.mock.calls_for(&token).tokeninfo, 2);
}

#[tokio::test]
async fn amazon_failures_are_503_and_leave_the_cache_clean() {
    let h = Harness::with_layer(
        |b| b.deadline(Duration::from_millis(500)),
        |l| l.retry_after(Duration::from_secs(7)),
    )
    .await;
    for (tag, failure) in [
        ("s500", MockReply::status(500)),
        ("s503", MockReply::status(503)),
        ("garbage", MockReply::garbage()),
        ("hang", MockReply::hang()),
    ] {
        let token = token(tag);
        h.mock.register(&token, failure);
        let started = Instant::now();
        let response = h.bearer(&token).await;
        assert_eq!(response.status(), 503, "{tag}");
        assert_eq!(response.headers()["retry-after"], "7", "{tag}");
        assert!(response.headers().get("www-authenticate").is_none(), "{tag}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{tag}: the deadline holds"
        );
        // Nothing was cached: once Amazon recovers, the same token is verified and accepted.
        h.mock
            .register(&token, MockUser::new(format!("amzn1.account.{tag}")));
        assert_eq!(h.bearer(&token).await.status(), 200, "{tag}");
    }
    assert_eq!(h.reached.count(), 4);
}

#[tokio::test]
async fn amazon_unreachable_is_503() {
    let mock = MockAmazon::start().await.unwrap();
    let base = mock.base_url().to_owned();
    drop(mock);
    let cache = IdentityCache::builder()
        .client_id("c")
        .base_url(&base)
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let layer = AmazonAuthLayer::builder(cache).build().unwrap();
    let response = bearer_once(layer, &token("down")).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn the_token_is_stripped_before_the_inner_service() {
    let h = Harness::default().await;
    let token = h.user("strip");
    let body: Value = h.bearer(&token).await.json().await.unwrap();
    assert_eq!(body["authorization"], false);
    let body: Value = h
        .get("/me", &[("x-amz-access-token", &token)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["amz_header"], false);
    let body: Value = h
        .get(&format!("/me?a=1&access_token={token}&b=x%20y"), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["query"], "a=1&b=x%20y");

    let kept = Harness::with_layer(|b| b, |l| l.strip_token(false)).await;
    let token = kept.user("kept");
    let body: Value = kept.bearer(&token).await.json().await.unwrap();
    assert_eq!(body["authorization"], true);
}

#[tokio::test]
async fn several_client_ids_are_accepted() {
    let h = Harness::new(|b| {
        b.client_ids([
            "amzn1.application-oa2-client.android",
            "amzn1.application-oa2-client.ios",
        ])
    })
    .await;
    let ios = token("ios");
    h.mock.register(
        &ios,
        MockUser::new("amzn1.account.ios").aud("amzn1.application-oa2-client.ios"),
    );
    let body: Value = h.bearer(&ios).await.json().await.unwrap();
    assert_eq!(body["aud"], "amzn1.application-oa2-client.ios");
    let stranger = token("stranger");
    h.mock.register(
        &stranger,
        MockUser::new("amzn1.account.s").aud("amzn1.application-oa2-client.web"),
    );
    assert_eq!(h.bearer(&stranger).await.status(), 401);
}

#[test]
fn the_builder_validates() {
    assert_eq!(
        IdentityCache::builder().build().unwrap_err(),
        BuildError::NoClientId
    );
    assert_eq!(
        IdentityCache::builder().client_id(" ").build().unwrap_err(),
        BuildError::EmptyClientId
    );
    let err = IdentityCache::builder()
        .client_id("c")
        .base_url("ftp://x")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::InvalidBaseUrl(_)));
    let err = IdentityCache::builder()
        .client_id("c")
        .base_url("not a url")
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::InvalidBaseUrl(_)));
    assert_eq!(
        IdentityCache::builder()
            .client_id("c")
            .capacity(0)
            .build()
            .unwrap_err(),
        BuildError::Zero("capacity")
    );
    assert_eq!(
        AmazonAuthLayer::builder(IdentityCache::new("c").unwrap())
            .realm("a\"b")
            .build()
            .unwrap_err(),
        BuildError::InvalidRealm
    );
    assert_eq!(
        IdentityCache::builder()
            .client_id("c")
            .deadline(Duration::ZERO)
            .build()
            .unwrap_err(),
        BuildError::Zero("deadline")
    );
    assert!(AmazonAuthLayer::new("amzn1.application-oa2-client.x").is_ok());
    assert!(IdentityCache::new("amzn1.application-oa2-client.x").is_ok());
    // The one-builder path reports a bad client id at build, with the layer's own checks.
    assert_eq!(
        AmazonAuthLayer::for_client(" ")
            .optional(true)
            .build()
            .unwrap_err(),
        BuildError::EmptyClientId
    );
    assert_eq!(
        AmazonAuthLayer::for_client("c").realm("").build().unwrap_err(),
        BuildError::InvalidRealm
    );
    assert!(AmazonAuthLayer::for_client("c").optional(true).build().is_ok());
}
