//! End to end, the issue #12 pair: the same hyper handler behind the same kind of connection,
//! served on two ports of one server process, one wrapped in `AmazonAuthLayer` (token cached),
//! one without it; wrk sends byte-identical requests (`GET /x`, `Authorization: Bearer
//! <410-byte token>`) to both, pipelined (16 per write) and, as a second informative pair,
//! keep-alive one at a time. Prints the median req/s of each, the ratio with ÷ without (target
//! ≥ 0.80 pipelined) and the server's CPU time per request.
//!
//! ```text
//! cargo bench --features axum --bench e2e_pair
//! ```
//!
//! The server is this binary again in a child process (`E2E_PAIR_BENCH_CHILD=1`), pinned to
//! core 0 with `taskset`; wrk is pinned to core 1 (when `taskset` exists and there are two
//! cores). The child starts a `MockAmazon` on a runtime of its own, registers a realistic user
//! (email, name, postal code) for a 410-byte `Atza|…` token, and serves both ports from one
//! tokio runtime (`E2E_PAIR_WORKERS` worker threads, default 1, named `e2e-pair-srv`) with
//! hyper's http1 server and `pipeline_flush(true)`. The handler ignores the request and answers
//! `200` with a fixed 2-byte body; each port's handler counts its calls. Before measuring, the
//! child sends one request through the layer (the only verification: the token is cached from
//! then on).
//!
//! The server's CPU per request is the run time of the `e2e-pair-srv` threads
//! (`/proc/self/task/*/schedstat`, nanoseconds; the mock's threads are not counted) over each
//! wrk run, divided by the requests the handler served in it (read once the server has finished
//! the requests a pipelined run leaves unanswered when wrk stops).
//!
//! Checks, so the figures cannot silently measure refusals: wrk must report no non-2xx/3xx
//! responses and no socket errors; the handler must have served at least as many requests as
//! wrk completed; through the layer, every request the handler saw must have been a cache hit
//! (hits = handler calls, no misses, no refusals), and nothing may reach the layer during a run
//! without it; every wrk run must have sent the same request bytes (the Lua script prints the
//! request it sends; the Host header is fixed, not the port).
//!
//! Each run also prints the share of a core the server threads got (their CPU time over the
//! run's wall time) and wrk's (its `cutime + cstime`, clock ticks): when the server got well
//! under a whole core (another process held it, or wrk could not keep up), req/s measures the
//! machine more than the server, and the ratio implied by CPU per request (without ÷ with) is
//! the steadier figure.
//!
//! Rounds alternate the order (without, with; then with, without; …) so a drift of the machine's
//! load hits both alike; the ratio is given both as median ÷ median and as the median of the
//! per-round ratios.
//!
//! Knobs (environment): `E2E_PAIR_DURATION` (wrk's `-d`, default `5s`), `E2E_PAIR_ROUNDS`
//! (default 3), `E2E_PAIR_CONNECTIONS` (pipelined, default 16), `E2E_PAIR_DEPTH` (default 16),
//! `E2E_PAIR_KEEPALIVE_CONNECTIONS` (default 32; `0` skips the keep-alive pair),
//! `E2E_PAIR_WORKERS` (default 1). Without wrk it prints why and exits successfully.

mod common;

use common::process::{env_or, find, Reaped};

use std::convert::Infallible;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::Layer as _;

const CHILD_ENV: &str = "E2E_PAIR_BENCH_CHILD";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/e2e_pair.lua");
/// The server runtime's thread name (at most 15 bytes: it is the thread's `comm`).
const SERVER_THREAD: &str = "e2e-pair-srv";
const PATH: &str = "/x";
/// Below this share of a core, a run's req/s measures the machine's load more than the server.
const STARVED: f64 = 0.9;

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        server();
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: only a real bench
    // run measures.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("e2e_pair: run with `cargo bench --features axum --bench e2e_pair`");
        return;
    }
    let Some(wrk) = find("wrk") else {
        println!("SKIPPED e2e_pair bench: needs wrk (apt-get install wrk)");
        return;
    };
    if let Err(error) = run(&wrk) {
        eprintln!("e2e_pair bench failed: {error}");
        std::process::exit(1);
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The handler both ports serve: ignores the request, answers `200` with a fixed body, and
/// counts its calls.
fn handler(
    calls: Arc<AtomicU64>,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl std::future::Future<Output = std::result::Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |_request: Request<Incoming>| {
        calls.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
    })
}

/// Accepts connections on `listener` and serves each with `svc` (http1, `pipeline_flush`).
async fn serve<S, B>(listener: tokio::net::TcpListener, svc: S)
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = http1::Builder::new()
            .pipeline_flush(true)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc.clone()));
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

