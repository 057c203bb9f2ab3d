//! `MockAmazon`'s authorization endpoint (`/ap/oa`) and the token endpoint's checks of the codes
//! it issues (expiry, `redirect_uri`, PKCE), over real HTTP on loopback with redirects off.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower_amazon_auth_mock::{
    mock_access_token, MockAmazon, MockUser, MOCK_CLIENT_ID, MOCK_CLIENT_SECRET, MOCK_DEMO_USER_ID,
};

const CALLBACK: &str = "https://app.example.com/callback";
/// RFC 7636's example verifier, and another one of the right shape.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const OTHER_VERIFIER: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An authorization request's parameters (owned, so a test can change or drop one).
fn request(
    scope: &str,
    state: Option<&str>,
    challenge: Option<(&str, Option<&str>)>,
) -> Vec<(String, String)> {
    let mut params = vec![
        ("client_id", MOCK_CLIENT_ID),
        ("scope", scope),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
    ];
    if let Some(state) = state {
        params.push(("state", state));
    }
    if let Some((challenge, method)) = challenge {
        params.push(("code_challenge", challenge));
        if let Some(method) = method {
            params.push(("code_challenge_method", method));
        }
    }
    params
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `params` with `name` set to `value`, or removed when `value` is `None`.
fn with(params: &[(String, String)], name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut params: Vec<_> = params.iter().filter(|(k, _)| k != name).cloned().collect();
    if let Some(value) = value {
        params.push((name.to_owned(), value.to_owned()));
    }
    params
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Location` of a `303`, parsed, and its query as pairs.
    fn redirect(&self) -> (reqwest::Url, Vec<(String, String)>) {
        assert_eq!(self.status, 303, "{}", self.body);
        let url = reqwest::Url::parse(self.header("location").expect("location")).expect("url");
        let pairs = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        (url, pairs)
    }

    /// Asserts a refusal: `400`, an HTML page, and no redirect.
    fn assert_refused(&self, what: &str) {
        assert_eq!(self.status, 400, "{what}: {}", self.body);
        assert_eq!(self.header("location"), None, "{what}");
        assert_eq!(
            self.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{what}"
        );
        assert!(self.body.contains("id=\"error\""), "{what}: {}", self.body);
    }
}

async fn page(request: reqwest::RequestBuilder) -> Page {
    let response = request.send().await.expect("response");
    Page {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

async fn get(amazon: &MockAmazon, params: &[(String, String)]) -> Page {
    page(client().get(amazon.authorize_url()).query(params)).await
}

/// Posts the consent form: `params`, the chosen user and the button.
async fn post(amazon: &MockAmazon, params: &[(String, String)], user_id: Option<&str>, action: &str) -> Page {
    let mut form = params.to_vec();
    if let Some(user_id) = user_id {
        form.push(("user_id".to_owned(), user_id.to_owned()));
    }
    form.push(("action".to_owned(), action.to_owned()));
    page(client().post(amazon.authorize_url()).form(&form)).await
}

/// Presses Allow for `user_id` and returns the code.
async fn allow(amazon: &MockAmazon, params: &[(String, String)], user_id: &str) -> String {
    let (_, pairs) = post(amazon, params, Some(user_id), "allow").await.redirect();
    pairs
        .into_iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v)
        .expect("code")
}

async fn token_call(amazon: &MockAmazon, form: &[(&str, &str)]) -> (u16, Value) {
    let response = client()
        .post(format!("{}/auth/o2/token", amazon.base_url()))
        .form(form)
        .send()
        .await
        .expect("response");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn exchange(
    amazon: &MockAmazon,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", MOCK_CLIENT_ID),
        ("client_secret", MOCK_CLIENT_SECRET),
    ];
    if let Some(redirect_uri) = redirect_uri {
        form.push(("redirect_uri", redirect_uri));
    }
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    token_call(amazon, &form).await
}

async fn refresh(amazon: &MockAmazon, refresh_token: &str) -> (u16, Value) {
    token_call(
        amazon,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", MOCK_CLIENT_ID),
            ("client_secret", MOCK_CLIENT_SECRET),
        ],
    )
    .await
}

async fn tokeninfo(amazon: &MockAmazon, token: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}/auth/o2/tokeninfo", amazon.base_url()))
        .query(&[("access_token", token)])
        .send()
        .await
        .expect("response");
    (response.status().as_u16(), response.json().await.expect("json"))
}

async fn profile(amazon: &MockAmazon, token: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}/user/profile", amazon.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("response");
    (response.status().as_u16(), response.json().await.expect("json"))
}

/// A mock with `CALLBACK` registered.
async fn mock() -> MockAmazon {
    let amazon = MockAmazon::start().await.expect("start");
    amazon.allow_redirect_uri(CALLBACK);
    amazon
}

fn assert_invalid_grant((status, body): &(u16, Value), what: &str) {
    assert_eq!(
        (*status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn authorize_url_is_base_url_ap_oa() {
    let amazon = MockAmazon::start().await.expect("start");
    assert_eq!(amazon.authorize_url(), format!("{}/ap/oa", amazon.base_url()));
    let put = page(client().put(amazon.authorize_url())).await;
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, POST"));
}

#[tokio::test]
async fn consent_page_renders_escaped() {
    let amazon = mock().await;
    amazon.add_sign_in_user(MockUser::new("amzn1.account.XSS").name("<img src=x onerror=alert(1)>"));
    amazon.add_sign_in_user(MockUser::new("amzn1.account.NONAME"));
    let state = "\"><script>alert(2)</script>&";
    let params = request(
        "profile postal_code",
        Some(state),
        Some((&s256(VERIFIER), Some("S256"))),
    );
    let p = get(&amazon, &params).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(p.header("cache-control"), Some("no-store"));
    assert!(p
        .header("content-security-policy")
        .is_some_and(|csp| csp.contains("default-src 'none'")));

    // Escaped, as text and in attributes.
    assert!(
        p.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        p.body
    );
    assert!(!p.body.contains("<img"), "{}", p.body);
    assert!(!p.body.contains("<script"), "{}", p.body);
    assert!(
        p.body
            .contains("value=\"&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;&amp;\""),
        "{}",
        p.body
    );

    // The app, the scopes, the users (first checked, a user without a name shows the id).
    assert!(p.body.contains(MOCK_CLIENT_ID));
    assert!(p.body.contains("<code>profile</code>") && p.body.contains("<code>postal_code</code>"));
    assert!(p.body.contains(
        "<input type=\"radio\" name=\"user_id\" id=\"user-0\" value=\"amzn1.account.XSS\" checked>"
    ));
    assert!(p.body.contains("id=\"user-1\" value=\"amzn1.account.NONAME\">"));
    assert!(p
        .body
        .contains("<span class=\"name\">amzn1.account.NONAME</span>"));
    assert!(
        !p.body.contains(MOCK_DEMO_USER_ID),
        "added users replace the demo user"
    );

    // One form, posting back to /ap/oa, with both buttons and every parameter.
    assert_eq!(p.body.matches("<form").count(), 1);
    assert!(p.body.contains("<form method=\"post\" action=\"/ap/oa\">"));
    assert!(p.body.contains("id=\"allow\" name=\"action\" value=\"allow\""));
    assert!(p.body.contains("id=\"cancel\" name=\"action\" value=\"cancel\""));
    for name in [
        "client_id",
        "scope",
        "response_type",
        "redirect_uri",
        "state",
        "code_challenge",
    ] {
        assert!(
            p.body.contains(&format!("type=\"hidden\" name=\"{name}\"")),
            "{name}"
        );
    }
    assert!(p.body.contains("name=\"code_challenge_method\" value=\"S256\""));
    assert!(p
        .body
        .contains(&format!("name=\"redirect_uri\" value=\"{CALLBACK}\"")));
    // Nothing fetched from anywhere, no script.
    for fetching in ["<script", "<link", "<img", "<iframe", "url(", "@import"] {
        assert!(!p.body.contains(fetching), "{fetching}: {}", p.body);
    }
}

#[tokio::test]
async fn demo_user_is_offered_by_default() {
    let amazon = mock().await;
    let p = get(&amazon, &request("profile", None, None)).await;
    assert_eq!(p.status, 200);
    assert!(
        p.body.contains(&format!("value=\"{MOCK_DEMO_USER_ID}\" checked")),
        "{}",
        p.body
    );
    assert!(p.body.contains("Demo User"));

    let code = allow(
        &amazon,
        &request("profile postal_code", None, None),
        MOCK_DEMO_USER_ID,
    )
    .await;
    let (status, tokens) = exchange(&amazon, &code, Some(CALLBACK), None).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, me) = profile(&amazon, tokens["access_token"].as_str().expect("token")).await;
    assert_eq!(status, 200);
    assert_eq!(me["user_id"], MOCK_DEMO_USER_ID);
    assert_eq!(me["name"], "Demo User");
    assert_eq!(me["email"], "demo@example.com");
    assert_eq!(me["postal_code"], "98109");
}

#[tokio::test]
async fn invalid_requests_are_refused_without_redirect() {
    let amazon = mock().await;
    amazon.allow_redirect_uri("https://app.example.com/other");
    let good = request("profile", Some("st"), Some((&s256(VERIFIER), Some("S256"))));
    let long_plain = "x".repeat(129);
    let cases: Vec<(&str, Vec<(String, String)>)> = vec![
        (
            "unregistered redirect_uri",
            with(&good, "redirect_uri", Some("https://evil.example/callback")),
        ),
        (
            "prefix of a registered one",
            with(&good, "redirect_uri", Some("https://app.example.com/")),
        ),
        (
            "longer than a registered one",
            with(&good, "redirect_uri", Some("https://app.example.com/callback/x")),
        ),
        (
            "trailing slash",
            with(&good, "redirect_uri", Some("https://app.example.com/callback/")),
        ),
        (
            "extra query",
            with(
                &good,
                "redirect_uri",
                Some("https://app.example.com/callback?x=1"),
            ),
        ),
        ("no redirect_uri", with(&good, "redirect_uri", None)),
        (
            "unknown client",
            with(&good, "client_id", Some("amzn1.application-oa2-client.other")),
        ),
        ("no client", with(&good, "client_id", None)),
        ("response_type token", with(&good, "response_type", Some("token"))),
        ("no response_type", with(&good, "response_type", None)),
        ("no scope", with(&good, "scope", None)),
        ("blank scope", with(&good, "scope", Some("  "))),
        ("unknown scope", with(&good, "scope", Some("profile openid"))),
        ("method S512", with(&good, "code_challenge_method", Some("S512"))),
        ("method s256", with(&good, "code_challenge_method", Some("s256"))),
        ("method without challenge", with(&good, "code_challenge", None)),
        (
            "S256 challenge too short",
            with(&good, "code_challenge", Some("abc")),
        ),
        (
            "plain challenge too long",
            with(
                &with(&good, "code_challenge_method", Some("plain")),
                "code_challenge",
                Some(&long_plain),
            ),
        ),
        ("twice the same parameter", {
            let mut twice = good.clone();
            twice.push(("state".to_owned(), "other".to_owned()));
            twice
        }),
    ];
    for (what, params) in &cases {
        get(&amazon, params).await.assert_refused(what);
        post(&amazon, params, Some(MOCK_DEMO_USER_ID), "allow")
            .await
            .assert_refused(what);
        post(&amazon, params, None, "cancel").await.assert_refused(what);
    }
    // The same request with the registered URI is fine: the refusals were about the URI.
    assert_eq!(get(&amazon, &good).await.status, 200);
    let (url, _) = post(&amazon, &good, Some(MOCK_DEMO_USER_ID), "allow")
        .await
        .redirect();
    assert!(url.as_str().starts_with(CALLBACK));

    // No registered URI at all: nothing is accepted.
    let bare = MockAmazon::start().await.expect("start");
    get(&bare, &good).await.assert_refused("no URI registered");
}

#[tokio::test]
async fn post_needs_a_known_user_and_a_button() {
    let amazon = mock().await;
    amazon.add_sign_in_user(MockUser::new("amzn1.account.ALICE"));
    let params = request("profile", Some("st"), None);
    post(&amazon, &params, Some(MOCK_DEMO_USER_ID), "allow")
        .await
        .assert_refused("the demo user is not offered once users were added");
    post(&amazon, &params, None, "allow")
        .await
        .assert_refused("no user");
    post(&amazon, &params, Some("amzn1.account.ALICE"), "maybe")
        .await
        .assert_refused("unknown button");
    let no_action = page(client().post(amazon.authorize_url()).form(&params)).await;
    no_action.assert_refused("no button");
    let json = page(
        client()
            .post(amazon.authorize_url())
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    json.assert_refused("not a form");
    assert_eq!(
        post(&amazon, &params, Some("amzn1.account.ALICE"), "allow")
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn allow_redirects_with_code_and_state() {
    let amazon = mock().await;
    let p = post(
        &amazon,
        &request("profile", Some("a b&c=d/é"), None),
        Some(MOCK_DEMO_USER_ID),
        "allow",
    )
    .await;
    assert_eq!(p.header("cache-control"), Some("no-store"));
    let location = p.header("location").expect("location").to_owned();
    assert!(
        location.starts_with(&format!("{CALLBACK}?code=ANmock")),
        "{location}"
    );
    assert!(location.ends_with("&state=a%20b%26c%3Dd%2F%C3%A9"), "{location}");
    let (url, pairs) = p.redirect();
    assert_eq!(url.path(), "/callback");
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["code", "state"]);
    assert_eq!(pairs[1].1, "a b&c=d/é");

    // Codes are fresh each time, and no state means no state parameter.
    let first = pairs[0].1.clone();
    let p = post(
        &amazon,
        &request("profile", None, None),
        Some(MOCK_DEMO_USER_ID),
        "allow",
    )
    .await;
    let (_, pairs) = p.redirect();
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].0, "code");
    assert_ne!(pairs[0].1, first);
    assert!(pairs[0].1.len() >= 28, "{}", pairs[0].1);

    // A redirect_uri with a query of its own keeps it and gets `&`.
    let with_query = "https://app.example.com/cb?tenant=7";
    amazon.allow_redirect_uri(with_query);
    let params = with(
        &request("profile", Some("s"), None),
        "redirect_uri",
        Some(with_query),
    );
    let p = post(&amazon, &params, Some(MOCK_DEMO_USER_ID), "allow").await;
    let location = p.header("location").expect("location").to_owned();
    assert!(
        location.starts_with("https://app.example.com/cb?tenant=7&code=ANmock"),
        "{location}"
    );
    let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    assert_eq!(exchange(&amazon, &code, Some(with_query), None).await.0, 200);
}

#[tokio::test]
async fn cancel_redirects_with_access_denied() {
    let amazon = mock().await;
    let p = post(
        &amazon,
        &request("profile", Some("xyz 1"), None),
        Some(MOCK_DEMO_USER_ID),
        "cancel",
    )
    .await;
    let location = p.header("location").expect("location").to_owned();
    assert!(
        location.starts_with(&format!("{CALLBACK}?error=access_denied&error_description=")),
        "{location}"
    );
    assert!(location.ends_with("&state=xyz%201"), "{location}");
    let (_, pairs) = p.redirect();
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["error", "error_description", "state"]);
    assert_eq!(pairs[2].1, "xyz 1");
    assert!(!pairs[1].1.is_empty());

    // Without a state, without a user: still a clean denial, and no code anywhere.
    let (_, pairs) = post(&amazon, &request("profile", None, None), None, "cancel")
        .await
        .redirect();
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["error", "error_description"]);
}

#[tokio::test]
async fn s256_exchange_gives_a_token_for_the_chosen_user() {
    let amazon = mock().await;
    amazon.add_sign_in_user(MockUser::new("amzn1.account.ALICE").name("Alice"));
    amazon.add_sign_in_user(
        MockUser::new("amzn1.account.BOB")
            .name("Bob")
            .email("bob@example.com")
            .postal_code("10001"),
    );
    let params = request("profile", Some("st"), Some((&s256(VERIFIER), Some("S256"))));
    let code = allow(&amazon, &params, "amzn1.account.BOB").await;
    let (status, tokens) = exchange(&amazon, &code, Some(CALLBACK), Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert!(tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .starts_with("Atzr|"));
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    assert!(access.starts_with("Atza|") && access.len() >= 350, "{access}");
    assert_ne!(access, mock_access_token("amzn1.account.BOB"));

    let (status, info) = tokeninfo(&amazon, &access).await;
    assert_eq!(status, 200);
    assert_eq!(info["user_id"], "amzn1.account.BOB");
    assert_eq!(info["aud"], MOCK_CLIENT_ID);
    let (status, me) = profile(&amazon, &access).await;
    assert_eq!(status, 200);
    assert_eq!(me["user_id"], "amzn1.account.BOB");
    assert_eq!(me["name"], "Bob");
    assert_eq!(me["email"], "bob@example.com");
    assert!(me.get("postal_code").is_none(), "scope profile only: {me}");

    // Single use, even with everything right.
    assert_invalid_grant(
        &exchange(&amazon, &code, Some(CALLBACK), Some(VERIFIER)).await,
        "reuse",
    );
}

#[tokio::test]
async fn wrong_verifier_fails_and_consumes_the_code() {
    let amazon = mock().await;
    let params = request("profile", None, Some((&s256(VERIFIER), Some("S256"))));
    let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    assert_invalid_grant(
        &exchange(&amazon, &code, Some(CALLBACK), Some(OTHER_VERIFIER)).await,
        "wrong",
    );
    assert_invalid_grant(
        &exchange(&amazon, &code, Some(CALLBACK), Some(VERIFIER)).await,
        "after a failure",
    );

    // The challenge itself is not the verifier of an S256 code.
    let challenge = s256(VERIFIER);
    let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    assert_invalid_grant(
        &exchange(&amazon, &code, Some(CALLBACK), Some(&challenge)).await,
        "challenge",
    );
}

#[tokio::test]
async fn missing_verifier_fails_when_a_challenge_was_sent() {
    let amazon = mock().await;
    let params = request("profile", None, Some((&s256(VERIFIER), Some("S256"))));
    let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    assert_invalid_grant(&exchange(&amazon, &code, Some(CALLBACK), None).await, "missing");
    assert_invalid_grant(
        &exchange(&amazon, &code, Some(CALLBACK), Some(VERIFIER)).await,
        "consumed",
    );
}

#[tokio::test]
async fn verifier_for_a_code_without_challenge_fails() {
    let amazon = mock().await;
    let params = request("profile", None, None);
    let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    assert_invalid_grant(
        &exchange(&amazon, &code, Some(CALLBACK), Some(VERIFIER)).await,
        "downgrade",
    );
    assert_invalid_grant(&exchange(&amazon, &code, Some(CALLBACK), None).await, "consumed");
    // Without a verifier such a code works.
    let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    assert_eq!(exchange(&amazon, &code, Some(CALLBACK), None).await.0, 200);
}

#[tokio::test]
async fn malformed_verifier_is_invalid_request_and_consumes_the_code() {
    let amazon = mock().await;
    let short = &VERIFIER[..42];
    let params = request("profile", None, Some((short, Some("plain"))));
    // A 42-character plain challenge is malformed too.
    get(&amazon, &params)
        .await
        .assert_refused("short plain challenge");

    let params = request("profile", None, Some((&s256(VERIFIER), Some("S256"))));
    for bad in [short.to_owned(), format!("{VERIFIER}+"), "v".repeat(129)] {
        let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
        let (status, body) = exchange(&amazon, &code, Some(CALLBACK), Some(&bad)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{bad}"
        );
        assert_invalid_grant(
            &exchange(&amazon, &code, Some(CALLBACK), Some(VERIFIER)).await,
            &bad,
        );
    }
}

#[tokio::test]
async fn redirect_uri_must_match_the_code() {
    let amazon = mock().await;
    amazon.allow_redirect_uri("https://app.example.com/other");
    let params = request("profile", None, Some((&s256(VERIFIER), Some("S256"))));
    for wrong in [
        Some("https://app.example.com/other"),
        Some("https://app.example.com/callback/"),
        None,
    ] {
        let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
        assert_invalid_grant(
            &exchange(&amazon, &code, wrong, Some(VERIFIER)).await,
            &format!("{wrong:?}"),
        );
        assert_invalid_grant(
            &exchange(&amazon, &code, Some(CALLBACK), Some(VERIFIER)).await,
            "consumed",
        );
    }
}

#[tokio::test]
async fn plain_method_works_explicit_or_assumed() {
    let amazon = mock().await;
    for method in [Some("plain"), None] {
        let params = request("profile", None, Some((VERIFIER, method)));
        let p = get(&amazon, &params).await;
        assert_eq!(p.status, 200, "{method:?}: {}", p.body);
        let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
        let (status, tokens) = exchange(&amazon, &code, Some(CALLBACK), Some(VERIFIER)).await;
        assert_eq!(status, 200, "{method:?}: {tokens}");
        let access = tokens["access_token"].as_str().expect("access");
        assert_eq!(tokeninfo(&amazon, access).await.1["user_id"], MOCK_DEMO_USER_ID);

        // A plain challenge is compared as is: the S256 of the verifier does not answer it.
        let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
        assert_invalid_grant(
            &exchange(&amazon, &code, Some(CALLBACK), Some(OTHER_VERIFIER)).await,
            "plain",
        );
    }
    // An S256 code does not take its challenge back as a plain verifier either.
    let challenge = s256(VERIFIER);
    let params = request("profile", None, Some((&challenge, Some("S256"))));
    let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    assert_invalid_grant(
        &exchange(&amazon, &code, Some(CALLBACK), Some(&challenge)).await,
        "S256 as plain",
    );
}

#[tokio::test]
async fn scopes_decide_the_profile() {
    let amazon = mock().await;
    amazon.add_sign_in_user(
        MockUser::new("amzn1.account.CAROL")
            .name("Carol")
            .email("carol@example.com")
            .postal_code("94105"),
    );
    let cases: [(&str, &[&str]); 5] = [
        ("profile:user_id", &["user_id"]),
        ("profile:user_id postal_code", &["user_id", "postal_code"]),
        ("profile", &["user_id", "name", "email"]),
        (
            "profile postal_code",
            &["user_id", "name", "email", "postal_code"],
        ),
        ("profile:user_id profile profile", &["user_id", "name", "email"]),
    ];
    for (scope, fields) in cases {
        let code = allow(&amazon, &request(scope, None, None), "amzn1.account.CAROL").await;
        let (status, tokens) = exchange(&amazon, &code, Some(CALLBACK), None).await;
        assert_eq!(status, 200, "{scope}: {tokens}");
        let (status, me) = profile(&amazon, tokens["access_token"].as_str().expect("access")).await;
        assert_eq!(status, 200);
        let mut got: Vec<&str> = me
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = fields.to_vec();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{scope}: {me}");
    }
}

#[tokio::test]
async fn refresh_mints_a_new_valid_access_token() {
    let amazon = mock().await;
    amazon.add_sign_in_user(
        MockUser::new("amzn1.account.DAN")
            .name("Dan")
            .email("dan@example.com"),
    );
    let code = allow(
        &amazon,
        &request("profile:user_id", None, None),
        "amzn1.account.DAN",
    )
    .await;
    let (_, tokens) = exchange(&amazon, &code, Some(CALLBACK), None).await;
    let first = tokens["access_token"].as_str().expect("access").to_owned();
    let refresh_token = tokens["refresh_token"].as_str().expect("refresh").to_owned();

    let mut seen = vec![first.clone()];
    for _ in 0..2 {
        let (status, renewed) = refresh(&amazon, &refresh_token).await;
        assert_eq!(status, 200, "{renewed}");
        assert_eq!(renewed["expires_in"], 3600);
        assert_eq!(renewed["token_type"], "bearer");
        assert_eq!(
            renewed["refresh_token"],
            refresh_token.as_str(),
            "no rotation by default"
        );
        let access = renewed["access_token"].as_str().expect("access").to_owned();
        assert!(!seen.contains(&access), "a refresh mints a new access token");
        let (status, info) = tokeninfo(&amazon, &access).await;
        assert_eq!(status, 200);
        assert_eq!(info["user_id"], "amzn1.account.DAN");
        assert_eq!(info["aud"], MOCK_CLIENT_ID);
        let (_, me) = profile(&amazon, &access).await;
        assert_eq!(
            me,
            serde_json::json!({"user_id": "amzn1.account.DAN"}),
            "same scope"
        );
        seen.push(access);
    }
    // The earlier tokens stay valid until they expire.
    assert_eq!(tokeninfo(&amazon, &first).await.0, 200);
}

#[tokio::test]
async fn rotation_replaces_the_refresh_token() {
    let amazon = mock().await;
    amazon.set_rotate_refresh_tokens(true);
    let code = allow(&amazon, &request("profile", None, None), MOCK_DEMO_USER_ID).await;
    let (_, tokens) = exchange(&amazon, &code, Some(CALLBACK), None).await;
    let old = tokens["refresh_token"].as_str().expect("refresh").to_owned();
    let (status, renewed) = refresh(&amazon, &old).await;
    assert_eq!(status, 200, "{renewed}");
    let new = renewed["refresh_token"].as_str().expect("refresh").to_owned();
    assert_ne!(new, old);
    assert_invalid_grant(&refresh(&amazon, &old).await, "the old refresh token");
    let (status, again) = refresh(&amazon, &new).await;
    assert_eq!(status, 200, "{again}");
    assert_ne!(again["refresh_token"], new.as_str());
    assert_eq!(
        tokeninfo(&amazon, again["access_token"].as_str().expect("access"))
            .await
            .0,
        200
    );

    // Codes from `register_code` rotate too, and keep their access token.
    let access = mock_access_token("registered");
    amazon.register_code("legacy", &access);
    let (_, tokens) = exchange(&amazon, "legacy", None, None).await;
    let old = tokens["refresh_token"].as_str().expect("refresh").to_owned();
    let (_, renewed) = refresh(&amazon, &old).await;
    assert_eq!(renewed["access_token"], access.as_str());
    assert_ne!(renewed["refresh_token"], old.as_str());
    assert_invalid_grant(&refresh(&amazon, &old).await, "the old legacy refresh token");

    // Off again: the refresh token comes back unchanged.
    amazon.set_rotate_refresh_tokens(false);
    let current = renewed["refresh_token"].as_str().expect("refresh").to_owned();
    assert_eq!(
        refresh(&amazon, &current).await.1["refresh_token"],
        current.as_str()
    );
}

#[tokio::test]
async fn codes_expire() {
    let amazon = mock().await;
    amazon.set_code_lifetime(Duration::from_millis(300));
    let params = request("profile", None, None);
    let late = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    let early = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    assert_eq!(exchange(&amazon, &early, Some(CALLBACK), None).await.0, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_invalid_grant(&exchange(&amazon, &late, Some(CALLBACK), None).await, "expired");
}

#[tokio::test]
async fn codes_are_bound_to_their_client_and_secret_is_checked() {
    let amazon = mock().await;
    let params = request("profile", None, None);
    let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    let wrong_secret = token_call(
        &amazon,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("client_id", MOCK_CLIENT_ID),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(
        (wrong_secret.0, wrong_secret.1["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // A failed client authentication does not use the code up.
    assert_eq!(exchange(&amazon, &code, Some(CALLBACK), None).await.0, 200);

    // A code issued to one client does not exchange for another.
    let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    amazon.set_client("amzn1.application-oa2-client.new", "new-secret");
    let (status, body) = token_call(
        &amazon,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("client_id", "amzn1.application-oa2-client.new"),
            ("client_secret", "new-secret"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // The new client's tokens carry it as `aud`.
    let params = with(&params, "client_id", Some("amzn1.application-oa2-client.new"));
    let code = allow(&amazon, &params, MOCK_DEMO_USER_ID).await;
    let (status, tokens) = token_call(
        &amazon,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("client_id", "amzn1.application-oa2-client.new"),
            ("client_secret", "new-secret"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let (_, info) = tokeninfo(&amazon, tokens["access_token"].as_str().expect("access")).await;
    assert_eq!(info["aud"], "amzn1.application-oa2-client.new");
}

#[tokio::test]
async fn registered_codes_keep_their_old_rules() {
    let amazon = mock().await;
    let access = mock_access_token("old-rules");
    amazon.register_code("old-1", &access);
    amazon.register_code("old-2", &access);
    // No redirect_uri, any verifier: a registered code only checks single use.
    let (status, tokens) = exchange(&amazon, "old-1", None, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["access_token"], access.as_str());
    let (status, _) = exchange(&amazon, "old-2", Some("https://anything.example/"), None).await;
    assert_eq!(status, 200);
    // Its refresh answers the same access token.
    let (_, renewed) = refresh(&amazon, tokens["refresh_token"].as_str().expect("refresh")).await;
    assert_eq!(renewed["access_token"], access.as_str());
}

#[tokio::test]
async fn minted_tokens_follow_the_users_exp() {
    let amazon = mock().await;
    amazon.add_sign_in_user(MockUser::new("amzn1.account.BRIEF").exp(1));
    let code = allow(&amazon, &request("profile", None, None), "amzn1.account.BRIEF").await;
    let (_, tokens) = exchange(&amazon, &code, Some(CALLBACK), None).await;
    assert_eq!(tokens["expires_in"], 1);
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    assert_eq!(tokeninfo(&amazon, &access).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = tokeninfo(&amazon, &access).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_token")));
    // A refresh gives a fresh one.
    let (_, renewed) = refresh(&amazon, tokens["refresh_token"].as_str().expect("refresh")).await;
    assert_eq!(
        tokeninfo(&amazon, renewed["access_token"].as_str().expect("access"))
            .await
            .0,
        200
    );
}
