//! [`Entry`]: what the cache remembers about one token (a verified identity or a definite
//! rejection, each with its deadline and the [generation](super::generation) it was computed
//! under), and [`EntryExpiry`], which tells `moka` when to drop it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;

use super::key::TokenKey;
use crate::error::AuthError;
use crate::identity::Identity;

/// What the cache remembers about a token.
#[derive(Clone)]
pub(crate) enum Entry {
    /// Verified: the identity, served until `fresh_until`, kept until `until` (later than
    /// `fresh_until` only with stale-if-error, and never past the token's own expiry).
    Valid {
        identity: Arc<Identity>,
        fresh_until: Instant,
        until: Instant,
        generation: u64,
    },
    /// A definite rejection, remembered until `until`.
    Rejected {
        error: AuthError,
        until: Instant,
        generation: u64,
    },
}

impl Entry {
    fn until(&self) -> Instant {
        match self {
            Self::Valid { until, .. } | Self::Rejected { until, .. } => *until,
        }
    }

    /// The token's generation the entry was computed under: served only while it is current.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Self::Valid { generation, .. } | Self::Rejected { generation, .. } => *generation,
        }
    }

    /// Whether the entry may be served at `now` without asking Amazon again.
    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        match self {
            Self::Valid { fresh_until, .. } => now < *fresh_until,
            Self::Rejected { .. } => true,
        }
    }

    /// The verdict the entry stands for.
    pub(crate) fn verdict(self) -> Result<Arc<Identity>, AuthError> {
        match self {
            Self::Valid { identity, .. } => Ok(identity),
            Self::Rejected { error, .. } => Err(error),
        }
    }
}

/// Per-entry expiry: `moka` drops an entry at its `until`.
pub(crate) struct EntryExpiry;

impl Expiry<TokenKey, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &TokenKey, entry: &Entry, now: Instant) -> Option<Duration> {
        Some(entry.until().saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &TokenKey,
        entry: &Entry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.until().saturating_duration_since(now))
    }
}
