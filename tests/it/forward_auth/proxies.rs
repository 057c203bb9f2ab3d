//! The issue's eight cases behind a real nginx (`auth_request`) and a real Caddy
//! (`forward_auth`), each started by `external.rs` with the README's configuration (rendered
//! from the templates) on free 127.0.0.1 ports, in front of a backend that records what
//! reaches it.

use std::path::Path;

use super::service::announce_body_send_none;
use super::*;
use crate::external::{self, External};
use tower_amazon_auth_test_support::proxies;

#[derive(Clone, Copy, Debug)]
enum Proxy {
    Nginx,
    Caddy,
}

/// The proxy, the auth server and the backend of one test.
struct Rig {
    proxy: External,
    auth: AuthServer,
    backend: Backend,
    http: reqwest::Client,
}

impl Rig {
    /// Everything started, or `None` when the proxy's binary is missing (skipped with a
    /// notice; a failure with `CI` set).
    async fn start(kind: Proxy, test: &str) -> Option<Self> {
        Self::start_with(kind, test, false).await
    }

    /// As [`Rig::start`]; with `auth_down`, the proxy is pointed at a port nobody listens on
    /// instead of the auth server.
    async fn start_with(kind: Proxy, test: &str, auth_down: bool) -> Option<Self> {
        let (binary, package) = match kind {
            Proxy::Nginx => ("nginx", "nginx"),
            Proxy::Caddy => ("caddy", "caddy"),
        };
        let program = external::require(binary, package, test)?;
        let auth = AuthServer::start(|b| b).await;
        let backend = Backend::default();
        let backend_addr = backend.start().await.to_string();
        let auth_addr = if auth_down {
            format!("127.0.0.1:{}", external::free_port())
        } else {
            auth.addr.to_string()
        };
        let port = external::free_port();
        let proxy = match kind {
            Proxy::Nginx => start_nginx(&program, port, &auth_addr, &backend_addr, NGINX_TEMPLATE),
            Proxy::Caddy => start_caddy(&program, port, &auth_addr, &backend_addr),
        };
        Some(Self {
            proxy: proxy.unwrap_or_else(|error| panic!("{kind:?} did not start: {error}")),
            auth,
            backend,
            http: common::client(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy.addr())
    }

    /// `GET path` through the proxy with these headers.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{error}\n{}", self.proxy.logs()))
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn users(&self) -> &Users {
        &self.auth.users
    }

    /// Asserts the client got `status` and the backend was never reached.
    fn assert_refused(&self, response: &reqwest::Response, status: u16, what: &str) {
        assert_eq!(response.status(), status, "{what}\n{}", self.proxy.logs());
        assert!(self.backend.seen().is_empty(), "{what}: the backend was reached");
    }
}

fn start_nginx(
    program: &Path,
    port: u16,
    auth: &str,
    backend: &str,
    template: &str,
) -> std::io::Result<External> {
    let listen = format!("127.0.0.1:{port}");
    let snippet = render(
        template,
        &Addresses {
            listen: &listen,
            auth,
            backend,
        },
    );
    proxies::nginx(program, port, &snippet)
}

fn start_caddy(program: &Path, port: u16, auth: &str, backend: &str) -> std::io::Result<External> {
    let site = format!("http://127.0.0.1:{port}");
    let snippet = render(
        CADDY_TEMPLATE,
        &Addresses {
            listen: &site,
            auth,
            backend,
        },
    );
    proxies::caddy(program, port, &snippet)
}

/// 1. A valid token: 200 from the backend, which sees the identity headers.
async fn valid_token(rig: Rig) {
    let token = &rig.users().good;
    let response = rig
        .get("/app/page", &[("authorization", &Rig::bearer(token))])
        .await;
    assert_eq!(response.status(), 200, "{}", rig.proxy.logs());
    assert_eq!(response.text().await.unwrap(), "backend");
    let seen = rig.backend.last();
    assert_eq!(seen.uri, "/app/page");
    assert_eq!(seen.header("x-auth-request-user"), Some(GOOD_USER));
    assert_eq!(seen.header("x-auth-request-email"), Some(GOOD_EMAIL));
    assert_eq!(seen.header("x-auth-request-name"), Some(GOOD_NAME_ENCODED));
}

/// 2. No token, an invalid token, a foreign `aud`: 401 with the challenge, backend never
///    reached.
async fn refused_tokens(rig: Rig) {
    let none = rig.get("/app", &[]).await;
    rig.assert_refused(&none, 401, "no token");
    assert_eq!(
        none.headers().get("www-authenticate").unwrap(),
        r#"Bearer realm="api""#
    );
    for (what, token) in [
        ("invalid", &rig.users().invalid),
        ("foreign aud", &rig.users().foreign),
    ] {
        let response = rig.get("/app", &[("authorization", &Rig::bearer(token))]).await;
        rig.assert_refused(&response, 401, what);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{what}: {challenge}"
        );
    }
    // And a token without the profile scope: 403 (nginx passes no challenge with it).
    let no_scope = rig
        .get("/app", &[("authorization", &Rig::bearer(&rig.users().no_scope))])
        .await;
    rig.assert_refused(&no_scope, 403, "insufficient scope");
}

/// 3. Client-sent identity headers never reach the backend, with a full profile or a token
///    granting `user_id` only.
async fn client_identity_headers_never_reach_the_backend(rig: Rig) {
    let forged = [
        ("x-auth-request-user", "amzn1.account.FORGED"),
        ("x-auth-request-email", "forged@example.com"),
        ("x-auth-request-name", "Forged"),
    ];
    for (token, user) in [
        (&rig.users().good, GOOD_USER),
        (&rig.users().user_id_only, USER_ID_ONLY),
    ] {
        let mut headers = forged.to_vec();
        let authorization = Rig::bearer(token);
        headers.push(("authorization", &authorization));
        let response = rig.get("/app", &headers).await;
        assert_eq!(response.status(), 200, "{}", rig.proxy.logs());
        let seen = rig.backend.last();
        assert_eq!(seen.header("x-auth-request-user"), Some(user));
        for (name, forged) in forged {
            let values: Vec<_> = seen.headers.get_all(name).iter().collect();
            assert!(
                values.iter().all(|v| v.as_bytes() != forged.as_bytes()),
                "{name}: the client's value reached the backend: {values:?}"
            );
            assert!(values.len() <= 1, "{name}: {values:?}");
        }
    }
    let uid_only = rig.backend.last();
    // Not granted: absent or empty, never the client's.
    for name in ["x-auth-request-email", "x-auth-request-name"] {
        assert!(uid_only.header(name).unwrap_or("").is_empty(), "{name}");
    }
    // Underscored look-alikes, which CGI, PHP-FPM, WSGI and Rack backends read as the real
    // names: the proxy drops them (nginx by default, the Caddy snippet explicitly).
    let authorization = Rig::bearer(&rig.users().good);
    let look_alikes = [
        ("x_auth_request_user", "amzn1.account.FORGED"),
        ("x-auth_request-email", "forged@example.com"),
        ("x_auth-request_name", "Forged"),
        ("authorization", authorization.as_str()),
    ];
    let response = rig.get("/app", &look_alikes).await;
    assert_eq!(response.status(), 200, "{}", rig.proxy.logs());
    let seen = rig.backend.last();
    let underscored: Vec<_> = seen
        .headers
        .keys()
        .filter(|name| name.as_str().contains('_'))
        .collect();
    assert!(
        underscored.is_empty(),
        "underscored headers reached the backend: {underscored:?}"
    );
    assert_eq!(seen.header("x-auth-request-user"), Some(GOOD_USER));
}

/// 4. `POST` with a 1 MB body: the backend gets the whole body; the auth server never waits
///    for a body.
async fn post_with_a_large_body(rig: Rig) {
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let response = rig
        .http
        .post(rig.url("/upload"))
        .header("authorization", Rig::bearer(&rig.users().good))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", rig.proxy.logs());
    let seen = rig.backend.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body.len(), body.len());
    assert!(seen.body == body, "the backend got a different body");
    assert_eq!(seen.header("x-auth-request-user"), Some(GOOD_USER));
    let answer = announce_body_send_none(rig.auth.addr, &rig.users().good).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// 5. The token in the original URI's query: allowed.
async fn query_token(rig: Rig) {
    let path = format!("/app?x=1&access_token={}", rig.users().good.replace('|', "%7C"));
    let response = rig.get(&path, &[]).await;
    assert_eq!(response.status(), 200, "{}", rig.proxy.logs());
    assert_eq!(rig.backend.last().header("x-auth-request-user"), Some(GOOD_USER));
}

/// 6. A malformed token: 4xx at the client, never 500.
async fn malformed_token(rig: Rig) {
    let good = Rig::bearer(&rig.users().good);
    let query = format!("/app?access_token={}", rig.users().good.replace('|', "%7C"));
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "not an Amazon token",
            vec![("authorization", "Bearer not-an-amazon-token")],
        ),
        ("a space in it", vec![("x-amz-access-token", "Atza|two words")]),
        ("two methods", vec![("authorization", &good)]),
    ];
    for (what, headers) in cases {
        let path = if what == "two methods" {
            query.as_str()
        } else {
            "/app"
        };
        let response = rig.get(path, &headers).await;
        rig.assert_refused(&response, 401, what);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="invalid_request""#),
            "{what}: {challenge}"
        );
    }
    assert_eq!(rig.auth.mock().calls().total(), 0);
}

