//! Token exchange (`AmazonClient::exchange_code`, `AmazonClient::refresh`) over real HTTP on
//! 127.0.0.1 against `MockAmazon`'s `POST /auth/o2/token`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tower_amazon_auth::client::{AmazonClient, ClientCredentials, RefreshToken, TokenResponse};
use tower_amazon_auth::endpoint::Endpoints;
use tower_amazon_auth::AmazonError;
use tower_amazon_auth_mock::{
    mock_access_token, MockAmazon, MockReply, MockUser, MOCK_CLIENT_ID, MOCK_CLIENT_SECRET,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn client(mock: &MockAmazon) -> Result<AmazonClient, tower_amazon_auth::BuildError> {
    AmazonClient::new(Endpoints::base_url(mock.base_url())?)
}

fn credentials() -> ClientCredentials {
    ClientCredentials::new(MOCK_CLIENT_ID, MOCK_CLIENT_SECRET)
}

/// The OAuth error code and status, or a description of the unexpected outcome.
fn oauth<T: std::fmt::Debug>(result: Result<T, AmazonError>) -> (String, u16, bool) {
    match result {
        Err(AmazonError::OAuth {
            code,
            status,
            request_id,
        }) => (code, status, request_id.is_some()),
        other => (format!("not an OAuth error: {other:?}"), 0, false),
    }
}

#[tokio::test]
async fn exchange_code_returns_typed_tokens_and_the_code_is_single_use() -> TestResult {
    let mock = MockAmazon::start().await?;
    let access = mock_access_token("alice");
    mock.register(&access, MockUser::new("amzn1.account.ALICE"));
    mock.register_code("code-alice", &access);
    let client = client(&mock)?;

    let tokens: TokenResponse = client.exchange_code("code-alice", &credentials()).await?;
    assert_eq!(tokens.access_token.expose(), access);
    assert_eq!(tokens.token_type, "bearer");
    assert_eq!(tokens.expires_in, 3600);
    let refresh = tokens
        .refresh_token
        .as_ref()
        .map(RefreshToken::expose)
        .unwrap_or_default();
    assert!(refresh.starts_with("Atzr|"), "a refresh token came back");
    assert_eq!(mock.calls().token, 1);
    assert_eq!(mock.calls_for("code-alice").token, 1);

    // The issued access token works at the profile endpoint.
    let profile = client.profile(&tokens.access_token).await?;
    assert_eq!(profile.user_id, "amzn1.account.ALICE");

    // Reusing the code: invalid_grant, with Amazon's request id.
    let reused = client.exchange_code("code-alice", &credentials()).await;
    assert_eq!(oauth(reused), ("invalid_grant".to_owned(), 400, true));
    // A code Amazon never issued: invalid_grant too.
    let unknown = client.exchange_code("made-up-code", &credentials()).await;
    assert_eq!(oauth(unknown), ("invalid_grant".to_owned(), 400, true));
    Ok(())
}

#[tokio::test]
async fn refresh_renews_the_access_token() -> TestResult {
    let mock = MockAmazon::start().await?;
    let access = mock_access_token("bob");
    mock.register_code("code-bob", &access);
    let client = client(&mock)?;
    let tokens = client.exchange_code("code-bob", &credentials()).await?;
    let refresh_token = tokens.refresh_token.ok_or("no refresh token")?;

    let renewed = client.refresh(&refresh_token, &credentials()).await?;
    assert_eq!(renewed.access_token.expose(), access);
    assert_eq!(renewed.token_type, "bearer");
    assert_eq!(renewed.expires_in, 3600);
    assert_eq!(renewed.refresh_token.as_ref(), Some(&refresh_token));
    assert_eq!(mock.calls_for(refresh_token.expose()).token, 1);

    // A refresh token Amazon does not know.
    let unknown = client
        .refresh(&RefreshToken::new("Atzr|not-issued"), &credentials())
        .await;
    assert_eq!(oauth(unknown), ("invalid_grant".to_owned(), 400, true));
    Ok(())
}

#[tokio::test]
async fn wrong_client_credentials_are_invalid_client() -> TestResult {
    let mock = MockAmazon::start().await?;
    mock.register_code("code-1", mock_access_token("carol"));
    let client = client(&mock)?;

    let wrong_secret = ClientCredentials::new(MOCK_CLIENT_ID, "not-the-secret");
    let result = client.exchange_code("code-1", &wrong_secret).await;
    assert_eq!(oauth(result), ("invalid_client".to_owned(), 401, true));

    let wrong_id = ClientCredentials::new("amzn1.application-oa2-client.other", MOCK_CLIENT_SECRET);
    let result = client.exchange_code("code-1", &wrong_id).await;
    assert_eq!(oauth(result), ("invalid_client".to_owned(), 401, true));

    // The refused attempts did not consume the code.
    client.exchange_code("code-1", &credentials()).await?;

    let result = client
        .refresh(&RefreshToken::new("Atzr|whatever"), &wrong_secret)
        .await;
    assert_eq!(oauth(result), ("invalid_client".to_owned(), 401, true));
    Ok(())
}

#[tokio::test]
async fn every_oauth_error_code_is_reported_as_such() -> TestResult {
    let mock = MockAmazon::start().await?;
    let client = client(&mock)?;
    for (status, code) in [
        (400, "invalid_request"),
        (400, "invalid_grant"),
        (400, "unauthorized_client"),
        (400, "unsupported_grant_type"),
        (401, "invalid_client"),
    ] {
        mock.set_token_endpoint_reply(Some(MockReply::json(
            status,
            json!({ "error": code, "error_description": "from the mock", "request_id": "r-1" }),
        )));
        let result = client.exchange_code("any-code", &credentials()).await;
        assert_eq!(oauth(result), (code.to_owned(), status, true), "exchange, {code}");
        let result = client
            .refresh(&RefreshToken::new("Atzr|any"), &credentials())
            .await;
        assert_eq!(oauth(result), (code.to_owned(), status, true), "refresh, {code}");
    }
    // A bare 401 without Amazon's JSON is still client authentication failing.
    mock.set_token_endpoint_reply(Some(MockReply::json(401, json!({}))));
    let result = client.exchange_code("any-code", &credentials()).await;
    assert_eq!(oauth(result), ("invalid_client".to_owned(), 401, true));
    Ok(())
}

#[tokio::test]
async fn amazon_failures_are_not_oauth_verdicts() -> TestResult {
    let mock = MockAmazon::start().await?;
    mock.register_code("code-1", mock_access_token("dave"));
    let client = client(&mock)?;

    mock.set_token_endpoint_reply(Some(MockReply::status(500)));
    let result = client.exchange_code("code-1", &credentials()).await;
    assert!(
        matches!(
            result,
            Err(AmazonError::Status {
                status: 500,
                request_id: Some(_),
                ..
            })
        ),
        "{result:?}"
    );

    mock.set_token_endpoint_reply(Some(MockReply::status(503).retry_after(7)));
    let result = client
        .refresh(&RefreshToken::new("Atzr|any"), &credentials())
        .await;
    assert!(
        matches!(
            result,
            Err(AmazonError::Status {
                status: 503,
                retry_after: Some(7),
                ..
            })
        ),
        "{result:?}"
    );

    // Throttling is transient, not a verdict on the grant.
    mock.set_token_endpoint_reply(Some(MockReply::status(429)));
    let result = client.exchange_code("code-1", &credentials()).await;
    assert!(
        matches!(result, Err(AmazonError::Status { status: 429, .. })),
        "{result:?}"
    );

    mock.set_token_endpoint_reply(Some(MockReply::garbage()));
    let result = client.exchange_code("code-1", &credentials()).await;
    assert!(
        matches!(result, Err(AmazonError::Unreadable { .. })),
        "{result:?}"
    );

    // A 200 of the wrong shape (no access_token) is unreadable, not a success.
    mock.set_token_endpoint_reply(Some(MockReply::json(200, json!({ "token_type": "bearer" }))));
    let result = client.exchange_code("code-1", &credentials()).await;
    assert!(
        matches!(result, Err(AmazonError::Unreadable { .. })),
        "{result:?}"
    );

    // None of these consumed the code.
    mock.set_token_endpoint_reply(None);
    client.exchange_code("code-1", &credentials()).await?;
    Ok(())
}

#[tokio::test]
async fn a_hanging_token_endpoint_times_out() -> TestResult {
    let mock = MockAmazon::start().await?;
    mock.set_token_endpoint_reply(Some(MockReply::hang()));
    let client = AmazonClient::with_timeouts(
        Endpoints::base_url(mock.base_url())?,
        Duration::from_secs(1),
        Duration::from_millis(300),
    )?;
    let started = std::time::Instant::now();
    let result = client.exchange_code("code-1", &credentials()).await;
    assert_eq!(result, Err(AmazonError::Timeout));
    assert!(started.elapsed() < Duration::from_secs(3));
    Ok(())
}

#[tokio::test]
async fn an_empty_code_or_refresh_token_costs_no_call() -> TestResult {
    let mock = MockAmazon::start().await?;
    let client = client(&mock)?;
    let result = client.exchange_code("", &credentials()).await;
    assert_eq!(oauth(result), ("invalid_request".to_owned(), 400, false));
    let result = client.refresh(&RefreshToken::new(""), &credentials()).await;
    assert_eq!(oauth(result), ("invalid_request".to_owned(), 400, false));
    assert_eq!(mock.calls().token, 0);
    Ok(())
}

#[tokio::test]
async fn no_token_code_or_secret_in_debug_or_errors() -> TestResult {
    let mock = MockAmazon::start().await?;
    let access = mock_access_token("erin");
    mock.register_code("code-erin-7f3a", &access);
    let secret = "s3cr3t-value-9b1c";
    mock.set_client(MOCK_CLIENT_ID, secret);
    let client = client(&mock)?;
    let credentials = ClientCredentials::new(MOCK_CLIENT_ID, secret);

    let tokens = client.exchange_code("code-erin-7f3a", &credentials).await?;
    let refresh = tokens.refresh_token.clone().ok_or("no refresh token")?;
    let shown = format!("{tokens:?} {tokens:#?}");
    assert!(!shown.contains(&access), "access token in {shown}");
    assert!(!shown.contains(refresh.expose()), "refresh token in {shown}");
    assert!(!shown.contains("Atza|") && !shown.contains("Atzr|"), "{shown}");
    assert!(shown.contains("expires_in: 3600"), "{shown}");
    let shown = format!("{refresh:?} {refresh}");
    assert!(!shown.contains(refresh.expose()), "{shown}");

    let shown = format!("{credentials:?} {credentials:#?}");
    assert!(!shown.contains(secret), "secret in {shown}");
    assert!(shown.contains(MOCK_CLIENT_ID), "{shown}");

    // Errors carry neither the code nor the secret nor a token.
    let wrong = ClientCredentials::new(MOCK_CLIENT_ID, "wrong-secret-51d2");
    for error in [
        client.exchange_code("code-erin-7f3a", &credentials).await.err(),
        client.exchange_code("another-code-88aa", &wrong).await.err(),
        client.refresh(&refresh, &wrong).await.err(),
    ] {
        let error = error.ok_or("expected an error")?;
        let shown = format!("{error} {error:?}");
        for secret_text in [
            "code-erin-7f3a",
            "another-code-88aa",
            secret,
            "wrong-secret-51d2",
            refresh.expose(),
        ] {
            assert!(!shown.contains(secret_text), "{secret_text} in {shown}");
        }
    }
    Ok(())
}

/// What a stand-in token endpoint received.
#[derive(Default)]
struct Captured {
    content_type: Option<String>,
    form: Vec<(String, String)>,
}

/// The form the client sends, checked field by field on a capturing server on 127.0.0.1.
#[tokio::test]
async fn the_grant_forms_are_what_amazon_documents() -> TestResult {
    use axum::routing::post;

    let captured = Arc::new(Mutex::new(Captured::default()));
    let sink = Arc::clone(&captured);
    let app = axum::Router::new().route(
        "/auth/o2/token",
        post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let mut captured = sink.lock().unwrap_or_else(|e| e.into_inner());
                captured.content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                captured.form = form_urlencoded::parse(&body).into_owned().collect();
                axum::Json(json!({
                    "access_token": "Atza|issued",
                    "refresh_token": "Atzr|issued",
                    "token_type": "bearer",
                    "expires_in": 3600,
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = AmazonClient::new(Endpoints::appstore_at(&base)?)?;
    let credentials = ClientCredentials::new("amzn1.application-oa2-client.x", "p&ss=w+rd");
    let form = |c: &Mutex<Captured>| {
        let c = c.lock().unwrap_or_else(|e| e.into_inner());
        (c.content_type.clone(), c.form.clone())
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };

    client
        .exchange_code_with_redirect_uri("AN|code/+=", Some("https://example.com/cb?x=1"), &credentials)
        .await?;
    let (content_type, sent) = form(&captured);
    assert!(
        content_type.is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")),
        "form content type"
    );
    assert_eq!(
        sent,
        pairs(&[
            ("grant_type", "authorization_code"),
            ("code", "AN|code/+="),
            ("redirect_uri", "https://example.com/cb?x=1"),
            ("client_id", "amzn1.application-oa2-client.x"),
            ("client_secret", "p&ss=w+rd"),
        ])
    );

    client.exchange_code("plain", &credentials).await?;
    let (_, sent) = form(&captured);
    assert_eq!(
        sent,
        pairs(&[
            ("grant_type", "authorization_code"),
            ("code", "plain"),
            ("client_id", "amzn1.application-oa2-client.x"),
            ("client_secret", "p&ss=w+rd"),
        ])
    );

    let renewed = client
        .refresh(&RefreshToken::new("Atzr|r+1"), &credentials)
        .await?;
    assert_eq!(renewed.access_token.expose(), "Atza|issued");
    let (_, sent) = form(&captured);
    assert_eq!(
        sent,
        pairs(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "Atzr|r+1"),
            ("client_id", "amzn1.application-oa2-client.x"),
            ("client_secret", "p&ss=w+rd"),
        ])
    );
    Ok(())
}
