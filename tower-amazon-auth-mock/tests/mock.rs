//! `MockAmazon` speaks Login with Amazon's wire format over real HTTP on loopback.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower_amazon_auth_mock::{
    mock_access_token, MockAmazon, MockCalls, MockReply, MockScope, MockUser, MOCK_APP_ID, MOCK_CLIENT_ID,
    MOCK_CLIENT_SECRET,
};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A realistic access token: `Atza|IwEBI` and 400 characters of `[A-Za-z0-9_-]`.
fn token(seed: &str) -> String {
    let t = mock_access_token(seed);
    assert!(t.starts_with("Atza|IwEBI"));
    assert!(t.len() > 350);
    assert!(t[5..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    t
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> BTreeSet<String> {
        self.body
            .as_object()
            .expect("object body")
            .keys()
            .cloned()
            .collect()
    }

    /// Asserts Amazon's error shape, headers included, and returns the `error` code.
    fn error(&self) -> &str {
        assert_eq!(
            self.keys(),
            ["error", "error_description", "request_id"]
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>(),
            "body: {}",
            self.body
        );
        assert_eq!(
            self.body["request_id"].as_str(),
            self.header("x-amzn-requestid"),
            "request_id in body and header"
        );
        assert!(!self.body["error_description"]
            .as_str()
            .unwrap_or_default()
            .is_empty());
        self.body["error"].as_str().expect("error string")
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes));
    });
    assert_eq!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        "application/json;charset=UTF-8"
    );
    assert!(headers.contains_key("x-amzn-requestid"));
    Answer {
        status,
        headers,
        body,
    }
}

async fn tokeninfo(amazon: &MockAmazon, token: &str) -> Answer {
    answer(
        client()
            .get(format!("{}/auth/o2/tokeninfo", amazon.base_url()))
            .query(&[("access_token", token)]),
    )
    .await
}

async fn profile(amazon: &MockAmazon, token: &str) -> Answer {
    answer(
        client()
            .get(format!("{}/user/profile", amazon.base_url()))
            .bearer_auth(token),
    )
    .await
}

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn base_url_and_addr() {
    let amazon = MockAmazon::start().await.expect("start");
    assert_eq!(
        amazon.base_url(),
        format!("http://127.0.0.1:{}", amazon.addr().port())
    );
    assert!(!amazon.base_url().ends_with('/'));
    assert!(amazon.addr().ip().is_loopback());
}

#[tokio::test]
async fn tokeninfo_happy_path() {
    let amazon = MockAmazon::start().await.expect("start");
    let t = token("alice");
    amazon.register(
        &t,
        MockUser::new("amzn1.account.ALICE").email("alice@example.com"),
    );
    let a = tokeninfo(&amazon, &t).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.keys(), set(&["iss", "user_id", "aud", "app_id", "exp", "iat"]));
    assert_eq!(a.body["iss"], "https://www.amazon.com");
    assert_eq!(a.body["user_id"], "amzn1.account.ALICE");
    assert_eq!(a.body["aud"], MOCK_CLIENT_ID);
    assert_eq!(a.body["app_id"], MOCK_APP_ID);
    let exp = a.body["exp"].as_i64().expect("exp");
    assert!((3599..=3600).contains(&exp), "exp {exp} is seconds remaining");
    let iat = a.body["iat"].as_i64().expect("iat");
    assert!((now_epoch() - iat).abs() <= 2, "iat {iat} is epoch seconds");

    // Request ids are fresh for every answer.
    let b = tokeninfo(&amazon, &t).await;
    assert_ne!(a.header("x-amzn-requestid"), b.header("x-amzn-requestid"));

    // Custom aud and app_id, and a re-registration replaces the earlier one.
    amazon.register(
        &t,
        MockUser::new("amzn1.account.ALICE")
            .aud("amzn1.application-oa2-client.OTHER")
            .app_id("amzn1.application.OTHER")
            .exp(100),
    );
    let c = tokeninfo(&amazon, &t).await;
    assert_eq!(c.body["aud"], "amzn1.application-oa2-client.OTHER");
    assert_eq!(c.body["app_id"], "amzn1.application.OTHER");
    assert!((99..=100).contains(&c.body["exp"].as_i64().expect("exp")));
}

