//! [`FleetStats`]: a copy of the fleet level's counters (the core's
//! [`StatsSnapshot`](tower_amazon_auth::StatsSnapshot) counts the local levels), and their
//! metrics under the names they always had.

use tower_amazon_auth::IdentityCache;

use crate::counters::Count;
use crate::level::FleetLevel;

/// A point-in-time copy of the fleet level's counters, all since the cache was built.
///
/// ```no_run
/// # fn demo(cache: &tower_amazon_auth::IdentityCache) {
/// use tower_amazon_auth_redis::FleetStats;
///
/// if let Some(fleet) = FleetStats::of(cache) {
///     if !fleet.subscribed {
///         eprintln!("not hearing other instances' logouts");
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FleetStats {
    /// Misses answered from Redis (a verdict another instance wrote, or a tombstone).
    pub hits: u64,
    /// Misses Redis had nothing for (or could not answer).
    pub misses: u64,
    /// Redis commands that failed or timed out (the ones not sent while the breaker is open are
    /// not counted: `breaker_open` tells that).
    pub errors: u64,
    /// Messages from other instances applied (invalidations and revocations).
    pub invalidations_received: u64,
    /// Misses that waited for another instance's verification of the same token.
    pub lock_waits: u64,
    /// Times the subscriber (re)subscribed, each flushing the local verdicts.
    pub subscriptions: u64,
    /// Times the subscriber heard nothing on its subscription for too long (see
    /// [`Fleet::liveness`](crate::Fleet::liveness)) and counted it as lost.
    pub liveness_failures: u64,
    /// Messages from other instances dropped: forgets sent more than 5 min from this
    /// instance's clock, or seen before (published again). Revokes are never dropped.
    pub messages_dropped: u64,
    /// Whether the subscriber is connected now.
    pub subscribed: bool,
    /// Whether the breaker keeps Redis out of requests now.
    pub breaker_open: bool,
}

impl FleetStats {
    /// The counters of `cache`'s fleet level; `None` when it has none.
    pub fn of(cache: &IdentityCache) -> Option<Self> {
        Some(Self::from_level(cache.second_level::<FleetLevel>()?))
    }

    pub(crate) fn from_level(level: &FleetLevel) -> Self {
        let counters = &level.counters;
        Self {
            hits: counters.get(Count::Hits),
            misses: counters.get(Count::Misses),
            errors: counters.get(Count::Errors),
            invalidations_received: counters.get(Count::Received),
            lock_waits: counters.get(Count::LockWaits),
            subscriptions: counters.get(Count::Subscriptions),
            liveness_failures: counters.get(Count::LivenessFailures),
            messages_dropped: counters.get(Count::Dropped),
            subscribed: level.is_subscribed(),
            breaker_open: level.breaker_open(),
        }
    }

    /// (feature `metrics`) Publishes the counters through the `metrics` facade, under the
    /// names `tower_amazon_auth_fleet_<field>_total` (counters) and
    /// `tower_amazon_auth_fleet_subscribed`, `…_fleet_breaker_open` (gauges, 1 or 0).
    #[cfg(feature = "metrics")]
    pub(crate) fn export(&self) {
        let Self {
            hits,
            misses,
            errors,
            invalidations_received,
            lock_waits,
            subscriptions,
            liveness_failures,
            messages_dropped,
            subscribed,
            breaker_open,
        } = *self;
        for (name, value) in [
            ("tower_amazon_auth_fleet_hits_total", hits),
            ("tower_amazon_auth_fleet_misses_total", misses),
            ("tower_amazon_auth_fleet_errors_total", errors),
            (
                "tower_amazon_auth_fleet_invalidations_received_total",
                invalidations_received,
            ),
            ("tower_amazon_auth_fleet_lock_waits_total", lock_waits),
            ("tower_amazon_auth_fleet_subscriptions_total", subscriptions),
            (
                "tower_amazon_auth_fleet_liveness_failures_total",
                liveness_failures,
            ),
            ("tower_amazon_auth_fleet_messages_dropped_total", messages_dropped),
        ] {
            metrics::counter!(name).absolute(value);
        }
        for (name, value) in [
            ("tower_amazon_auth_fleet_subscribed", subscribed),
            ("tower_amazon_auth_fleet_breaker_open", breaker_open),
        ] {
            metrics::gauge!(name).set(f64::from(u8::from(value)));
        }
    }
}
