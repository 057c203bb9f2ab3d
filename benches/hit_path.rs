//! Hit path, in process: a trivial inner service bare and wrapped by the layer with a warm
//! cache. One token, 10 000 distinct tokens cycled, and each token source.
//!
//! `cargo bench --features axum --bench hit_path -- --warm-up-time 1 --measurement-time 3`
//!
//! Two ways of driving a request: `async` (a `tokio` current-thread runtime, `oneshot` on a
//! cloned service, awaited: what a server does) and `poll_once` (`poll_ready` and `call` on one
//! service, the response future polled once with a no-op waker: the hit path never waits).

mod common;

use std::hint::black_box;

use common::{inner, poll_once, tokens, warm, Source, Template, Upstream};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tower::{Layer, ServiceExt};

/// Reads every byte of the request's headers (as an HTTP parser would have), bringing them
/// into the CPU cache.
#[inline]
fn touched(request: http::Request<common::Body>) -> http::Request<common::Body> {
    let sum = request
        .headers()
        .values()
        .flat_map(|v| v.as_bytes())
        .fold(0u8, |a, b| a.wrapping_add(*b));
    black_box(sum);
    request
}

fn hit_path(c: &mut Criterion) {
    let upstream = Upstream::start();
    let layer = common::layer(upstream.builder());
    let nostrip = tower_amazon_auth::AmazonAuthLayer::builder(layer.cache().clone())
        .strip_token(false)
        .build()
        .expect("layer");

    // One token for the single-token and per-source cases, 10 000 for the cycling case.
    let one = tokens("hit-one", 1).remove(0);
    upstream.register_user(&one, 0);
    let many = tokens("hit-many", 10_000);
    for (i, token) in many.iter().enumerate() {
        upstream.register_user(token, i + 1);
    }
    let wrapped = layer.layer(inner());
    let one_bearer = Template::new(&one, Source::Bearer);
    let many_bearer: Vec<Template> = many.iter().map(|t| Template::new(t, Source::Bearer)).collect();
    assert_eq!(
        warm(&upstream.rt, &wrapped, std::slice::from_ref(&one_bearer), 1),
        1
    );
    assert_eq!(warm(&upstream.rt, &wrapped, &many_bearer, 64), many_bearer.len());
    layer.cache().entry_count(); // applies moka's pending maintenance
    let before = layer.stats();
    println!(
        "warm: {} entries, {} upstream calls, mock calls {:?}",
        layer.cache().entry_count(),
        before.upstream_calls,
        upstream.mock.calls()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // --- one token, bearer ---------------------------------------------------------------
    {
        let mut group = c.benchmark_group("hit/one_token");
        let bare = inner();
        group.bench_function("bare/async", |b| {
            b.to_async(&rt)
                .iter(|| bare.clone().oneshot(one_bearer.request()))
        });
        group.bench_function("layer/async", |b| {
            b.to_async(&rt)
                .iter(|| wrapped.clone().oneshot(one_bearer.request()))
        });
        let mut bare_svc = inner();
        group.bench_function("bare/poll_once", |b| {
            b.iter(|| poll_once(&mut bare_svc, black_box(one_bearer.request())))
        });
        let mut svc = wrapped.clone();
        assert_eq!(poll_once(&mut svc, one_bearer.request()).status(), 200);
        group.bench_function("layer/poll_once", |b| {
            b.iter(|| poll_once(&mut svc, black_box(one_bearer.request())))
        });
        group.finish();
    }

    // --- 10 000 distinct cached tokens, cycled ---------------------------------------------
    {
        let mut group = c.benchmark_group("hit/10k_tokens");
        let n = many_bearer.len();
        let bare = inner();
        let mut i = 0usize;
        group.bench_function("bare/async", |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 1) % n;
                bare.clone().oneshot(many_bearer[i].request())
            })
        });
        group.bench_function("layer/async", |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 1) % n;
                wrapped.clone().oneshot(many_bearer[i].request())
            })
        });
        let mut bare_svc = inner();
        group.bench_function("bare/poll_once", |b| {
            b.iter(|| {
                i = (i + 1) % n;
                poll_once(&mut bare_svc, black_box(many_bearer[i].request()))
            })
        });
        let mut svc = wrapped.clone();
        group.bench_function("layer/poll_once", |b| {
            b.iter(|| {
                i = (i + 1) % n;
                poll_once(&mut svc, black_box(many_bearer[i].request()))
            })
        });
        // The token bytes as a server would have them: just parsed, so in the CPU cache. The
        // cycling above leaves them cold, which the bare service never notices but the
        // layer's digest does; reading them first (in both) takes that out of the difference.
        let mut bare_svc = inner();
        group.bench_function("bare/poll_once_hot_token", |b| {
            b.iter(|| {
                i = (i + 1) % n;
                poll_once(&mut bare_svc, black_box(touched(many_bearer[i].request())))
            })
        });
        group.bench_function("layer/poll_once_hot_token", |b| {
            b.iter(|| {
                i = (i + 1) % n;
                poll_once(&mut svc, black_box(touched(many_bearer[i].request())))
            })
        });
        group.finish();
    }

    // --- each token source, one token, poll once ---------------------------------------------
    {
        let mut group = c.benchmark_group("hit/source");
        let mut nostrip_svc = nostrip.layer(inner());
        for source in Source::ALL {
            let template = Template::new(&one, source);
            let mut svc = wrapped.clone();
            assert_eq!(
                poll_once(&mut svc, template.request()).status(),
                200,
                "{source:?}"
            );
            assert_eq!(poll_once(&mut nostrip_svc, template.request()).status(), 200);
            let mut bare_svc = inner();
            group.bench_with_input(BenchmarkId::new("bare", source.name()), &template, |b, t| {
                b.iter(|| poll_once(&mut bare_svc, black_box(t.request())))
            });
            group.bench_with_input(BenchmarkId::new("layer", source.name()), &template, |b, t| {
                b.iter(|| poll_once(&mut svc, black_box(t.request())))
            });
            group.bench_with_input(
                BenchmarkId::new("layer_nostrip", source.name()),
                &template,
                |b, t| b.iter(|| poll_once(&mut nostrip_svc, black_box(t.request()))),
            );
        }
        group.finish();
    }

    common::assert_only_hits(&before, &layer.stats());
}

criterion_group!(benches, hit_path);
criterion_main!(benches);
