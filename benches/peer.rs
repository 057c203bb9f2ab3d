//! The layer against the middleware a user would write with the same packages (the "peer"),
//! side by side in one process, at one hot token, 10 000 tokens drawn uniformly and 100 000
//! tokens drawn Zipf(1.0); warm caches, realistic 410-byte tokens and full profiles.
//!
//! `cargo bench --features axum --bench peer -- --warm-up-time 1 --measurement-time 3`
//!
//! For a profiler, `-- peer-10000- --profile layer 2000000` runs one scenario's request loop
//! for one service (`bare`, `layer` or `peer`) without criterion, e.g. under `perf record` or
//! `valgrind --tool=callgrind`.
//!
//! Each scenario measures three services on the same request sequence: `bare` (the trivial
//! inner service), `layer` (it wrapped by `AmazonAuthLayer`) and `peer` (wrapped by [`Peer`]).
//! Requests are driven as a server drives them: a `tokio` current-thread runtime, `oneshot` on
//! a clone, awaited. At the end the bench prints, from criterion's medians of this run, each
//! wrapper's overhead over `bare` and the ratio layer ÷ peer; then the same from a paired
//! measurement (15 rounds of 20 000 requests per service, the three back to back in rotating
//! order, medians over rounds), which a shared machine's changing load disturbs less.
//!
//! **The peer**: an async tower middleware that takes the bearer token as a `String`, looks it
//! up in a `moka::future::Cache<String, Arc<User>>` (default hasher, `time_to_live`), inserts
//! the user as an extension and calls the inner service from a boxed future.

mod common;

use std::cell::Cell;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::paired::{self, criterion_median, profile_loop, Paired};
use common::{inner, tokens, warm, Body, Source, Template, Upstream};
use criterion::Criterion;
use futures_util::future::BoxFuture;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};

/// A user as the peer keeps it: the profile's fields.
#[derive(Debug)]
#[allow(dead_code)]
struct PeerUser {
    user_id: String,
    email: Option<String>,
    name: Option<String>,
    postal_code: Option<String>,
}

/// The naive middleware (see the module docs).
#[derive(Clone)]
struct Peer<S> {
    inner: S,
    cache: moka::future::Cache<String, Arc<PeerUser>>,
}

impl<S> Service<Request<Body>> for Peer<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::to_owned);
        let cache = self.cache.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let user = match token {
                Some(token) => cache.get(&token).await,
                None => None,
            };
            match user {
                Some(user) => {
                    request.extensions_mut().insert(user);
                    inner.call(request).await
                }
                None => {
                    let mut response = Response::new(Full::default());
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                    Ok(response)
                }
            }
        })
    }
}

/// A tiny deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How the measured requests pick their token.
#[derive(Clone, Copy)]
enum Draw {
    One,
    Uniform(usize),
    Zipf(usize),
}

impl Draw {
    fn name(self) -> &'static str {
        match self {
            Draw::One => "peer-one-token",
            Draw::Uniform(_) => "peer-10000-uniform",
            Draw::Zipf(_) => "peer-100000-zipf",
        }
    }

    fn tokens(self) -> usize {
        match self {
            Draw::One => 1,
            Draw::Uniform(n) | Draw::Zipf(n) => n,
        }
    }

    /// A fixed sequence of token indices (precomputed: drawing costs nothing in the loop).
    fn sequence(self, len: usize) -> Vec<u32> {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        match self {
            Draw::One => vec![0; len],
            Draw::Uniform(n) => (0..len).map(|_| (rng.next() % n as u64) as u32).collect(),
            Draw::Zipf(n) => {
                // Inverse CDF of Zipf(1.0) over ranks 1..=n.
                let mut cdf = Vec::with_capacity(n);
                let mut sum = 0.0;
                for rank in 1..=n {
                    sum += 1.0 / rank as f64;
                    cdf.push(sum);
                }
                (0..len)
                    .map(|_| {
                        let u = rng.unit() * sum;
                        cdf.partition_point(|&c| c < u).min(n - 1) as u32
                    })
                    .collect()
            }
        }
    }
}

/// Requests measured per scenario before the sequence repeats.
const SEQUENCE: usize = 1 << 20;

/// Rounds of the paired measurement, and requests per service in each.
const PAIRED_ROUNDS: usize = 15;
const PAIRED_BATCH: usize = 20_000;