#[tokio::test]
async fn exp_counts_down_and_expires() {
    let amazon = MockAmazon::start().await.expect("start");
    let short = token("short");
    let long = token("long");
    let odd = token("odd");
    amazon.register(&short, MockUser::new("amzn1.account.SHORT").exp(1));
    amazon.register(&long, MockUser::new("amzn1.account.LONG").exp(3));
    amazon.register(&odd, MockUser::new("amzn1.account.ODD").exp(0));
    assert_eq!(tokeninfo(&amazon, &short).await.body["exp"], 1);
    assert_eq!(profile(&amazon, &short).await.status, 200);

    tokio::time::sleep(Duration::from_millis(1100)).await;

    let expired = tokeninfo(&amazon, &short).await;
    assert_eq!(expired.status, 400);
    assert_eq!(expired.error(), "invalid_token");
    let expired = profile(&amazon, &short).await;
    assert_eq!(expired.status, 400);
    assert_eq!(expired.error(), "invalid_token");

    assert_eq!(tokeninfo(&amazon, &long).await.body["exp"], 2);
    // Registered with exp <= 0: answered as is, never expired by the mock.
    let odd = tokeninfo(&amazon, &odd).await;
    assert_eq!(odd.status, 200);
    assert!(odd.body["exp"].as_i64().expect("exp") <= 0);
}

#[tokio::test]
async fn tokeninfo_query_encodings() {
    let amazon = MockAmazon::start().await.expect("start");
    let t = token("pipes");
    amazon.register(&t, MockUser::new("amzn1.account.PIPE"));
    let encoded = t.replace('|', "%7C");

    for query in [encoded.clone(), encoded.replace("%7C", "%7c"), t.clone()] {
        let url = format!("{}/auth/o2/tokeninfo?access_token={query}", amazon.base_url());
        let a = answer(client().get(url)).await;
        assert_eq!(a.status, 200, "query {query:.12}");
        assert_eq!(a.body["user_id"], "amzn1.account.PIPE");
    }
    // Other parameters around it do not matter.
    let url = format!(
        "{}/auth/o2/tokeninfo?foo=bar&access_token={encoded}&x=1",
        amazon.base_url()
    );
    assert_eq!(answer(client().get(url)).await.status, 200);

    // Missing or empty access_token: invalid_request.
    for query in ["", "?access_token=", "?token=abc"] {
        let url = format!("{}/auth/o2/tokeninfo{query}", amazon.base_url());
        let a = answer(client().get(url)).await;
        assert_eq!(a.status, 400);
        assert_eq!(a.error(), "invalid_request");
    }
}

#[tokio::test]
async fn profile_token_locations() {
    let amazon = MockAmazon::start().await.expect("start");
    let t = token("where");
    amazon.register(&t, MockUser::new("amzn1.account.WHERE").name("W"));
    let url = format!("{}/user/profile", amazon.base_url());
    let requests = [
        client().get(&url).bearer_auth(&t),
        client().get(&url).header("authorization", format!("bearer {t}")),
        client().get(&url).header("authorization", format!("BEARER {t}")),
        client().get(&url).header("x-amz-access-token", &t),
        client().get(&url).query(&[("access_token", &t)]),
        client().get(format!("{url}?access_token={t}")),
    ];
    for request in requests {
        let a = answer(request).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body["user_id"], "amzn1.account.WHERE");
        assert_eq!(a.body["name"], "W");
    }
    assert_eq!(amazon.calls_for(&t).profile, 6);

    // No token at all.
    let a = answer(client().get(&url)).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error(), "invalid_request");
    // A non-bearer Authorization header is not a token.
    let a = answer(client().get(&url).basic_auth("user", Some("pass"))).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.error(), "invalid_request");
}

