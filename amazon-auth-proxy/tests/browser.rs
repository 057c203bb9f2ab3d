//! Signing in through the REAL nginx and the REAL Caddy (the rig of `proxies.rs`, in
//! `common`) in a real headless Chromium, clicking as a person does: the stand-in for Amazon's
//! consent page is on `localhost`, the proxy on `127.0.0.1`, so coming back is a cross-site
//! navigation, as from amazon.com. Sign in back to the exact original URI, reload, sign out,
//! cancel; a screenshot of each signed-in page for docs/proxy.md. One proxy after the other.
//! Without `chromedriver` / `chromium` (or the proxy) a test is skipped, and fails with `CI` set.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::header;
use fantoccini::elements::Element;
use fantoccini::Locator;
use serde_json::{json, Value};
use tower_amazon_auth_test_support::browser::{chromium, Browser};

use common::{Kind, Rig, ORIGINAL};

/// How long a page, an element or a text may take to show up.
const PATIENCE: Duration = Duration::from_secs(20);

/// The demo user's name, as Amazon's profile gives it.
const DEMO_NAME: &str = "Demo User";

/// The site's own cookie, set by its page.
const SITE_COOKIE: &str = "theme=dark";

/// `text` safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The site behind `proxy`: an HTML page showing who the proxy says is signed in
/// (`X-Auth-Request-Name`), the URI and the cookies it received; it sets a cookie of its own.
fn site(proxy: &'static str) -> axum::Router {
    axum::Router::new().fallback(move |request: axum::extract::Request| async move {
        let header = |name: &str| {
            request
                .headers()
                .get_all(name)
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join("; ")
        };
        let page = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>A private page</title></head>\n\
             <body style=\"font-family: sans-serif; margin: 2em\">\n\
             <h1>Hello, <span id=\"name\">{}</span></h1>\n\
             <p>This page is behind {proxy} and amazon-auth-proxy. The site received:</p>\n\
             <ul><li>URI: <code id=\"uri\">{}</code></li>\n\
             <li>Cookies: <code id=\"cookies\">{}</code></li></ul>\n\
             </body></html>\n",
            escape(&header("x-auth-request-name")),
            escape(&request.uri().to_string()),
            escape(&header("cookie")),
            proxy = escape(proxy),
        );
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::SET_COOKIE, "theme=dark; Path=/; SameSite=Lax"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            page,
        )
    })
}

/// Where the browser is, what it shows, and what the proxy and chromedriver logged.
async fn context(browser: &Browser, rig: &Rig) -> String {
    let url = browser.current_url().await.map(String::from).unwrap_or_default();
    let source = browser.source().await.unwrap_or_default();
    format!("at {url}:\n{source}\n{}\n{}", rig.proxy.logs(), browser.logs())
}

/// The first element `locator` finds, waiting for it (an XPath can wait for a text too).
async fn wait_for(browser: &Browser, rig: &Rig, locator: Locator<'_>) -> Element {
    let wanted = format!("{locator:?}");
    match browser.wait().at_most(PATIENCE).for_element(locator).await {
        Ok(element) => element,
        Err(error) => panic!("{wanted}: {error}\n{}", context(browser, rig).await),
    }
}

/// Clicks the first element `css` finds, waiting for it.
async fn click(browser: &Browser, rig: &Rig, css: &str) {
    let element = wait_for(browser, rig, Locator::Css(css)).await;
    if let Err(error) = element.click().await {
        panic!("click {css}: {error}\n{}", context(browser, rig).await);
    }
}

/// The text of the first element `css` finds, waiting for it.
async fn text_of(browser: &Browser, rig: &Rig, css: &str) -> String {
    let element = wait_for(browser, rig, Locator::Css(css)).await;
    element.text().await.unwrap()
}

/// Waits for the signed-in page greeting the demo user.
async fn greeted(browser: &Browser, rig: &Rig) {
    let greeting = format!("//span[@id='name' and text()='{DEMO_NAME}']");
    wait_for(browser, rig, Locator::XPath(&greeting)).await;
}

