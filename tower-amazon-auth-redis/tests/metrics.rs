//! (feature `metrics`) `IdentityCache::export_metrics` publishes the fleet level's counters and
//! gauges under the names they had when the level was part of the core.
#![cfg(feature = "metrics")]

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower_amazon_auth_mock::{MockAmazon, MockUser};
use tower_amazon_auth_redis::{Fleet, FleetStats};
use tower_amazon_auth_test_support::external::{redis, redis_url};
use tower_amazon_auth_test_support::fixtures::{app, build_layer, builder, client, serve, token, Reached};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_metrics_publishes_the_fleet_figures() {
    let Some(redis) = redis("metrics::export_metrics_publishes_the_fleet_figures") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let secret = "0123456789abcdef0123456789abcdef";
    let layer = build_layer(builder(&mock).second_level(Fleet::new(redis_url(&redis), secret))).unwrap();
    let subscribed = tower_amazon_auth_test_support::fixtures::within_patience("subscribed", || {
        let subscribed = FleetStats::of(layer.cache()).is_some_and(|stats| stats.subscribed);
        async move { subscribed }
    });
    subscribed.await;
    let t = token("fleet-metrics");
    mock.register(&t, MockUser::new("amzn1.account.FLEETMETRICS"));
    let addr = serve(app(layer.clone(), Reached::default())).await;
    let response = client()
        .get(format!("http://{addr}/me"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || layer.cache().export_metrics());
    let values: HashMap<String, DebugValue> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
        .collect();
    let counter = |name: &str| match values.get(name) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name}: {other:?}"),
    };
    // The miss found nothing in Redis; the core's counters are there too.
    assert_eq!(counter("tower_amazon_auth_fleet_misses_total"), 1);
    assert_eq!(counter("tower_amazon_auth_fleet_hits_total"), 0);
    assert_eq!(counter("tower_amazon_auth_fleet_subscriptions_total"), 1);
    assert_eq!(counter("tower_amazon_auth_misses_total"), 1);
    for name in [
        "tower_amazon_auth_fleet_errors_total",
        "tower_amazon_auth_fleet_invalidations_received_total",
        "tower_amazon_auth_fleet_lock_waits_total",
    ] {
        assert_eq!(counter(name), 0, "{name}");
    }
    assert!(
        matches!(values.get("tower_amazon_auth_fleet_subscribed"), Some(DebugValue::Gauge(g)) if g.into_inner() == 1.0),
        "{:?}",
        values.get("tower_amazon_auth_fleet_subscribed")
    );
    assert!(matches!(
        values.get("tower_amazon_auth_fleet_breaker_open"),
        Some(DebugValue::Gauge(g)) if g.into_inner() == 0.0
    ));
}
