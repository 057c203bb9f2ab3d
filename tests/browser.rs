//! Website sign-in in a real headless Chromium driven over WebDriver, clicking as a person does,
//! against `examples/server.rs` run as a user runs it: its embedded `MockAmazon` serves the
//! consent page on `localhost`, the site is on `127.0.0.1`, so coming back from the consent page
//! is a cross-site navigation, as from amazon.com. Sign in, reload, `/me`, sign out and Back;
//! cancel; two tabs at once; a name that is HTML; production (`Secure`, `__Host-`) cookies.
//!
//! A binary of its own, not a module of `tests/it`: every test drives a browser, so they are
//! slow and run one at a time ([`SERIAL`]). Without `chromedriver` / `chromium` they are skipped
//! with a notice, and fail when `CI` is set (`.ci/run` installs them).
#![cfg(feature = "axum")]

use std::path::Path;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::Locator;
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};
use tower_amazon_auth_mock::{MockAmazon, MockUser, MOCK_CLIENT_ID, MOCK_CLIENT_SECRET};
use tower_amazon_auth_test_support::browser::{chromium, Browser};
use tower_amazon_auth_test_support::example_binaries;
use tower_amazon_auth_test_support::examples::ExampleProcess;
use tower_amazon_auth_test_support::external::free_port;

/// One browser at a time, whatever `--test-threads` says.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// How long a page, an element or a text may take to show up.
const PATIENCE: Duration = Duration::from_secs(20);

/// The demo user of the example's embedded mock.
const DEMO_NAME: &str = "Demo User";
const DEMO_EMAIL: &str = "demo@example.com";

/// Waits for the browser tests before this one, then starts a fresh Chromium; `None` when the
/// test is skipped (no `chromedriver` or `chromium`, and `CI` unset).
async fn start(test: &str) -> Option<(MutexGuard<'static, ()>, Browser)> {
    let serial = SERIAL.lock().await;
    let browser = chromium(&format!("browser::{test}")).await?;
    Some((serial, browser))
}

/// [`start`], and the demo site with `env`.
async fn start_demo(test: &str, env: &[(&str, &str)]) -> Option<(MutexGuard<'static, ()>, Browser, Site)> {
    let (serial, browser) = start(test).await?;
    Some((serial, browser, Site::demo(env)))
}

/// `examples/server` running, and the origin browsers open.
struct Site {
    process: ExampleProcess,
    base: String,
}