#[tokio::test]
async fn profile_scopes() {
    let amazon = MockAmazon::start().await.expect("start");
    let full = |scope| {
        MockUser::new("amzn1.account.SCOPE")
            .email("s@example.com")
            .name("Scope")
            .postal_code("98109")
            .scope(scope)
    };
    let cases = [
        (MockScope::UserId, set(&["user_id"])),
        (MockScope::Profile, set(&["user_id", "email", "name"])),
        (
            MockScope::ProfileAndPostalCode,
            set(&["user_id", "email", "name", "postal_code"]),
        ),
    ];
    for (i, (scope, keys)) in cases.into_iter().enumerate() {
        let t = token(&format!("scope-{i}"));
        amazon.register(&t, full(scope));
        let a = profile(&amazon, &t).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.keys(), keys, "{scope:?}");
        assert_eq!(a.body["user_id"], "amzn1.account.SCOPE");
        if keys.contains("postal_code") {
            assert_eq!(a.body["postal_code"], "98109");
            assert_eq!(a.body["email"], "s@example.com");
            assert_eq!(a.body["name"], "Scope");
        }
        // The profile has no aud; tokeninfo is unaffected by scope.
        assert_eq!(tokeninfo(&amazon, &t).await.body["aud"], MOCK_CLIENT_ID);
    }

    // Fields that were never set are omitted, whatever the scope.
    let t = token("bare");
    amazon.register(
        &t,
        MockUser::new("amzn1.account.BARE").scope(MockScope::ProfileAndPostalCode),
    );
    assert_eq!(profile(&amazon, &t).await.keys(), set(&["user_id"]));
}

#[tokio::test]
async fn invalid_tokens() {
    let amazon = MockAmazon::start().await.expect("start");
    let revoked = token("revoked");
    amazon.register(&revoked, MockReply::invalid_token());
    let unknown = token("never-registered");
    for t in [&revoked, &unknown] {
        for a in [tokeninfo(&amazon, t).await, profile(&amazon, t).await] {
            assert_eq!(a.status, 400);
            assert_eq!(a.error(), "invalid_token");
        }
    }

    // Unregistering turns a valid token into an invalid one.
    let t = token("soon-revoked");
    amazon.register(&t, MockUser::new("amzn1.account.X"));
    assert_eq!(tokeninfo(&amazon, &t).await.status, 200);
    assert!(amazon.unregister(&t));
    assert!(!amazon.unregister(&t));
    assert_eq!(tokeninfo(&amazon, &t).await.error(), "invalid_token");
}

#[tokio::test]
async fn insufficient_scope_and_profile_reply() {
    let amazon = MockAmazon::start().await.expect("start");
    let t = token("no-profile");
    amazon.register(
        &t,
        MockReply::insufficient_scope(MockUser::new("amzn1.account.NOSCOPE")),
    );
    let info = tokeninfo(&amazon, &t).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.body["user_id"], "amzn1.account.NOSCOPE");
    let p = profile(&amazon, &t).await;
    assert_eq!(p.status, 401);
    assert_eq!(p.error(), "insufficient_scope");

    let t = token("profile-down");
    amazon.register(
        &t,
        MockUser::new("amzn1.account.DOWN").profile_reply(MockReply::status(500)),
    );
    assert_eq!(tokeninfo(&amazon, &t).await.status, 200);
    let p = profile(&amazon, &t).await;
    assert_eq!(p.status, 500);
    assert_eq!(p.error(), "ServerError");
}

#[tokio::test]
async fn status_replies() {
    let amazon = MockAmazon::start().await.expect("start");
    let t = token("busy");
    amazon.register(&t, MockReply::status(503).retry_after(7));
    for a in [tokeninfo(&amazon, &t).await, profile(&amazon, &t).await] {
        assert_eq!(a.status, 503);
        assert_eq!(a.error(), "ServerError");
        assert_eq!(a.header("retry-after"), Some("7"));
    }
    for (code, error) in [
        (500, "ServerError"),
        (429, "TooManyRequests"),
        (400, "invalid_request"),
        (403, "invalid_request"),
    ] {
        amazon.register(&t, MockReply::status(code));
        let a = tokeninfo(&amazon, &t).await;
        assert_eq!(a.status, code);
        assert_eq!(a.error(), error);
        assert_eq!(a.header("retry-after"), None);
    }
}

