//! [`Flights`]: coalescing. At most one verification per token is under way; a miss for a token
//! already being verified waits for that verification's verdict instead of asking Amazon.
//!
//! Today this is `moka::future::Cache::try_get_with`, with the entry dropped as soon as the
//! verification ends. Every caller of the cache goes through [`Flights::run`],
//! [`Flights::forget`] and [`Flights::forget_all`] only, so the table behind them can change
//! without touching the cache.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;

use super::entry::Entry;
use super::key::TokenKey;
use crate::error::AuthError;

/// The verifications under way, one per token.
pub(crate) struct Flights {
    table: moka::future::Cache<TokenKey, Entry, RandomState>,
}

/// How a call of [`Flights::run`] ended.
pub(crate) struct Landed {
    /// The verdict of the flight.
    pub(crate) verdict: Result<Entry, Arc<AuthError>>,
    /// Whether the caller waited on a flight another request had started.
    pub(crate) coalesced: bool,
}

impl Flights {
    /// A table for up to `capacity` tokens at once; a flight is forgotten after `deadline` at
    /// the latest.
    pub(crate) fn new(capacity: u64, deadline: Duration) -> Self {
        let table = moka::future::Cache::builder()
            .max_capacity(capacity)
            .time_to_live(deadline)
            .build_with_hasher(RandomState::default());
        Self { table }
    }

    /// Runs `verify` for `key`, unless a verification of `key` is already under way: then
    /// waits for that one's verdict instead.
    pub(crate) async fn run<F>(&self, key: TokenKey, verify: F) -> Landed
    where
        F: Future<Output = Result<Entry, AuthError>>,
    {
        // Set when this caller's own verification runs; unset, it waited on another's.
        let ran = AtomicBool::new(false);
        let verify = async {
            ran.store(true, Relaxed);
            verify.await
        };
        let verdict = self.table.try_get_with(key, verify).await;
        self.table.invalidate(&key).await;
        Landed {
            verdict,
            coalesced: !ran.load(Relaxed),
        }
    }

    /// Forgets the flight of `key`, if any.
    pub(crate) async fn forget(&self, key: TokenKey) {
        self.table.invalidate(&key).await;
    }

    /// Forgets every flight.
    pub(crate) fn forget_all(&self) {
        self.table.invalidate_all();
    }
}
