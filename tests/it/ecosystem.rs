//! Regions and the Appstore, counters, custom error responses and cache control, over real
//! HTTP on 127.0.0.1 against `MockAmazon`.

use crate::common::{build_layer, build_layer_with, builder, serve_base_url};
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use tower_amazon_auth::endpoint::{Endpoints, Region, APPSTORE_BASE_URL};
use tower_amazon_auth::response::{default_response, ErrorContext};
use tower_amazon_auth::{AccessToken, AmazonAuthLayer, AuthError, BuildError, IdentityCache, StatsSnapshot};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockCalls, MockReply, MockUser, MOCK_CLIENT_ID};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A router whose `/me` answers the user id of the `AmazonUser` extension.
fn app(layer: AmazonAuthLayer) -> Router {
    async fn me(user: Option<Extension<tower_amazon_auth::AmazonUser>>) -> String {
        user.map_or_else(|| "anonymous".to_owned(), |Extension(u)| u.user_id().to_owned())
    }
    Router::new().route("/me", get(me)).layer(layer)
}

/// GET `{base}/me` with `token` as a bearer token (none when `None`): status and body.
async fn get_me(http: &reqwest::Client, base: &str, token: Option<&str>) -> reqwest::Result<(u16, String)> {
    let mut request = http.get(format!("{base}/me"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

fn calls(tokeninfo: usize, profile: usize) -> MockCalls {
    MockCalls {
        tokeninfo,
        profile,
        token: 0,
    }
}

#[test]
fn every_region_has_its_three_urls() {
    let cases = [
        (Region::NorthAmerica, "https://api.amazon.com"),
        (Region::Europe, "https://api.amazon.co.uk"),
        (Region::FarEast, "https://api.amazon.co.jp"),
    ];
    for (region, base) in cases {
        assert_eq!(region.base_url(), base);
        let endpoints = Endpoints::from(region);
        assert_eq!(
            endpoints.tokeninfo_url(),
            Some(format!("{base}/auth/o2/tokeninfo").as_str())
        );
        assert_eq!(endpoints.profile_url(), format!("{base}/user/profile"));
        assert_eq!(endpoints.token_url(), format!("{base}/auth/o2/token"));
    }
    assert_eq!(Endpoints::default(), Endpoints::from(Region::NorthAmerica));

    let appstore = Endpoints::appstore();
    assert_eq!(APPSTORE_BASE_URL, "https://appstore-sdk.amazon.com/version/1.0");
    assert_eq!(appstore.tokeninfo_url(), None);
    assert_eq!(
        appstore.profile_url(),
        "https://appstore-sdk.amazon.com/version/1.0/user/profile"
    );
    assert_eq!(
        appstore.token_url(),
        "https://appstore-sdk.amazon.com/version/1.0/auth/o2/token"
    );
}

#[test]
fn appstore_endpoints_need_the_audience_check_skipped() {
    let refused = IdentityCache::builder()
        .client_id(MOCK_CLIENT_ID)
        .endpoints(Endpoints::appstore())
        .build();
    assert_eq!(refused.err(), Some(BuildError::NoTokenInfo));

    let accepted = IdentityCache::builder()
        .client_id(MOCK_CLIENT_ID)
        .endpoints(Endpoints::appstore())
        .skip_audience_check()
        .build();
    assert!(accepted.is_ok(), "{:?}", accepted.err());
}

#[tokio::test]
async fn appstore_tokens_are_verified_by_the_profile_alone() -> TestResult {
    let mock = MockAmazon::start().await?;
    let token = mock_access_token("appstore-user");
    mock.register(&token, MockUser::new("amzn1.account.APPSTORE"));
    let revoked = mock_access_token("appstore-revoked");
    mock.register(&revoked, MockReply::invalid_token());
    let layer = AmazonAuthLayer::builder(
        IdentityCache::builder()
            .endpoints(Endpoints::appstore_at(mock.base_url())?)
            .skip_audience_check()
            .build()
            .unwrap(),
    )
    .build()?;
    let base = serve_base_url(app(layer)).await?;
    let http = reqwest::Client::new();

    assert_eq!(
        get_me(&http, &base, Some(&token)).await?,
        (200, "amzn1.account.APPSTORE".to_owned())
    );
    assert_eq!(mock.calls(), calls(0, 1));

    // The profile's verdict still counts: a revoked token is refused.
    assert_eq!(get_me(&http, &base, Some(&revoked)).await?.0, 401);
    assert_eq!(mock.calls(), calls(0, 2));
    Ok(())
}

#[tokio::test]
async fn stats_follow_a_miss_a_hit_a_negative_hit_junk_and_no_token() -> TestResult {
    let mock = MockAmazon::start().await?;
    let good = mock_access_token("good");
    mock.register(&good, MockUser::new("amzn1.account.GOOD"));
    let bad = mock_access_token("bad");
    mock.register(&bad, MockReply::invalid_token());
    let layer = build_layer(builder(&mock))?;
    let base = serve_base_url(app(layer.clone())).await?;
    let http = reqwest::Client::new();
    assert_eq!(layer.stats(), StatsSnapshot::default());

    // A miss: one verification, two upstream calls.
    assert_eq!(get_me(&http, &base, Some(&good)).await?.0, 200);
    let after_miss = layer.stats();
    assert_eq!((after_miss.misses, after_miss.hits), (1, 0));
    assert_eq!(after_miss.upstream_calls, 2);

    // A hit: no new upstream call.
    assert_eq!(get_me(&http, &base, Some(&good)).await?.0, 200);
    let after_hit = layer.stats();
    assert_eq!((after_hit.misses, after_hit.hits), (1, 1));
    assert_eq!(after_hit.upstream_calls, 2);

    // A rejected token: a miss, then a negative hit.
    assert_eq!(get_me(&http, &base, Some(&bad)).await?.0, 401);
    assert_eq!(get_me(&http, &base, Some(&bad)).await?.0, 401);
    let after_bad = layer.stats();
    assert_eq!((after_bad.misses, after_bad.negative_hits), (2, 1));
    assert_eq!(after_bad.upstream_calls, 4);
    assert_eq!(after_bad.upstream_errors, 0, "a verdict is not an upstream error");

    // Junk and a missing token are refused before the cache.
    assert_eq!(get_me(&http, &base, Some("junk")).await?.0, 400);
    assert_eq!(get_me(&http, &base, None).await?.0, 401);

    let end = layer.stats();
    assert_eq!(
        (end.hits, end.negative_hits, end.misses, end.upstream_calls),
        (1, 1, 2, 4)
    );
    assert_eq!((end.malformed, end.missing_token), (1, 1));
    assert_eq!((end.upstream_errors, end.overloaded), (0, 0));
    assert_eq!(mock.calls(), calls(2, 2));
    Ok(())
}

#[tokio::test]
async fn a_custom_error_responder_keeps_status_and_challenge() -> TestResult {
    let mock = MockAmazon::start().await?;
    let revoked = mock_access_token("revoked");
    mock.register(&revoked, MockReply::invalid_token());
    let html = |error: &AuthError, cx: ErrorContext<'_>| -> Response<Full<Bytes>> {
        let mut response = default_response(error, cx);
        let page = format!(
            "<!doctype html><title>Sign in</title><p>{}</p>",
            error.status().canonical_reason().unwrap_or("error")
        );
        *response.body_mut() = Full::new(Bytes::from(page));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    };
    let layer = build_layer_with(builder(&mock), |l| l.realm("shop").error_responder(html))?;
    let base = serve_base_url(app(layer)).await?;
    let http = reqwest::Client::new();

    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };

    // No token: a bare challenge.
    let response = http.get(format!("{base}/me")).send().await?;
    assert_eq!(response.status(), 401);
    assert_eq!(header(&response, "www-authenticate"), r#"Bearer realm="shop""#);
    assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8");
    assert_eq!(
        response.text().await?,
        "<!doctype html><title>Sign in</title><p>Unauthorized</p>"
    );

    // A revoked token: the challenge names the error.
    let response = http
        .get(format!("{base}/me"))
        .bearer_auth(&revoked)
        .send()
        .await?;
    assert_eq!(response.status(), 401);
    let challenge = header(&response, "www-authenticate");
    assert!(
        challenge.starts_with(r#"Bearer realm="shop", error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8");
    assert!(response.text().await?.starts_with("<!doctype html>"));
    Ok(())
}

#[tokio::test]
async fn invalidate_forces_a_fresh_verification() -> TestResult {
    let mock = MockAmazon::start().await?;
    let token = mock_access_token("logout");
    mock.register(&token, MockUser::new("amzn1.account.LOGOUT"));
    let layer = build_layer(builder(&mock))?;
    let base = serve_base_url(app(layer.clone())).await?;
    let http = reqwest::Client::new();

    assert_eq!(get_me(&http, &base, Some(&token)).await?.0, 200);
    assert_eq!(get_me(&http, &base, Some(&token)).await?.0, 200);
    assert_eq!(
        mock.calls_for(&token).tokeninfo,
        1,
        "the second request was a hit"
    );

    layer.cache().invalidate(&AccessToken::new(token.clone())).await?;
    assert_eq!(get_me(&http, &base, Some(&token)).await?.0, 200);
    assert_eq!(mock.calls_for(&token).tokeninfo, 2, "invalidate forgot the token");

    // After logout Amazon revokes the token; invalidating makes the layer notice at once.
    mock.register(&token, MockReply::invalid_token());
    layer.cache().invalidate(&AccessToken::new(token.clone())).await?;
    assert_eq!(get_me(&http, &base, Some(&token)).await?.0, 401);
    assert_eq!(mock.calls_for(&token).tokeninfo, 3);
    Ok(())
}

#[tokio::test]
async fn two_layers_on_one_shared_cache_share_its_entries() -> TestResult {
    let mock = MockAmazon::start().await?;
    let token = mock_access_token("shared");
    mock.register(&token, MockUser::new("amzn1.account.SHARED"));
    let first = build_layer(builder(&mock))?;
    let second = AmazonAuthLayer::builder(first.cache().clone())
        .realm("admin")
        .build()?;
    let base_first = serve_base_url(app(first.clone())).await?;
    let base_second = serve_base_url(app(second.clone())).await?;
    let http = reqwest::Client::new();

    assert_eq!(
        get_me(&http, &base_first, Some(&token)).await?,
        (200, "amzn1.account.SHARED".to_owned())
    );
    assert_eq!(mock.calls(), calls(1, 1));

    // The second router's first request is answered from the shared cache.
    assert_eq!(
        get_me(&http, &base_second, Some(&token)).await?,
        (200, "amzn1.account.SHARED".to_owned())
    );
    assert_eq!(mock.calls(), calls(1, 1));
    assert_eq!(second.stats().hits, 1);

    // Its own settings (the realm) still apply.
    let response = http.get(format!("{base_second}/me")).send().await?;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(challenge, r#"Bearer realm="admin""#);

    // A separately built layer does not share it.
    let separate = build_layer(builder(&mock))?;
    let base_separate = serve_base_url(app(separate)).await?;
    assert_eq!(get_me(&http, &base_separate, Some(&token)).await?.0, 200);
    assert_eq!(mock.calls(), calls(2, 2));
    Ok(())
}
