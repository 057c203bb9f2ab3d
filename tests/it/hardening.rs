//! Hostile clients: floods of junk, floods of distinct unknown tokens against a slow Amazon,
//! a replayed rejected token, and header and URI abuse sent as raw bytes over TCP. Bad input
//! gets a defined 4xx and costs no upstream call; the in-flight limit and the cache capacity
//! hold under a flood.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::{token, Harness};
use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower_amazon_auth_mock::{MockReply, MockUser};

// The harness's own request helpers; the rest of it is `common::Harness`. A trait rather
// than an inherent `impl`: the other test modules add helpers of the same names.
trait HardeningHarness {
    fn good(&self, tag: &str) -> String;
    async fn raw(&self, target: &[u8], headers: &[(&str, &[u8])]) -> u16;
}

impl HardeningHarness for Harness {
    fn good(&self, tag: &str) -> String {
        let token = token(tag);
        self.mock
            .register(&token, MockUser::new(format!("amzn1.account.{tag}")));
        token
    }

    /// Sends `GET target` with `headers` as raw bytes on a fresh connection; returns the
    /// status code the server answered.
    async fn raw(&self, target: &[u8], headers: &[(&str, &[u8])]) -> u16 {
        let mut head = Vec::new();
        head.extend_from_slice(b"GET ");
        head.extend_from_slice(target);
        head.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        raw_status(self.addr, &head).await
    }
}

/// Writes `request` on a new connection and reads the status code of the answer.
async fn raw_status(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before reading a huge request whole.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 5 s");
    let line = String::from_utf8_lossy(&answer);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {line:?}"))
}