impl Site {
    /// The example with no configuration (its embedded mock and demo user), plus `env`; the
    /// address is the one it prints for browsers.
    fn demo(env: &[(&str, &str)]) -> Self {
        let mut process = start_server(env);
        let line = process.stdout_line("Open http://", PATIENCE);
        // Open http://127.0.0.1:PORT/ in a browser to sign in.
        let base = line
            .strip_prefix("Open ")
            .and_then(|rest| rest.strip_suffix("/ in a browser to sign in."))
            .unwrap_or_else(|| panic!("unexpected line: {line}"))
            .to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Self { process, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// `examples/server` on `127.0.0.1:0` with `env`.
fn start_server(env: &[(&str, &str)]) -> ExampleProcess {
    let binary = example_binaries!().get("server").expect("the server example");
    ExampleProcess::start("server", binary, |command| {
        command.env("RUST_LOG", "info,tower_amazon_auth=debug");
        for (name, value) in env {
            command.env(name, value);
        }
    })
}

/// The first element `css` finds, waiting for it; panics with the page and the logs.
async fn wait_for(browser: &Browser, site: &ExampleProcess, css: &str) -> Element {
    match browser
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(error) => panic!("{css}: {error}\n{}", context(browser, site).await),
    }
}

/// Clicks the first element `css` finds, waiting for it.
async fn click(browser: &Browser, site: &ExampleProcess, css: &str) {
    if let Err(error) = wait_for(browser, site, css).await.click().await {
        panic!("click {css}: {error}\n{}", context(browser, site).await);
    }
}

/// The text of `css` once `ready` accepts it (polled); panics with the last one seen.
async fn wait_for_text(
    browser: &Browser,
    site: &ExampleProcess,
    css: &str,
    ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = browser.find(Locator::Css(css)).await {
            seen = element.text().await.unwrap_or_default();
            if ready(&seen) {
                return seen;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{css} reads {seen:?}\n{}", context(browser, site).await)
}

/// Where the browser is, what it shows, and what the server logged: for failure messages.
async fn context(browser: &Browser, site: &ExampleProcess) -> String {
    let url = browser.current_url().await.map(String::from).unwrap_or_default();
    let source = browser.source().await.unwrap_or_default();
    format!(
        "at {url}:\n{source}\n--- server\n{}\n{}",
        site.logs(),
        browser.logs()
    )
}

/// How many elements `css` finds.
async fn count(browser: &Browser, css: &str) -> usize {
    browser
        .find_all(Locator::Css(css))
        .await
        .expect("find elements")
        .len()
}

/// The status of the response the current page was loaded from.
async fn page_status(browser: &Browser) -> u64 {
    let status = browser
        .execute(
            "return performance.getEntriesByType('navigation')[0].responseStatus;",
            vec![],
        )
        .await
        .expect("run a script");
    status.as_u64().unwrap_or_else(|| panic!("no status: {status}"))
}

/// What `fetch(path)` from the current page answers: the status and the body.
async fn fetch(browser: &Browser, path: &str) -> (u64, String) {
    let script = "const [path, done] = arguments;
        fetch(path).then(async (answer) => done([answer.status, await answer.text()]),
                         (error) => done([0, String(error)]));";
    let answer = browser
        .execute_async(script, vec![json!(path)])
        .await
        .expect("run fetch");
    let status = answer[0].as_u64().unwrap_or_default();
    (status, answer[1].as_str().unwrap_or_default().to_owned())
}

/// Opens the home page, signed out, clicks `#login` and waits for the mock's consent page (on
/// `localhost`, another site than the example's `127.0.0.1`).
async fn to_consent_page(browser: &Browser, site: &Site) {
    browser.goto(&site.url("/")).await.unwrap();
    let login = wait_for(browser, &site.process, "#login").await;
    assert_eq!(login.text().await.unwrap(), "Login with Amazon");
    login.click().await.unwrap();
    at_consent_page(browser, site).await;
}

/// Waits for the mock's consent page in the current tab.
async fn at_consent_page(browser: &Browser, site: &Site) {
    wait_for(browser, &site.process, "#allow").await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.host_str(), Some("localhost"), "{url}");
    assert_eq!(url.path(), "/ap/oa", "{url}");
}

/// On the consent page: the preselected user is `name`; Allow; back on `/`, signed in.
async fn allow_as(browser: &Browser, site: &Site, name: &str) {
    let chosen = wait_for(browser, &site.process, "#users label:has(input:checked) .name").await;
    assert_eq!(chosen.text().await.unwrap(), name, "the preselected user");
    click(browser, &site.process, "#allow").await;
    wait_for(browser, &site.process, "#hello").await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.as_str(), site.url("/"), "back where the sign-in started");
}

/// Signs the demo user in from the home page.
async fn sign_in_demo(browser: &Browser, site: &Site) {
    to_consent_page(browser, site).await;
    allow_as(browser, site, DEMO_NAME).await;
    let hello = wait_for_text(browser, &site.process, "#hello", |t| !t.is_empty()).await;
    assert_eq!(hello, format!("Hello, {DEMO_NAME}"));
}

/// Sign in, reload, call `/me`, sign out, go Back: the whole visit of a person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_reload_call_me_sign_out_and_back() {
    let Some((_serial, browser, site)) = start_demo("sign_in_reload_call_me_sign_out_and_back", &[]).await
    else {
        return;
    };
    browser.goto(&site.url("/")).await.unwrap();
    assert_eq!(page_status(&browser).await, 200);
    assert!(
        browser.find(Locator::Css("#hello")).await.is_err(),
        "signed in already"
    );
    to_consent_page(&browser, &site).await;
    allow_as(&browser, &site, DEMO_NAME).await;
    let hello = wait_for_text(&browser, &site.process, "#hello", |t| !t.is_empty()).await;
    assert_eq!(hello, format!("Hello, {DEMO_NAME}"));
    let email = wait_for(&browser, &site.process, "#email").await;
    assert_eq!(email.text().await.unwrap(), DEMO_EMAIL);

    // The session outlives a reload.
    browser.refresh().await.unwrap();
    let hello = wait_for_text(&browser, &site.process, "#hello", |t| !t.is_empty()).await;
    assert_eq!(hello, format!("Hello, {DEMO_NAME}"), "signed out by a reload");

    // The page's button calls /me with the session cookie.
    click(&browser, &site.process, "#call-me").await;
    let result = wait_for_text(&browser, &site.process, "#me-result", |t| !t.is_empty()).await;
    let body = result
        .strip_prefix("200 ")
        .unwrap_or_else(|| panic!("/me from the page: {result}"));
    let me: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(
        me["user_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("amzn1.account.DEMO")),
        "{me}"
    );
    assert_eq!(me["name"], DEMO_NAME, "{me}");
    assert_eq!(me["email"], DEMO_EMAIL, "{me}");

    // The signed-in page, for the docs.
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/sign-in.png");
    if std::fs::read(&docs).ok() != Some(png.clone()) {
        std::fs::write(&docs, &png).unwrap_or_else(|e| panic!("write {}: {e}", docs.display()));
    }

    // Sign out: the session ends, the page offers the sign-in again.
    click(&browser, &site.process, "#logout").await;
    wait_for(&browser, &site.process, "#login").await;
    assert_eq!(browser.current_url().await.unwrap().as_str(), site.url("/"));
    assert!(browser.find(Locator::Css("#hello")).await.is_err());

    // Back does not bring the signed-in page back (it is `no-store`, and the session is gone).
    browser.back().await.unwrap();
    let shown = wait_for(&browser, &site.process, "#login, #hello").await;
    assert_eq!(
        shown.attr("id").await.unwrap().as_deref(),
        Some("login"),
        "Back showed the signed-in page\n{}",
        context(&browser, &site.process).await
    );
    let (status, body) = fetch(&browser, "/me").await;
    assert_eq!(status, 401, "/me after signing out: {body}");
    browser.close().await;
}

/// Cancel on the consent page: the callback's "Signed out" page, and no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_the_consent_page_leaves_you_signed_out() {
    let Some((_serial, browser, site)) =
        start_demo("cancel_on_the_consent_page_leaves_you_signed_out", &[]).await
    else {
        return;
    };
    to_consent_page(&browser, &site).await;
    click(&browser, &site.process, "#cancel").await;
    let message = wait_for_text(&browser, &site.process, "p", |t| t.contains("cancelled")).await;
    assert_eq!(message, "Sign-in was cancelled: you are not signed in.");
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.host_str(), Some("127.0.0.1"), "{url}");
    assert_eq!(url.path(), "/login/callback", "{url}");
    assert_eq!(page_status(&browser).await, 200);
    let title = wait_for(&browser, &site.process, "h1").await;
    assert_eq!(title.text().await.unwrap(), "Signed out");
    let cookies = browser.get_all_cookies().await.unwrap();
    assert!(
        !cookies.iter().any(|cookie| cookie.name().contains("taa_session")),
        "a session cookie after a cancel: {cookies:?}"
    );
    let (status, _) = fetch(&browser, "/me").await;
    assert_eq!(status, 401, "/me after a cancel");
    browser.goto(&site.url("/")).await.unwrap();
    wait_for(&browser, &site.process, "#login").await;
    browser.close().await;
}

