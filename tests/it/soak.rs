//! A bounded soak: 32 concurrent clients drive a deterministic mix of cached, new, invalid,
//! junk and faulty tokens through the layer over real HTTP on 127.0.0.1, against a
//! `MockAmazon` with random faults. Afterwards: not one wrong decision, upstream calls within
//! their bound, no panic, no lost request, the cache within its capacity.
//!
//! The faults (a 429 among them, and runs of failures) make the layer back off from Amazon
//! now and then: a new good or invalid token may then be answered `503` "backing off" instead
//! of being verified. That is a right decision (fail closed, no call to Amazon); any other
//! answer is checked as before, and the call bounds count only the tokens actually verified.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::{app, build_layer_with, builder, client, serve, token, Reached};
use futures_util::future::join_all;
use tower_amazon_auth::defaults;
use tower_amazon_auth_mock::{MockAmazon, MockReply, MockUser};

/// A tiny deterministic PRNG (xorshift64*), seeded per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// Registered as a user: must be 200 (first request verifies, later ones hit the cache).
    Good,
    /// Well-formed, unknown to Amazon: must be 401.
    Invalid,
    /// Malformed or a refresh token: must be 400/401, and never reach Amazon.
    Junk,
    /// Amazon fails for it (503, garbage, reset, hang): must be 503.
    Fault,
}

