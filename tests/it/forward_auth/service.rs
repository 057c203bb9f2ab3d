//! The forward-auth service over real HTTP on 127.0.0.1, without a proxy: the contract of
//! `tower_amazon_auth::forward_auth` case by case.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower::ServiceExt as _;
use tower_amazon_auth::AccessToken;
use tower_amazon_auth_mock::{MockUser, MOCK_CLIENT_ID};

use super::*;

/// A request to the auth server with `headers`, answered.
async fn verify(server: &AuthServer, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = common::client().get(server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts `response` is a refusal with `status` and a challenge containing `error` (`None`:
/// the bare challenge), and `Cache-Control: no-store`.
fn assert_refused(response: &reqwest::Response, status: u16, error: Option<&str>) {
    assert_eq!(response.status(), status);
    assert_eq!(header(response, "cache-control"), Some("no-store"));
    let challenge = header(response, "www-authenticate").expect("a challenge");
    match error {
        Some(error) => assert!(challenge.contains(&format!("error=\"{error}\"")), "{challenge}"),
        None => assert_eq!(challenge, r#"Bearer realm="api""#),
    }
    assert!(header(response, "x-auth-request-user").is_none());
}

#[tokio::test]
async fn allows_with_the_identity_headers_always_present_and_encoded() {
    let server = AuthServer::start(|b| b).await;
    let good = verify(
        &server,
        "/verify",
        &[("authorization", &bearer(&server.users.good))],
    )
    .await;
    assert_eq!(good.status(), 200);
    assert_eq!(header(&good, "x-auth-request-user"), Some(GOOD_USER));
    assert_eq!(header(&good, "x-auth-request-email"), Some(GOOD_EMAIL));
    assert_eq!(header(&good, "x-auth-request-name"), Some(GOOD_NAME_ENCODED));
    assert_eq!(header(&good, "cache-control"), Some("no-store"));
    let decoded = percent_decode(GOOD_NAME_ENCODED);
    assert_eq!(decoded, GOOD_NAME);

    let uid = verify(
        &server,
        "/verify",
        &[("x-amz-access-token", &server.users.user_id_only)],
    )
    .await;
    assert_eq!(uid.status(), 200);
    assert_eq!(header(&uid, "x-auth-request-user"), Some(USER_ID_ONLY));
    // Present and empty: a proxy copying them overwrites a client's copy.
    assert_eq!(header(&uid, "x-auth-request-email"), Some(""));
    assert_eq!(header(&uid, "x-auth-request-name"), Some(""));
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn every_refusal_is_401_or_403_with_the_challenge() {
    let server = AuthServer::start(|b| b).await;
    let users = &server.users;
    assert_refused(&verify(&server, "/verify", &[]).await, 401, None);
    let cases = [
        (bearer(&users.invalid), 401, "invalid_token"),
        (bearer(&users.foreign), 401, "invalid_token"),
        (bearer("Atzr|a-refresh-token"), 401, "invalid_token"),
        // Malformed: the layer answers 400; nginx would make a 500 of that.
        (bearer("not-an-amazon-token"), 401, "invalid_request"),
        (bearer("Atza|bad token"), 401, "invalid_request"),
        (bearer(&users.no_scope), 403, "insufficient_scope"),
    ];
    for (authorization, status, error) in cases {
        let response = verify(&server, "/verify", &[("authorization", &authorization)]).await;
        assert_refused(&response, status, Some(error));
    }
    // Two methods at once.
    let both = verify(
        &server,
        "/verify",
        &[
            ("authorization", &bearer(&users.good)),
            ("x-amz-access-token", &users.good),
        ],
    )
    .await;
    assert_refused(&both, 401, Some("invalid_request"));
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_401() {
    let server = AuthServer::start(|b| b).await;
    let expired = tower_amazon_auth_mock::mock_access_token("forward-auth expired");
    server
        .mock()
        .register(&expired, MockUser::new("amzn1.account.FWDEXPIRED").exp(0));
    let response = verify(&server, "/verify", &[("authorization", &bearer(&expired))]).await;
    assert_refused(&response, 401, Some("invalid_token"));

    let good = bearer(&server.users.good);
    assert_eq!(
        verify(&server, "/verify", &[("authorization", &good)])
            .await
            .status(),
        200
    );
    server
        .layer
        .cache()
        .revoke(&AccessToken::new(server.users.good.clone()))
        .await
        .unwrap();
    let revoked = verify(&server, "/verify", &[("authorization", &good)]).await;
    assert_refused(&revoked, 401, Some("invalid_token"));
}

#[tokio::test]
async fn amazon_unavailable_is_503_with_retry_after_and_never_an_allow() {
    let mut server = AuthServer::start(|b| b).await;
    let failing = verify(
        &server,
        "/verify",
        &[("authorization", &bearer(&server.users.amazon_fails))],
    )
    .await;
    assert_eq!(failing.status(), 503);
    assert_eq!(header(&failing, "retry-after"), Some("5"));
    assert_eq!(header(&failing, "cache-control"), Some("no-store"));
    assert!(header(&failing, "x-auth-request-user").is_none());

    // Amazon gone altogether.
    drop(server.mock.take());
    let down = verify(
        &server,
        "/verify",
        &[("authorization", &bearer(&server.users.user_id_only))],
    )
    .await;
    assert_eq!(down.status(), 503);
    assert!(header(&down, "retry-after").is_some());
}

#[tokio::test]
async fn answers_verify_and_paths_under_it_with_any_method_and_404_elsewhere() {
    let server = AuthServer::start(|b| b).await;
    let http = common::client();
    let good = bearer(&server.users.good);
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for path in ["/verify", "/verify/", "/verify/api/orders?x=1"] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let response = http
                .request(method.clone(), server.url(path))
                .header("authorization", &good)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{method} {path}");
        }
    }
    let head = http
        .head(server.url("/verify"))
        .header("authorization", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "x-auth-request-user"), Some(GOOD_USER));
    for path in ["/", "/verifyx", "/me", "/api/verify"] {
        let response = verify(&server, path, &[("authorization", &good)]).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(header(&response, "cache-control"), Some("no-store"));
    }
    let healthz = verify(&server, "/healthz", &[]).await;
    assert_eq!(healthz.text().await.unwrap(), "ok");
    // One verification for all of the above.
    assert_eq!(server.mock().calls_for(&server.users.good).tokeninfo, 1);
}

#[tokio::test]
async fn a_query_token_comes_from_the_original_uri() {
    let server = AuthServer::start(|b| b).await;
    let query = format!("/app?x=1&access_token={}", server.users.good.replace('|', "%7C"));
    // nginx: X-Original-URI; Caddy, Traefik: X-Forwarded-Uri; Envoy: the path itself.
    for headers in [
        [("x-original-uri", query.as_str())],
        [("x-forwarded-uri", query.as_str())],
    ] {
        let response = verify(&server, "/verify", &headers).await;
        assert_eq!(response.status(), 200, "{headers:?}");
        assert_eq!(header(&response, "x-auth-request-user"), Some(GOOD_USER));
    }
    let envoy = verify(&server, &format!("/verify{query}"), &[]).await;
    assert_eq!(envoy.status(), 200);
    // A query token in the original URI and a header: two methods.
    let both = verify(
        &server,
        "/verify",
        &[
            ("x-original-uri", &query),
            ("authorization", &bearer(&server.users.good)),
        ],
    )
    .await;
    assert_refused(&both, 401, Some("invalid_request"));
    // The two URI headers disagreeing: ambiguous.
    let ambiguous = verify(
        &server,
        "/verify",
        &[("x-original-uri", &query), ("x-forwarded-uri", "/other")],
    )
    .await;
    assert_refused(&ambiguous, 401, Some("invalid_request"));
    // Without a query token in it, the original URI adds nothing: still no token.
    let none = verify(&server, "/verify", &[("x-original-uri", "/app?x=1")]).await;
    assert_refused(&none, 401, None);
    // Bytes a URI cannot hold are escaped, not a reason to refuse a header token.
    let raw = verify(
        &server,
        "/verify",
        &[
            ("x-original-uri", "/a b/{c}?q=\"1\""),
            ("authorization", &bearer(&server.users.good)),
        ],
    )
    .await;
    assert_eq!(raw.status(), 200);
}

#[tokio::test]
async fn a_layer_that_refuses_query_tokens_refuses_them_here_too() {
    let server = AuthServer::with_layer(|b| b, |l| l.allow_query_token(false)).await;
    let query = format!("/app?access_token={}", server.users.good.replace('|', "%7C"));
    let response = verify(&server, "/verify", &[("x-original-uri", &query)]).await;
    assert_refused(&response, 401, Some("invalid_request"));
    assert_eq!(server.mock().calls().total(), 0);
}

#[tokio::test]
async fn an_optional_layer_still_refuses_a_request_without_a_token() {
    let server = AuthServer::with_layer(|b| b, |l| l.optional(true)).await;
    assert_refused(&verify(&server, "/verify", &[]).await, 401, None);
}

#[tokio::test]
async fn shares_the_layers_cache_and_verifies_each_token_once() {
    let server = AuthServer::start(|b| b).await;
    let good = bearer(&server.users.good);
    let headers = [("authorization", good.as_str())];
    let requests = (0..100).map(|_| verify(&server, "/verify", &headers));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(server.mock().calls_for(&server.users.good).tokeninfo, 1);
    // The layer's own service sees the identity forward-auth verified: a hit, no call.
    let before = server.layer.stats();
    let app = common::app(server.layer.clone(), common::Reached::default());
    let addr = common::serve(app).await;
    let me = common::client()
        .get(format!("http://{addr}/me"))
        .header("authorization", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(server.mock().calls_for(&server.users.good).tokeninfo, 1);
    let after = server.layer.stats();
    assert_eq!((after.hits - before.hits, after.misses), (1, before.misses));
}

#[tokio::test]
async fn passes_the_access_token_only_when_asked() {
    let server = AuthServer::start(|b| b).await;
    let good = server.users.good.clone();
    let by_header = [("authorization", bearer(&good))];
    let by_query = [("x-original-uri", format!("/orders?access_token={good}"))];
    // Off by default: present and empty, so a proxy copying it overwrites a client's own.
    for headers in [&by_header, &by_query] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let answer = verify(&server, "/verify", &headers).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(header(&answer, "x-auth-request-access-token"), Some(""));
    }
    let app = axum::Router::new().fallback_service(server.layer.forward_auth().pass_access_token(true));
    let passing = common::serve(app).await;
    for headers in [&by_header, &by_query] {
        // Once verified (a miss), once from the cache (a hit): the token both times.
        for _ in 0..2 {
            let mut request = common::client().get(format!("http://{passing}/verify"));
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), 200);
            assert_eq!(
                header(&answer, "x-auth-request-access-token"),
                Some(good.as_str())
            );
        }
        server.layer.cache().invalidate_all();
    }
    // A refusal carries none.
    let refused = common::client()
        .get(format!("http://{passing}/verify"))
        .header("authorization", "Bearer Atza|unknown")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(header(&refused, "x-auth-request-access-token").is_none());
}

/// A body that fails the test if anything polls it.
struct Untouchable;

impl Body for Untouchable {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        panic!("ForwardAuth read the request body");
    }
}

