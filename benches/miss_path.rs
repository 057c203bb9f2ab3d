//! Miss path against `MockAmazon` answering after 20 ms: latency of a first request (tokeninfo
//! and profile run concurrently, so ≈ one round trip) against one raw reqwest GET to the mock's
//! tokeninfo in the same run; then 1 000 concurrent first requests for one valid token and for
//! one invalid token, printing the upstream calls each caused (also asserted in
//! `tests/it/coalescing_1000.rs`).
//!
//! `cargo bench --features axum --bench miss_path -- --warm-up-time 1 --measurement-time 3`

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{inner, tokens, Source, Template, Upstream};
use criterion::{criterion_group, criterion_main, Criterion};
use tower::{Layer, ServiceExt};
use tower_amazon_auth_mock::MockReply;

const LATENCY: Duration = Duration::from_millis(20);

fn miss_path(c: &mut Criterion) {
    let upstream = Upstream::start();
    upstream.mock.set_latency(LATENCY);
    let layer = common::layer(upstream.builder());
    let wrapped = layer.layer(inner());

    // Fresh tokens for every measured first request.
    let pool: Vec<Template> = tokens("miss", 3000)
        .iter()
        .enumerate()
        .map(|(i, t)| {
            upstream.register_user(t, i);
            Template::new(t, Source::Bearer)
        })
        .collect();
    let next = AtomicUsize::new(0);
    let probe = tokens("probe", 1).remove(0);
    upstream.register_user(&probe, 0);

    // One multi-thread runtime for everything the layer does: reqwest's pooled connections
    // belong to the runtime that opened them, and a runtime nobody drives would strand them.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::new();
    let tokeninfo_url = format!("{}/auth/o2/tokeninfo", upstream.mock.base_url());
    let profile_url = format!("{}/user/profile", upstream.mock.base_url());

    let mut group = c.benchmark_group("miss/first_request_20ms");
    group.sample_size(10);
    group.bench_function("baseline_one_raw_get_tokeninfo", |b| {
        b.to_async(&rt).iter(|| async {
            let response = http
                .get(&tokeninfo_url)
                .query(&[("access_token", &probe)])
                .send()
                .await
                .expect("tokeninfo");
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("body")
        })
    });
    group.bench_function("baseline_two_raw_gets_concurrently", |b| {
        b.to_async(&rt).iter(|| async {
            let info = async {
                let r = http
                    .get(&tokeninfo_url)
                    .query(&[("access_token", &probe)])
                    .send()
                    .await
                    .expect("tokeninfo");
                r.bytes().await.expect("body")
            };
            let profile = async {
                let r = http
                    .get(&profile_url)
                    .bearer_auth(&probe)
                    .send()
                    .await
                    .expect("profile");
                r.bytes().await.expect("body")
            };
            futures_util::future::join(info, profile).await
        })
    });
    group.bench_function("layer_first_request", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let wrapped = wrapped.clone();
            let pool = &pool;
            let next = &next;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let request = pool.get(i).expect("enough fresh tokens").request();
                    let start = Instant::now();
                    let response = wrapped.clone().oneshot(request).await.expect("response");
                    total += start.elapsed();
                    assert_eq!(response.status(), 200);
                }
                total
            }
        })
    });
    group.finish();
    println!(
        "first requests measured: {}; mock calls {:?}",
        next.load(Ordering::Relaxed),
        upstream.mock.calls()
    );

    // --- 1 000 concurrent first requests for one token -------------------------------------------
    for round in 0..3 {
        for valid in [true, false] {
            let token = tokens(&format!("herd-{valid}-{round}"), 1).remove(0);
            if valid {
                upstream.register_user(&token, round);
            } else {
                upstream.mock.register(&token, MockReply::invalid_token());
            }
            let template = Template::new(&token, Source::Bearer);
            let started = Instant::now();
            let statuses: Vec<u16> = rt.block_on(async {
                let tasks: Vec<_> = (0..1000)
                    .map(|_| {
                        let svc = wrapped.clone();
                        let request = template.request();
                        tokio::spawn(async move { svc.oneshot(request).await.expect("response").status() })
                    })
                    .collect();
                let mut statuses = Vec::with_capacity(tasks.len());
                for task in tasks {
                    statuses.push(task.await.expect("task").as_u16());
                }
                statuses
            });
            let elapsed = started.elapsed();
            let calls = upstream.mock.calls_for(&token);
            let expected = if valid { 200 } else { 401 };
            let right = statuses.iter().filter(|s| **s == expected).count();
            println!(
                "herd round {round}: 1000 concurrent first requests, {} token: {right}/1000 answered {expected}, \
                 upstream calls tokeninfo={} profile={} (total {}), wall {:.1} ms",
                if valid { "valid" } else { "invalid" },
                calls.tokeninfo,
                calls.profile,
                calls.total(),
                elapsed.as_secs_f64() * 1e3
            );
            if valid {
                assert_eq!((calls.tokeninfo, calls.profile), (1, 1));
            } else {
                assert!(calls.total() <= 2);
            }
            assert_eq!(right, 1000);
        }
    }
}

criterion_group!(benches, miss_path);
criterion_main!(benches);