/// Opens [`ORIGINAL`] and waits for the consent page of the stand-in for Amazon (on
/// `localhost`: another site), where a signed-out browser is sent.
async fn sent_to_consent_page(browser: &Browser, rig: &Rig, what: &str) {
    browser.goto(&rig.url(ORIGINAL)).await.unwrap();
    wait_for(browser, rig, Locator::Css("#allow")).await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.host_str(), Some("localhost"), "{what}: {url}");
    assert_eq!(url.path(), "/ap/oa", "{what}: {url}");
}

/// Path and query of the page the browser shows.
async fn path_and_query(browser: &Browser) -> String {
    let url = browser.current_url().await.unwrap();
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The HTTP status of the page the browser shows (Navigation Timing).
async fn status(browser: &Browser) -> Value {
    browser
        .execute(
            "return performance.getEntriesByType('navigation')[0].responseStatus;",
            vec![],
        )
        .await
        .unwrap()
}

/// Writes `png` to `docs/<file>` when it differs from what is there.
fn save_screenshot(png: &[u8], file: &str) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs").join(file);
    if std::fs::read(&path).ok().as_deref() != Some(png) {
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// Sign in from a protected page, back to exactly it, signed in; reload; sign out and be asked
/// to sign in again; cancel and land on a signed-out page.
async fn sign_in_reload_sign_out_cancel(kind: Kind, test: &str, screenshot: &str) {
    let started = Instant::now();
    let Some(browser) = chromium(test).await else {
        return;
    };
    let proxy = match kind {
        Kind::Nginx => "nginx",
        Kind::Caddy => "Caddy",
    };
    let Some(rig) = Rig::start(kind, test, site(proxy)).await else {
        return;
    };

    // Signed out: to the consent page, on another site.
    sent_to_consent_page(&browser, &rig, "a signed-out navigation").await;

    // Allow: back to exactly the original URI, signed in as the demo user.
    click(&browser, &rig, "#allow").await;
    greeted(&browser, &rig).await;
    assert_eq!(
        path_and_query(&browser).await,
        ORIGINAL,
        "back to the original URI"
    );
    assert_eq!(
        browser
            .current_url()
            .await
            .unwrap()
            .origin()
            .ascii_serialization(),
        rig.origin
    );
    let uri = text_of(&browser, &rig, "#uri").await;
    assert_eq!(uri, ORIGINAL, "the URI the site received");

    // Reload: still signed in; the site gets its own cookie and none of sign-in's.
    browser.refresh().await.unwrap();
    greeted(&browser, &rig).await;
    let cookies = text_of(&browser, &rig, "#cookies").await;
    assert_eq!(cookies, SITE_COOKIE, "the Cookie the site got");
    assert_eq!(status(&browser).await, json!(200));

    // The signed-in page, for the docs.
    save_screenshot(&browser.screenshot().await.expect("a screenshot"), screenshot);

    // Sign out: the page's own POST (same origin, so the Origin header matches); the answer is a
    // redirect, not followed here.
    let out = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/oauth2/sign_out', {method: 'POST', redirect: 'manual'})\
               .then(r => done(r.type), e => done('error: ' + e));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(out, json!("opaqueredirect"), "{}", context(&browser, &rig).await);
    sent_to_consent_page(&browser, &rig, "signed out, the page again").await;

    // Cancel: a signed-out page, not the protected one.
    click(&browser, &rig, "#cancel").await;
    let signed_out = "//body[contains(., 'Signed out')]";
    let body = wait_for(&browser, &rig, Locator::XPath(signed_out)).await;
    let body = body.text().await.unwrap();
    assert!(body.contains("Sign-in was cancelled"), "{body}");
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.origin().ascii_serialization(), rig.origin, "{url}");
    assert_eq!(url.path(), "/oauth2/callback", "{url}");
    assert_eq!(status(&browser).await, json!(200));
    assert!(
        browser.find(Locator::Css("#name")).await.is_err(),
        "not the protected page"
    );

    browser.close().await;
    println!("{test}: {:?}", started.elapsed());
}

/// nginx, then Caddy, one after the other (a fresh Chromium each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_then_caddy() {
    sign_in_reload_sign_out_cancel(
        Kind::Nginx,
        "browser::nginx_then_caddy (nginx)",
        "proxy-nginx.png",
    )
    .await;
    sign_in_reload_sign_out_cancel(
        Kind::Caddy,
        "browser::nginx_then_caddy (Caddy)",
        "proxy-caddy.png",
    )
    .await;
}
