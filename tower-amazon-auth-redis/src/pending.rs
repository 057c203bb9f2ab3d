//! [`Pending`]: the revocations that could not be written to Redis (each with its token's
//! cluster tag, and when it ends), kept for the subscriber to write them again every second
//! while it is connected, until they are written or end.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tower_amazon_auth::second_level::TokenKey;

use crate::cluster::SlotTag;

/// Most revocations kept for a retry while Redis is away.
const MAX_PENDING: usize = 10_000;

/// One revocation waiting for Redis: its key, its cluster tag, when it ends.
pub(crate) type Revocation = (TokenKey, Option<SlotTag>, Instant);

/// The revocations waiting for Redis.
#[derive(Default)]
pub(crate) struct Pending(Mutex<Vec<Revocation>>);

impl Pending {
    /// Keeps `revocation` for a retry (unless too many wait already: warned about).
    pub(crate) fn push(&self, revocation: Revocation) {
        let mut pending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() < MAX_PENDING {
            pending.push(revocation);
        } else {
            tracing::warn!("fleet cache level: too many revocations waiting for Redis: one is local only");
        }
    }

    /// Every revocation waiting (none is left).
    pub(crate) fn take(&self) -> Vec<Revocation> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts back the revocations still to be written.
    pub(crate) fn put_back(&self, left: Vec<Revocation>) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend(left);
    }

    /// Whether revocations wait for Redis.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }
}
