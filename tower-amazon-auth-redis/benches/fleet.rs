//! The fleet level (issue #13) on a `redis-server` the bench starts itself on 127.0.0.1:
//!
//! - `fleet/l1_hit/{off,on}`: the hit path of a layer without and with the fleet level (an L1
//!   hit never touches Redis, so the two must cost the same);
//! - `fleet/l2_hit`: a request answered from Redis (the instance's local cache flushed before
//!   each, untimed), and `fleet/l2_hit_unseen` (a token another instance verified and this one
//!   never saw, no flush), against `fleet/redis_get`: a bare `GET` round trip to the same Redis (a
//!   multiplexed connection, on the same runtime), and `fleet/amazon`: a request verified by
//!   `MockAmazon` on loopback with no added latency (real Amazon adds a WAN round trip, tens of
//!   milliseconds);
//! - `fleet/cluster/l2_hit` against `fleet/cluster/redis_get`: the same on a local Redis
//!   Cluster (three primaries, one replica each, started by the bench through the tests'
//!   harness), the bare `GET` through the `redis` crate's cluster connection;
//! - after criterion, a report: upstream calls to verify 100 tokens on 4 instances, without and
//!   with Redis; and the logout propagation delay (revoke on A → B refuses the token hot in its
//!   local cache), median and max over 50 logouts, on one Redis and (printed after the cluster
//!   group) through the cluster.
//!
//! `cargo bench -p tower-amazon-auth-redis --bench fleet -- --warm-up-time 1 --measurement-time 3`
//!
//! Without `redis-server` on `PATH` the bench prints a notice and measures nothing (without
//! `redis-cli`, nothing on a cluster).

/// The core's bench helpers, shared rather than copied.
#[path = "../../benches/common/mod.rs"]
mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{inner, poll_once, tokens, Source, Template, Upstream};
use criterion::Criterion;
use tower::{Layer, ServiceExt};
use tower_amazon_auth::{AccessToken, AmazonAuthLayer};
use tower_amazon_auth_redis::{Fleet, FleetStats};

const SECRET: &str = "bench-secret-bench-secret-bench-secret";
/// Tokens verified on one instance for another to read from Redis (`l2_hit_unseen`).
const FRESH: usize = 20_000;

/// A `redis-server` of the bench's own, killed on drop.
struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fleet level's counters of `layer`'s cache.
fn fleet_stats(layer: &AmazonAuthLayer) -> FleetStats {
    FleetStats::of(layer.cache()).expect("a cache with the fleet level")
}

fn fleet_layer(upstream: &Upstream, redis: &Redis) -> AmazonAuthLayer {
    let layer = common::layer(
        upstream
            .builder()
            .second_level(Fleet::new(&redis.url, SECRET).command_timeout(Duration::from_secs(1))),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fleet_stats(&layer).subscribed {
        assert!(Instant::now() < deadline, "the subscriber never connected");
        std::thread::sleep(Duration::from_millis(5));
    }
    layer
}

/// One request with `token` through `layer`: its status.
async fn status(layer: &AmazonAuthLayer, token: &str) -> u16 {
    let request = Template::new(token, Source::Bearer).request();
    layer
        .layer(inner())
        .oneshot(request)
        .await
        .map(|response| response.status().as_u16())
        .unwrap_or(0)
}

fn bench(c: &mut Criterion, upstream: &Upstream, redis: &Redis) {
    let _guard = upstream.rt.enter();
    let hot = tokens("fleet-hot", 1).remove(0);
    upstream.register_user(&hot, 0);
    let off = common::layer(upstream.builder());
    let on = fleet_layer(upstream, redis);
    let mut group = c.benchmark_group("fleet");
    for (name, layer) in [("off", &off), ("on", &on)] {
        assert_eq!(upstream.rt.block_on(status(layer, &hot)), 200);
        let mut svc = layer.layer(inner());
        let template = Template::new(&hot, Source::Bearer);
        group.bench_function(format!("l1_hit/{name}"), |b| {
            b.iter(|| poll_once(&mut svc, template.request()))
        });
    }

    // L2: A verifies the token (and writes it to Redis); B's local cache is flushed before
    // each timed request, so each is answered from Redis.
    let b_layer = fleet_layer(upstream, redis);
    let shared = tokens("fleet-l2", 1).remove(0);
    upstream.register_user(&shared, 1);
    assert_eq!(upstream.rt.block_on(status(&on, &shared)), 200);
    std::thread::sleep(Duration::from_millis(50));
    group.bench_function("l2_hit", |b| {
        b.iter_custom(|iters| l2_hits(upstream, &b_layer, &shared, iters))
    });
    // The same, without flushing B before each request: each request carries a token A
    // verified and B never saw (so B's local store does not pay a flush's housekeeping).
    let fresh = tokens("fleet-l2-fresh", FRESH);
    for (n, token) in fresh.iter().enumerate() {
        upstream.register_user(token, n);
        assert_eq!(upstream.rt.block_on(status(&on, token)), 200);
    }
    let c_layer = fleet_layer(upstream, redis);
    let mut next = 0;
    group.bench_function("l2_hit_unseen", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if next == fresh.len() {
                    // Every token seen: start again with an empty local cache (untimed).
                    next = 0;
                    c_layer.cache().invalidate_all();
                }
                let started = Instant::now();
                let got = upstream.rt.block_on(status(&c_layer, &fresh[next]));
                total += started.elapsed();
                next += 1;
                assert_eq!(got, 200);
            }
            total
        })
    });
    let before = b_layer.stats();
    let fleet_before = fleet_stats(&b_layer);
    println!(
        "l2_hit: fleet hits so far {}, upstream calls {}",
        fleet_before.hits, before.upstream_calls
    );

    group.bench_function("redis_get", |b| {
        b.iter_custom(|iters| {
            let client = redis::Client::open(redis.url.as_str()).unwrap();
            let mut connection = upstream
                .rt
                .block_on(client.get_multiplexed_async_connection())
                .unwrap();
            bare_gets(&upstream.rt, &mut connection, iters)
        })
    });

    let mut n = 0;
    group.bench_function("amazon", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let token = tokens(&format!("fleet-amazon-{n}"), 1).remove(0);
                upstream.register_user(&token, n);
                let started = Instant::now();
                let got = upstream.rt.block_on(status(&off, &token));
                total += started.elapsed();
                assert_eq!(got, 200);
            }
            total
        })
    });
    group.finish();
}

