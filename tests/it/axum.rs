//! The axum extractors `AmazonUser` and `Option<AmazonUser>`, served over real HTTP on
//! 127.0.0.1 and verified against `MockAmazon`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{build_layer, build_layer_with, builder, serve_base_url};
use axum::routing::get;
use axum::Router;
use tower_amazon_auth::{AmazonUser, AmazonUserRejection};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockReply, MockScope, MockUser};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const MISCONFIGURED: &str = "AmazonUser extractor used on a route not wrapped by AmazonAuthLayer";

async fn whoami(user: AmazonUser) -> String {
    format!("{} {}", user.user_id(), user.email().unwrap_or("-"))
}

#[tokio::test]
async fn amazon_user_extractor_sees_the_verified_user() -> TestResult {
    let mock = MockAmazon::start().await?;
    let alice = mock_access_token("alice");
    mock.register(
        &alice,
        MockUser::new("amzn1.account.ALICE")
            .email("alice@example.com")
            .scope(MockScope::Profile),
    );
    let bob = mock_access_token("bob");
    mock.register(&bob, MockUser::new("amzn1.account.BOB").email("bob@example.com"));
    let app = Router::new()
        .route("/me", get(whoami))
        .layer(build_layer(builder(&mock))?);
    let base = serve_base_url(app).await?;
    let http = reqwest::Client::new();

    let response = http.get(format!("{base}/me")).bearer_auth(&alice).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "amzn1.account.ALICE alice@example.com");

    // Another token, another user: the extractor reads this request's extension.
    let response = http
        .get(format!("{base}/me"))
        .header("x-amz-access-token", &bob)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "amzn1.account.BOB bob@example.com");

    // Without a token the layer refuses before the handler.
    let response = http.get(format!("{base}/me")).send().await?;
    assert_eq!(response.status(), 401);
    Ok(())
}

#[tokio::test]
async fn amazon_user_on_an_unwrapped_route_is_a_500_naming_the_mistake() -> TestResult {
    let mock = MockAmazon::start().await?;
    let alice = mock_access_token("alice");
    mock.register(&alice, MockUser::new("amzn1.account.ALICE"));
    // `/me` is wrapped; `/oops` is merged in after the layer, so it is not.
    let app = Router::new()
        .route("/me", get(whoami))
        .layer(build_layer(builder(&mock))?)
        .route("/oops", get(whoami));
    let base = serve_base_url(app).await?;
    let http = reqwest::Client::new();

    let response = http
        .get(format!("{base}/oops"))
        .bearer_auth(&alice)
        .send()
        .await?;
    assert_eq!(response.status(), 500);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let body = response.text().await?;
    assert_eq!(body, MISCONFIGURED);
    assert_eq!(body, AmazonUserRejection::LayerMissing.to_string());
    // The unwrapped route never asked Amazon anything.
    assert_eq!(mock.calls().total(), 0);

    // Without any token it is still the 500, not a misleading 401.
    let response = http.get(format!("{base}/oops")).send().await?;
    assert_eq!(response.status(), 500);
    assert_eq!(response.text().await?, MISCONFIGURED);

    // The wrapped route still works.
    let response = http.get(format!("{base}/me")).bearer_auth(&alice).send().await?;
    assert_eq!(response.status(), 200);
    Ok(())
}

#[tokio::test]
async fn optional_amazon_user_with_an_optional_layer() -> TestResult {
    let mock = MockAmazon::start().await?;
    let alice = mock_access_token("alice");
    mock.register(&alice, MockUser::new("amzn1.account.ALICE").name("Alice"));
    let revoked = mock_access_token("revoked");
    mock.register(&revoked, MockReply::invalid_token());
    let unknown = mock_access_token("never-registered");

    let reached = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reached);
    let home = move |user: Option<AmazonUser>| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            match user {
                Some(user) => format!("hello {}", user.user_id()),
                None => "hello stranger".to_owned(),
            }
        }
    };
    let optional = build_layer_with(builder(&mock), |l| l.optional(true))?;
    let app = Router::new().route("/", get(home)).layer(optional);
    let base = serve_base_url(app).await?;
    let http = reqwest::Client::new();

    // No token: the handler runs and sees None.
    let response = http.get(format!("{base}/")).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "hello stranger");
    assert_eq!(reached.load(Ordering::SeqCst), 1);
    assert_eq!(mock.calls().total(), 0);

    // A good token: Some(user).
    let response = http.get(format!("{base}/")).bearer_auth(&alice).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "hello amzn1.account.ALICE");
    assert_eq!(reached.load(Ordering::SeqCst), 2);

    // A bad token is still refused by the layer: the handler is not reached.
    for token in [&revoked, &unknown] {
        let response = http.get(format!("{base}/")).bearer_auth(token).send().await?;
        assert_eq!(response.status(), 401);
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
    // Junk is a 400, also without reaching the handler.
    let response = http
        .get(format!("{base}/"))
        .bearer_auth("not-an-amazon-token")
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    assert_eq!(reached.load(Ordering::SeqCst), 2);
    Ok(())
}

#[tokio::test]
async fn optional_amazon_user_is_none_without_a_layer() -> TestResult {
    let app =
        Router::new().route(
            "/",
            get(|user: Option<AmazonUser>| async move {
                user.map_or("none".to_owned(), |u| u.user_id().to_owned())
            }),
        );
    let base = serve_base_url(app).await?;
    let response = reqwest::get(format!("{base}/")).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "none");
    Ok(())
}

#[tokio::test]
async fn one_optional_layer_serves_public_and_private_routes() -> TestResult {
    let mock = MockAmazon::start().await?;
    let alice = mock_access_token("alice-mixed");
    mock.register(&alice, MockUser::new("amzn1.account.ALICE"));
    let optional = build_layer_with(builder(&mock), |l| l.realm("shop").optional(true))?;
    let app = Router::new()
        .route("/private", get(whoami))
        .route(
            "/public",
            get(|user: Option<AmazonUser>| async move { format!("{}", user.is_some()) }),
        )
        .layer(optional);
    let base = serve_base_url(app).await?;
    let http = reqwest::Client::new();

    // Without a token: the public route serves, the private one answers as the layer would.
    let response = http.get(format!("{base}/public")).send().await?;
    assert_eq!(response.text().await?, "false");
    let response = http.get(format!("{base}/private")).send().await?;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"shop\"");
    let body: serde_json::Value = serde_json::from_str(&response.text().await?)?;
    assert_eq!(body["error"], "unauthorized");

    // With a token both routes see the user.
    let response = http
        .get(format!("{base}/private"))
        .bearer_auth(&alice)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "amzn1.account.ALICE -");
    let response = http
        .get(format!("{base}/public"))
        .bearer_auth(&alice)
        .send()
        .await?;
    assert_eq!(response.text().await?, "true");
    Ok(())
}