#[tokio::test]
async fn json_reply() {
    let amazon = MockAmazon::start().await.expect("start");
    let t = token("wrong-shape");
    amazon.register(&t, MockReply::json(200, json!({"user_id": 42, "aud": null})));
    let a = tokeninfo(&amazon, &t).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, json!({"user_id": 42, "aud": null}));
    amazon.register(&t, MockReply::json(418, json!(["teapot"])));
    let a = profile(&amazon, &t).await;
    assert_eq!(a.status, 418);
    assert_eq!(a.body, json!(["teapot"]));
}

#[tokio::test]
async fn garbage_is_not_json() {
    let amazon = MockAmazon::start().await.expect("start");
    let t = token("garbage");
    amazon.register(&t, MockReply::garbage());
    let response = client()
        .get(format!("{}/auth/o2/tokeninfo", amazon.base_url()))
        .query(&[("access_token", &t)])
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .starts_with("application/json"));
    let bytes = response.bytes().await.expect("body");
    assert!(!bytes.is_empty());
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
}

/// The length of the tokeninfo body for `t`, or the client's error.
async fn body_result(amazon: &MockAmazon, t: &str) -> Result<usize, reqwest::Error> {
    let response = client()
        .get(format!("{}/auth/o2/tokeninfo", amazon.base_url()))
        .query(&[("access_token", t)])
        .send()
        .await?;
    let bytes = response.bytes().await?;
    Ok(bytes.len())
}

#[tokio::test]
async fn truncated_and_reset_are_client_errors() {
    let amazon = MockAmazon::start().await.expect("start");
    let truncated = token("truncated");
    let reset = token("reset");
    amazon.register(&truncated, MockReply::truncated());
    amazon.register(&reset, MockReply::reset());

    for t in [&truncated, &reset] {
        // The status line and headers arrive; the body does not complete.
        let response = client()
            .get(format!("{}/auth/o2/tokeninfo", amazon.base_url()))
            .query(&[("access_token", t)])
            .send()
            .await
            .expect("headers arrive");
        assert_eq!(response.status(), 200);
        let err = response.bytes().await.expect_err("body must fail");
        assert!(err.is_body() || err.is_decode() || err.is_request(), "{err:?}");

        let err = body_result(&amazon, t).await.expect_err("must fail");
        assert!(!err.is_timeout(), "{err:?}");
    }

    // The server keeps serving afterwards.
    let ok = token("ok");
    amazon.register(&ok, MockUser::new("amzn1.account.OK"));
    assert_eq!(tokeninfo(&amazon, &ok).await.status, 200);
}

#[tokio::test]
async fn truncated_and_reset_on_the_wire() {
    let amazon = MockAmazon::start().await.expect("start");
    let truncated = token("wire-truncated");
    let reset = token("wire-reset");
    amazon.register(&truncated, MockReply::truncated());
    amazon.register(&reset, MockReply::reset());

    // Truncated: a Content-Length larger than the bytes sent, then a clean close.
    let (raw, err) = raw_exchange(&amazon, &truncated).await;
    assert!(err.is_none(), "clean close expected, got {err:?}");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("headers");
    assert!(head.starts_with("HTTP/1.1 200"));
    let declared: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("content-length");
    assert!(!body.is_empty());
    assert!(body.len() < declared, "{} < {declared}", body.len());

    // Reset: headers and part of the body, then a connection reset.
    let (raw, err) = raw_exchange(&amazon, &reset).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let err = err.expect("connection reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

/// Sends one tokeninfo request on a fresh connection and reads until the connection ends.
async fn raw_exchange(amazon: &MockAmazon, t: &str) -> (Vec<u8>, Option<std::io::Error>) {
    let mut stream = TcpStream::connect(amazon.addr()).await.expect("connect");
    let request = format!(
        "GET /auth/o2/tokeninfo?access_token={} HTTP/1.1\r\nhost: localhost\r\n\r\n",
        t.replace('|', "%7C")
    );
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("no hang")
        {
            Ok(0) => return (raw, None),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return (raw, Some(e)),
        }
    }
}

#[tokio::test]
async fn oversized_body() {
    let amazon = MockAmazon::start().await.expect("start");
    let t = token("big");
    amazon.register(&t, MockReply::oversized(1_000_000));
    let response = client()
        .get(format!("{}/user/profile", amazon.base_url()))
        .bearer_auth(&t)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(1_000_000));
    let bytes = response.bytes().await.expect("body");
    assert_eq!(bytes.len(), 1_000_000);
    assert!(bytes.starts_with(b"{\""));
    assert!(bytes.ends_with(b"\"}"));

    amazon.register(&t, MockReply::oversized(4));
    assert_eq!(body_result(&amazon, &t).await.expect("body"), 4);
}