/// `iters` requests with `token` through `layer`, its local cache flushed before each (untimed),
/// so each is answered from Redis: their total time.
fn l2_hits(upstream: &Upstream, layer: &AmazonAuthLayer, token: &str, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        layer.cache().invalidate_all();
        let started = Instant::now();
        let got = upstream.rt.block_on(status(layer, token));
        total += started.elapsed();
        assert_eq!(got, 200);
    }
    total
}

/// `iters` bare `GET` round trips on `connection`, each in a `block_on` of its own as each
/// `l2_hit` request is: their total time.
fn bare_gets(
    rt: &tokio::runtime::Runtime,
    connection: &mut impl redis::aio::ConnectionLike,
    iters: u64,
) -> Duration {
    let _: () = rt
        .block_on(
            redis::cmd("SET")
                .arg("bench:get")
                .arg(vec![7u8; 200])
                .query_async(connection),
        )
        .unwrap();
    let started = Instant::now();
    for _ in 0..iters {
        let value: Option<Vec<u8>> = rt
            .block_on(redis::cmd("GET").arg("bench:get").query_async(connection))
            .unwrap();
        std::hint::black_box(value);
    }
    started.elapsed()
}

/// `fleet/cluster/*`: a second-level hit and a bare `GET` on a local Redis Cluster.
fn bench_cluster(c: &mut Criterion, upstream: &Upstream) {
    let Some(cluster) = tower_amazon_auth_test_support::cluster::redis_cluster("fleet bench (cluster)")
    else {
        return;
    };
    let _guard = upstream.rt.enter();
    let fleet = || {
        let layer =
            common::layer(upstream.builder().second_level(
                Fleet::cluster(cluster.urls(), SECRET).command_timeout(Duration::from_secs(1)),
            ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fleet_stats(&layer).subscribed {
            assert!(Instant::now() < deadline, "the subscriber never connected");
            std::thread::sleep(Duration::from_millis(5));
        }
        layer
    };
    let (a, b_layer) = (fleet(), fleet());
    let shared = tokens("fleet-cluster-l2", 1).remove(0);
    upstream.register_user(&shared, 1);
    assert_eq!(upstream.rt.block_on(status(&a, &shared)), 200);
    std::thread::sleep(Duration::from_millis(50));
    let mut group = c.benchmark_group("fleet/cluster");
    group.bench_function("l2_hit", |b| {
        b.iter_custom(|iters| l2_hits(upstream, &b_layer, &shared, iters))
    });
    let hits = fleet_stats(&b_layer).hits;
    group.bench_function("redis_get", |b| {
        b.iter_custom(|iters| {
            let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
            let mut connection = upstream.rt.block_on(client.get_async_connection()).unwrap();
            bare_gets(&upstream.rt, &mut connection, iters)
        })
    });
    group.finish();
    println!("cluster l2_hit: fleet hits {hits}");
    let (median, max) = logout_propagation(upstream, &a, &b_layer, "cluster-logout");
    println!("logout propagation through the cluster over 50 logouts: median {median:?}, max {max:?}");
}

/// Upstream calls to verify `tokens` on 4 instances, each token sent to each in turn.
fn upstream_calls(upstream: &Upstream, layers: &[AmazonAuthLayer], prefix: &str) -> usize {
    let before = upstream.mock.calls().total();
    for token in tokens(prefix, 100) {
        upstream.register_user(&token, 7);
        for layer in layers {
            assert_eq!(upstream.rt.block_on(status(layer, &token)), 200);
        }
    }
    upstream.mock.calls().total() - before
}

/// The L1 hit of a layer without and with the fleet level, interleaved (blocks of 20 000 hits,
/// 30 rounds, alternating) so a drift of the machine's load hits both alike: median ns per hit.
fn paired_l1(upstream: &Upstream, redis: &Redis) -> (f64, f64) {
    let hot = tokens("fleet-paired", 1).remove(0);
    upstream.register_user(&hot, 3);
    let off = common::layer(upstream.builder());
    let on = fleet_layer(upstream, redis);
    let template = Template::new(&hot, Source::Bearer);
    let mut services = Vec::new();
    for layer in [&off, &on] {
        assert_eq!(upstream.rt.block_on(status(layer, &hot)), 200);
        services.push(layer.layer(inner()));
    }
    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..30 {
        for offset in 0..2 {
            // Alternate which goes first.
            let which = (round + offset) % 2;
            let started = Instant::now();
            for _ in 0..20_000 {
                std::hint::black_box(poll_once(&mut services[which], template.request()));
            }
            samples[which].push(started.elapsed().as_nanos() as f64 / 20_000.0);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [mut a, mut b] = samples;
    (median(&mut a), median(&mut b))
}

fn report(upstream: &Upstream, redis: &Redis) {
    let _guard = upstream.rt.enter();
    let (off, on) = paired_l1(upstream, redis);
    println!("L1 hit, interleaved: fleet level off {off:.0} ns, on {on:.0} ns (median of 30 blocks)");
    let alone: Vec<_> = (0..4).map(|_| common::layer(upstream.builder())).collect();
    let fleet: Vec<_> = (0..4).map(|_| fleet_layer(upstream, redis)).collect();
    let without = upstream_calls(upstream, &alone, "calls-alone");
    let with = upstream_calls(upstream, &fleet, "calls-fleet");
    println!("upstream calls for 100 tokens on 4 instances: without Redis {without}, with Redis {with}");

    let (median, max) = logout_propagation(upstream, &fleet[0], &fleet[1], "logout");
    println!("logout propagation over 50 logouts: median {median:?}, max {max:?}");
}

/// Revokes 50 tokens on `a`, each hot in `b`'s local cache, and times until `b` refuses it:
/// the median and the max.
fn logout_propagation(
    upstream: &Upstream,
    a: &AmazonAuthLayer,
    b: &AmazonAuthLayer,
    prefix: &str,
) -> (Duration, Duration) {
    let mut delays = Vec::new();
    for token in tokens(prefix, 50) {
        upstream.register_user(&token, 9);
        assert_eq!(upstream.rt.block_on(status(a, &token)), 200);
        assert_eq!(upstream.rt.block_on(status(b, &token)), 200);
        upstream
            .rt
            .block_on(a.cache().revoke(&AccessToken::new(token.clone())))
            .expect("revoke");
        let revoked = Instant::now();
        let mut svc = b.layer(inner());
        loop {
            // The token is hot in B: each poll is an L1 hit until the message lands.
            if poll_once(&mut svc, Template::new(&token, Source::Bearer).request()).status() == 401 {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(10),
                "the logout never reached B"
            );
            std::thread::yield_now();
        }
        delays.push(revoked.elapsed());
    }
    delays.sort();
    (delays[delays.len() / 2], delays[delays.len() - 1])
}

fn main() {
    let Some(redis) = Redis::start() else {
        println!("fleet bench: no redis-server on PATH (apt-get install redis-server): nothing measured");
        return;
    };
    let upstream = Upstream::start();
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &upstream, &redis);
    bench_cluster(&mut criterion, &upstream);
    criterion.final_summary();
    report(&upstream, &redis);
}