#[tokio::test]
async fn never_reads_the_body() {
    let server = AuthServer::start(|b| b).await;
    let request = http::Request::post("/verify")
        .header("authorization", bearer(&server.users.good))
        .header("content-length", "1000000")
        .body(Untouchable)
        .unwrap();
    let response = server.layer.forward_auth().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);

    // Over the wire: a subrequest announcing a megabyte it never sends is answered at once.
    let answer = announce_body_send_none(server.addr, &server.users.good).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Sends `POST /verify` with `Content-Length: 1000000` and no body to `addr` and returns the
/// status line and headers it answers; fails the test when nothing comes within 5 s (a
/// generous bound: the answer needs no body).
pub(crate) async fn announce_body_send_none(addr: SocketAddr, token: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /verify HTTP/1.1\r\nhost: auth\r\nauthorization: Bearer {token}\r\n\
         content-length: 1000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    let read = async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the auth server waited for a body it does not need");
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn debug_shows_no_state_worth_hiding() {
    let layer = AmazonAuthLayer::new(MOCK_CLIENT_ID).unwrap();
    let text = format!("{:?}", layer.forward_auth());
    assert!(text.starts_with("ForwardAuth"), "{text}");
}

/// A custom error responder shapes the body, but the contract a proxy acts on holds: the
/// status, the challenge and `Retry-After` are the forward-auth ones, whatever it answered.
#[tokio::test]
async fn a_custom_responder_cannot_break_the_contract() {
    let server = AuthServer::with_layer(
        |b| b,
        |l| {
            l.error_responder(
                |_: &tower_amazon_auth::AuthError, _: tower_amazon_auth::response::ErrorContext<'_>| {
                    let mut response =
                        http::Response::new(http_body_util::Full::new(Bytes::from_static(b"nope")));
                    *response.status_mut() = http::StatusCode::IM_A_TEAPOT;
                    response
                },
            )
        },
    )
    .await;
    let response = verify(&server, "/verify", &[]).await;
    assert_refused(&response, 401, None);
    let response = verify(&server, "/verify", &[("authorization", "Bearer Atzr|refresh")]).await;
    assert_refused(&response, 401, Some("invalid_token"));
    let response = verify(&server, "/verify", &[("authorization", "Bearer Atza|bad\"quote")]).await;
    assert_refused(&response, 401, Some("invalid_request"));
    assert_eq!(
        response.text().await.unwrap(),
        "nope",
        "the responder's body is kept"
    );
    let failing = verify(
        &server,
        "/verify",
        &[("authorization", &bearer(&server.users.amazon_fails))],
    )
    .await;
    assert_eq!(failing.status(), 503);
    assert_eq!(header(&failing, "retry-after"), Some("5"));
    assert_eq!(header(&failing, "cache-control"), Some("no-store"));
}
