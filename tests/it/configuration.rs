//! No configuration can hurt: a shared cache cannot be given settings that would widen (or
//! silently change) its audience, every duration is bounded at `build()` so nothing on a
//! request path can overflow, and cleartext `http://` to another host is refused.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{Request, Response};
use http_body_util::Full;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use tower::{Layer, ServiceExt};
use tower_amazon_auth::client::AmazonClient;
use tower_amazon_auth::endpoint::Endpoints;
use tower_amazon_auth::{AmazonAuthLayer, BuildError, IdentityCache};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockReply, MockUser};

use crate::common::{build_layer, build_layer_with, builder};

/// Layers on one cache keep their own layer settings (realm, optional mode, `Retry-After`) and
/// share its verdicts. Giving such a layer cache settings of its own cannot be written at all
/// (`AmazonAuthBuilder`'s `compile_fail` doctest): they are the cache's.
#[tokio::test]
async fn layers_on_one_cache_share_verdicts_and_keep_their_own_settings() {
    let mock = MockAmazon::start().await.unwrap();
    let api = build_layer(builder(&mock)).unwrap();
    let admin = AmazonAuthLayer::builder(api.cache().clone())
        .realm("admin")
        .optional(true)
        .retry_after(Duration::from_secs(9))
        .build()
        .unwrap();
    let token = mock_access_token("shared-by-two-layers");
    mock.register(&token, MockUser::new("amzn1.account.SHARED"));
    assert_eq!(crate::common::bearer_once(api, &token).await.status(), 200);
    assert_eq!(
        crate::common::bearer_once(admin.clone(), &token).await.status(),
        200
    );
    assert_eq!(
        mock.calls_for(&token).tokeninfo,
        1,
        "the second layer verified again"
    );
    // Its own realm in its challenges.
    let refused = crate::common::bearer_once(admin, "Atza|not-registered").await;
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("realm=\"admin\""), "{challenge}");
}

/// A layer's prefix rule holds for tokens its shared cache knows: a token verified (or
/// rejected) through a lenient layer is refused by a strict one with the `400` a strict layer
/// gives it without a cache, and no upstream call (the hit path skips only the character
/// check, which every cached token passed).
#[tokio::test]
async fn a_shared_cache_keeps_each_layers_prefix_rule() {
    let mock = MockAmazon::start().await.unwrap();
    let lenient = build_layer_with(builder(&mock), |l| l.require_access_token_prefix(false)).unwrap();
    let strict = AmazonAuthLayer::builder(lenient.cache().clone()).build().unwrap();
    let valid = format!("Xyz|{}", &mock_access_token("prefixless-valid")[5..]);
    let rejected = format!("Xyz|{}", &mock_access_token("prefixless-rejected")[5..]);
    mock.register(&valid, MockUser::new("amzn1.account.PREFIXLESS"));
    mock.register(&rejected, MockReply::invalid_token());
    for (token, lenient_status) in [(&valid, 200), (&rejected, 401)] {
        assert_eq!(
            crate::common::bearer_once(lenient.clone(), token).await.status(),
            lenient_status
        );
        assert_eq!(
            crate::common::bearer_once(lenient.clone(), token).await.status(),
            lenient_status
        );
        let refused = crate::common::bearer_once(strict.clone(), token).await;
        assert_eq!(refused.status(), 400, "the strict layer took a cached verdict");
        let challenge = refused.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains("invalid_request"), "{challenge}");
    }
    assert_eq!(
        mock.calls().tokeninfo,
        2,
        "one verification per token, none for the strict layer"
    );
}

#[test]
fn out_of_range_durations_are_refused_at_build() {
    let too_large = |setting, limit| Some(BuildError::TooLarge { setting, limit });
    let b = IdentityCache::builder;
    let id = "amzn1.application-oa2-client.x";
    assert_eq!(
        b().client_id(id).negative_ttl(Duration::MAX).build().err(),
        too_large("negative_ttl", "1 h")
    );
    assert_eq!(
        b().client_id(id).deadline(Duration::MAX).build().err(),
        too_large("deadline", "5 min")
    );
    assert_eq!(
        b().skip_audience_check().max_ttl(Duration::MAX).build().err(),
        too_large("max_ttl", "24 h")
    );
    assert_eq!(
        b().client_id(id).backoff(Duration::MAX).build().err(),
        too_large("backoff", "5 min")
    );
    let cache = IdentityCache::new(id).unwrap();
    assert_eq!(
        AmazonAuthLayer::builder(cache)
            .retry_after(Duration::MAX)
            .build()
            .err(),
        too_large("retry_after", "5 min")
    );
    assert_eq!(
        b().client_id(id).max_in_flight(usize::MAX).build().err(),
        too_large("max_in_flight", "1 000 000")
    );
    assert_eq!(
        b().client_id(id)
            .max_ttl(Duration::from_secs(30))
            .clock_skew(Duration::from_secs(30))
            .build()
            .err(),
        Some(BuildError::ClockSkewNotBelowMaxTtl)
    );
}

