//! The installed binary, as an operator runs it: refusals at start, `--help`, `--demo`
//! serving `/verify`, `/healthz` and `/readyz`, the hardening against slow and greedy clients,
//! and a graceful stop on SIGTERM. Each test starts the real binary on 127.0.0.1.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{command, AuthServer};

#[test]
fn it_refuses_to_start_unconfigured_and_never_starts_the_demo_unless_asked() {
    for (args, needle) in [
        (&[][..], "--demo"),
        (
            &["--demo", "--client-id", "amzn1.application-oa2-client.x"][..],
            "--demo",
        ),
        (&["--demo", "--endpoint", "http://127.0.0.1:1"][..], "--endpoint"),
        (
            &[
                "--client-id",
                "x",
                "--redis-url",
                "redis://127.0.0.1:1,redis://127.0.0.1:2",
                "--cache-secret",
                "0123456789abcdef0123456789abcdef",
            ][..],
            "--redis-cluster",
        ),
        (&["--client-id", "x", "--redis-cluster"][..], "--redis-url"),
        (
            &["--client-id", "x", "--redis-url", "redis://127.0.0.1:1"][..],
            "--cache-secret",
        ),
        (
            &["--client-id", "x", "--max-header-bytes", "100"][..],
            "--max-header-bytes",
        ),
    ] {
        let output = command().args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "no demo token printed: {args:?}");
    }
}

#[test]
fn help_documents_every_setting_and_its_variable() {
    let help = String::from_utf8(command().arg("--help").output().unwrap().stdout).unwrap();
    for needle in [
        "--listen",
        "LISTEN_ADDR",
        "--client-id",
        "AMAZON_CLIENT_ID",
        "--endpoint",
        "AMAZON_ENDPOINT",
        "--demo",
        "--redis-url",
        "REDIS_URL",
        "--cache-secret",
        "AMAZON_AUTH_CACHE_SECRET",
        "--log-format",
        "--header-read-timeout",
        "--max-header-bytes",
        "--max-connections",
        "--pass-access-token",
        "PASS_ACCESS_TOKEN",
        "--client-secret",
        "AMAZON_CLIENT_SECRET",
        "--public-url",
        "PUBLIC_URL",
        "--authorize-url",
        "--secure-cookies",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[tokio::test]
async fn the_demo_answers_verify_health_and_readiness() {
    let demo = AuthServer::demo(&[]);
    let http = reqwest::Client::new();
    let allowed = http
        .get(demo.url("/verify"))
        .bearer_auth(&demo.token)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["x-auth-request-user"],
        "amzn1.account.DEMO7ZQK4XUSER"
    );
    let refused = http.get(demo.url("/verify")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    assert_eq!(
        http.get(demo.url("/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let ready: serde_json::Value = http
        .get(demo.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(
        http.get(demo.url("/elsewhere")).send().await.unwrap().status(),
        404
    );
}

/// Whether the server closed `stream` within `within` (a read answering end-of-file or an error).
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buffer = [0; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn a_slow_client_is_cut_off_and_oversized_headers_refused() {
    let demo = AuthServer::demo(&["--header-read-timeout", "300ms"]);
    let mut slow = TcpStream::connect(&demo.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)),
        "a slow client keeps its connection"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let mut greedy = TcpStream::connect(&demo.addr).unwrap();
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = greedy.write_all(huge.as_bytes());
    let mut answer = String::new();
    greedy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = greedy.read_to_string(&mut answer);
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "oversized headers were served: {answer}"
    );
}

#[test]
fn connections_beyond_the_limit_are_closed() {
    let demo = AuthServer::demo(&["--max-connections", "1", "--header-read-timeout", "10s"]);
    let _first = TcpStream::connect(&demo.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut second = TcpStream::connect(&demo.addr).unwrap();
    assert!(
        closed_within(&mut second, Duration::from_secs(3)),
        "a second connection was kept"
    );
}

#[test]
fn sigterm_stops_it_cleanly() {
    let mut demo = AuthServer::demo(&[]);
    let _idle = TcpStream::connect(&demo.addr).unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &demo.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

/// `--redis-url` with several seeds and `--redis-cluster`: the fleet level on a real Redis
/// Cluster (three primaries, a replica each): tokens verified through it, and `/readyz` reports
/// the subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_a_redis_cluster() {
    let Some(cluster) =
        tower_amazon_auth_test_support::cluster::redis_cluster("cli::the_demo_runs_on_a_redis_cluster")
    else {
        return;
    };
    let seeds = cluster.urls().join(",");
    let demo = AuthServer::demo(&[
        "--redis-url",
        &seeds,
        "--redis-cluster",
        "--cache-secret",
        "0123456789abcdef0123456789abcdef",
    ]);
    let http = reqwest::Client::new();
    let allowed = http
        .get(demo.url("/verify"))
        .bearer_auth(&demo.token)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready: serde_json::Value = http
            .get(demo.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["fleet"]["subscribed"] == true {
            assert_eq!(ready["ready"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never subscribed on the cluster: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