/// Two tabs on the consent page at once: Allow in the second, then in the first; both sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_signing_in_at_once_both_succeed() {
    let Some((_serial, browser, site)) = start_demo("two_tabs_signing_in_at_once_both_succeed", &[]).await
    else {
        return;
    };
    let login = site.url("/login?return_to=/");
    let first = browser.window().await.unwrap();
    browser.goto(&login).await.unwrap();
    at_consent_page(&browser, &site).await;
    let second = browser.new_window(true).await.unwrap().handle;
    browser.switch_to_window(second.clone()).await.unwrap();
    browser.goto(&login).await.unwrap();
    at_consent_page(&browser, &site).await;

    allow_as(&browser, &site, DEMO_NAME).await;
    browser.switch_to_window(first).await.unwrap();
    allow_as(&browser, &site, DEMO_NAME).await;
    let hello = wait_for_text(&browser, &site.process, "#hello", |t| !t.is_empty()).await;
    assert_eq!(hello, format!("Hello, {DEMO_NAME}"), "the first tab");
    let (status, body) = fetch(&browser, "/me").await;
    assert_eq!(status, 200, "/me in the first tab: {body}");

    // The second tab is still signed in (the tabs share the cookie jar).
    browser.switch_to_window(second).await.unwrap();
    browser.refresh().await.unwrap();
    let hello = wait_for_text(&browser, &site.process, "#hello", |t| !t.is_empty()).await;
    assert_eq!(hello, format!("Hello, {DEMO_NAME}"), "the second tab");
    browser.close().await;
}

