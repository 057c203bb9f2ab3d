//! Forward auth behind a real nginx: requests per second through nginx with `auth_request` to
//! the forward-auth server (token cached), against the same nginx proxying to the same backend
//! without `auth_request`, in one run; and the auth server's own CPU time per verified request.
//!
//! ```text
//! cargo bench --bench forward_auth --features axum
//! ```
//!
//! The auth server runs in a child process (this binary again, `FORWARD_AUTH_BENCH_CHILD=1`):
//! `ForwardAuth` served by axum on a one-worker tokio runtime, with its own `MockAmazon`. Its
//! CPU time is read from `/proc/PID/stat` (utime + stime) before and after each load run and
//! divided by the requests wrk completed. nginx runs as one process (`master_process off`) with
//! the README's configuration (rendered from `tests/it/forward_auth/nginx.conf`), plus two
//! servers of its own: the backend (`return 200`) and the same proxying without `auth_request`.
//! wrk sends the same request (with the token) to both. Every wrk run must see only 2xx, and the
//! mock must have answered exactly one tokeninfo call at the end (the token stayed cached).
//!
//! Knobs (environment): `FA_BENCH_DURATION` (wrk's `-d`, default `5s`), `FA_BENCH_ROUNDS`
//! (default 2, each a plain and an auth run, interleaved), `FA_BENCH_CONNECTIONS` (default 16).
//! Without nginx or wrk it prints why and exits successfully. The machine these figures come
//! from has two shared cores: wrk, nginx and the auth server share them.

mod common;

use common::process::{env_or, find, Reaped};

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockScope, MockUser, MOCK_CLIENT_ID};

const CHILD_ENV: &str = "FORWARD_AUTH_BENCH_CHILD";
const NGINX_TEMPLATE: &str = include_str!("../tests/it/forward_auth/nginx.conf");

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        auth_server();
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: only a real bench
    // run measures.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("forward_auth: run with `cargo bench --bench forward_auth --features axum`");
        return;
    }
    let (Some(nginx), Some(wrk)) = (find("nginx"), find("wrk")) else {
        println!("SKIPPED forward_auth bench: needs nginx and wrk (apt-get install nginx wrk)");
        return;
    };
    if let Err(error) = run(&nginx, &wrk) {
        eprintln!("forward_auth bench failed: {error}");
        std::process::exit(1);
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The child: the forward-auth server on 127.0.0.1:0. Prints `READY <addr> <token>`, then
/// answers every line on stdin with `CALLS <tokeninfo calls so far>`.
fn auth_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mock = MockAmazon::start().await.expect("mock");
        let token = mock_access_token("forward-auth bench");
        mock.register(
            &token,
            MockUser::new("amzn1.account.BENCH")
                .email("bench@example.com")
                .name("Bench User")
                .scope(MockScope::Profile)
                .exp(24 * 60 * 60),
        );
        let cache = IdentityCache::builder()
            .client_id(MOCK_CLIENT_ID)
            .base_url(mock.base_url())
            .build()
            .expect("cache");
        let layer = AmazonAuthLayer::builder(cache).build().expect("layer");
        let app = axum::Router::new().fallback_service(layer.forward_auth());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        println!("READY {addr} {token}");
        std::io::stdout().flush().expect("stdout");
        let mock = std::sync::Arc::new(mock);
        let calls = std::sync::Arc::clone(&mock);
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                if line.is_err() {
                    break;
                }
                println!("CALLS {}", calls.calls().tokeninfo);
                let _ = std::io::stdout().flush();
            }
            // The parent went away: so does the child.
            std::process::exit(0);
        });
        axum::serve(listener, app).await.expect("serve");
    });
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The child's utime + stime, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at the last ')'.
    let rest = stat.rsplit_once(')').ok_or("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

struct Load {
    requests: u64,
    per_second: f64,
}

fn wrk(wrk: &Path, url: &str, token: &str, duration: &str, connections: &str) -> Result<Load> {
    let output = Command::new(wrk)
        .args(["-t1", "-c", connections, "-d", duration, "--latency"])
        .args(["-H", &format!("Authorization: Bearer {token}"), url])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr)).into());
    }
    let report = common::wrk::report(&text)?;
    Ok(Load {
        requests: report.requests,
        per_second: report.per_second,
    })
}

