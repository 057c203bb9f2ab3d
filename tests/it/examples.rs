//! Runs `examples/server.rs`, `examples/hyper_server.rs` and `examples/forward_auth.rs` as users
//! do (no configuration, so the embedded mock), follows the `curl` line each prints, and checks
//! the routes, the error answers, SIGTERM handling and that the logs never contain the token.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tower_amazon_auth_test_support::example_binaries;
use tower_amazon_auth_test_support::examples::{ExampleProcess, EXAMPLES};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running example and the `curl` line it printed.
struct Running {
    process: ExampleProcess,
    /// The `curl` line's token and URL (`…/me`, or `…/verify` for the forward-auth server).
    token: String,
    me_url: String,
}

impl Running {
    fn start(name: &str) -> Self {
        let binary = example_binaries!()
            .get(name)
            .unwrap_or_else(|| panic!("cargo built no example named {name}"));
        let mut process = ExampleProcess::start(name, binary, |command| {
            // Everything every crate logs, so "no token in the logs" means something.
            command.env("RUST_LOG", "trace");
        });
        let line = process.stdout_line("curl ", STARTUP_TIMEOUT);
        // curl -H 'Authorization: Bearer Atza|…' http://ADDR/me (or /verify)
        let rest = line
            .strip_prefix("curl -H 'Authorization: Bearer ")
            .unwrap_or_else(|| panic!("unexpected curl line: {line}"));
        let (token, url) = rest
            .split_once("' ")
            .unwrap_or_else(|| panic!("unexpected curl line: {line}"));
        assert!(
            token.starts_with("Atza|") && token.len() >= 350,
            "not a realistic token"
        );
        assert!(
            url.starts_with("http://127.0.0.1:") && (url.ends_with("/me") || url.ends_with("/verify")),
            "{url}"
        );
        Self {
            process,
            token: token.to_owned(),
            me_url: url.to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        let base = self.me_url.trim_end_matches("/me").trim_end_matches("/verify");
        format!("{base}{path}")
    }

    /// Kills the process if it still runs and returns everything it logged.
    fn stop_and_logs(&mut self) -> String {
        self.process.stop_and_logs()
    }

    /// Sends SIGTERM and waits up to `within` for a successful exit.
    #[cfg(unix)]
    fn terminate(&mut self, within: Duration) {
        self.process.terminate(within);
    }
}

async fn check_example(name: &str) {
    let mut running = Running::start(name);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let me = running.me_url.clone();

    // The printed command works.
    let response = http.get(&me).bearer_auth(&running.token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{name}: /me with the demo token");
    let body: Value = response.json().await.unwrap();
    let user_id = body["user_id"].as_str().unwrap_or_default();
    assert!(user_id.starts_with("amzn1.account.DEMO"), "{name}: {body}");
    for field in ["email", "name", "postal_code"] {
        assert!(body[field].is_string(), "{name}: {field} missing from {body}");
    }

    // No token: the bare RFC 6750 challenge.
    let response = http.get(&me).send().await.unwrap();
    assert_eq!(response.status(), 401, "{name}: /me without a token");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(challenge.starts_with("Bearer realm="), "{name}: {challenge}");
    assert!(!challenge.contains("error="), "{name}: {challenge}");

    // Junk is refused without asking Amazon.
    let response = http.get(&me).bearer_auth("junk").send().await.unwrap();
    assert_eq!(response.status(), 400, "{name}: /me with a junk token");

    // The health check needs no token.
    let response = http.get(running.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200, "{name}: /healthz");
    assert_eq!(response.text().await.unwrap(), "ok");

    // Unknown paths sit behind the layer too: 401 without a token, 404 with one.
    let response = http.get(running.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 401, "{name}: /nope without a token");
    let response = http
        .get(running.url("/nope"))
        .bearer_auth(&running.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "{name}: /nope with the token");

    // Logout revokes the token here: from then on it is refused, although the (mock) Amazon
    // still calls it valid.
    let response = http
        .post(running.url("/logout"))
        .bearer_auth(&running.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{name}: POST /logout");
    let response = http.get(&me).bearer_auth(&running.token).send().await.unwrap();
    assert_eq!(response.status(), 401, "{name}: /me after logout");
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{name}: {challenge}"
    );

    // SIGTERM stops it cleanly, even with the client's keep-alive connection still open.
    #[cfg(unix)]
    running.terminate(Duration::from_secs(15));

    let logs = running.stop_and_logs();
    assert!(
        logs.contains("listening"),
        "{name} logged nothing useful:\n{logs}"
    );
    assert!(
        logs.contains("amzn1.account.DEMO"),
        "{name} did not log the request"
    );
    // Any 40-byte window of the token would be a leak, not only the whole of it.
    let token = running.token.as_bytes();
    for window in token.windows(40).step_by(20) {
        let window = std::str::from_utf8(window).unwrap();
        assert!(!logs.contains(window), "{name} logged part of the token");
    }
}

#[tokio::test]
async fn server_example() {
    check_example("server").await;
}

#[tokio::test]
async fn hyper_server_example() {
    check_example("hyper_server").await;
}

/// The forward-auth server: the printed command is allowed with the demo user's identity
/// headers, refusals are 401 (junk too), `/healthz` answers, other paths are 404, and it stops
/// cleanly on SIGTERM without logging the token.
#[tokio::test]
async fn forward_auth_example() {
    let name = "forward_auth";
    let mut running = Running::start(name);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let verify = running.me_url.clone();
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };

    let response = http
        .get(&verify)
        .bearer_auth(&running.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the printed command");
    assert!(
        header(&response, "x-auth-request-user").is_some_and(|user| user.starts_with("amzn1.account.DEMO"))
    );
    assert_eq!(
        header(&response, "x-auth-request-email").as_deref(),
        Some("demo@example.com")
    );
    assert_eq!(
        header(&response, "x-auth-request-name").as_deref(),
        Some("Demo User")
    );
    assert_eq!(header(&response, "cache-control").as_deref(), Some("no-store"));

    // The token in the original URI's query, as nginx sends it.
    let original = format!("/app?access_token={}", running.token.replace('|', "%7C"));
    let response = http
        .get(running.url("/verify/app"))
        .header("x-original-uri", original)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "query token in X-Original-URI");

    let response = http.get(&verify).send().await.unwrap();
    assert_eq!(response.status(), 401, "no token");
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some(r#"Bearer realm="api""#)
    );
    let response = http.post(&verify).bearer_auth("junk").send().await.unwrap();
    assert_eq!(response.status(), 401, "junk is 401 here, not 400");
    assert!(header(&response, "www-authenticate").is_some_and(|c| c.contains("invalid_request")));

    let response = http.get(running.url("/healthz")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
    let response = http
        .get(running.url("/me"))
        .bearer_auth(&running.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        404,
        "/me is no route of the forward-auth server"
    );

    #[cfg(unix)]
    running.terminate(Duration::from_secs(15));
    let logs = running.stop_and_logs();
    assert!(
        logs.contains("listening"),
        "{name} logged nothing useful:\n{logs}"
    );
    assert!(
        !logs.contains("beyond loopback"),
        "{name} warned on loopback:\n{logs}"
    );
    let token = running.token.as_bytes();
    for window in token.windows(40).step_by(20) {
        let window = std::str::from_utf8(window).unwrap();
        assert!(!logs.contains(window), "{name} logged part of the token");
    }
}

/// `AMAZON_ENDPOINT` without `AMAZON_CLIENT_ID` is a configuration error: a clear message and a
/// failing exit, not a server that refuses (or accepts) every token.
#[test]
fn endpoint_without_client_id_is_an_error() {
    for name in EXAMPLES {
        let binary = &example_binaries!()[name];
        let mut child = Command::new(binary)
            .env_remove("AMAZON_CLIENT_ID")
            .env("AMAZON_ENDPOINT", "https://api.amazon.co.uk")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} kept running without AMAZON_CLIENT_ID");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(!status.success(), "{name}: {status}");
        assert!(stderr.contains("AMAZON_CLIENT_ID"), "{name}: {stderr}");
    }
}

/// The forward-auth server warns when it listens beyond loopback (it answers who any token
/// belongs to), and not on loopback.
#[test]
fn forward_auth_warns_when_bound_beyond_loopback() {
    use std::io::BufRead as _;
    let binary = example_binaries!()
        .get("forward_auth")
        .expect("the forward_auth example")
        .clone();
    let first_lines = |listen: &str| {
        let mut child = Command::new(&binary)
            .env_remove("AMAZON_CLIENT_ID")
            .env_remove("AMAZON_ENDPOINT")
            .env_remove("REDIS_URL")
            .env("LISTEN_ADDR", listen)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the forward_auth example");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        // Up to the warning, or a second after the line saying where it listens (the warning
        // comes right after that line); never more than 10 s.
        let mut seen = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut listening_at = None;
        loop {
            let now = std::time::Instant::now();
            let until = listening_at.map_or(deadline, |at: std::time::Instant| {
                (at + Duration::from_secs(1)).min(deadline)
            });
            let Ok(line) = received.recv_timeout(until.saturating_duration_since(now)) else {
                break;
            };
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("beyond loopback") {
                break;
            }
            if line.contains("listening") {
                listening_at.get_or_insert(std::time::Instant::now());
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        seen
    };
    let everywhere = first_lines("0.0.0.0:0");
    assert!(everywhere.contains("beyond loopback"), "{everywhere}");
    let loopback = first_lines("127.0.0.1:0");
    assert!(loopback.contains("listening"), "{loopback}");
    assert!(!loopback.contains("beyond loopback"), "{loopback}");
}

/// A client id without a secret: the API works, website sign-in is off, and both the page and
/// `/login` say why.
#[tokio::test]
async fn the_server_without_a_client_secret_serves_the_api_and_says_why_sign_in_is_off() {
    let mock = tower_amazon_auth_mock::MockAmazon::start().await.unwrap();
    let token = tower_amazon_auth_mock::mock_access_token("no-secret");
    mock.register(
        &token,
        tower_amazon_auth_mock::MockUser::new("amzn1.account.NOSECRET"),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let binary = &example_binaries!()["server"];
    let server = ExampleProcess::start("server", binary, |command| {
        command
            .env("AMAZON_CLIENT_ID", tower_amazon_auth_mock::MOCK_CLIENT_ID)
            .env("AMAZON_ENDPOINT", mock.base_url())
            .env_remove("AMAZON_CLIENT_SECRET")
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"));
    });
    server.wait_for_log("listening", Duration::from_secs(30));
    let http = reqwest::Client::new();
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("sign-in is off") && page.contains("AMAZON_CLIENT_SECRET"),
        "{page}"
    );
    assert!(!page.contains("id=\"login\""), "no button that cannot work");
    let login = http.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(login.status(), 503);
    assert!(login.text().await.unwrap().contains("AMAZON_CLIENT_SECRET"));
    let me = http
        .get(format!("{base}/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "the API works");
    let out = http
        .post(format!("{base}/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
}
