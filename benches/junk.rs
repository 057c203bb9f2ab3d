//! Junk rejection: the cost of refusing a malformed token (bad prefix, too long, bad bytes, a
//! refresh token, two methods at once) with its 400/401 response, against the bare service
//! answering the same request. No upstream call may happen: the mock's counters are checked
//! after the run.
//!
//! `cargo bench --features axum --bench junk -- --warm-up-time 1 --measurement-time 3`

mod common;

use std::hint::black_box;

use common::{inner, poll_once, Template, Upstream};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::header::AUTHORIZATION;
use tower::Layer;
use tower_amazon_auth_mock::mock_access_token;

fn junk(c: &mut Criterion) {
    let upstream = Upstream::start();
    let layer = common::layer(upstream.builder());
    let mut wrapped = layer.layer(inner());
    let mut bare = inner();

    let good = mock_access_token("junk");
    let bearer = |token: &str| format!("Bearer {token}").into_bytes();
    let mut bad_bytes = good.clone().into_bytes();
    bad_bytes[200] = b'"';
    let cases: Vec<(&str, Template, u16)> = vec![
        (
            "bad_prefix",
            // A realistic length, but not `Atza|`.
            Template::with_header("/me", AUTHORIZATION, &bearer(&good.replacen("Atza|", "Xyzw|", 1))),
            400,
        ),
        (
            "too_long_3000",
            Template::with_header(
                "/me",
                AUTHORIZATION,
                &bearer(&format!("{good}{}", "A".repeat(3000 - good.len()))),
            ),
            400,
        ),
        (
            "bad_bytes_quote",
            Template::with_header(
                "/me",
                AUTHORIZATION,
                &[b"Bearer ".as_slice(), &bad_bytes].concat(),
            ),
            400,
        ),
        (
            "refresh_token",
            Template::with_header("/me", AUTHORIZATION, &bearer(&good.replacen("Atza|", "Atzr|", 1))),
            401,
        ),
        (
            "missing",
            Template::with_header("/me", http::header::ACCEPT, b"*/*"),
            401,
        ),
    ];

    let mut group = c.benchmark_group("junk");
    for (name, template, status) in &cases {
        assert_eq!(
            poll_once(&mut wrapped, template.request()).status(),
            *status,
            "{name}"
        );
        group.bench_with_input(BenchmarkId::new("bare", name), template, |b, t| {
            b.iter(|| poll_once(&mut bare, black_box(t.request())))
        });
        group.bench_with_input(BenchmarkId::new("layer", name), template, |b, t| {
            b.iter(|| poll_once(&mut wrapped, black_box(t.request())))
        });
    }
    group.finish();

    let calls = upstream.mock.calls();
    let stats = layer.stats();
    println!(
        "after: mock calls {calls:?}; layer: malformed {}, missing {}, misses {}, upstream calls {}",
        stats.malformed, stats.missing_token, stats.misses, stats.upstream_calls
    );
    assert_eq!(calls.total(), 0, "junk must cost no upstream call");
    assert_eq!(stats.upstream_calls, 0);
}

criterion_group!(benches, junk);
criterion_main!(benches);
