//! The example servers on the fleet level (a real `redis-server` the tests start themselves):
//! three `examples/server` processes share verdicts and logouts through `REDIS_URL`, the
//! forward-auth server joins the same fleet, and `REDIS_URL` without a secret is a clear
//! startup error. The fleet level's own tests are the `tower-amazon-auth-redis` crate's.

use tower_amazon_auth_mock::{MockAmazon, MockUser, MOCK_CLIENT_ID};

use crate::common::{client, token, within_patience, PATIENCE};
use crate::external::{redis, redis_url as url, External};

/// The fleet secret of these tests (32 bytes).
const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// An example server process (`examples/server`, `examples/forward_auth`) on the fleet: its
/// address, once it listens and its subscriber is connected. Killed on drop.
struct ServerProcess {
    child: std::process::Child,
    base: String,
    logs: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ServerProcess {
    fn start(mock: &MockAmazon, redis: &External) -> Self {
        Self::start_example("server", mock, redis)
    }

    fn start_example(example: &str, mock: &MockAmazon, redis: &External) -> Self {
        use std::io::BufRead as _;
        let binary = tower_amazon_auth_test_support::example_binaries!()
            .get(example)
            .unwrap_or_else(|| panic!("the {example} example"));
        let mut child = std::process::Command::new(binary)
            .env("AMAZON_CLIENT_ID", MOCK_CLIENT_ID)
            .env("AMAZON_ENDPOINT", mock.base_url())
            .env("REDIS_URL", url(redis))
            .env("AMAZON_AUTH_CACHE_SECRET", SECRET)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info,tower_amazon_auth=debug")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("spawn the {example} example: {error}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (ready, signals) = std::sync::mpsc::channel();
        let all = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening") {
                    if let Some(addr) = line.split("addr=").nth(1) {
                        let _ = ready.send(Some(addr.trim().to_owned()));
                    }
                }
                if line.contains("fleet cache level: subscribed") {
                    let _ = ready.send(None);
                }
                let mut all = all.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let (mut addr, mut subscribed) = (None, false);
        while addr.is_none() || !subscribed {
            match signals.recv_timeout(PATIENCE) {
                Ok(Some(listening)) => addr = Some(listening),
                Ok(None) => subscribed = true,
                Err(_) => panic!("the {example} example did not start: {}", logs.lock().unwrap()),
            }
        }
        Self {
            child,
            base: format!("http://{}", addr.unwrap_or_default()),
            logs,
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Case 7: three `examples/server` processes on one Redis and one `MockAmazon`: a token used
/// on each costs one tokeninfo call; `POST /logout` on one, and the other two answer 401
/// although Amazon still calls the token valid. The secret is never logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_example_servers_share_verdicts_and_logouts() {
    let Some(redis) = redis("fleet::three_example_servers_share_verdicts_and_logouts") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let servers: Vec<ServerProcess> = (0..3).map(|_| ServerProcess::start(&mock, &redis)).collect();
    let http = client();
    let t = token("fleet-examples");
    mock.register(
        &t,
        MockUser::new("amzn1.account.EXAMPLES").email("ex@example.com"),
    );
    for server in &servers {
        let response = http
            .get(format!("{}/me", server.base))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        mock.calls_for(&t).tokeninfo,
        1,
        "one tokeninfo call for the fleet"
    );
    let logout = http
        .post(format!("{}/logout", servers[0].base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let (http, t) = (&http, &t);
    for server in &servers[1..] {
        within_patience(
            "an example server refuses a token logged out on another",
            move || async move {
                let response = http
                    .get(format!("{}/me", server.base))
                    .bearer_auth(t)
                    .send()
                    .await
                    .unwrap();
                response.status() == 401
            },
        )
        .await;
    }
    for server in &servers {
        let logs = server.logs.lock().unwrap();
        assert!(!logs.contains(SECRET), "the fleet secret was logged");
        assert!(!logs.contains(t.as_str()), "a token was logged");
    }

    // REDIS_URL without the secret: a clear startup error, for the forward-auth server too.
    for example in ["server", "forward_auth"] {
        let binary = tower_amazon_auth_test_support::example_binaries!()
            .get(example)
            .unwrap_or_else(|| panic!("the {example} example"));
        let output = std::process::Command::new(binary)
            .env("AMAZON_CLIENT_ID", MOCK_CLIENT_ID)
            .env("AMAZON_ENDPOINT", mock.base_url())
            .env("REDIS_URL", url(&redis))
            .env_remove("AMAZON_AUTH_CACHE_SECRET")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("run the {example} example: {error}"));
        assert!(!output.status.success(), "{example}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("AMAZON_AUTH_CACHE_SECRET is not"),
            "{example}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The forward-auth server on the fleet (issue #14's `REDIS_URL`): it shares verdicts and
/// logouts with a Rust service using the layer: a token verified by `examples/server` costs the
/// auth server no verification, and a logout there is refused here.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_forward_auth_server_shares_the_fleet() {
    let Some(redis) = redis("fleet::the_forward_auth_server_shares_the_fleet") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let server = ServerProcess::start(&mock, &redis);
    let auth = ServerProcess::start_example("forward_auth", &mock, &redis);
    let http = client();
    let t = token("fleet-forward-auth");
    mock.register(&t, MockUser::new("amzn1.account.FORWARD"));
    let me = http
        .get(format!("{}/me", server.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let verify = || http.get(format!("{}/verify", auth.base)).bearer_auth(&t).send();
    let allowed = verify().await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers().get("x-auth-request-user").unwrap(),
        "amzn1.account.FORWARD"
    );
    assert_eq!(mock.calls_for(&t).tokeninfo, 1, "the auth server verified again");
    let logout = http
        .post(format!("{}/logout", server.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    within_patience("the auth server refuses a token logged out elsewhere", || async {
        verify().await.unwrap().status() == 401
    })
    .await;
}