/// Run time of this process's server threads, in nanoseconds (`/proc/self/task/*/schedstat`).
fn server_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == SERVER_THREAD)
        })
        .filter_map(|task| {
            std::fs::read_to_string(task.path().join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The child: the two servers. Prints `READY <without> <with> <token>`, then answers every line
/// on stdin with `STATS <without calls> <with calls> <hits> <misses> <refusals> <upstream
/// calls> <server cpu ns>`.
fn server() {
    let upstream = common::Upstream::start();
    let token = common::tokens("e2e-pair", 1).remove(0);
    upstream.register_user(&token, 0);
    let layer = common::layer(upstream.builder());

    let workers: usize = env_or("E2E_PAIR_WORKERS", "1").parse().expect("E2E_PAIR_WORKERS");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()
        .expect("runtime");
    let bare_calls = Arc::new(AtomicU64::new(0));
    let layer_calls = Arc::new(AtomicU64::new(0));
    let (bare_addr, layer_addr) = runtime.block_on(async {
        let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let layered = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addrs = (
            bare.local_addr().expect("addr"),
            layered.local_addr().expect("addr"),
        );
        tokio::spawn(serve(bare, handler(Arc::clone(&bare_calls))));
        tokio::spawn(serve(layered, layer.layer(handler(Arc::clone(&layer_calls)))));
        addrs
    });

    // The one verification: a request through the layer, over HTTP, so the layer's client
    // lives on the server runtime like every later request.
    let warm = format!(
        "GET {PATH} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let mut stream = std::net::TcpStream::connect(layer_addr).expect("connect");
    stream.write_all(warm.as_bytes()).expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "warm-up answered {answer:?}");
    let stats = layer.stats();
    assert_eq!((stats.misses, stats.hits), (1, 0), "warm-up was the one miss");

    println!("READY {bare_addr} {layer_addr} {token}");
    std::io::stdout().flush().expect("stdout");
    for line in std::io::stdin().lines() {
        if line.is_err() {
            break;
        }
        let stats = layer.stats();
        println!(
            "STATS {} {} {} {} {} {} {}",
            bare_calls.load(Ordering::Relaxed),
            layer_calls.load(Ordering::Relaxed),
            stats.hits,
            stats.misses,
            stats.negative_hits + stats.missing_token + stats.revoked,
            stats.upstream_calls,
            server_cpu_ns()
        );
        std::io::stdout().flush().expect("stdout");
    }
    // The parent went away: so does the child.
    std::process::exit(0);
}

/// CPU time of this process's waited-for children (wrk), in clock ticks: `cutime + cstime` of
/// `/proc/self/stat`. The server child is reaped only at the end, so it is not in there.
fn children_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the command name start at the last ')': state is field 3, so cutime (16)
    // and cstime (17) are at 13 and 14.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(13) + field(14)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// The child's counters at one moment.
#[derive(Clone, Copy)]
struct Stats {
    bare_calls: u64,
    layer_calls: u64,
    hits: u64,
    misses: u64,
    refusals: u64,
    upstream_calls: u64,
    cpu_ns: u64,
}

struct Control {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Control {
    fn stats(&mut self) -> Result<Stats> {
        writeln!(self.stdin, "stats")?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let fields: Vec<u64> = line
            .trim()
            .strip_prefix("STATS ")
            .ok_or_else(|| format!("the server said {line:?}"))?
            .split(' ')
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()?;
        let [bare_calls, layer_calls, hits, misses, refusals, upstream_calls, cpu_ns] = fields[..] else {
            return Err(format!("odd STATS line {line:?}").into());
        };
        Ok(Stats {
            bare_calls,
            layer_calls,
            hits,
            misses,
            refusals,
            upstream_calls,
            cpu_ns,
        })
    }
}

struct Load {
    requests: u64,
    per_second: f64,
    request: String,
}

/// `taskset -c CORE` before `program`, when pinning is possible.
fn pinned(program: &Path, core: Option<&str>) -> Command {
    match (core, find("taskset")) {
        (Some(core), Some(taskset)) => {
            let mut command = Command::new(taskset);
            command.args(["-c", core]).arg(program);
            command
        }
        _ => Command::new(program),
    }
}

fn wrk(wrk: &Path, core: Option<&str>, addr: SocketAddr, args: &WrkArgs<'_>, duration: &str) -> Result<Load> {
    let output = pinned(wrk, core)
        .args(["-t1", "-c", args.connections, "-d", duration, "-s", SCRIPT])
        .arg(format!("http://{addr}"))
        .args(["--", PATH, args.depth, args.authorization])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let errors = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(format!("wrk failed: {text}{errors}").into());
    }
    let report = common::wrk::report(&text)?;
    let request = errors
        .lines()
        .find_map(|line| line.strip_prefix("REQUEST "))
        .ok_or_else(|| format!("the script printed no request:\n{errors}"))?
        .to_owned();
    Ok(Load {
        requests: report.requests,
        per_second: report.per_second,
        request,
    })
}

struct WrkArgs<'a> {
    connections: &'a str,
    depth: &'a str,
    authorization: &'a str,
}

/// One measured wrk run against one side of the pair, checked.
struct Measured {
    per_second: f64,
    cpu_us: f64,
    /// The server threads' CPU time over the run's wall time: 1.0 is the whole core.
    core_share: f64,
    /// wrk's CPU time over the run's wall time.
    wrk_share: f64,
}

struct Bench<'a> {
    wrk: &'a Path,
    core: Option<&'a str>,
    duration: String,
    control: Control,
    request: Option<String>,
    hz: f64,
}

impl Bench<'_> {
    /// The counters once the server has finished the requests wrk left in its sockets (a
    /// pipelined run ends with requests sent but not yet answered): read until two reads 50 ms
    /// apart agree.
    fn settled(&mut self) -> Result<Stats> {
        let mut last = self.control.stats()?;
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let now = self.control.stats()?;
            if (now.bare_calls, now.layer_calls) == (last.bare_calls, last.layer_calls) {
                return Ok(now);
            }
            last = now;
        }
        Err("the server kept serving after wrk had finished".into())
    }

    fn measure(&mut self, addr: SocketAddr, with_layer: bool, args: &WrkArgs<'_>) -> Result<Measured> {
        let before = self.control.stats()?;
        let start = std::time::Instant::now();
        let ticks = children_ticks();
        let load = wrk(self.wrk, self.core, addr, args, &self.duration)?;
        let wrk_cpu = (children_ticks() - ticks) as f64 / self.hz;
        let after = self.settled()?;
        let wall = start.elapsed();
        match &self.request {
            None => self.request = Some(load.request.clone()),
            Some(first) if *first != load.request => {
                return Err(format!("different request bytes: {first} vs {}", load.request).into())
            }
            Some(_) => {}
        }
        let (served, other) = if with_layer {
            (
                after.layer_calls - before.layer_calls,
                after.bare_calls - before.bare_calls,
            )
        } else {
            (
                after.bare_calls - before.bare_calls,
                after.layer_calls - before.layer_calls,
            )
        };
        let hits = after.hits - before.hits;
        if other != 0 || served < load.requests {
            return Err(format!(
                "the handler served {served} requests (wrk completed {}), the other port {other}",
                load.requests
            )
            .into());
        }
        if after.misses != before.misses
            || after.refusals != before.refusals
            || after.upstream_calls != before.upstream_calls
        {
            return Err("a measured request was not a cache hit".into());
        }
        if hits != if with_layer { served } else { 0 } {
            return Err(format!("{hits} cache hits for {served} requests served").into());
        }
        Ok(Measured {
            per_second: load.per_second,
            cpu_us: (after.cpu_ns - before.cpu_ns) as f64 / 1e3 / served as f64,
            core_share: (after.cpu_ns - before.cpu_ns) as f64 / wall.as_nanos() as f64,
            wrk_share: wrk_cpu / wall.as_secs_f64(),
        })
    }

    /// Alternated rounds of the pair in one mode; prints every round and the medians.
    fn pair(
        &mut self,
        mode: &str,
        bare: SocketAddr,
        layer: SocketAddr,
        args: &WrkArgs<'_>,
        rounds: usize,
    ) -> Result<()> {
        // A short unmeasured run of each first (connections, caches, CPU frequency).
        let duration = std::mem::replace(&mut self.duration, "1s".to_owned());
        self.measure(bare, false, args)?;
        self.measure(layer, true, args)?;
        self.duration = duration;

        let (mut without, mut with) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let (w, l) = if round % 2 == 1 {
                let w = self.measure(bare, false, args)?;
                (w, self.measure(layer, true, args)?)
            } else {
                let l = self.measure(layer, true, args)?;
                (self.measure(bare, false, args)?, l)
            };
            println!(
                "{mode} round {round}{}: without the layer {:.0} req/s ({:.3} µs CPU/req; server got {:.2} of a \
                 core, wrk {:.2}), with {:.0} req/s ({:.3} µs CPU/req; {:.2}, wrk {:.2}), ratio {:.3}",
                if round % 2 == 1 { " (without first)" } else { " (with first)" },
                w.per_second,
                w.cpu_us,
                w.core_share,
                w.wrk_share,
                l.per_second,
                l.cpu_us,
                l.core_share,
                l.wrk_share,
                l.per_second / w.per_second
            );
            without.push(w);
            with.push(l);
        }
        let rate = |v: &[Measured]| common::wrk::median(&v.iter().map(|m| m.per_second).collect::<Vec<_>>());
        let cpu = |v: &[Measured]| common::wrk::median(&v.iter().map(|m| m.cpu_us).collect::<Vec<_>>());
        let ratios: Vec<f64> = with
            .iter()
            .zip(&without)
            .map(|(l, w)| l.per_second / w.per_second)
            .collect();
        let added: Vec<f64> = with
            .iter()
            .zip(&without)
            .map(|(l, w)| l.cpu_us - w.cpu_us)
            .collect();
        println!(
            "{mode} median of {rounds}: without the layer {:.0} req/s, with {:.0} req/s: ratio {:.3} \
             (median of per-round ratios {:.3}, min {:.3}, max {:.3}){}",
            rate(&without),
            rate(&with),
            rate(&with) / rate(&without),
            common::wrk::median(&ratios),
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
            if mode == "pipelined" {
                "; target ≥ 0.80"
            } else {
                ""
            }
        );
        println!(
            "{mode} server CPU per request (median): without {:.3} µs, with {:.3} µs, added {:.3} µs \
             (median of per-round differences {:.3} µs); ratio implied by CPU (without ÷ with, the \
             req/s ratio of a server that has its core to itself) {:.3}",
            cpu(&without),
            cpu(&with),
            cpu(&with) - cpu(&without),
            common::wrk::median(&added),
            cpu(&without) / cpu(&with)
        );
        let starved = without
            .iter()
            .chain(&with)
            .filter(|m| m.core_share < STARVED)
            .count();
        if starved > 0 {
            println!(
                "{mode}: WARNING: the server got under {STARVED} of a core in {starved} of {} runs (the machine \
                 is busy): its req/s figures measure the load; prefer the ratio implied by CPU",
                2 * rounds
            );
        }
        Ok(())
    }
}

