//! What an attacker gets: forged or replayed callbacks, open redirects, cross-site requests
//! riding the cookie, tampered session ids, junk tokens beside a good cookie.

use tower_amazon_auth_mock::MockUser;

use super::{param, Browser, Site};

#[tokio::test]
async fn a_callback_without_its_state_or_its_browser_is_refused_before_any_exchange() {
    let site = Site::new().await;
    let mut victim = Browser::new();
    let authorize = site.start(&mut victim, "/").await;
    let callback = victim
        .consent(&authorize, "amzn1.account.MOCKDEMOUSER", "allow")
        .await;
    let code = param(&callback, "code").unwrap();
    let state = param(&callback, "state").unwrap();
    let redirect = site.sign_in.redirect_uri();
    let mut attacker = Browser::new();
    // No state; a made-up state; the right state in another browser (login CSRF).
    for url in [
        format!("{redirect}?code={code}"),
        format!("{redirect}?code={code}&state=made-up"),
        format!("{redirect}?code={code}&state={state}"),
    ] {
        let refused = attacker.get(&url).await;
        assert_eq!(refused.status(), 400, "{url}");
        assert!(refused.text().await.unwrap().contains("Start again"));
    }
    assert_eq!(
        site.mock.calls().token,
        0,
        "no code exchange for a refused callback"
    );
    // The attempt in the other browser used the state up: even the victim's own callback
    // now fails (a state works once).
    assert_eq!(victim.get(&callback).await.status(), 400);
    assert!(victim.cookie(&site.base, "taa_session").is_none());
}

#[tokio::test]
async fn a_replayed_callback_fails_even_with_the_cookie() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    let authorize = site.start(&mut browser, "/").await;
    let callback = browser
        .consent(&authorize, "amzn1.account.MOCKDEMOUSER", "allow")
        .await;
    let pending = browser.cookie_header(&site.base);
    assert_eq!(browser.get(&callback).await.status(), 303);
    let replay = reqwest::Client::new()
        .get(&callback)
        .header("cookie", pending)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
}

#[tokio::test]
async fn return_to_never_leaves_the_site() {
    let site = Site::new().await;
    for hostile in [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "/%09/evil.example",
    ] {
        let mut browser = Browser::new();
        let landed = site
            .sign_in_as(&mut browser, MockUser::new("amzn1.account.DAVE"), hostile)
            .await;
        assert_eq!(landed, "/", "{hostile}");
    }
}

#[tokio::test]
async fn a_cross_site_request_with_the_cookie_is_forbidden_and_changes_nothing() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    site.sign_in_as(&mut browser, MockUser::new("amzn1.account.ERIN"), "/")
        .await;
    let me = format!("{}/me", site.base);
    assert_eq!(
        browser.post(&me, Some("https://evil.example")).await.status(),
        403
    );
    assert_eq!(browser.post(&me, None).await.status(), 403, "no Origin at all");
    // Logout is a cookie-authenticated unsafe request too.
    let logout = format!("{}/logout", site.base);
    assert_eq!(
        browser.post(&logout, Some("https://evil.example")).await.status(),
        403
    );
    // A junk token cannot dodge the rule: it is refused as junk first.
    let junk = format!("{}/me?access_token=junk", site.base);
    assert_eq!(
        browser.post(&junk, Some("https://evil.example")).await.status(),
        400
    );
    // Still signed in; from the site itself the same request works.
    assert_eq!(browser.get(&me).await.status(), 200);
    assert_eq!(browser.post(&me, Some(&site.base)).await.status(), 200);
    assert_eq!(site.sign_in.session_count(), 1);
}

#[tokio::test]
async fn a_token_in_the_request_decides_alone() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    site.sign_in_as(&mut browser, MockUser::new("amzn1.account.FRANK"), "/")
        .await;
    let cookie = browser.cookie_header(&site.base);
    let client = reqwest::Client::new();
    let junk = client
        .get(format!("{}/me", site.base))
        .bearer_auth("junk")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), 400, "a junk token never falls back to the cookie");
    let other = tower_amazon_auth_mock::mock_access_token("another-user");
    site.mock.register(&other, MockUser::new("amzn1.account.OTHER"));
    let answered: serde_json::Value = client
        .get(format!("{}/me", site.base))
        .bearer_auth(&other)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answered["user_id"], "amzn1.account.OTHER");
    assert_eq!(answered["source"], "bearer");
}

#[tokio::test]
async fn a_tampered_session_id_is_refused_without_asking_amazon() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    site.sign_in_as(&mut browser, MockUser::new("amzn1.account.GRACE"), "/")
        .await;
    let id = browser.cookie(&site.base, "taa_session").unwrap();
    let mut tampered = id.into_bytes();
    tampered[10] = if tampered[10] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    let calls = site.mock.calls();
    for forged in [tampered.as_str(), "short", "../../etc/passwd"] {
        let refused = reqwest::Client::new()
            .get(format!("{}/me", site.base))
            .header("cookie", format!("taa_session={forged}"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{forged}");
        assert!(refused.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));
    }
    assert_eq!(site.mock.calls(), calls, "no upstream call");
}

#[tokio::test]
async fn a_code_injected_into_another_login_fails_at_the_exchange() {
    let site = Site::new().await;
    let mut browser = Browser::new();
    let first = site.start(&mut browser, "/").await;
    let second = site.start(&mut browser, "/").await;
    let user = "amzn1.account.MOCKDEMOUSER";
    let first_back = browser.consent(&first, user, "allow").await;
    let second_back = browser.consent(&second, user, "allow").await;
    // The second login's state (and the browser's cookie for it) with the first login's code:
    // the verifier the server sends is the second's, which the first code's challenge refuses.
    let injected = format!(
        "{}?code={}&state={}",
        site.sign_in.redirect_uri(),
        param(&first_back, "code").unwrap(),
        param(&second_back, "state").unwrap()
    );
    let refused = browser.get(&injected).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("did not confirm"));
    assert_eq!(site.mock.calls().token, 1, "the exchange was tried, and refused");
    assert!(browser.cookie(&site.base, "taa_session").is_none());
}

#[tokio::test]
async fn one_account_logging_out_in_a_loop_cannot_fill_the_revocations() {
    let site = Site::with(
        |cache| cache.max_revocations_per_user(2),
        |sign_in| sign_in,
        |layer| layer,
    )
    .await;
    let client = reqwest::Client::new();
    let logout = |token: String| {
        let request = client
            .post(format!("{}/logout", site.base))
            .bearer_auth(token)
            .send();
        async move { request.await.unwrap().status().as_u16() }
    };
    let tokens: Vec<String> = (0..3)
        .map(|i| tower_amazon_auth_mock::mock_access_token(format!("looping-{i}")))
        .collect();
    for token in &tokens {
        site.mock.register(token, MockUser::new("amzn1.account.LOOPER"));
    }
    assert_eq!(logout(tokens[0].clone()).await, 204);
    assert_eq!(logout(tokens[1].clone()).await, 204);
    assert_eq!(
        logout(tokens[2].clone()).await,
        503,
        "this user's revocations are at the cap"
    );
    let other = tower_amazon_auth_mock::mock_access_token("someone-else");
    site.mock.register(&other, MockUser::new("amzn1.account.SOMEONE"));
    assert_eq!(logout(other).await, 204, "another user can still log out");
}
