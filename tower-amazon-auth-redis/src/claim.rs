//! [`FleetClaim`]: what a request verifying a token holds after a read found nothing usable in
//! Redis: the token's fleet generation the read saw (a fill must present it unchanged), and
//! perhaps the fleet lock. Filled with the core's verdict, or dropped (the verification failed,
//! or its request went away), which gives the lock up at once, so the other instances' first
//! requests for the token need not wait for it to expire.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tower_amazon_auth::second_level::{Claim, TokenKey};

use crate::level::{FleetLevel, Seen};

/// A verification's claim on a token's fleet entry.
pub(crate) struct FleetClaim {
    /// `None` once filled.
    level: Option<Arc<FleetLevel>>,
    key: TokenKey,
    seen: Seen,
    /// Whether the read may have taken the fleet lock (a read that found a verdict did not).
    may_hold_lock: bool,
}

impl FleetClaim {
    pub(crate) fn new(level: Arc<FleetLevel>, key: TokenKey, seen: Seen, may_hold_lock: bool) -> Self {
        Self {
            level: Some(level),
            key,
            seen,
            may_hold_lock,
        }
    }
}

impl Claim for FleetClaim {
    fn fill(mut self: Box<Self>, payload: Vec<u8>, life: Duration) -> BoxFuture<'static, ()> {
        let level = self.level.take();
        let (key, seen) = (self.key, std::mem::take(&mut self.seen));
        Box::pin(async move {
            if let Some(level) = level {
                level.fill(key, payload, life, seen).await;
            }
        })
    }
}

impl Drop for FleetClaim {
    fn drop(&mut self) {
        let Some(level) = self.level.take() else { return };
        if !self.may_hold_lock {
            return;
        }
        let key = self.key;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { level.release(key).await });
        }
    }
}
