//! [`AttachedFleet`]: the fleet level as the core sees it, a [`SecondLevel`]: the [`Fleet`]
//! settings attached to a cache, and each call of the core's contract mapped onto
//! [`FleetLevel`].

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tower_amazon_auth::second_level::{
    CacheSettings, IntoSecondLevel, Lookup, RemoteEvents, SecondLevel, SecondLevelError, SessionStore,
    TokenKey,
};
use tower_amazon_auth::AccessToken;

use crate::claim::FleetClaim;
use crate::level::{self, FleetLevel};
use crate::session_store::FleetSessions;
use crate::settings::Fleet;
use crate::subscriber;

/// The fleet level of one cache, attached.
struct AttachedFleet {
    level: Arc<FleetLevel>,
}

/// Redis could not be reached: the change is local only for now.
#[derive(Debug, thiserror::Error)]
#[error("Redis (the fleet cache level) could not be reached")]
struct Unreachable;

impl IntoSecondLevel for Fleet {
    fn attach(self, cache: &CacheSettings<'_>) -> Result<Arc<dyn SecondLevel>, SecondLevelError> {
        self.check().map_err(SecondLevelError::new)?;
        let level = FleetLevel::new(self, cache).map_err(SecondLevelError::new)?;
        Ok(Arc::new(AttachedFleet {
            level: Arc::new(level),
        }))
    }
}

impl SecondLevel for AttachedFleet {
    fn digest_key(&self) -> Option<[u8; 16]> {
        Some(self.level.digest_key())
    }

    fn extra_wait(&self) -> Duration {
        self.level.extra_wait()
    }

    fn lookup<'a>(&'a self, key: TokenKey, token: &'a AccessToken) -> BoxFuture<'a, Lookup> {
        Box::pin(async move {
            let claim = |seen, may_hold_lock| {
                Box::new(FleetClaim::new(Arc::clone(&self.level), key, seen, may_hold_lock))
            };
            match self.level.lookup(key, token.expose()).await {
                level::Lookup::Revoked(left) => Lookup::Revoked(left),
                level::Lookup::Found(payload, life, seen) => Lookup::Found {
                    payload,
                    life,
                    claim: claim(seen, false),
                },
                level::Lookup::Miss(seen) => Lookup::Miss(claim(seen, true)),
            }
        })
    }

    fn forget<'a>(
        &'a self,
        key: TokenKey,
        token: Option<&'a AccessToken>,
        revoked_for: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), SecondLevelError>> {
        Box::pin(async move {
            self.level
                .forget(key, token.map(AccessToken::expose), revoked_for)
                .await
                .map_err(|()| SecondLevelError::new(Unreachable))
        })
    }

    fn subscribe(&self, events: RemoteEvents) {
        subscriber::spawn(&self.level, events);
    }

    /// Sign-in's sessions and logins under way, in Redis for the whole fleet.
    fn session_store(&self) -> Option<Arc<dyn SessionStore>> {
        Some(Arc::new(FleetSessions::new(Arc::clone(&self.level))))
    }

    #[cfg(feature = "metrics")]
    fn export_metrics(&self) {
        crate::FleetStats::from_level(&self.level).export();
    }

    /// The [`FleetLevel`] itself, which [`FleetStats::of`](crate::FleetStats::of) reads.
    fn as_any(&self) -> &dyn Any {
        &*self.level
    }
}