fn run(wrk_bin: &Path) -> Result<()> {
    let duration = env_or("E2E_PAIR_DURATION", "5s");
    let rounds: usize = env_or("E2E_PAIR_ROUNDS", "3").parse()?;
    let connections = env_or("E2E_PAIR_CONNECTIONS", "16");
    let depth = env_or("E2E_PAIR_DEPTH", "16");
    let keepalive_connections = env_or("E2E_PAIR_KEEPALIVE_CONNECTIONS", "32");
    let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let (server_core, load_core) = if two_cores && find("taskset").is_some() {
        (Some("0"), Some("1"))
    } else {
        (None, None)
    };

    let mut child = pinned(&std::env::current_exe()?, server_core)
        .env(CHILD_ENV, "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let child = Reaped(child);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let mut ready = line.split_whitespace();
    let (Some("READY"), Some(bare), Some(layer), Some(token)) =
        (ready.next(), ready.next(), ready.next(), ready.next())
    else {
        return Err(format!("the server said {line:?}").into());
    };
    let (bare, layer): (SocketAddr, SocketAddr) = (bare.parse()?, layer.parse()?);
    let authorization = format!("Bearer {token}");

    println!(
        "e2e_pair: server pid {} on core {}, wrk on core {}; {rounds} rounds of {duration} per side; \
         load average {}",
        child.0.id(),
        server_core.unwrap_or("any"),
        load_core.unwrap_or("any"),
        loadavg()
    );
    let mut bench = Bench {
        wrk: wrk_bin,
        core: load_core,
        duration,
        control: Control { stdin, stdout },
        request: None,
        hz: clock_ticks_per_second(),
    };
    let pipelined = WrkArgs {
        connections: &connections,
        depth: &depth,
        authorization: &authorization,
    };
    bench.pair(
        &format!("pipelined (-c{connections}, depth {depth})"),
        bare,
        layer,
        &pipelined,
        rounds,
    )?;
    if keepalive_connections != "0" {
        let keepalive = WrkArgs {
            connections: &keepalive_connections,
            depth: "1",
            authorization: &authorization,
        };
        bench.pair(
            &format!("keep-alive (-c{keepalive_connections}, depth 1)"),
            bare,
            layer,
            &keepalive,
            rounds,
        )?;
    }
    let end = bench.control.stats()?;
    println!(
        "checked: every response 2xx per wrk, every layer request a cache hit ({} hits, {} miss: the warm-up), \
         the same {}-byte request on every run; load average {}",
        end.hits,
        end.misses,
        bench.request.as_deref().and_then(|r| r.split_once(' ')).map_or("?", |(n, _)| n),
        loadavg()
    );
    drop(bench);
    drop(child);
    Ok(())
}
