//! Browser sign-in on the proxy's `/oauth2/*` routes, and `/verify` answering for the session:
//! the CSRF rule judged by the method the proxy reports, signed-out navigations sent to
//! sign in, API calls answered `401`. The real binary with `--demo`, over HTTP on 127.0.0.1
//! (`tests/proxies.rs` runs it behind the real nginx and Caddy, with the `rd` checks).

mod common;

use common::{rd_of, start_path, AuthServer};
use tower_amazon_auth_test_support::external::free_port;

/// The auth server with `--demo`, and where it listens (its own public URL).
struct Proxy {
    _server: AuthServer,
    base: String,
}

impl Proxy {
    fn start() -> Self {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let base = format!("http://{addr}");
        Self {
            _server: AuthServer::start(addr, &base),
            base,
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in on the auth server itself, to return to `rd`.
async fn sign_in(proxy: &Proxy, rd: &str) -> (String, String) {
    common::sign_in(&client(), &proxy.base, &start_path(rd)).await
}

#[tokio::test]
async fn a_browser_signs_in_on_oauth2_routes_and_verify_answers_for_its_session() {
    let proxy = Proxy::start();
    let http = client();
    let verify = format!("{}/verify", proxy.base);
    let original = "/private/page?a=1&b=%2F&c=%C3%A9";

    // Signed out: a navigation is told where to sign in; an API call just gets 401.
    let navigation = http
        .get(&verify)
        .header("x-original-uri", original)
        .header("x-original-method", "GET")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(navigation.status(), 401);
    let redirect = navigation.headers()["x-auth-request-redirect"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(redirect.starts_with("/oauth2/start?rd="), "{redirect}");
    let rd = rd_of(redirect.strip_prefix("/oauth2/start?").unwrap());
    assert_eq!(rd, original, "the whole original URI, percent-encoded once");
    let api = http
        .get(&verify)
        .header("x-original-uri", original)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    assert!(api.headers().get("x-auth-request-redirect").is_none());
    assert!(api.headers().contains_key("www-authenticate"));

    // Sign in, and come back to exactly that URI.
    let (landed, session) = sign_in(&proxy, &rd).await;
    assert_eq!(landed, original);

    let ask = |method_headers: &[(&str, &str)], origin: Option<&str>| {
        let mut request = http.get(&verify).header("cookie", &session);
        for (name, value) in method_headers {
            request = request.header(*name, *value);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move { request.send().await.unwrap() }
    };
    let allowed = ask(&[("x-original-method", "GET")], None).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["x-auth-request-user"],
        "amzn1.account.DEMO7ZQK4XUSER"
    );
    assert_eq!(
        ask(&[("x-forwarded-method", "POST")], Some(&proxy.base))
            .await
            .status(),
        200,
        "the site's own POST"
    );
    assert_eq!(
        ask(&[("x-original-method", "POST")], Some("https://evil.example"))
            .await
            .status(),
        403
    );
    // A forged safe method in the other proxy's header changes nothing.
    let forged = ask(
        &[("x-forwarded-method", "GET"), ("x-original-method", "POST")],
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(forged.status(), 403);
    // No method header at all: the CSRF rule cannot be kept, so the cookie is refused.
    assert_eq!(ask(&[], None).await.status(), 403);
    // A bearer client keeps working, with no method header needed.
    let bearer = http.get(&verify).bearer_auth("junk").send().await.unwrap();
    assert_eq!(bearer.status(), 401);
}