/// 7. Amazon down: 503 with `Retry-After` at the client.
async fn amazon_down(mut rig: Rig) {
    let failing = rig
        .get(
            "/app",
            &[("authorization", &Rig::bearer(&rig.users().amazon_fails))],
        )
        .await;
    rig.assert_refused(&failing, 503, "Amazon answers 503");
    assert_eq!(
        failing.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("5")
    );
    drop(rig.auth.mock.take());
    let down = rig
        .get("/app", &[("authorization", &Rig::bearer(&rig.users().good))])
        .await;
    rig.assert_refused(&down, 503, "Amazon unreachable");
    assert!(down.headers().get("retry-after").is_some());
}

/// 8. 100 requests with one token: one tokeninfo call.
async fn one_verification_for_a_hundred_requests(rig: Rig) {
    let authorization = Rig::bearer(&rig.users().good);
    let headers = [("authorization", authorization.as_str())];
    let requests = (0..100).map(|_| rig.get("/app", &headers));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(rig.backend.seen().len(), 100);
    assert_eq!(rig.auth.mock().calls_for(&rig.users().good).tokeninfo, 1);
}

/// 9. (beyond the issue's eight) The auth server itself unreachable: a 5xx, never the
///    backend. nginx's snippet answers 503 (with no `Retry-After`: nobody gave one); Caddy
///    answers 502.
async fn auth_server_unreachable(kind: Proxy, test: &str) {
    let Some(rig) = Rig::start_with(kind, test, true).await else {
        return;
    };
    let response = rig
        .get("/app", &[("authorization", &Rig::bearer(&rig.users().good))])
        .await;
    let expected = match kind {
        Proxy::Nginx => 503,
        Proxy::Caddy => 502,
    };
    rig.assert_refused(&response, expected, "auth server unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_server_unreachable() {
    auth_server_unreachable(
        Proxy::Nginx,
        "forward_auth::proxies::nginx_auth_server_unreachable",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_auth_server_unreachable() {
    auth_server_unreachable(
        Proxy::Caddy,
        "forward_auth::proxies::caddy_auth_server_unreachable",
    )
    .await;
}

/// A plain `auth_request` configuration (the snippet without its 503 mapping): Amazon
/// unavailable (or the auth server unreachable) is nginx's 500, never a 200; a bad token is
/// still a 401, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_without_the_503_mapping() {
    let test = "forward_auth::proxies::nginx_without_the_503_mapping";
    let Some(program) = external::require("nginx", "nginx", test) else {
        return;
    };
    let plain: String = NGINX_TEMPLATE
        .lines()
        .filter(|line| !line.contains("error_page"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(plain, NGINX_TEMPLATE);
    let auth = AuthServer::start(|b| b).await;
    let backend = Backend::default();
    let backend_addr = backend.start().await.to_string();
    let port = external::free_port();
    let proxy = start_nginx(&program, port, &auth.addr.to_string(), &backend_addr, &plain).unwrap();
    let http = common::client();
    let get = |token: &str| {
        http.get(format!("http://{}/app", proxy.addr()))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(get(&auth.users.amazon_fails).await.unwrap().status(), 500);
    assert_eq!(get("junk").await.unwrap().status(), 401);
    assert_eq!(get(&auth.users.invalid).await.unwrap().status(), 401);
    assert_eq!(get(&auth.users.no_scope).await.unwrap().status(), 403);
    assert!(backend.seen().is_empty());
    assert_eq!(get(&auth.users.good).await.unwrap().status(), 200);

    // The auth server unreachable: nginx's 500 too.
    let dead = format!("127.0.0.1:{}", external::free_port());
    let port = external::free_port();
    let unreachable = start_nginx(&program, port, &dead, &backend_addr, &plain).unwrap();
    let response = http
        .get(format!("http://{}/app", unreachable.addr()))
        .bearer_auth(&auth.users.good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(backend.seen().len(), 1);
}

macro_rules! for_each_proxy {
    ($($case:ident),* $(,)?) => {
        mod nginx {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let test = concat!("forward_auth::proxies::nginx::", stringify!($case));
                    if let Some(rig) = super::Rig::start(super::Proxy::Nginx, test).await {
                        super::$case(rig).await;
                    }
                }
            )*
        }
        mod caddy {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let test = concat!("forward_auth::proxies::caddy::", stringify!($case));
                    if let Some(rig) = super::Rig::start(super::Proxy::Caddy, test).await {
                        super::$case(rig).await;
                    }
                }
            )*
        }
    };
}

for_each_proxy!(
    valid_token,
    refused_tokens,
    client_identity_headers_never_reach_the_backend,
    post_with_a_large_body,
    query_token,
    malformed_token,
    amazon_down,
    one_verification_for_a_hundred_requests,
);
