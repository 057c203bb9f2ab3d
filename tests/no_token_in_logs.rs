//! Captures every tracing event at TRACE level (this crate, reqwest, hyper, the mock) across
//! accepted, refused and failed requests, and asserts no token substring ever appears.
//!
//! A binary of its own rather than a module of `tests/it`: the test installs the process's
//! global subscriber, which would capture (and slow down) every test in that binary.
#![cfg(feature = "axum")]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_amazon_auth::AccessToken;
use tower_amazon_auth_mock::{MockAmazon, MockReply, MockUser};
use tower_amazon_auth_test_support::fixtures::{app, build_layer, builder, client, serve, token, Reached};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_any_log_line() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let mock = MockAmazon::start().await.unwrap();
    let layer = build_layer(builder(&mock).deadline(Duration::from_millis(400))).unwrap();
    let addr = serve(app(layer, Reached::default())).await;
    let http = client();
    let me = format!("http://{addr}/me");

    let good = token("logs-good");
    mock.register(
        &good,
        MockUser::new("amzn1.account.logs").email("logs@example.com"),
    );
    let bad = [
        (token("logs-invalid"), MockReply::invalid_token()),
        (token("logs-500"), MockReply::status(500)),
        (token("logs-garbage"), MockReply::garbage()),
        (token("logs-hang"), MockReply::hang()),
        (
            token("logs-scope"),
            MockReply::insufficient_scope(MockUser::new("amzn1.account.s")),
        ),
        (
            token("logs-aud"),
            MockUser::new("amzn1.account.a").aud("someone-else").into(),
        ),
    ];
    for (token, reply) in &bad {
        mock.register(token, reply.clone());
    }
    // The good token first: after a run of failures the layer backs off from Amazon, and the
    // good token would then never be verified (nor its user logged).
    let mut all: Vec<String> = vec![good.clone()];
    all.extend(bad.iter().map(|(t, _)| t.clone()));
    let refresh = good.replacen("Atza|", "Atzr|", 1);
    all.push(refresh.clone());
    let junk = format!("{}\"junk", token("logs-junk"));
    all.push(junk.clone());

    for token in &all {
        let _ = http.get(&me).bearer_auth(token).send().await.unwrap();
        let _ = http.get(&me).header("x-amz-access-token", token).send().await;
        let _ = http
            .get(format!("{me}?access_token={}", token.replace('|', "%7C")))
            .send()
            .await;
        let _ = http
            .get(&me)
            .bearer_auth(token)
            .header("x-amz-access-token", token)
            .send()
            .await;
    }
    // The forward-auth service (its own layer, so every token is verified again): each source,
    // the original URI as nginx and Caddy send it, and its Debug.
    let forward = build_layer(builder(&mock).deadline(Duration::from_millis(400)))
        .unwrap()
        .forward_auth();
    tracing::info!(?forward, "the forward-auth service");
    let verify = format!(
        "http://{}/verify",
        serve(axum::Router::new().fallback_service(forward)).await
    );
    for token in &all {
        let query = format!("/app?access_token={}", token.replace('|', "%7C"));
        let _ = http.get(&verify).bearer_auth(token).send().await;
        let _ = http
            .post(&verify)
            .header("x-amz-access-token", token)
            .send()
            .await;
        let _ = http.get(&verify).header("x-original-uri", &query).send().await;
        let _ = http.get(&verify).header("x-forwarded-uri", &query).send().await;
        let _ = http
            .get(&verify)
            .header("x-original-uri", &query)
            .header("x-forwarded-uri", "/other")
            .send()
            .await;
    }

    // Direct client use and error values, formatted the way a user might log them.
    let endpoints = tower_amazon_auth::endpoint::Endpoints::base_url(mock.base_url()).unwrap();
    let timeout = Duration::from_millis(300);
    let client = tower_amazon_auth::client::AmazonClient::with_timeouts(endpoints, timeout, timeout).unwrap();
    for token in &all {
        let token = AccessToken::new(token.clone());
        tracing::info!(?token, "user code logging a token by mistake");
        if let Err(error) = client.tokeninfo(&token).await {
            tracing::info!(%error, ?error, "tokeninfo failed");
        }
        if let Err(error) = client.profile(&token).await {
            tracing::info!(%error, ?error, "profile failed");
        }
    }

    // The token endpoint: neither the code, the tokens nor the client secret may be logged.
    let secret = "client-secret-that-must-never-be-logged";
    mock.set_client(tower_amazon_auth_mock::MOCK_CLIENT_ID, secret);
    mock.register_code("code-that-must-never-be-logged", good.clone());
    let credentials =
        tower_amazon_auth::client::ClientCredentials::new(tower_amazon_auth_mock::MOCK_CLIENT_ID, secret);
    let tokens = client
        .exchange_code("code-that-must-never-be-logged", &credentials)
        .await
        .unwrap();
    tracing::info!(?tokens, ?credentials, "user code logging an exchange");
    let renewed = client
        .refresh(tokens.refresh_token.as_ref().unwrap(), &credentials)
        .await
        .unwrap();
    tracing::info!(?renewed, "user code logging a refresh");
    let wrong = tower_amazon_auth::client::ClientCredentials::new(
        tower_amazon_auth_mock::MOCK_CLIENT_ID,
        "wrong-secret-xyz",
    );
    if let Err(error) = client.exchange_code("another-code-never-logged", &wrong).await {
        tracing::info!(%error, ?error, "exchange failed");
    }

    let sign_in_secrets = sign_in_flow(&mock, secret).await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for value in &sign_in_secrets {
        assert!(
            !logs.contains(value.as_str()),
            "a sign-in state, code, challenge or session id leaked"
        );
    }
    // The access and refresh tokens the mock minted for the sign-in never reach the test; any
    // token-shaped text after Amazon's prefixes is one of them.
    for prefix in ["Atza|IwEBI", "Atza%7CIwEBI", "Atzr|", "Atzr%7C"] {
        for (at, _) in logs.match_indices(prefix) {
            let after = &logs[at + prefix.len()..];
            let run = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                .count();
            assert!(run < 8, "a token leaked into the logs after {prefix}");
        }
    }
    for secret in [
        secret,
        "code-that-must-never-be-logged",
        "wrong-secret-xyz",
        "another-code-never-logged",
    ] {
        assert!(!logs.contains(secret), "a secret or code leaked into the logs");
    }
    let refresh = tokens.refresh_token.as_ref().unwrap().expose();
    assert!(
        !logs.contains(&refresh[5..]),
        "a refresh token leaked into the logs"
    );
    // What the logs do say, for operators: the span, the user, Amazon's request id, timings,
    // whether a request waited on another's verification.
    for field in [
        "amazon_auth{source=\"bearer\"}",
        "amazon_auth{source=\"query\"}",
        "user_id=\"amzn1.account.logs\"",
        "request_id=",
        "elapsed_us=",
        "coalesced=false",
        "endpoint=\"tokeninfo\"",
        "endpoint=\"profile\"",
    ] {
        assert!(logs.contains(field), "the logs lack {field}");
    }
    assert!(
        logs.contains("token verified"),
        "the capture works and sees the crate's events"
    );
    assert!(logs.contains("request refused"));
    assert!(
        logs.lines().count() > 50,
        "TRACE output of the HTTP stack is captured too"
    );
    // Every test token shares this filler: seeing it anywhere means some token leaked.
    assert!(
        !logs.contains("IwEBIKq7xZ-wT9sL0_bq3Ym"),
        "a token leaked into the logs"
    );
    for token in &all {
        // Any distinctive slice of a token is a leak, raw or percent-encoded.
        let secret = &token[5..45];
        assert!(!logs.contains(secret), "a token leaked into the logs");
        assert!(!logs.contains(&token.replace('|', "%7C")[..40]));
    }
}

