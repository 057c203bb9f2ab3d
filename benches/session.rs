//! Website sign-in's hit path against the bearer token's, in one run: a request signed in by
//! its session cookie (one session-store read, then the identity cache) against one carrying a
//! bearer token (the token's digest, then the identity cache), both answered from the cache,
//! with 1 and with 10 000 live sessions (and as many tokens). The target: the session path's
//! overhead over the bare service at most 1.3 × the bearer path's.
//!
//! ```sh
//! cargo bench --features axum --bench session -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! For a profiler: `-- --sessions 10000 --profile session 200000` runs one path's loop alone.
//!
//! The sessions are made by the real flow: `GET /login` and the callback through `SignIn` as a
//! service, the consent through `MockAmazon`'s `/ap/oa` over HTTP. After criterion, a paired
//! table (rounds running bare, bearer and session back to back).

mod common;

use std::cell::Cell;

use common::paired::{self, criterion_median, profile_loop, Paired};
use common::{inner, tokens, warm, Body, Source, Template, Upstream};
use criterion::Criterion;
use futures_util::stream::{self, StreamExt};
use http::header::{COOKIE, LOCATION, SET_COOKIE};
use http::Request;
use tower::{Layer, ServiceExt};
use tower_amazon_auth::sign_in::SignIn;
use tower_amazon_auth::AmazonAuthLayer;
use tower_amazon_auth_mock::MOCK_CLIENT_SECRET;

/// Requests measured per scenario before the sequence repeats.
const SEQUENCE: usize = 1 << 18;
const PAIRED_ROUNDS: usize = 15;
const PAIRED_BATCH: usize = 20_000;
/// The site's origin (nothing listens there: the routes are called as a service).
const ORIGIN: &str = "http://127.0.0.1:9";