fn scenario(c: &mut Criterion, upstream: &Upstream, draw: Draw) -> Option<Paired> {
    let n = draw.tokens();
    let tokens = tokens(draw.name(), n);
    for (i, token) in tokens.iter().enumerate() {
        upstream.register_user(token, i);
    }
    let templates: Vec<Template> = tokens.iter().map(|t| Template::new(t, Source::Bearer)).collect();

    let layer = common::layer(upstream.builder().capacity(2 * n as u64 + 1000));
    let layered = layer.layer(inner());
    assert_eq!(warm(&upstream.rt, &layered, &templates, 64), n, "layer warmed");
    layer.cache().entry_count(); // applies moka's pending maintenance

    let cache = moka::future::Cache::builder()
        .max_capacity(2 * n as u64 + 1000)
        .time_to_live(Duration::from_secs(3 * 3600))
        .build();
    upstream.rt.block_on(async {
        for (i, token) in tokens.iter().enumerate() {
            let user = common::user(i);
            let profile = user.amazon_user();
            let peer_user = PeerUser {
                user_id: profile.user_id().to_owned(),
                email: profile.email().map(str::to_owned),
                name: profile.name().map(str::to_owned),
                postal_code: profile.postal_code().map(str::to_owned),
            };
            cache.insert(token.clone(), Arc::new(peer_user)).await;
        }
        cache.run_pending_tasks().await;
    });
    let peer = Peer {
        inner: inner(),
        cache,
    };
    assert_eq!(warm(&upstream.rt, &peer, &templates, 64), n, "peer warmed");

    let sequence = draw.sequence(SEQUENCE);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let before = layer.stats();
    let bare = inner();
    if let Some((service, iterations)) = paired::profile_target(2_000_000) {
        // Profiling mode: one service, the same request loop, no criterion (for perf and
        // callgrind: `--toggle-collect=*profile_loop*` leaves the setup out).
        let sequence = &sequence[..];
        let per_request = match service.as_str() {
            "bare" => profile_loop(&rt, bare.clone(), &templates, sequence, iterations),
            "layer" => profile_loop(&rt, layered.clone(), &templates, sequence, iterations),
            "peer" => profile_loop(&rt, peer.clone(), &templates, sequence, iterations),
            other => panic!("--profile takes bare, layer or peer, not {other}"),
        };
        println!(
            "{} {service}: {per_request:.0} ns per request (wall clock)",
            draw.name()
        );
        common::assert_only_hits(&before, &layer.stats());
        return None;
    }
    let mut group = c.benchmark_group(draw.name());
    macro_rules! measure {
        ($id:literal, $svc:expr) => {{
            let next = Cell::new(0usize);
            let svc = $svc;
            group.bench_function($id, |b| {
                b.to_async(&rt).iter(|| {
                    let i = next.get();
                    next.set((i + 1) % SEQUENCE);
                    let request = templates[sequence[i] as usize].request();
                    let svc = svc.clone();
                    async move {
                        let response = svc.oneshot(request).await.expect("service");
                        assert_eq!(response.status(), 200);
                        response
                    }
                });
            });
        }};
    }
    measure!("bare", bare.clone());
    measure!("layer", layered.clone());
    measure!("peer", peer.clone());
    group.finish();

    let rounds = paired::rounds(
        PAIRED_ROUNDS,
        PAIRED_BATCH,
        &sequence,
        |which, part| match which {
            0 => profile_loop(&rt, bare.clone(), &templates, part, PAIRED_BATCH),
            1 => profile_loop(&rt, layered.clone(), &templates, part, PAIRED_BATCH),
            _ => profile_loop(&rt, peer.clone(), &templates, part, PAIRED_BATCH),
        },
    );
    common::assert_only_hits(&before, &layer.stats());
    Some(Paired {
        scenario: draw.name(),
        rounds,
    })
}

fn main() {
    let mut c = if paired::profile_target(2_000_000).is_some() {
        Criterion::default()
    } else {
        Criterion::default().configure_from_args()
    };
    let upstream = Upstream::start();
    let draws = [Draw::One, Draw::Uniform(10_000), Draw::Zipf(100_000)];
    // A filter argument (`-- peer-10000-`) also skips the other scenarios' setup, which warms
    // up to 100 000 tokens through the mock: for profiling one case.
    let filter: Option<String> = std::env::args().skip(1).find(|arg| arg.starts_with("peer-"));
    let mut ran = Vec::new();
    let mut paired = Vec::new();
    for draw in draws {
        let name = draw.name();
        if filter.as_deref().is_some_and(|f| !name.starts_with(f)) {
            continue;
        }
        paired.extend(scenario(&mut c, &upstream, draw));
        ran.push(name);
    }
    if paired::profile_target(2_000_000).is_some() {
        return;
    }
    c.final_summary();
    println!("\ncriterion medians of this run (ns per request), overhead = wrapper - bare:");
    println!("| scenario | bare | layer | peer | layer overhead | peer overhead | layer ÷ peer |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for group in ran {
        let (Some(bare), Some(layer), Some(peer)) = (
            criterion_median(group, "bare"),
            criterion_median(group, "layer"),
            criterion_median(group, "peer"),
        ) else {
            println!("| {group} | (not measured: a criterion filter left it out) |");
            continue;
        };
        let (ours, theirs) = (layer - bare, peer - bare);
        println!(
            "| {group} | {bare:.0} | {layer:.0} | {peer:.0} | +{ours:.0} | +{theirs:.0} | {:.2} |",
            ours / theirs
        );
    }
    println!(
        "\npaired: {PAIRED_ROUNDS} rounds of {PAIRED_BATCH} requests per service, back to back; \
         medians over rounds (the ratio is the median of each round's own ratio):"
    );
    println!("| scenario | bare | layer | peer | layer overhead | peer overhead | layer ÷ peer |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for p in &paired {
        println!("{}", p.row());
    }
}