/// A profile name that is HTML is shown as text, on the consent page and on the site: no
/// element is made of it and no script runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_is_html_is_shown_as_text() {
    const NAME: &str = "<img src=x onerror=alert(1)>";
    let Some((_serial, browser)) = start("a_name_that_is_html_is_shown_as_text").await else {
        return;
    };
    // The example pointed at a mock of this test's own, which offers the user.
    let mock = MockAmazon::start().await.unwrap();
    mock.add_sign_in_user(
        MockUser::new("amzn1.account.XSS")
            .name(NAME)
            .email("xss@example.com"),
    );
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    mock.allow_redirect_uri(format!("{base}/login/callback"));
    let authorize = mock.authorize_url().replace("127.0.0.1", "localhost");
    let listen = format!("127.0.0.1:{port}");
    let process = start_server(&[
        ("AMAZON_CLIENT_ID", MOCK_CLIENT_ID),
        ("AMAZON_CLIENT_SECRET", MOCK_CLIENT_SECRET),
        ("AMAZON_ENDPOINT", mock.base_url()),
        ("AMAZON_AUTHORIZE_URL", authorize.as_str()),
        ("LISTEN_ADDR", listen.as_str()),
    ]);
    process.wait_for_log("sign-in on", PATIENCE);
    let site = Site { process, base };

    to_consent_page(&browser, &site).await;
    assert_eq!(
        count(&browser, "#users img").await,
        0,
        "the consent page made an element of the name"
    );
    allow_as(&browser, &site, NAME).await;
    let hello = wait_for_text(&browser, &site.process, "#hello", |t| !t.is_empty()).await;
    assert_eq!(hello, format!("Hello, {NAME}"), "the name, as text");
    assert_eq!(
        count(&browser, "#hello img").await,
        0,
        "the page made an element of the name"
    );
    match browser.get_alert_text().await {
        Err(error) if error.is_no_such_alert() => {}
        Err(error) => panic!("asking for an alert: {error}"),
        Ok(text) => panic!("the name ran a script: an alert says {text:?}"),
    }
    browser.close().await;
    drop(mock);
}

/// Production cookies (`SECURE_COOKIES=1`: `Secure`, `__Host-`) on loopback: Chromium keeps them
/// and signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_cookies_sign_in_on_loopback() {
    let Some((_serial, browser, site)) = start_demo(
        "production_cookies_sign_in_on_loopback",
        &[("SECURE_COOKIES", "1")],
    )
    .await
    else {
        return;
    };
    sign_in_demo(&browser, &site).await;
    let cookies = browser.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|cookie| cookie.name().contains("taa_session"))
        .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
    assert_eq!(session.name(), "__Host-taa_session", "{session:?}");
    assert_eq!(session.secure(), Some(true), "{session:?}");
    assert_eq!(session.http_only(), Some(true), "{session:?}");
    assert_eq!(session.path(), Some("/"), "{session:?}");
    let (status, body) = fetch(&browser, "/me").await;
    assert_eq!(status, 200, "/me with the production cookie: {body}");
    browser.close().await;
}
