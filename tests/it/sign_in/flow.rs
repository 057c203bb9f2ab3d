//! The sign-in flow end to end: login, Amazon's consent, the callback, a session the layer
//! accepts, logout; and what each step sends.

use tower_amazon_auth_mock::MockUser;

use super::{location, param, Browser, Site};

#[tokio::test]
async fn a_browser_signs_in_uses_its_session_and_signs_out() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    let authorize = site.start(&mut browser, "/orders?page=2").await;
    // The authorize request: S256 always, this client, the registered redirect URI.
    assert!(authorize.starts_with(&site.mock.authorize_url()), "{authorize}");
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&authorize, "response_type").as_deref(), Some("code"));
    assert_eq!(
        param(&authorize, "redirect_uri").as_deref(),
        Some(site.sign_in.redirect_uri())
    );
    assert_eq!(param(&authorize, "scope").as_deref(), Some("profile"));
    assert!(param(&authorize, "state").is_some_and(|state| state.len() >= 22));
    assert!(param(&authorize, "code_challenge").is_some_and(|c| c.len() == 43));

    site.mock
        .add_sign_in_user(MockUser::new("amzn1.account.ALICE").name("Alice"));
    let callback = browser.consent(&authorize, "amzn1.account.ALICE", "allow").await;
    assert!(callback.starts_with(site.sign_in.redirect_uri()), "{callback}");
    let landed = browser.get(&callback).await;
    assert_eq!(landed.status(), 303);
    assert_eq!(location(&landed), "/orders?page=2", "back where it was going");
    assert_eq!(landed.headers()["cache-control"], "no-store");
    let set_cookies: Vec<&str> = landed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = set_cookies
        .iter()
        .find(|c| c.starts_with("taa_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(
        set_cookies
            .iter()
            .any(|c| c.starts_with("taa_login_") && c.contains("Max-Age=0")),
        "the pending cookie is cleared: {set_cookies:?}"
    );
    let id = browser.cookie(&site.base, "taa_session").unwrap();
    assert_eq!(id.len(), 43, "an opaque id only");

    let me = browser.get(&format!("{}/me", site.base)).await;
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["user_id"], "amzn1.account.ALICE");
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["source"], "session");
    // The inner service never sees the session cookie.
    let seen = browser
        .get(&format!("{}/seen", site.base))
        .await
        .text()
        .await
        .unwrap();
    assert!(!seen.contains("taa_session"), "{seen}");

    let out = browser
        .post(&format!("{}/logout", site.base), Some(&site.base))
        .await;
    assert_eq!(out.status(), 303);
    assert_eq!(location(&out), "/");
    assert!(
        browser.cookie(&site.base, "taa_session").is_none(),
        "the cookie is expired"
    );
    // The old cookie is dead on the server, whoever still holds it.
    let replayed = reqwest::Client::new()
        .get(format!("{}/me", site.base))
        .header("cookie", format!("taa_session={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);
    assert!(replayed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(site.sign_in.session_count(), 0);
}

#[tokio::test]
async fn cancelling_at_amazon_lands_signed_out_and_uses_the_state_up() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    let authorize = site.start(&mut browser, "/").await;
    let back = browser
        .consent(&authorize, "amzn1.account.MOCKDEMOUSER", "cancel")
        .await;
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    let landed = browser.get(&back).await;
    assert_eq!(landed.status(), 200, "a signed-out page, never a 5xx");
    assert!(landed.text().await.unwrap().contains("cancelled"));
    assert!(browser.cookie(&site.base, "taa_session").is_none());
    // The state is used up: the same callback again is refused.
    assert_eq!(browser.get(&back).await.status(), 400);
    assert_eq!(site.mock.calls().token, 0, "no code was exchanged");
}

#[tokio::test]
async fn two_tabs_signing_in_at_once_both_succeed() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    let first = site.start(&mut browser, "/first").await;
    let second = site.start(&mut browser, "/second").await;
    let user = "amzn1.account.MOCKDEMOUSER";
    let back_second = browser.consent(&second, user, "allow").await;
    let back_first = browser.consent(&first, user, "allow").await;
    let landed_second = browser.get(&back_second).await;
    let landed_first = browser.get(&back_first).await;
    assert_eq!(location(&landed_first), "/first");
    assert_eq!(location(&landed_second), "/second");
}

#[tokio::test]
async fn every_sign_in_gets_a_new_session_id() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    site.sign_in_as(&mut browser, MockUser::new("amzn1.account.BOB"), "/")
        .await;
    let first = browser.cookie(&site.base, "taa_session").unwrap();
    site.sign_in_as(&mut browser, MockUser::new("amzn1.account.BOB"), "/")
        .await;
    let second = browser.cookie(&site.base, "taa_session").unwrap();
    assert_ne!(first, second, "no fixation: a fresh id at every login");
}

#[tokio::test]
async fn a_bearer_logout_revokes_the_token_and_leaves_the_session() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    site.sign_in_as(&mut browser, MockUser::new("amzn1.account.CAROL"), "/")
        .await;
    let bearer = tower_amazon_auth_mock::mock_access_token("bearer-logout");
    site.mock.register(&bearer, MockUser::new("amzn1.account.CAROL"));
    let client = reqwest::Client::new();
    let cookie = browser.cookie_header(&site.base);
    let out = client
        .post(format!("{}/logout", site.base))
        .bearer_auth(&bearer)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let with_token = client
        .get(format!("{}/me", site.base))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 401, "the token is revoked");
    assert_eq!(
        browser.get(&format!("{}/me", site.base)).await.status(),
        200,
        "the session stays"
    );
}

#[tokio::test]
async fn a_head_request_to_login_starts_nothing() {
    let site = Site::new().await;
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .head(format!("{}/login", site.base))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("set-cookie").is_none());
    assert_ne!(response.status(), 303);
}

#[tokio::test]
async fn a_handler_revoking_a_session_user_ends_the_session() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    site.sign_in_as(&mut browser, MockUser::new("amzn1.account.REVOKER"), "/")
        .await;
    let revoked = browser
        .post(&format!("{}/revoke", site.base), Some(&site.base))
        .await;
    assert_eq!(revoked.status(), 204);
    assert_eq!(site.sign_in.session_count(), 0);
    assert_eq!(browser.get(&format!("{}/me", site.base)).await.status(), 401);
}

#[tokio::test]
async fn a_browser_keeps_a_few_pending_logins_at_most() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    let pending = |browser: &Browser| {
        browser
            .jar
            .get(site.base.trim_start_matches("http://"))
            .map_or(0, |cookies| {
                cookies
                    .keys()
                    .filter(|name| name.starts_with("taa_login_"))
                    .count()
            })
    };
    for _ in 0..4 {
        site.start(&mut browser, "/").await;
    }
    assert_eq!(pending(&browser), 4, "four tabs signing in at once");
    site.start(&mut browser, "/").await;
    assert_eq!(pending(&browser), 1, "a fifth clears the others' cookies");
}
