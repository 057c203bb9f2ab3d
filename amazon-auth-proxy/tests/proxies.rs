//! "Login with Amazon" in front of a site through the REAL nginx (`auth_request`) and the REAL
//! Caddy (`forward_auth`), configured with `tests/nginx-sign-in.conf` and
//! `tests/Caddyfile-sign-in` (the snippets docs/proxy.md shows, byte for byte), in front of the
//! real binary with `--demo` and a site that answers what reached it as JSON. Over plain HTTP
//! on 127.0.0.1, the site's origin being the proxy's; no browser.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{
    location, rd_of, render, start_path, Auth, Kind, Rig, CADDY_TEMPLATE, DEMO_USER, NGINX_TEMPLATE, ORIGINAL,
};
use tower_amazon_auth_mock::MockReply;

const EVIL: &str = "https://evil.example";

/// The site: answers every request with its method, URI and headers as JSON.
fn site() -> axum::Router {
    axum::Router::new().fallback(|request: axum::extract::Request| async move {
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in request.headers() {
            headers
                .entry(name.to_string())
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
        axum::Json(serde_json::json!({
            "method": request.method().as_str(),
            "uri": request.uri().to_string(),
            "headers": headers,
        }))
    })
}

impl Rig {
    /// A browser's navigation to `path`.
    async fn navigate(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .get(self.url(path))
            .header("sec-fetch-mode", "navigate")
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        self.send(request).await
    }

    /// A navigation to [`ORIGINAL`] while signed out: the sign-in URL it is sent to (a path).
    async fn sent_to_sign_in(&self, cookie: Option<&str>, what: &str) -> String {
        let response = self.navigate(ORIGINAL, cookie).await;
        assert_eq!(response.status(), 302, "{what}\n{}", self.proxy.logs());
        let location = location(&response);
        let path = location
            .strip_prefix(&self.origin)
            .unwrap_or(&location)
            .to_owned();
        assert!(path.starts_with("/oauth2/start?rd="), "{what}: {location}");
        let rd = rd_of(path.strip_prefix("/oauth2/start?").unwrap());
        assert_eq!(rd, ORIGINAL, "{what}: the whole original URI, encoded once");
        path
    }

    /// Signs in through the proxy from `start` (`/oauth2/start?rd=…`): where the callback sends
    /// the browser, and the session cookie.
    async fn sign_in(&self, start: &str) -> (String, String) {
        common::sign_in(&self.http, &self.origin, start).await
    }
}

/// What the site saw, from its JSON answer.
async fn seen(response: reqwest::Response) -> serde_json::Value {
    assert_eq!(response.status(), 200, "{response:?}");
    response.json().await.unwrap()
}

/// Every value of header `name` the site saw.
fn seen_header(seen: &serde_json::Value, name: &str) -> Vec<String> {
    seen["headers"][name]
        .as_array()
        .map(|values| values.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Signed out: a navigation is sent to sign in, with the whole original URI; an API call gets
/// `401` and the challenge, never a redirect; the site is never reached.
async fn signed_out(rig: Rig) {
    rig.sent_to_sign_in(None, "a signed-out navigation").await;
    let api = rig
        .send(
            rig.http
                .get(rig.url(ORIGINAL))
                .header("accept", "application/json"),
        )
        .await;
    assert_eq!(api.status(), 401, "{}", rig.proxy.logs());
    assert!(api.headers().get("location").is_none());
    assert!(api.headers().get("x-auth-request-redirect").is_none());
    let challenges: Vec<_> = api.headers().get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 1, "one challenge: {challenges:?}");
    let challenge = challenges[0].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    // A POST with no session: refused, never sent on to the site.
    let post = rig.send(rig.http.post(rig.url("/private/form"))).await;
    assert_eq!(post.status(), 401);
}

/// Signing in through the proxy's origin, back to exactly the original URI; the site then sees
/// the identity from the auth server only, its own cookies and none of sign-in's; the CSRF rule
/// holds through the proxy; signing out sends the next navigation to sign in again.
async fn sign_in_and_out(rig: Rig) {
    let start = rig.sent_to_sign_in(None, "signed out").await;
    let (landed, session) = rig.sign_in(&start).await;
    assert_eq!(landed, ORIGINAL, "back to exactly the original URI");

    // Signed in: the site sees who, and only its own cookie.
    let cookie = format!("taa_login_stale=abc; theme=dark; {session}; __Host-taa_login_x=y");
    let response = rig
        .send(
            rig.http
                .get(rig.url(ORIGINAL))
                .header("sec-fetch-mode", "navigate")
                .header("cookie", &cookie)
                .header("x-auth-request-user", "amzn1.account.FORGED")
                .header("x-auth-request-email", "forged@example.com")
                .header("x-auth-request-access-token", "Atza|FORGED"),
        )
        .await;
    let page = seen(response).await;
    assert_eq!(page["uri"], ORIGINAL);
    assert_eq!(seen_header(&page, "x-auth-request-user"), [DEMO_USER]);
    assert_eq!(seen_header(&page, "x-auth-request-email"), ["demo@example.com"]);
    // Without --pass-access-token: no token at all, not even the client's own (Caddy 2.6.2
    // passes the auth server's empty value on, nginx sends no header).
    let tokens = seen_header(&page, "x-auth-request-access-token");
    assert!(tokens.iter().all(String::is_empty), "{tokens:?}");
    let cookies = seen_header(&page, "cookie").join("; ");
    let pairs: Vec<&str> = cookies
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .collect();
    assert_eq!(pairs, ["theme=dark"], "the Cookie the site got: {cookies:?}");
    assert!(!cookies.contains("taa_"), "{cookies:?}");

    // The site's own POST passes; a cross-origin one is refused, with or without a forged
    // safe method in the header the other proxy uses.
    let post = |origin: &str, forged: Option<(&str, &str)>| {
        let mut request = rig
            .http
            .post(rig.url("/private/form"))
            .header("cookie", &session)
            .header("origin", origin)
            .body("x=1");
        if let Some((name, value)) = forged {
            request = request.header(name, value);
        }
        rig.send(request)
    };
    let own = seen(post(&rig.origin, None).await).await;
    assert_eq!(own["method"], "POST");
    assert_eq!(seen_header(&own, "x-auth-request-user"), [DEMO_USER]);
    assert_eq!(post(EVIL, None).await.status(), 403, "a cross-origin POST");
    let other_proxys = match rig.kind {
        Kind::Nginx => "x-forwarded-method",
        Kind::Caddy => "x-original-method",
    };
    let forged = post(EVIL, Some((other_proxys, "GET"))).await;
    assert_eq!(forged.status(), 403, "{other_proxys}: GET forged by the client");

    // `/verify` from outside is never the auth server's, even with a session and a token.
    let outside = rig
        .send(
            rig.http
                .get(rig.url("/verify"))
                .header("cookie", &session)
                .bearer_auth(&rig.auth.token),
        )
        .await;
    assert!(
        outside.headers().get("x-auth-request-user").is_none(),
        "the identity answered to the client: {outside:?}"
    );
    match rig.kind {
        // `internal`: not found from outside.
        Kind::Nginx => assert_eq!(outside.status(), 404),
        // Protected like any path, and then the site's own `/verify`.
        Kind::Caddy => {
            let site = seen(outside).await;
            assert_eq!(site["uri"], "/verify");
        }
    }

    // Sign out (the site's own POST), then the cookie is sent to sign in again.
    let out = rig
        .send(
            rig.http
                .post(rig.url("/oauth2/sign_out"))
                .header("cookie", &session)
                .header("origin", &rig.origin),
        )
        .await;
    assert_eq!(out.status(), 303, "{}", rig.proxy.logs());
    rig.sent_to_sign_in(Some(&session), "signed out, with the old cookie")
        .await;
}

/// `rd` sends the browser back on the site only (a path, or an absolute URL on the site's
/// origin); anything else lands on `/`.
async fn rd_never_leaves_the_site(rig: Rig) {
    let (landed, _) = rig.sign_in(&start_path(&rig.url("/dashboard?x=1"))).await;
    assert_eq!(landed, "/dashboard?x=1");
    for hostile in [
        "https://evil.example/",
        "//evil.example",
        "/%09/evil.example",
        "/\\evil.example",
        &format!("{}.evil.example/", rig.origin),
    ] {
        let (landed, _) = rig.sign_in(&start_path(hostile)).await;
        assert_eq!(landed, "/", "{hostile}");
    }
}

/// Amazon unavailable: `503` with the auth server's `Retry-After` through the proxy, never the
/// site; then the auth server down: what each proxy answers (docs/proxy.md's table).
async fn amazon_or_auth_server_down(mut rig: Rig) {
    let failing = tower_amazon_auth_mock::mock_access_token("amazon is down");
    rig.auth
        .amazon()
        .register(&failing, MockReply::status(503).retry_after(7));
    let down = rig
        .send(rig.http.get(rig.url(ORIGINAL)).bearer_auth(&failing))
        .await;
    assert_eq!(down.status(), 503, "{}", rig.proxy.logs());
    assert_eq!(
        down.headers()["retry-after"],
        "7",
        "Amazon's Retry-After, through the proxy"
    );
    assert!(down.headers().get("x-auth-request-user").is_none());
    // A known token still works meanwhile (from the cache or Amazon).
    let fine = rig
        .send(rig.http.get(rig.url(ORIGINAL)).bearer_auth(&rig.auth.token))
        .await;
    assert_eq!(seen_header(&seen(fine).await, "x-auth-request-user"), [DEMO_USER]);

    rig.auth.kill();
    for request in [
        rig.http.get(rig.url(ORIGINAL)).bearer_auth(&rig.auth.token),
        rig.http
            .get(rig.url(ORIGINAL))
            .header("sec-fetch-mode", "navigate")
            .header("cookie", "taa_session=x"),
    ] {
        let response = rig.send(request).await;
        let expected = match rig.kind {
            // The auth subrequest fails: 500, which the snippet answers 503.
            Kind::Nginx => 503,
            // forward_auth's reverse proxy cannot connect.
            Kind::Caddy => 502,
        };
        assert_eq!(response.status(), expected, "auth server down, {:?}", rig.kind);
        assert!(
            response.headers().get("retry-after").is_none(),
            "no Retry-After to pass on"
        );
        assert!(response.headers().get("x-auth-request-user").is_none());
    }
    // The sign-in routes too: never the site.
    let start = rig.send(rig.http.get(rig.url("/oauth2/start?rd=/"))).await;
    assert_eq!(start.status(), 502, "the proxy's own answer");
}

/// With `--pass-access-token`, the site gets the access token: the bearer's own, and for a
/// session its current one (which the browser never saw), never a client's forged copy.
async fn pass_access_token(rig: Rig) {
    let bearer = rig
        .send(
            rig.http
                .get(rig.url(ORIGINAL))
                .bearer_auth(&rig.auth.token)
                .header("x-auth-request-access-token", "Atza|FORGED"),
        )
        .await;
    let bearer = seen(bearer).await;
    assert_eq!(
        seen_header(&bearer, "x-auth-request-access-token"),
        [rig.auth.token.as_str()]
    );

    let start = rig.sent_to_sign_in(None, "signed out").await;
    let (_, session) = rig.sign_in(&start).await;
    let page = rig
        .send(
            rig.http
                .get(rig.url(ORIGINAL))
                .header("cookie", &session)
                .header("x-auth-request-access-token", "Atza|FORGED"),
        )
        .await;
    let page = seen(page).await;
    let tokens = seen_header(&page, "x-auth-request-access-token");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let token = &tokens[0];
    assert!(token.starts_with("Atza|") && token != &rig.auth.token, "{token}");
    // It is the session's: as a bearer token it is the same user.
    let again = rig.send(rig.http.get(rig.url("/")).bearer_auth(token)).await;
    assert_eq!(
        seen_header(&seen(again).await, "x-auth-request-user"),
        [DEMO_USER]
    );
}

/// Starts the rig of `case` behind `kind` with its auth server as `auth`, and runs it; skipped
/// when the proxy is not installed (a failure with `CI` set).
async fn run<F: std::future::Future<Output = ()>>(
    kind: Kind,
    test: &str,
    auth: Auth<'_>,
    case: fn(Rig) -> F,
) {
    let started = Instant::now();
    if let Some(rig) = Rig::start_with(kind, test, site(), auth).await {
        case(rig).await;
        println!("{test}: {:?}", started.elapsed());
    }
}

/// A test per case and proxy, `proxies::<case>::nginx` and `proxies::<case>::caddy`; the auth
/// server runs with `--demo`, or against a stand-in for Amazon the test controls with the
/// flags given.
macro_rules! through_each_proxy {
    ($($case:ident => $auth:expr),* $(,)?) => {
        $(
            mod $case {
                use super::{run, Auth, Kind};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn nginx() {
                    let test = concat!("proxies::", stringify!($case), "::nginx");
                    run(Kind::Nginx, test, $auth, super::$case).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn caddy() {
                    let test = concat!("proxies::", stringify!($case), "::caddy");
                    run(Kind::Caddy, test, $auth, super::$case).await;
                }
            }
        )*
    };
}

through_each_proxy!(
    signed_out => Auth::Demo,
    sign_in_and_out => Auth::Demo,
    rd_never_leaves_the_site => Auth::Demo,
    amazon_or_auth_server_down => Auth::Against(&[]),
    pass_access_token => Auth::Against(&["--pass-access-token"]),
);

/// The fenced block that follows `marker` in `doc`, without its fences.
fn block_after<'a>(doc: &'a str, marker: &str) -> &'a str {
    let at = doc
        .find(marker)
        .unwrap_or_else(|| panic!("docs/proxy.md has no `{marker}`"));
    let rest = &doc[at + marker.len()..];
    let open = rest.find("```").expect("a fenced block after the marker");
    let body = &rest[open..];
    let start = body.find('\n').unwrap() + 1;
    let end = body[start..].find("\n```").unwrap() + start + 1;
    &body[start..end]
}

/// docs/proxy.md shows the tested templates, rendered with the addresses it documents: the
/// site on port 80, the auth server's default `--listen`, the site's upstream on 8080.
#[test]
fn the_docs_snippets_are_the_tested_templates() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/proxy.md")).unwrap();
    for (template, listen, marker, file) in [
        (
            NGINX_TEMPLATE,
            "80",
            "<!-- sign-in nginx: amazon-auth-proxy/tests/nginx-sign-in.conf -->",
            "nginx-sign-in.conf",
        ),
        (
            CADDY_TEMPLATE,
            "shop.example",
            "<!-- sign-in caddy: amazon-auth-proxy/tests/Caddyfile-sign-in -->",
            "Caddyfile-sign-in",
        ),
    ] {
        let expected = render(template, listen, "127.0.0.1:4180", "127.0.0.1:8080");
        assert_eq!(
            block_after(&doc, marker),
            expected,
            "render amazon-auth-proxy/tests/{file} into docs/proxy.md again"
        );
        assert!(template.contains("@AUTH@") && template.contains("@BACKEND@"));
        let left = expected
            .split('@')
            .skip(1)
            .step_by(2)
            .find(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase()));
        assert_eq!(left, None, "a placeholder is left in {file}");
    }
}
