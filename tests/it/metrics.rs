//! (feature `metrics`) `IdentityCache::export_metrics` publishes every counter through the
//! `metrics` facade.

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower_amazon_auth_mock::{MockAmazon, MockUser};

use crate::common::{app, build_layer, builder, client, serve, token, Reached};

#[tokio::test]
async fn export_metrics_publishes_the_counters() {
    let mock = MockAmazon::start().await.unwrap();
    let layer = build_layer(builder(&mock)).unwrap();
    let t = token("metrics");
    mock.register(&t, MockUser::new("amzn1.account.METRICS"));
    let addr = serve(app(layer.clone(), Reached::default())).await;
    let http = client();
    for _ in 0..3 {
        let response = http
            .get(format!("http://{addr}/me"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || layer.cache().export_metrics());
    let counters: std::collections::HashMap<String, u64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(n) => Some((key.key().name().to_owned(), n)),
            _ => None,
        })
        .collect();
    assert_eq!(
        counters.get("tower_amazon_auth_misses_total"),
        Some(&1),
        "{counters:?}"
    );
    assert_eq!(counters.get("tower_amazon_auth_hits_total"), Some(&2));
    assert_eq!(counters.get("tower_amazon_auth_upstream_calls_total"), Some(&2));
    // The fleet level's figures are its own crate's, published only by a cache that has it.
    assert!(!counters.contains_key("tower_amazon_auth_fleet_hits_total"));
}
