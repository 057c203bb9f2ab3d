//! (feature `metrics`) The crate's figures through the [`metrics`](https://docs.rs/metrics)
//! facade, for Prometheus and the other exporters: latency histograms of every call to Amazon as
//! they happen, and every counter of [`StatsSnapshot`](crate::StatsSnapshot) when
//! [`IdentityCache::export_metrics`](crate::IdentityCache::export_metrics) is called (the hit
//! path stays free of it). A second level publishes its own (the Redis level: the
//! `tower_amazon_auth_redis_seconds` histogram and the `tower_amazon_auth_fleet_*` figures).
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `tower_amazon_auth_amazon_seconds` | histogram | `endpoint` (`tokeninfo`, `profile`, …), `status` (HTTP status, or `error`) |
//! | `tower_amazon_auth_<field>_total` | counter | one per counter of `StatsSnapshot` (`hits`, `misses`, …) |

use std::time::Duration;

use crate::stats::StatsSnapshot;

/// Records one call to Amazon.
pub(crate) fn amazon_call(endpoint: &'static str, status: &str, elapsed: Duration) {
    metrics::histogram!(
        "tower_amazon_auth_amazon_seconds",
        "endpoint" => endpoint,
        "status" => status.to_owned()
    )
    .record(elapsed.as_secs_f64());
}

/// Publishes every counter of `snapshot`.
pub(crate) fn export(snapshot: &StatsSnapshot) {
    let StatsSnapshot {
        hits,
        negative_hits,
        misses,
        coalesced,
        upstream_calls,
        upstream_errors,
        overloaded,
        backed_off,
        stale_served,
        revocations,
        revoked,
        missing_token,
        malformed,
    } = *snapshot;
    for (name, value) in [
        ("tower_amazon_auth_hits_total", hits),
        ("tower_amazon_auth_negative_hits_total", negative_hits),
        ("tower_amazon_auth_misses_total", misses),
        ("tower_amazon_auth_coalesced_total", coalesced),
        ("tower_amazon_auth_upstream_calls_total", upstream_calls),
        ("tower_amazon_auth_upstream_errors_total", upstream_errors),
        ("tower_amazon_auth_overloaded_total", overloaded),
        ("tower_amazon_auth_backed_off_total", backed_off),
        ("tower_amazon_auth_stale_served_total", stale_served),
        ("tower_amazon_auth_revocations_total", revocations),
        ("tower_amazon_auth_revoked_total", revoked),
        ("tower_amazon_auth_missing_token_total", missing_token),
        ("tower_amazon_auth_malformed_total", malformed),
    ] {
        metrics::counter!(name).absolute(value);
    }
}
