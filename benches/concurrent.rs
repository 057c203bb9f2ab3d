//! Concurrent hit throughput: the hit path from 1 and 2 OS threads (the machine has 2 cores),
//! each thread on its own clone of the service and its own request templates, started together
//! on a barrier; wall time for all requests. Reported per request, so
//! `2-thread throughput / 1-thread throughput = time(1 thread) / time(2 threads)`.
//!
//! `cargo bench --features axum,mock --bench concurrent -- --warm-up-time 1 --measurement-time 3`
//!
//! After the criterion groups, paired runs (1 thread, then 2 threads, alternated 11 times) print
//! the median scaling ratio and the parallelism the 2-thread runs really got (thread CPU time /
//! wall time): on a shared machine another process can hold the second core.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::{inner, poll_once, tokens, warm, Source, Template, Upstream};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tower::{Layer, Service};

/// This thread's run time so far, in nanoseconds (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `iters` requests split over `threads` threads; returns the wall time and the CPU time
/// the threads got while doing it.
fn run_measured<S, B>(
    iters: u64,
    threads: usize,
    svc: &S,
    per_thread: &[Vec<Template>],
) -> (Duration, Duration)
where
    S: Service<http::Request<common::Body>, Response = http::Response<B>> + Clone + Send + Sync,
    S::Error: std::fmt::Debug,
{
    let barrier = Barrier::new(threads + 1);
    let each = iters.div_ceil(threads as u64);
    let cpu = AtomicU64::new(0);
    let start = std::thread::scope(|scope| {
        for templates in per_thread.iter().take(threads) {
            let mut svc = svc.clone();
            let barrier = &barrier;
            let cpu = &cpu;
            scope.spawn(move || {
                let n = templates.len();
                barrier.wait();
                let cpu_start = thread_cpu_ns();
                let mut j = 0;
                for _ in 0..each {
                    std::hint::black_box(poll_once(&mut svc, templates[j].request()));
                    j += 1;
                    if j == n {
                        j = 0;
                    }
                }
                cpu.fetch_add(thread_cpu_ns() - cpu_start, Ordering::Relaxed);
            });
        }
        barrier.wait();
        // The scope joins every thread before returning.
        Instant::now()
    });
    (start.elapsed(), Duration::from_nanos(cpu.load(Ordering::Relaxed)))
}

fn run<S, B>(iters: u64, threads: usize, svc: &S, per_thread: &[Vec<Template>]) -> Duration
where
    S: Service<http::Request<common::Body>, Response = http::Response<B>> + Clone + Send + Sync,
    S::Error: std::fmt::Debug,
{
    run_measured(iters, threads, svc, per_thread).0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Alternates 1-thread and 2-thread runs of `requests` requests, `pairs` times, so that slow
/// drifts of the machine's background load hit both alike; prints the median throughput of
/// each, the median of the per-pair ratios, and the parallelism the 2-thread runs actually got
/// (thread CPU time / wall time: 2.0 means both cores were ours).
fn paired<S, B>(name: &str, svc: &S, per_thread: &[Vec<Template>], requests: u64, pairs: usize)
where
    S: Service<http::Request<common::Body>, Response = http::Response<B>> + Clone + Send + Sync,
    S::Error: std::fmt::Debug,
{
    let (mut one, mut two, mut ratio, mut parallelism) = (vec![], vec![], vec![], vec![]);
    run_measured(requests, 2, svc, per_thread);
    for _ in 0..pairs {
        let (w1, _) = run_measured(requests, 1, svc, per_thread);
        let (w2, cpu2) = run_measured(requests, 2, svc, per_thread);
        let r1 = requests as f64 / w1.as_secs_f64();
        let r2 = requests as f64 / w2.as_secs_f64();
        one.push(r1);
        two.push(r2);
        ratio.push(r2 / r1);
        parallelism.push(cpu2.as_secs_f64() / w2.as_secs_f64());
    }
    println!(
        "paired/{name}: 1 thread {:.2} M req/s, 2 threads {:.2} M req/s, ratio {:.2} (median of {pairs} pairs; \
         min {:.2}, max {:.2}), 2-thread parallelism achieved {:.2}",
        median(&mut one) / 1e6,
        median(&mut two) / 1e6,
        median(&mut ratio.clone()),
        ratio.iter().copied().fold(f64::INFINITY, f64::min),
        ratio.iter().copied().fold(0.0, f64::max),
        median(&mut parallelism),
    );
}

fn concurrent(c: &mut Criterion) {
    let upstream = Upstream::start();
    let layer = upstream.builder().build().expect("layer");
    let wrapped = layer.layer(inner());

    let one = tokens("conc-one", 1).remove(0);
    upstream.register_user(&one, 0);
    let many = tokens("conc-many", 10_000);
    for (i, token) in many.iter().enumerate() {
        upstream.register_user(token, i + 1);
    }
    let all: Vec<Template> = std::iter::once(&one)
        .chain(&many)
        .map(|t| Template::new(t, Source::Bearer))
        .collect();
    assert_eq!(warm(&upstream.rt, &wrapped, &all, 64), all.len());
    layer.cache().entry_count(); // applies moka's pending maintenance
    let before = layer.stats();

    // Templates built separately per thread, so threads share no reference counts. For the
    // 10k case each thread walks the tokens from a different offset.
    let one_per_thread: Vec<Vec<Template>> = (0..2)
        .map(|_| vec![Template::new(&one, Source::Bearer)])
        .collect();
    let many_per_thread: Vec<Vec<Template>> = (0..2)
        .map(|t| {
            let mut v: Vec<Template> = many.iter().map(|k| Template::new(k, Source::Bearer)).collect();
            v.rotate_left(t * many.len() / 2);
            v
        })
        .collect();

    let mut group = c.benchmark_group("concurrent");
    group.throughput(Throughput::Elements(1));
    let bare = inner();
    for threads in [1usize, 2] {
        group.bench_with_input(BenchmarkId::new("bare", threads), &threads, |b, &n| {
            b.iter_custom(|iters| run(iters, n, &bare, &one_per_thread))
        });
        group.bench_with_input(BenchmarkId::new("layer_one_token", threads), &threads, |b, &n| {
            b.iter_custom(|iters| run(iters, n, &wrapped, &one_per_thread))
        });
        group.bench_with_input(
            BenchmarkId::new("layer_10k_tokens", threads),
            &threads,
            |b, &n| b.iter_custom(|iters| run(iters, n, &wrapped, &many_per_thread)),
        );
    }
    group.finish();

    // Paired runs, printed: robust to the background load of a shared machine.
    paired("bare", &bare, &one_per_thread, 400_000, 11);
    paired("layer_one_token", &wrapped, &one_per_thread, 200_000, 11);
    paired("layer_10k_tokens", &wrapped, &many_per_thread, 100_000, 11);

    common::assert_only_hits(&before, &layer.stats());
}

criterion_group!(benches, concurrent);
criterion_main!(benches);