const CLIENTS: usize = 32;
const REQUESTS_PER_CLIENT: usize = 400;
const TIME_BUDGET: Duration = Duration::from_secs(12);
const CAPACITY: u64 = 4096;
const GOOD: usize = 600;
const INVALID: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_mixed_traffic_makes_no_wrong_decision() {
    let mock = MockAmazon::start().await.unwrap();
    let deadline = Duration::from_millis(1500);
    // Back-offs of 1 s (the breaker's back-off after a run of failures is `retry_after`): the
    // faults open it often, and the soak is about the decisions in between.
    let layer = build_layer_with(builder(&mock).deadline(deadline).capacity(CAPACITY), |l| {
        l.retry_after(Duration::from_secs(1))
    })
    .unwrap();
    let reached = Reached::default();
    let addr = serve(app(layer.clone(), reached.clone())).await;
    let base = format!("http://{addr}");

    // The population: (token, kind, expected user id for good tokens).
    let mut tokens: Vec<(String, Kind)> = Vec::new();
    for i in 0..GOOD {
        let t = token(&format!("soak-good-{i}"));
        mock.register(&t, MockUser::new(format!("amzn1.account.SOAK{i}")));
        tokens.push((t, Kind::Good));
    }
    for i in 0..INVALID {
        tokens.push((token(&format!("soak-invalid-{i}")), Kind::Invalid));
    }
    let faults = [
        ("503a", MockReply::status(503)),
        ("503b", MockReply::status(503).retry_after(2)),
        ("500", MockReply::status(500)),
        // No 429 here: Amazon throttles a client, not a token, and a 429 stops all new
        // verifications for its back-off (`verdicts::after_a_429_…` covers it).
        ("garbage-a", MockReply::garbage()),
        ("garbage-b", MockReply::garbage()),
        ("reset", MockReply::reset()),
        ("truncated", MockReply::truncated()),
        (
            "no-aud",
            MockReply::json(200, serde_json::json!({"user_id": "x", "exp": 60})),
        ),
        ("hang", MockReply::hang()),
    ];
    let hang_index = tokens.len() + faults.len() - 1;
    for (tag, reply) in faults {
        let t = token(&format!("soak-fault-{tag}"));
        mock.register(&t, reply);
        tokens.push((t, Kind::Fault));
    }
    let good_refresh = tokens[0].0.replacen("Atza|", "Atzr|", 1);
    for junk in [
        "not-a-token".to_owned(),
        format!("Atza|{}", "x".repeat(2100)),
        "Atza|quote\"d".to_owned(),
        good_refresh,
        String::new(),
        "Atza|tab\there".to_owned(),
    ] {
        tokens.push((junk, Kind::Junk));
    }
    let by_kind = |kind| -> Vec<usize> { (0..tokens.len()).filter(|&i| tokens[i].1 == kind).collect() };
    let (good, invalid, fault, junk) = (
        by_kind(Kind::Good),
        by_kind(Kind::Invalid),
        by_kind(Kind::Fault),
        by_kind(Kind::Junk),
    );
    let tokens = std::sync::Arc::new(tokens);

    let started = Instant::now();
    let runs = join_all((0..CLIENTS).map(|c| {
        let http = client();
        let base = base.clone();
        let tokens = std::sync::Arc::clone(&tokens);
        let (good, invalid, fault, junk) = (good.clone(), invalid.clone(), fault.clone(), junk.clone());
        tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1).wrapping_mul(0x1234_5678_9abc_def1));
            let mut sent: HashMap<usize, usize> = HashMap::new();
            let mut backed_off: HashMap<usize, usize> = HashMap::new();
            let mut wrong: Vec<String> = Vec::new();
            for _ in 0..REQUESTS_PER_CLIENT {
                if started.elapsed() > TIME_BUDGET {
                    break;
                }
                let roll = rng.below(1000);
                let index = match roll {
                    0..=599 => good[rng.below(good.len())],
                    600..=749 => invalid[rng.below(invalid.len())],
                    750..=899 => junk[rng.below(junk.len())],
                    // The hanging token costs a whole deadline: rare.
                    900..=902 => hang_index,
                    _ => fault[rng.below(fault.len() - 1)],
                };
                let (token, kind) = &tokens[index];
                *sent.entry(index).or_default() += 1;
                let mut request = http.get(format!("{base}/me"));
                // Spread the tokens over the three sources.
                request = match rng.below(3) {
                    0 => request.bearer_auth(token),
                    1 => request.header("x-amz-access-token", token.as_str()),
                    _ => request.query(&[("access_token", token.as_str())]),
                };
                let response = match request.send().await {
                    Ok(response) => response,
                    Err(error) => {
                        wrong.push(format!("{kind:?} #{index}: no answer: {error}"));
                        continue;
                    }
                };
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let backing_off = status == 503
                    && body["error_description"]
                        .as_str()
                        .is_some_and(|d| d.ends_with("backing off from Amazon"));
                if backing_off && matches!(kind, Kind::Good | Kind::Invalid) {
                    *backed_off.entry(index).or_default() += 1;
                    continue;
                }
                let ok = match kind {
                    Kind::Good => {
                        let expected = format!("amzn1.account.SOAK{index}");
                        status == 200 && body["user_id"] == expected.as_str()
                    }
                    Kind::Invalid => status == 401,
                    Kind::Junk => status == 400 || status == 401,
                    Kind::Fault => status == 503,
                };
                if !ok {
                    wrong.push(format!("{kind:?} #{index}: {status}"));
                }
            }
            (sent, backed_off, wrong)
        })
    }))
    .await;
    let elapsed = started.elapsed();

    let mut sent: HashMap<usize, usize> = HashMap::new();
    let mut backed_off: HashMap<usize, usize> = HashMap::new();
    let mut wrong = Vec::new();
    for run in runs {
        let (s, b, w) = run.expect("a client task panicked");
        for (index, n) in s {
            *sent.entry(index).or_default() += n;
        }
        for (index, n) in b {
            *backed_off.entry(index).or_default() += n;
        }
        wrong.extend(w);
    }
    let total: usize = sent.values().sum();
    assert!(
        wrong.is_empty(),
        "{} wrong decisions of {total}: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(20)]
    );
    assert!(
        total >= 2000,
        "the soak did too little: {total} requests in {elapsed:?}"
    );
    assert!(
        elapsed < TIME_BUDGET + deadline + Duration::from_secs(3),
        "{elapsed:?}"
    );

    // Upstream calls: one per distinct cacheable token however many requests, none for junk,
    // and at most (1 + retries) per request for the faulty ones.
    let mut bound = 0;
    for (&index, &n) in &sent {
        let (token, kind) = &tokens[index];
        let calls = mock.calls_for(token).tokeninfo;
        // Answered only "backing off": never verified.
        let never_verified = backed_off.get(&index) == Some(&n);
        match kind {
            Kind::Good if never_verified => assert_eq!(calls, 0, "{kind:?} #{index}"),
            Kind::Invalid if never_verified => {
                assert_eq!(mock.calls_for(token).total(), 0, "{kind:?} #{index}");
            }
            Kind::Good => {
                assert_eq!(calls, 1, "{kind:?} #{index}: {n} requests");
                bound += 1;
            }
            // tokeninfo and profile are asked together; the profile's `invalid_token` may
            // settle it before the tokeninfo call is even sent. One verification either way.
            Kind::Invalid => {
                let both = mock.calls_for(token);
                assert!(
                    calls <= 1 && both.profile <= 1 && both.total() >= 1,
                    "#{index}: {both:?}"
                );
                bound += 1;
            }
            Kind::Junk => assert_eq!(calls, 0, "junk #{index}"),
            Kind::Fault => {
                let most = n * (1 + defaults::RETRIES as usize);
                assert!(calls <= most, "fault #{index}: {calls} calls for {n} requests");
                bound += most;
            }
        }
    }
    let calls = mock.calls();
    assert!(
        calls.tokeninfo <= bound,
        "{} tokeninfo calls > bound {bound}",
        calls.tokeninfo
    );
    assert!(calls.profile <= bound);
    let good_requests: usize = sent
        .iter()
        .filter(|(i, _)| tokens[**i].1 == Kind::Good)
        .map(|(i, n)| n - backed_off.get(i).copied().unwrap_or(0))
        .sum();
    assert_eq!(
        reached.count(),
        good_requests,
        "exactly the good requests (less those answered while backing off) were forwarded"
    );
    let backed_off_total: usize = backed_off.values().sum();
    let good_verified = good
        .iter()
        .filter(|&&i| mock.calls_for(&tokens[i].0).tokeninfo == 1)
        .count();
    eprintln!("soak: {good_verified} of {GOOD} good tokens verified");
    assert!(
        good_verified >= GOOD / 2,
        "only {good_verified} good tokens were ever verified: the soak tested little but backing off"
    );

    assert!(layer.cache().entry_count() <= CAPACITY);
    let stats = layer.stats();
    assert!(stats.hits > 0 && stats.negative_hits > 0, "{stats:?}");
    eprintln!(
        "soak: {total} requests in {elapsed:?}, {backed_off_total} answered while backing off; {stats:?}; {calls:?}"
    );
}