// ---------------------------------------------------------------------------------------------
// Floods
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_junk_costs_no_upstream_call() {
    let h = Harness::new(|b| b).await;
    let good = token("flood-junk");
    let junk: Vec<(String, Vec<(&str, String)>)> = vec![
        (
            "/me".into(),
            vec![("authorization", "Bearer not-an-amazon-token".into())],
        ),
        (
            "/me".into(),
            vec![("authorization", format!("Bearer Atza|{}", "a".repeat(2100)))],
        ),
        ("/me".into(), vec![("x-amz-access-token", "Atza|a\"b".into())]),
        (
            "/me".into(),
            vec![("x-amz-access-token", good.replacen("Atza|", "Atzr|", 1))],
        ),
        ("/me".into(), vec![("authorization", "Bearer".into())]),
        ("/me?access_token=Atza%7Ca%20b".into(), vec![]),
        ("/me?access_token=Atza%7Ca%FFb".into(), vec![]),
        ("/me?access_token=Atza%7Ca+b".into(), vec![]),
        (format!("/me?access_token={good}&access_token={good}"), vec![]),
        (
            format!("/me?access_token={good}"),
            vec![("x-amz-access-token", good.clone())],
        ),
        ("/me".into(), vec![("authorization", "Basic dXNlcjpwYXNz".into())]),
        ("/me".into(), vec![]),
    ];
    let workers = 8;
    let per_worker = 250;
    let started = Instant::now();
    let results = join_all((0..workers).map(|w| {
        let http = h.http.clone();
        let base = h.base.clone();
        let junk = junk.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
                let (path, headers) = &junk[(w * per_worker + i) % junk.len()];
                let mut request = http.get(format!("{base}{path}"));
                for (name, value) in headers {
                    request = request.header(*name, value);
                }
                statuses.push(request.send().await.unwrap().status().as_u16());
            }
            statuses
        })
    }))
    .await;
    let statuses: Vec<u16> = results.into_iter().flat_map(Result::unwrap).collect();
    assert_eq!(statuses.len(), workers * per_worker);
    assert!(
        statuses.iter().all(|s| *s == 400 || *s == 401),
        "all refused as 4xx"
    );
    assert_eq!(h.mock.calls().total(), 0, "junk never reaches Amazon");
    assert_eq!(h.reached.count(), 0);
    let stats = h.layer.stats();
    assert_eq!(stats.misses, 0);
    assert_eq!(
        stats.malformed + stats.missing_token,
        (workers * per_worker) as u64
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_unknown_tokens_is_bounded_by_the_in_flight_limit() {
    const MAX_IN_FLIGHT: usize = 8;
    const CAPACITY: u64 = 64;
    let latency = Duration::from_millis(1500);
    let h = Harness::new(|b| {
        b.max_in_flight(MAX_IN_FLIGHT)
            .capacity(CAPACITY)
            .negative_capacity(CAPACITY)
            .negative_ttl(Duration::from_secs(60))
    })
    .await;
    h.mock.set_latency(latency);

    // 200 distinct, well-formed, unknown tokens at once.
    let flood = 200;
    let results = join_all((0..flood).map(|i| {
        let http = h.http.clone();
        let base = h.base.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let response = http
                .get(format!("{base}/me"))
                .bearer_auth(token(&format!("unknown-{i}")))
                .send()
                .await
                .unwrap();
            let retry_after = response.headers().contains_key("retry-after");
            (response.status().as_u16(), started.elapsed(), retry_after)
        })
    }))
    .await;
    let results: Vec<(u16, Duration, bool)> = results.into_iter().map(Result::unwrap).collect();
    let verified = results.iter().filter(|r| r.0 == 401).count();
    let shed: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(
        verified + shed.len(),
        flood,
        "only 401 (asked Amazon) or 503 (shed)"
    );
    assert!((1..=MAX_IN_FLIGHT).contains(&verified), "{verified} verified");
    assert!(shed.len() >= flood - MAX_IN_FLIGHT);
    for (_, elapsed, retry_after) in &shed {
        assert!(*retry_after);
        assert!(
            *elapsed < latency / 2,
            "shed quickly, not after Amazon's latency: {elapsed:?}"
        );
    }
    assert!(h.mock.calls().tokeninfo <= MAX_IN_FLIGHT, "{:?}", h.mock.calls());
    assert!(h.layer.stats().overloaded >= (flood - MAX_IN_FLIGHT) as u64);
    assert_eq!(h.reached.count(), 0);
    // Shedding is not a verdict: a shed token, sent again, is verified (and refused by Amazon).
    let shed_index = results.iter().position(|r| r.0 == 503).unwrap();
    let shed_token = token(&format!("unknown-{shed_index}"));
    h.mock.set_latency(Duration::ZERO);
    let response = h
        .http
        .get(format!("{}/me", h.base))
        .bearer_auth(&shed_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(h.mock.calls_for(&shed_token).total() >= 1);

    // Then many more distinct unknown tokens, a few at a time (under the limit): each is asked
    // once and remembered, and the cache never holds more than its capacity.
    let before = h.mock.calls().tokeninfo;
    let second = 400;
    let results = join_all((0..4).map(|w| {
        let http = h.http.clone();
        let base = h.base.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in (w..second).step_by(4) {
                let response = http
                    .get(format!("{base}/me"))
                    .bearer_auth(token(&format!("unknown-second-{i}")))
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        })
    }))
    .await;
    let statuses: Vec<u16> = results.into_iter().flat_map(Result::unwrap).collect();
    assert_eq!(statuses.len(), second);
    assert!(statuses.iter().all(|s| *s == 401));
    // One verification each: tokeninfo and profile are asked together, and either one's
    // `invalid_token` settles it (the other may be dropped before it is sent).
    for i in 0..second {
        let calls = h.mock.calls_for(&token(&format!("unknown-second-{i}")));
        assert!(
            calls.tokeninfo <= 1 && calls.profile <= 1 && calls.total() >= 1,
            "{calls:?}"
        );
    }
    assert!(h.mock.calls().tokeninfo - before <= second);
    let entries = h.layer.cache().entry_count();
    assert!(entries <= CAPACITY, "{entries} cached > capacity {CAPACITY}");
    assert!(entries > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_rejected_token_is_absorbed_by_the_negative_cache() {
    let h = Harness::new(|b| b).await;
    let rejected = token("replayed");
    h.mock.register(&rejected, MockReply::invalid_token());
    let results = join_all((0..10).map(|_| {
        let http = h.http.clone();
        let base = h.base.clone();
        let rejected = rejected.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..50 {
                let response = http
                    .get(format!("{base}/me"))
                    .bearer_auth(&rejected)
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        })
    }))
    .await;
    let statuses: Vec<u16> = results.into_iter().flat_map(Result::unwrap).collect();
    assert_eq!(statuses.len(), 500);
    assert!(statuses.iter().all(|s| *s == 401));
    // One verification for 500 requests: at most one tokeninfo call (the concurrent profile
    // call's `invalid_token` may settle it first) and one profile call.
    let calls = h.mock.calls_for(&rejected);
    assert!(
        calls.tokeninfo <= 1 && calls.profile <= 1 && calls.total() >= 1,
        "{calls:?}"
    );
    // The layer's own count: the two calls of one verification (one may be dropped unsent).
    assert!(h.layer.stats().upstream_calls <= 2);
    assert!(h.layer.stats().negative_hits >= 400);
    assert_eq!(h.reached.count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Header and URI abuse, byte for byte
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn header_abuse_gets_a_defined_answer_and_no_upstream_call() {
    let h = Harness::new(|b| b).await;
    let good = h.good("abuse-good");
    // Verify it once, so that accepted cases below cost no call either.
    assert_eq!(
        h.raw(b"/me", &[("Authorization", format!("Bearer {good}").as_bytes())])
            .await,
        200
    );
    h.mock.reset_calls();
    let g = good.as_bytes();
    let with = |prefix: &[u8], suffix: &[u8]| [prefix, g, suffix].concat();
    let inner_tab = good.replacen("IwEB", "Iw\tEB", 1);
    let refresh = good.replacen("Atza|", "Atzr|", 1);

    type Headers = Vec<(&'static str, Vec<u8>)>;
    let cases: Vec<(&str, Headers, u16)> = vec![
        // Not UTF-8 (obs-text) in a token: bad characters, 400, in either header.
        (
            "non-utf8 bearer",
            vec![("Authorization", with(b"Bearer ", b"\xff\xfe"))],
            400,
        ),
        (
            "non-utf8 bearer only",
            vec![("Authorization", b"Bearer \xc3\x28".to_vec())],
            400,
        ),
        // Another scheme's credentials are none of the layer's business: no token, bare 401.
        (
            "non-utf8 other scheme",
            vec![("Authorization", b"Basic \xc3\x28".to_vec())],
            401,
        ),
        (
            "non-utf8 scheme",
            vec![("Authorization", with(b"B\xe9arer ", b""))],
            401,
        ),
        (
            "non-utf8 amz",
            vec![("x-amz-access-token", with(b"", b"\x80"))],
            400,
        ),
        (
            "latin-1 amz",
            vec![("x-amz-access-token", b"Atza|caf\xe9".to_vec())],
            400,
        ),
        // Duplicates.
        (
            "two bearer",
            vec![
                ("Authorization", with(b"Bearer ", b"")),
                ("Authorization", with(b"Bearer ", b"")),
            ],
            400,
        ),
        (
            "basic and bearer",
            vec![
                ("Authorization", b"Basic dXNlcjpwYXNz".to_vec()),
                ("Authorization", with(b"Bearer ", b"")),
            ],
            400,
        ),
        (
            "two amz",
            vec![
                ("x-amz-access-token", with(b"", b"")),
                ("X-Amz-Access-Token", with(b"", b"")),
            ],
            400,
        ),
        (
            "bearer and amz",
            vec![
                ("Authorization", with(b"Bearer ", b"")),
                ("x-amz-access-token", with(b"", b"")),
            ],
            400,
        ),
        // Bearer without a token, with only blanks after it.
        ("bare bearer", vec![("Authorization", b"Bearer".to_vec())], 400),
        (
            "bearer blanks",
            vec![("Authorization", b"Bearer \t  ".to_vec())],
            400,
        ),
        ("empty amz", vec![("x-amz-access-token", b"".to_vec())], 400),
        // Lenient on blanks between scheme and token, and around the value: accepted.
        ("spaces", vec![("Authorization", with(b"Bearer    ", b""))], 200),
        ("tab", vec![("Authorization", with(b"Bearer\t", b""))], 200),
        (
            "tabs and spaces",
            vec![("Authorization", with(b"bEaReR \t \t", b"  \t"))],
            200,
        ),
        (
            "padded amz",
            vec![("x-amz-access-token", with(b" \t", b"\t "))],
            200,
        ),
        // A tab or a space inside the token: 400.
        (
            "tab inside",
            vec![("Authorization", [b"Bearer ", inner_tab.as_bytes()].concat())],
            400,
        ),
        (
            "space inside",
            vec![("Authorization", with(b"Bearer ", b" extra"))],
            400,
        ),
        ("quoted", vec![("Authorization", with(b"Bearer \"", b"\""))], 400),
        // Percent-encoding means nothing in a header.
        (
            "encoded in header",
            vec![(
                "Authorization",
                [b"Bearer ", good.replace('|', "%7C").as_bytes()].concat(),
            )],
            400,
        ),
        (
            "refresh token",
            vec![("Authorization", [b"Bearer ", refresh.as_bytes()].concat())],
            401,
        ),
        // Not the Bearer scheme: no token at all (bare 401).
        ("glued scheme", vec![("Authorization", with(b"Bearer", b""))], 401),
        ("other scheme", vec![("Authorization", with(b"Token ", b""))], 401),
        // Bytes the HTTP parser itself refuses: 400 before the layer.
        (
            "control byte",
            vec![("Authorization", with(b"Bearer ", b"\x01"))],
            400,
        ),
        (
            "delete byte",
            vec![("x-amz-access-token", with(b"", b"\x7f"))],
            400,
        ),
        ("nul byte", vec![("x-amz-access-token", with(b"", b"\x00"))], 400),
    ];
    for (what, headers, expected) in cases {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let reached = h.reached.count();
        let status = h.raw(b"/me", &headers).await;
        assert_eq!(status, expected, "{what}");
        assert_eq!(h.mock.calls().total(), 0, "{what}: no upstream call");
        let forwarded = h.reached.count() - reached;
        assert_eq!(forwarded, usize::from(expected == 200), "{what}");
    }
}

#[tokio::test]
async fn query_abuse_gets_a_defined_answer_and_no_upstream_call() {
    let h = Harness::new(|b| b).await;
    let good = h.good("query-good");
    assert_eq!(
        h.raw(format!("/me?access_token={good}").as_bytes(), &[]).await,
        200
    );
    h.mock.reset_calls();
    let encoded = good.replace('|', "%7C");
    let cases: Vec<(String, u16)> = vec![
        (format!("/me?access_token={good}&access_token={good}"), 400),
        (format!("/me?access_token={good}&access_token="), 400),
        (format!("/me?access_token={good}&access%5Ftoken={encoded}"), 400),
        ("/me?access_token=".to_owned(), 400),
        ("/me?access_token".to_owned(), 400),
        (
            format!("/me?access_token={}", good.replacen("IwEB", "Iw%09EB", 1)),
            400,
        ),
        (
            format!("/me?access_token={}", good.replacen("IwEB", "Iw+EB", 1)),
            400,
        ),
        (
            format!("/me?access_token={}", good.replacen("IwEB", "Iw%FFEB", 1)),
            400,
        ),
        (
            format!("/me?access_token={}", good.replacen("IwEB", "Iw%00EB", 1)),
            400,
        ),
        (
            format!("/me?access_token={}", good.replacen("IwEB", "Iw%22EB", 1)),
            400,
        ),
        (
            format!("/me?access_token={}", good.replacen("Atza|", "Atzr|", 1)),
            401,
        ),
        // Accepted spellings.
        (format!("/me?access_token={encoded}"), 200),
        (format!("/me?a=1&access_token={good}&b=%FF"), 200),
        (format!("/me?access%5Ftoken={encoded}"), 200),
        // No token parameter at all.
        ("/me?access_tokens=Atza%7Cx&token=Atza%7Cx".to_owned(), 401),
    ];
    for (target, expected) in cases {
        let reached = h.reached.count();
        let status = h.raw(target.as_bytes(), &[]).await;
        assert_eq!(status, expected, "{target}");
        assert_eq!(h.mock.calls().total(), 0, "{target}: no upstream call");
        assert_eq!(
            h.reached.count() - reached,
            usize::from(expected == 200),
            "{target}"
        );
    }
}

/// `?x=1;access_token=<victim>&access_token=<alice>` authenticated Alice and handed the handler
/// `?x=1;access_token=<victim>`: a backend whose query parser also splits on `;` read another
/// token than the one authenticated (an independent probe). A query in which `access_token=`
/// appears anywhere but as one `&`-separated parameter is ambiguous: 400, no upstream call.
#[tokio::test]
async fn a_query_naming_the_token_parameter_ambiguously_is_refused() {
    let h = Harness::new(|b| b).await;
    let alice = h.good("alice-query");
    let victim = token("victim-query");
    let encoded = alice.replace('|', "%7C");
    let cases = [
        format!("/me?x=1;access_token={victim}&access_token={alice}"),
        format!("/me?access_token={alice}&x=1;access_token={victim}"),
        format!("/me?access_token={alice};access_token={victim}"),
        format!("/me?x=1;access%5Ftoken={victim}&access_token={encoded}"),
        format!("/me?x=1;access_token={victim}"),
        format!("/me?x=y%3Baccess_token={victim}&access_token={alice}"),
    ];
    for target in cases {
        let reached = h.reached.count();
        let status = h.raw(target.as_bytes(), &[]).await;
        assert_eq!(status, 400, "{target}");
        assert_eq!(h.mock.calls().total(), 0, "{target}: no upstream call");
        assert_eq!(h.reached.count(), reached, "{target}");
    }
    // The parameter's name in another's value, escaped, is not a parameter to anyone.
    let target = format!("/me?next=%2Fa%3Faccess_token%3Dx&access_token={encoded}");
    assert_eq!(h.raw(target.as_bytes(), &[]).await, 200, "{target}");
}

#[tokio::test]
async fn huge_queries_are_refused_without_an_upstream_call() {
    let h = Harness::new(|b| b).await;
    // What the stack does, measured: hyper refuses a request target of 64 KiB or more with
    // 414 URI Too Long before the layer sees it; anything shorter reaches the layer, which
    // answers it like any other request (a token over 2048 bytes is 400).
    let token_64k = format!("/me?access_token=Atza%7C{}", "a".repeat(64 * 1024));
    let junk_64k = format!("/me?{}", "x=1&".repeat(16 * 1024));
    let token_60k = format!("/me?access_token=Atza%7C{}", "a".repeat(60 * 1024));
    let junk_60k = format!("/me?{}", "x=1&".repeat(15 * 1024));
    let many_tokens = format!("/me?{}", "access_token=Atza%7Cx&".repeat(2000));
    for (target, expected) in [
        (&token_64k, 414),
        (&junk_64k, 414),
        (&token_60k, 400),
        (&junk_60k, 401),
        (&many_tokens, 400),
    ] {
        let started = Instant::now();
        let status = h.raw(target.as_bytes(), &[]).await;
        assert_eq!(status, expected, "{} bytes", target.len());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // A 64 KiB token in a header: hyper's header limits let it through, the layer refuses it.
    let header = format!("Bearer Atza|{}", "a".repeat(64 * 1024));
    assert_eq!(h.raw(b"/me", &[("Authorization", header.as_bytes())]).await, 400);
    assert_eq!(h.mock.calls().total(), 0);
    assert_eq!(h.reached.count(), 0);
}