#[tokio::test]
async fn hang_times_out_and_is_counted() {
    let amazon = MockAmazon::start().await.expect("start");
    let t = token("hang");
    amazon.register(&t, MockReply::hang());
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    let err = quick
        .get(format!("{}/auth/o2/tokeninfo", amazon.base_url()))
        .query(&[("access_token", &t)])
        .send()
        .await
        .expect_err("hang");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(amazon.calls().tokeninfo, 1);
    assert_eq!(amazon.calls_for(&t).tokeninfo, 1);

    // Counted on arrival, while the call is still hanging.
    let url = format!("{}/user/profile", amazon.base_url());
    let pending = tokio::spawn(client().get(url).bearer_auth(t.clone()).send());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while amazon.calls_for(&t).profile == 0 {
        assert!(std::time::Instant::now() < deadline, "profile call never counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!pending.is_finished());

    // Dropping the mock ends the hanging connection: the client gets an error, not a timeout.
    drop(amazon);
    let result = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("hanging request ends when the mock is dropped")
        .expect("join");
    let err = result.expect_err("no answer");
    assert!(!err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn delayed_and_latency() {
    let amazon = MockAmazon::start().await.expect("start");
    let slow = token("slow");
    let fast = token("fast");
    amazon.register(
        &slow,
        MockReply::user(MockUser::new("amzn1.account.SLOW")).delayed(Duration::from_millis(200)),
    );
    amazon.register(&fast, MockUser::new("amzn1.account.FAST"));

    let started = std::time::Instant::now();
    assert_eq!(tokeninfo(&amazon, &slow).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let started = std::time::Instant::now();
    assert_eq!(profile(&amazon, &slow).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));

    // A delayed failure.
    let t = token("slow-failure");
    amazon.register(&t, MockReply::status(503).delayed(Duration::from_millis(150)));
    let started = std::time::Instant::now();
    assert_eq!(tokeninfo(&amazon, &t).await.status, 503);
    assert!(started.elapsed() >= Duration::from_millis(150));

    // Latency applies to every answer of every endpoint, and adds to `delayed`.
    amazon.set_latency(Duration::from_millis(150));
    let started = std::time::Instant::now();
    assert_eq!(tokeninfo(&amazon, &fast).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = std::time::Instant::now();
    assert_eq!(profile(&amazon, &slow).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(350));
    let started = std::time::Instant::now();
    let a = answer(client().get(format!("{}/nope", amazon.base_url()))).await;
    assert_eq!(a.status, 404);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = std::time::Instant::now();
    let a = answer(
        client()
            .post(format!("{}/auth/o2/token", amazon.base_url()))
            .form(&[("grant_type", "password")]),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(started.elapsed() >= Duration::from_millis(150));

    amazon.set_latency(Duration::ZERO);
    let started = std::time::Instant::now();
    assert_eq!(tokeninfo(&amazon, &fast).await.status, 200);
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn counters() {
    let amazon = MockAmazon::start().await.expect("start");
    let a = token("count-a");
    let b = token("count-b");
    amazon.register(&a, MockUser::new("amzn1.account.A"));
    amazon.register(&b, MockReply::invalid_token());
    assert_eq!(amazon.calls(), MockCalls::default());

    tokeninfo(&amazon, &a).await;
    tokeninfo(&amazon, &a).await;
    profile(&amazon, &a).await;
    tokeninfo(&amazon, &b).await;
    // No token: counted in the totals only.
    answer(client().get(format!("{}/auth/o2/tokeninfo", amazon.base_url()))).await;
    // Unknown paths are not counted.
    answer(client().get(format!("{}/other", amazon.base_url()))).await;

    assert_eq!(
        amazon.calls(),
        MockCalls {
            tokeninfo: 4,
            profile: 1,
            token: 0
        }
    );
    assert_eq!(amazon.calls().total(), 5);
    assert_eq!(
        amazon.calls_for(&a),
        MockCalls {
            tokeninfo: 2,
            profile: 1,
            token: 0
        }
    );
    assert_eq!(amazon.calls_for(&a).total(), 3);
    assert_eq!(amazon.calls_for(&b).tokeninfo, 1);
    assert_eq!(amazon.calls_for("unknown"), MockCalls::default());

    amazon.register_code("code-1", &a);
    exchange_code(&amazon, "code-1").await;
    assert_eq!(amazon.calls().token, 1);
    assert_eq!(amazon.calls_for("code-1").token, 1);

    amazon.reset_calls();
    assert_eq!(amazon.calls(), MockCalls::default());
    assert_eq!(amazon.calls_for(&a), MockCalls::default());
    assert_eq!(amazon.calls_for("code-1"), MockCalls::default());
    profile(&amazon, &a).await;
    assert_eq!(amazon.calls().profile, 1);
    assert_eq!(amazon.calls_for(&a).profile, 1);
}

fn token_url(amazon: &MockAmazon) -> String {
    format!("{}/auth/o2/token", amazon.base_url())
}

async fn token_call(amazon: &MockAmazon, form: &[(&str, &str)]) -> Answer {
    let a = answer(client().post(token_url(amazon)).form(form)).await;
    assert_eq!(a.header("cache-control"), Some("no-store"));
    a
}

async fn exchange_code(amazon: &MockAmazon, code: &str) -> Answer {
    token_call(
        amazon,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "https://app.example.com/callback"),
            ("client_id", MOCK_CLIENT_ID),
            ("client_secret", MOCK_CLIENT_SECRET),
        ],
    )
    .await
}

#[tokio::test]
async fn code_exchange_and_refresh() {
    let amazon = MockAmazon::start().await.expect("start");
    let access = token("exchanged");
    amazon.register(&access, MockUser::new("amzn1.account.EXCHANGED"));
    amazon.register_code("ANdNAVhyhqirUelHGEHA", &access);

    let a = exchange_code(&amazon, "ANdNAVhyhqirUelHGEHA").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.keys(),
        set(&["access_token", "token_type", "expires_in", "refresh_token"])
    );
    assert_eq!(a.body["access_token"], access.as_str());
    assert_eq!(a.body["token_type"], "bearer");
    assert_eq!(a.body["expires_in"], 3600);
    let refresh = a.body["refresh_token"].as_str().expect("refresh").to_owned();
    assert!(refresh.starts_with("Atzr|mock-refresh-"), "{refresh}");
    // The exchanged token works at tokeninfo.
    assert_eq!(
        tokeninfo(&amazon, &access).await.body["user_id"],
        "amzn1.account.EXCHANGED"
    );

    // A code exchanges once.
    let again = exchange_code(&amazon, "ANdNAVhyhqirUelHGEHA").await;
    assert_eq!(again.status, 400);
    assert_eq!(again.error(), "invalid_grant");

    // Refresh: same access token, same refresh token.
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", MOCK_CLIENT_ID),
        ("client_secret", MOCK_CLIENT_SECRET),
    ];
    for _ in 0..2 {
        let r = token_call(&amazon, &refresh_form).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["access_token"], access.as_str());
        assert_eq!(r.body["refresh_token"], refresh.as_str());
        assert_eq!(r.body["token_type"], "bearer");
        assert_eq!(r.body["expires_in"], 3600);
    }
    assert_eq!(amazon.calls_for(&refresh).token, 2);

    // Each exchange issues its own refresh token.
    amazon.register_code("second-code", &access);
    let b = exchange_code(&amazon, "second-code").await;
    assert_eq!(b.status, 200);
    assert_ne!(b.body["refresh_token"], refresh.as_str());
}

/// A token endpoint form, and the status and `error` it must get.
type TokenCase<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);

#[tokio::test]
async fn token_endpoint_errors() {
    let amazon = MockAmazon::start().await.expect("start");
    let access = token("errors");
    for code in ["c1", "c2", "c3", "c4"] {
        amazon.register_code(code, &access);
    }
    let id = MOCK_CLIENT_ID;
    let secret = MOCK_CLIENT_SECRET;
    let cases: Vec<TokenCase<'_>> = vec![
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "c1"),
                ("client_id", id),
                ("client_secret", "wrong"),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "c1"),
                ("client_id", "amzn1.application-oa2-client.other"),
                ("client_secret", secret),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "nope"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "Atzr|unknown"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "password"), ("username", "u"), ("password", "p")],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![("code", "c1"), ("client_id", id), ("client_secret", secret)],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "c1"),
                ("client_secret", secret),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "c1"),
                ("client_id", id),
            ],
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "c1"),
                ("code", "c2"),
                ("client_id", id),
                ("client_secret", secret),
            ],
            400,
            "invalid_request",
        ),
    ];
    for (form, status, error) in cases {
        let a = token_call(&amazon, &form).await;
        assert_eq!((a.status, a.error()), (status, error), "{form:?}");
    }
    // None of the failures consumed c1.
    assert_eq!(exchange_code(&amazon, "c1").await.status, 200);

    // Not a form body.
    let a = answer(
        client()
            .post(token_url(&amazon))
            .header("content-type", "application/json")
            .body(r#"{"grant_type":"authorization_code"}"#),
    )
    .await;
    assert_eq!((a.status, a.error()), (400, "invalid_request"));

    // Wrong method, wrong path.
    let a = answer(client().get(token_url(&amazon))).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("POST"));
    let a = answer(client().post(format!("{}/auth/o2/tokeninfo", amazon.base_url()))).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("GET"));
    let a = answer(client().get(format!("{}/auth/o2/unknown", amazon.base_url()))).await;
    assert_eq!(a.status, 404);
    a.error();

    // HTTP Basic client authentication.
    let basic = |code: &'static str, secret: &'static str| {
        client()
            .post(token_url(&amazon))
            .basic_auth(MOCK_CLIENT_ID, Some(secret))
            .form(&[("grant_type", "authorization_code"), ("code", code)])
    };
    let a = answer(basic("c2", MOCK_CLIENT_SECRET)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["access_token"], access.as_str());
    let a = answer(basic("c3", "wrong")).await;
    assert_eq!((a.status, a.error()), (401, "invalid_client"));
    // Two authentication methods at once.
    let a = answer(
        client()
            .post(token_url(&amazon))
            .basic_auth(MOCK_CLIENT_ID, Some(MOCK_CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", "c3"),
                ("client_secret", MOCK_CLIENT_SECRET),
            ]),
    )
    .await;
    assert_eq!((a.status, a.error()), (400, "invalid_request"));

    // Another client.
    amazon.set_client("amzn1.application-oa2-client.custom", "s3cr3t+/=");
    let a = answer(basic("c3", MOCK_CLIENT_SECRET)).await;
    assert_eq!((a.status, a.error()), (401, "invalid_client"));
    let a = token_call(
        &amazon,
        &[
            ("grant_type", "authorization_code"),
            ("code", "c3"),
            ("client_id", "amzn1.application-oa2-client.custom"),
            ("client_secret", "s3cr3t+/="),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
    let a = answer(
        client()
            .post(token_url(&amazon))
            .basic_auth("amzn1.application-oa2-client.custom", Some("s3cr3t%2B%2F%3D"))
            .form(&[("grant_type", "authorization_code"), ("code", "c4")]),
    )
    .await;
    assert_eq!(a.status, 200, "RFC 6749 form-encoded Basic credentials");
}

#[tokio::test]
async fn token_endpoint_reply_override() {
    let amazon = MockAmazon::start().await.expect("start");
    let access = token("override");
    amazon.register_code("code", &access);
    amazon.set_token_endpoint_reply(Some(MockReply::status(500)));
    let a = exchange_code(&amazon, "code").await;
    assert_eq!((a.status, a.error()), (500, "ServerError"));
    amazon.set_token_endpoint_reply(Some(MockReply::status(429).retry_after(3)));
    let a = exchange_code(&amazon, "code").await;
    assert_eq!((a.status, a.error()), (429, "TooManyRequests"));
    assert_eq!(a.header("retry-after"), Some("3"));
    assert_eq!(amazon.calls().token, 2);

    // A user reply keeps the normal exchange, after its delay.
    amazon.set_token_endpoint_reply(Some(
        MockReply::user(MockUser::new("x")).delayed(Duration::from_millis(100)),
    ));
    let started = std::time::Instant::now();
    let a = exchange_code(&amazon, "code").await;
    assert_eq!(a.status, 200, "the failures did not consume the code");
    assert!(started.elapsed() >= Duration::from_millis(100));

    amazon.set_token_endpoint_reply(None);
    amazon.register_code("code2", &access);
    assert_eq!(exchange_code(&amazon, "code2").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests() {
    let amazon = MockAmazon::start().await.expect("start");
    let tokens: Vec<String> = (0..20).map(|i| token(&format!("c{i}"))).collect();
    for (i, t) in tokens.iter().enumerate() {
        amazon.register(t, MockUser::new(format!("amzn1.account.C{i}")));
    }
    let http = client();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let t = tokens[i % tokens.len()].clone();
        let url = if i % 2 == 0 {
            format!("{}/auth/o2/tokeninfo", amazon.base_url())
        } else {
            format!("{}/user/profile", amazon.base_url())
        };
        let http = http.clone();
        let expected = format!("amzn1.account.C{}", i % tokens.len());
        set.spawn(async move {
            let response = http
                .get(url)
                .query(&[("access_token", &t)])
                .send()
                .await
                .expect("response");
            assert_eq!(response.status(), 200);
            let body: Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
            assert_eq!(body["user_id"], expected.as_str());
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.expect("request task");
    }
    assert_eq!(amazon.calls().total(), 1000);
    assert_eq!(amazon.calls().tokeninfo, 500);
    assert_eq!(amazon.calls_for(&tokens[0]).total(), 50);
}

#[tokio::test]
async fn keep_alive_serves_several_requests_per_connection() {
    let amazon = MockAmazon::start().await.expect("start");
    let t = token("keepalive");
    amazon.register(&t, MockUser::new("amzn1.account.KEEP"));
    let mut stream = TcpStream::connect(amazon.addr()).await.expect("connect");
    let request = format!(
        "GET /auth/o2/tokeninfo?access_token={} HTTP/1.1\r\nhost: localhost\r\n\r\n",
        t.replace('|', "%7C")
    );
    let mut buf = vec![0u8; 16 * 1024];
    for _ in 0..3 {
        stream.write_all(request.as_bytes()).await.expect("write request");
        let mut raw = Vec::new();
        // Read one complete response (headers + Content-Length body).
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("no hang")
                .expect("read");
            assert!(n > 0, "connection closed after a keep-alive response");
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .expect("content-length");
                if body.len() >= len {
                    assert!(head.starts_with("HTTP/1.1 200"));
                    assert!(body.contains("amzn1.account.KEEP"));
                    break;
                }
            }
        }
    }
    assert_eq!(amazon.calls().tokeninfo, 3);
}

#[tokio::test]
async fn dropping_the_mock_closes_the_port() {
    let amazon = MockAmazon::start().await.expect("start");
    let addr = amazon.addr();
    // An idle keep-alive connection is open at the time of the drop.
    let t = token("drop");
    amazon.register(&t, MockUser::new("amzn1.account.DROP"));
    assert_eq!(tokeninfo(&amazon, &t).await.status, 200);
    TcpStream::connect(addr).await.expect("listening");

    drop(amazon);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "port still accepts connections"
    );
}

#[tokio::test]
async fn debug_never_shows_tokens() {
    let amazon = MockAmazon::start().await.expect("start");
    let t = token("secret-token");
    amazon.register(&t, MockUser::new("amzn1.account.DBG"));
    amazon.register_code("the-code", &t);
    let debug = format!("{amazon:?}");
    assert!(debug.contains(amazon.base_url()), "{debug}");
    assert!(!debug.contains("Atza|"), "{debug}");
    assert!(!debug.contains(MOCK_CLIENT_SECRET), "{debug}");
    assert!(!debug.contains("the-code"), "{debug}");
}