fn run(nginx: &Path, wrk_bin: &Path) -> Result<()> {
    let duration = env_or("FA_BENCH_DURATION", "5s");
    let rounds: usize = env_or("FA_BENCH_ROUNDS", "2").parse()?;
    let connections = env_or("FA_BENCH_CONNECTIONS", "16");
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);

    // The auth server, in a child process of its own.
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin: ChildStdin = child.stdin.take().ok_or("no stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let child = Reaped(child);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let mut ready = line.split_whitespace();
    let (Some("READY"), Some(auth), Some(token)) = (ready.next(), ready.next(), ready.next()) else {
        return Err(format!("the auth server said {line:?}").into());
    };
    let auth: SocketAddr = auth.parse()?;
    let token = token.to_owned();

    // nginx: the README's server (auth), the same proxying without auth_request (plain), and
    // the backend both proxy to.
    let (auth_port, plain_port, backend_port) = (free_port()?, free_port()?, free_port()?);
    let dir = tempfile::Builder::new().prefix("taa-bench-nginx-").tempdir()?;
    let d = dir.path().display();
    let backend = format!("127.0.0.1:{backend_port}");
    let snippet = NGINX_TEMPLATE
        .replace("@LISTEN@", &format!("127.0.0.1:{auth_port}"))
        .replace("@AUTH@", &auth.to_string())
        .replace("@BACKEND@", &backend);
    let config = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         access_log off;\n\
         client_body_temp_path {d}/client_body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         {snippet}\n\
         server {{\n    listen 127.0.0.1:{plain_port};\n    location / {{\n        proxy_pass http://{backend};\n    }}\n}}\n\
         server {{\n    listen {backend};\n    location / {{\n        return 200 \"backend\\n\";\n    }}\n}}\n\
         }}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), config)?;
    let nginx = Reaped(
        Command::new(nginx)
            .args(["-p", &format!("{d}/"), "-c", &format!("{d}/nginx.conf"), "-e"])
            .arg(format!("{d}/error.log"))
            .stdin(Stdio::null())
            .spawn()?,
    );
    let auth_url = format!("http://127.0.0.1:{auth_port}/app");
    let plain_url = format!("http://127.0.0.1:{plain_port}/app");

    // Ready, and the token verified once (cached from here on): a short run of each.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let http = reqwest::Client::new();
        for _ in 0..100 {
            let answer = http.get(&auth_url).bearer_auth(&token).send().await;
            if let Ok(answer) = answer {
                return match answer.status().as_u16() {
                    200 => Ok(()),
                    status => Err(format!("nginx answered {status}")),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("nginx did not come up".to_owned())
    })?;
    wrk(wrk_bin, &plain_url, &token, "1s", &connections)?;
    wrk(wrk_bin, &auth_url, &token, "1s", &connections)?;

    let (mut plain, mut authed, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let p = wrk(wrk_bin, &plain_url, &token, &duration, &connections)?;
        let before = cpu_ticks(child.0.id())?;
        let a = wrk(wrk_bin, &auth_url, &token, &duration, &connections)?;
        let after = cpu_ticks(child.0.id())?;
        let micros = (after - before) as f64 * 1e6 / hz / a.requests as f64;
        println!(
            "round {round}: plain {:.0} req/s ({} requests), auth_request {:.0} req/s ({} requests), \
             auth server CPU {:.1} µs/request ({} ticks at {hz} Hz)",
            p.per_second,
            p.requests,
            a.per_second,
            a.requests,
            micros,
            after - before
        );
        plain.push(p.per_second);
        authed.push(a.per_second);
        cpu.push(micros);
    }

    writeln!(stdin, "calls")?;
    line.clear();
    stdout.read_line(&mut line)?;
    let calls = line.trim().strip_prefix("CALLS ").ok_or("no CALLS line")?;
    if calls != "1" {
        return Err(format!("the token was verified {calls} times: not a cached run").into());
    }

    let (plain, authed, cpu) = (
        common::wrk::median(&plain),
        common::wrk::median(&authed),
        common::wrk::median(&cpu),
    );
    println!(
        "median of {rounds}: nginx without auth_request {plain:.0} req/s; with auth_request \
         (token cached) {authed:.0} req/s ({:.2}x); auth server CPU {cpu:.1} µs per verified \
         request; tokeninfo calls: {calls}",
        authed / plain
    );
    drop(nginx);
    drop(child);
    Ok(())
}