/// Website sign-in, end to end at TRACE: a browser signs in through the mock's consent page,
/// uses its session, signs out. Answers the values that must never be logged: the state, the
/// code challenge, the authorization code and the session id.
async fn sign_in_flow(mock: &MockAmazon, secret: &str) -> Vec<String> {
    use tower_amazon_auth::sign_in::SignIn;
    use tower_amazon_auth::AmazonAuthLayer;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let cache = builder(mock).build().unwrap();
    let sign_in = SignIn::builder(cache.clone())
        .client_secret(secret)
        .public_origin(&base)
        .build()
        .unwrap();
    tracing::info!(?sign_in, ?cache, "the sign-in routes");
    mock.allow_redirect_uri(sign_in.redirect_uri());
    let layer = AmazonAuthLayer::builder(cache).sign_in(&sign_in).build().unwrap();
    let app = app(layer, Reached::default()).merge(sign_in.router());
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = |response: &reqwest::Response| response.headers()["location"].to_str().unwrap().to_owned();
    let cookie = |response: &reqwest::Response| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let login = browser
        .get(format!("{base}/login?return_to=/me"))
        .send()
        .await
        .unwrap();
    let authorize = location(&login);
    let pending = cookie(&login);
    let (page, query) = authorize.split_once('?').unwrap();
    let mut form: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let param = |name: &str| form.iter().find(|(k, _)| k == name).unwrap().1.clone();
    let (state, challenge) = (param("state"), param("code_challenge"));
    form.push(("user_id".into(), tower_amazon_auth_mock::MOCK_DEMO_USER_ID.into()));
    form.push(("action".into(), "allow".into()));
    let consented = browser.post(page).form(&form).send().await.unwrap();
    let callback = location(&consented);
    let code = form_urlencoded::parse(callback.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let landed = browser
        .get(&callback)
        .header("cookie", pending)
        .send()
        .await
        .unwrap();
    assert_eq!(landed.status(), 303, "signed in");
    let session = cookie(&landed);
    let id = session
        .split("; ")
        .find_map(|c| c.strip_prefix("taa_session="))
        .unwrap()
        .to_owned();
    let me = browser
        .get(format!("{base}/me"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let out = browser
        .post(format!("{base}/logout"))
        .header("cookie", &session)
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    vec![state, challenge, code, id]
}