/// Signs in once, as the browser would: answers the session cookie (`name=value`).
async fn sign_in_once(sign_in: &SignIn, http: &reqwest::Client, user_id: &str) -> String {
    let login = sign_in
        .clone()
        .oneshot(Request::get("/login").body(Body::default()).unwrap())
        .await
        .unwrap();
    let authorize = login.headers()[LOCATION].to_str().unwrap().to_owned();
    let pending = login.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (page, query) = authorize.split_once('?').unwrap();
    let mut form: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    form.push(("user_id".into(), user_id.into()));
    form.push(("action".into(), "allow".into()));
    let consent = http.post(page).form(&form).send().await.unwrap();
    let callback = consent.headers()[LOCATION].to_str().unwrap().to_owned();
    let path = callback.strip_prefix(ORIGIN).unwrap().to_owned();
    let landed = sign_in
        .clone()
        .oneshot(
            Request::get(path)
                .header(COOKIE, pending)
                .body(Body::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(landed.status(), 303, "signed in");
    landed
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("taa_session="))
        .expect("a session cookie")
}

fn scenario(c: &mut Criterion, upstream: &Upstream, n: usize) -> Paired {
    let name: &'static str = if n == 1 { "session-1" } else { "session-10000" };
    let cache = upstream.builder().capacity(4 * n as u64 + 1000).build().unwrap();
    let sign_in = SignIn::builder(cache.clone())
        .client_secret(MOCK_CLIENT_SECRET)
        .public_origin(ORIGIN)
        .max_sessions(2 * n as u64 + 10)
        .max_sessions_per_user(2 * n + 10)
        .build()
        .unwrap();
    upstream.mock.allow_redirect_uri(sign_in.redirect_uri());
    let user = common::user(0);
    let user_id = user.user_id().to_owned();
    upstream.mock.add_sign_in_user(user);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookies: Vec<String> = upstream.rt.block_on(
        stream::iter(0..n)
            .map(|_| sign_in_once(&sign_in, &http, &user_id))
            .buffer_unordered(32)
            .collect(),
    );
    assert_eq!(sign_in.session_count(), n as u64, "every session is live");
    let sessions: Vec<Template> = cookies
        .iter()
        .map(|cookie| Template::with_header("/me", COOKIE, cookie.as_bytes()))
        .collect();
    let bearer_tokens = tokens(name, n);
    for (i, token) in bearer_tokens.iter().enumerate() {
        upstream.register_user(token, i);
    }
    let bearers: Vec<Template> = bearer_tokens
        .iter()
        .map(|t| Template::new(t, Source::Bearer))
        .collect();

    let layer = AmazonAuthLayer::builder(cache).sign_in(&sign_in).build().unwrap();
    let layered = layer.layer(inner());
    assert_eq!(
        warm(&upstream.rt, &layered, &bearers, 64),
        n,
        "bearer tokens warmed"
    );
    assert_eq!(warm(&upstream.rt, &layered, &sessions, 64), n, "sessions warmed");
    layer.cache().entry_count(); // applies moka's pending maintenance

    let sequence: Vec<u32> = (0..SEQUENCE).map(|i| (i % n) as u32).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = layer.stats();
    let bare = inner();
    if let Some((path, iterations)) = paired::profile_target(1_000_000) {
        // Profiling mode: one path's request loop alone, no criterion (for callgrind:
        // `--toggle-collect=*profile_loop*` leaves the setup out).
        let per_request = match path.as_str() {
            "bare" => profile_loop(&rt, bare.clone(), &bearers, &sequence, iterations),
            "bearer" => profile_loop(&rt, layered.clone(), &bearers, &sequence, iterations),
            "session" => profile_loop(&rt, layered.clone(), &sessions, &sequence, iterations),
            other => panic!("--profile takes bare, bearer or session, not {other}"),
        };
        println!("{name} {path}: {per_request:.0} ns per request (wall clock)");
        common::assert_only_hits(&before, &layer.stats());
        return Paired {
            scenario: name,
            rounds: Vec::new(),
        };
    }
    let mut group = c.benchmark_group(name);
    let mut measure = |id: &str, templates: &[Template], svc: &dyn Fn(Request<Body>) -> bool| {
        let next = Cell::new(0usize);
        group.bench_function(id, |b| {
            b.iter(|| {
                let i = next.get();
                next.set((i + 1) % SEQUENCE);
                assert!(svc(templates[sequence[i] as usize].request()));
            });
        });
    };
    measure("bare", &bearers, &|request| {
        rt.block_on(bare.clone().oneshot(request)).unwrap().status() == 200
    });
    measure("bearer", &bearers, &|request| {
        rt.block_on(layered.clone().oneshot(request)).unwrap().status() == 200
    });
    measure("session", &sessions, &|request| {
        rt.block_on(layered.clone().oneshot(request)).unwrap().status() == 200
    });
    group.finish();

    // In the order of the table: bare, session, bearer (its ratio column is session ÷ bearer).
    let rounds = paired::rounds(
        PAIRED_ROUNDS,
        PAIRED_BATCH,
        &sequence,
        |which, part| match which {
            0 => profile_loop(&rt, bare.clone(), &bearers, part, PAIRED_BATCH),
            1 => profile_loop(&rt, layered.clone(), &sessions, part, PAIRED_BATCH),
            _ => profile_loop(&rt, layered.clone(), &bearers, part, PAIRED_BATCH),
        },
    );
    common::assert_only_hits(&before, &layer.stats());
    Paired {
        scenario: name,
        rounds,
    }
}

fn main() {
    let upstream = Upstream::start();
    if paired::profile_target(1_000_000).is_some() {
        let args: Vec<String> = std::env::args().collect();
        let n = args
            .iter()
            .position(|arg| arg == "--sessions")
            .and_then(|at| args.get(at + 1)?.parse().ok())
            .unwrap_or(1);
        scenario(&mut Criterion::default(), &upstream, n);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let paired: Vec<Paired> = [1, 10_000]
        .into_iter()
        .map(|n| scenario(&mut c, &upstream, n))
        .collect();
    c.final_summary();
    println!("\ncriterion medians of this run (ns per request), overhead = path - bare:");
    println!(
        "| scenario | bare | bearer | session | bearer overhead | session overhead | session ÷ bearer |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for group in ["session-1", "session-10000"] {
        let (Some(bare), Some(bearer), Some(session)) = (
            criterion_median(group, "bare"),
            criterion_median(group, "bearer"),
            criterion_median(group, "session"),
        ) else {
            println!("| {group} | (not measured: a criterion filter left it out) |");
            continue;
        };
        println!(
            "| {group} | {bare:.0} | {bearer:.0} | {session:.0} | +{:.0} | +{:.0} | {:.2} |",
            bearer - bare,
            session - bare,
            (session - bare) / (bearer - bare)
        );
    }
    println!("\npaired: {PAIRED_ROUNDS} rounds of {PAIRED_BATCH} requests per path, back to back; medians over rounds:");
    println!(
        "| scenario | bare | session | bearer | session overhead | bearer overhead | session ÷ bearer |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for p in &paired {
        println!("{}", p.row());
    }
}