#[test]
fn cleartext_http_to_another_host_is_refused_unless_allowed() {
    for base in [
        "http://10.0.0.7:8080",
        "http://lwa-proxy.internal",
        "http://[2001:db8::1]",
    ] {
        let built = IdentityCache::builder()
            .client_id("amzn1.application-oa2-client.x")
            .base_url(base)
            .build();
        assert!(
            matches!(built, Err(BuildError::CleartextBaseUrl(_))),
            "{base}: {built:?}"
        );
        let endpoints = Endpoints::base_url(base).unwrap();
        assert!(matches!(
            AmazonClient::new(endpoints.clone()),
            Err(BuildError::CleartextBaseUrl(_))
        ));
        assert!(AmazonClient::new(endpoints.allow_cleartext()).is_ok());
    }
    for base in [
        "http://127.0.0.1:1",
        "http://localhost:1",
        "http://[::1]:1",
        "https://example.com",
    ] {
        assert!(
            AmazonClient::new(Endpoints::base_url(base).unwrap()).is_ok(),
            "{base}"
        );
    }
}

/// A duration anywhere from zero to `Duration::MAX`: mostly within the limits (so that layers
/// get built and used), the edges often.
fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::ZERO),
        1 => Just(Duration::from_nanos(1)),
        1 => Just(Duration::MAX),
        1 => Just(Duration::from_secs(u64::MAX)),
        1 => (0u64..=u64::MAX).prop_map(Duration::from_secs),
        30 => (1u64..=300_000).prop_map(Duration::from_millis),
    ]
}

#[derive(Debug, Clone)]
struct Durations {
    clock_skew: Duration,
    max_ttl: Duration,
    negative_ttl: Duration,
    connect_timeout: Duration,
    deadline: Duration,
    retry_after: Duration,
    retries: u32,
    max_in_flight: usize,
    stale_if_error: bool,
    skip_audience_check: bool,
}

fn durations() -> impl Strategy<Value = Durations> {
    // clock_skew mostly small, so that it is often below max_ttl.
    let clock_skew = prop_oneof![4 => (0u64..=30_000).prop_map(Duration::from_millis), 1 => any_duration()];
    (
        (clock_skew, any_duration(), any_duration(), any_duration()),
        (any_duration(), any_duration()),
        (
            // Up to 3 retries keep a case short; 11 and beyond are refused.
            prop_oneof![4 => 0u32..=3, 1 => Just(11), 1 => Just(u32::MAX)],
            prop_oneof![4 => 1usize..=4, 1 => Just(0), 1 => Just(usize::MAX)],
        ),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (clock_skew, max_ttl, negative_ttl, connect_timeout),
                (deadline, retry_after),
                (retries, max_in_flight),
                (stale_if_error, skip_audience_check),
            )| Durations {
                clock_skew,
                max_ttl,
                negative_ttl,
                connect_timeout,
                deadline,
                retry_after,
                retries,
                max_in_flight,
                stale_if_error,
                skip_audience_check,
            },
        )
}

/// Arbitrary durations and counts: `build()` returns `Ok` or `Err`, never panics; a layer it
/// builds never panics on a request, whatever Amazon answers.
#[test]
fn no_configuration_panics_at_build_or_on_a_request() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mock = runtime.block_on(MockAmazon::start()).unwrap();
    let good = mock_access_token("configuration-good");
    let rejected = mock_access_token("configuration-rejected");
    let down = mock_access_token("configuration-down");
    mock.register(&good, MockUser::new("amzn1.account.CONFIG"));
    mock.register(&rejected, MockReply::invalid_token());
    mock.register(&down, MockReply::status(503).retry_after(u64::MAX));

    let built = std::cell::Cell::new(0u32);
    let config = Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    };
    // Seeded: the same configurations on every run.
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    runner
        .run(&durations(), |d| {
            // As in a server: built, used and dropped within the runtime (the connections the
            // layer opened belong to it).
            let _runtime = runtime.enter();
            let mut b = builder(&mock)
                .clock_skew(d.clock_skew)
                .max_ttl(d.max_ttl)
                .negative_ttl(d.negative_ttl)
                .connect_timeout(d.connect_timeout)
                .deadline(d.deadline)
                .retries(d.retries)
                .max_in_flight(d.max_in_flight)
                .stale_if_error(d.stale_if_error);
            if d.skip_audience_check {
                b = b.skip_audience_check();
            }
            let retry_after = d.retry_after;
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                build_layer_with(b, |l| l.retry_after(retry_after))
            }));
            let Ok(outcome) = outcome else {
                return Err(TestCaseError::fail(format!("build() panicked for {d:?}")));
            };
            let Ok(layer) = outcome else { return Ok(()) };
            built.set(built.get() + 1);
            let service = layer.layer(tower::service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }));
            for token in [&good, &rejected, &down, &good, &rejected] {
                let request = Request::get("/")
                    .header("authorization", format!("Bearer {token}"))
                    .body(())
                    .unwrap();
                let outcome = runtime.block_on(
                    AssertUnwindSafe(tokio::time::timeout(
                        Duration::from_secs(10),
                        service.clone().oneshot(request),
                    ))
                    .catch_unwind(),
                );
                match outcome {
                    Err(_) => return Err(TestCaseError::fail(format!("a request panicked for {d:?}"))),
                    Ok(Err(_)) => return Err(TestCaseError::fail(format!("a request hung for {d:?}"))),
                    Ok(Ok(response)) => {
                        let status = response.unwrap().status().as_u16();
                        prop_assert!(matches!(status, 200 | 401 | 503), "status {} for {:?}", status, d);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!("{} of 96 configurations built and served requests", built.get());
    assert!(
        built.get() >= 8,
        "only {} of 96 configurations built: the requests went untested",
        built.get()
    );
}
