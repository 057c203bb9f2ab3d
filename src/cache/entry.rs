//! [`Entry`]: what the cache remembers about one token (a verified identity or a definite
//! rejection, each with its deadline and the [generation](super::generation) it was computed
//! under), the [`TimeToLive`] after which `moka` drops it, and the [`RevokedExpiry`] of a
//! revocation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::AuthError;
use crate::identity::Identity;
use crate::token_key::TokenKey;

/// How long stale-if-error keeps an identity past `max_ttl` at most, counted from its last
/// store: the life of an Amazon access token.
const STALE_HORIZON: Duration = Duration::from_secs(3600);

/// What the cache remembers about a token.
#[derive(Clone)]
pub(crate) enum Entry {
    /// Verified: the identity, served until `fresh_until`, kept until `kept_until` (later
    /// than `fresh_until` only with stale-if-error, and never past the token's own expiry).
    Valid {
        identity: Arc<Identity>,
        fresh_until: Instant,
        kept_until: Instant,
        generation: u64,
    },
    /// A definite rejection, remembered until `kept_until`.
    Rejected {
        error: AuthError,
        kept_until: Instant,
        generation: u64,
    },
}

impl Entry {
    fn kept_until(&self) -> Instant {
        match self {
            Self::Valid { kept_until, .. } | Self::Rejected { kept_until, .. } => *kept_until,
        }
    }

    /// The token's generation the entry was computed under: served only while it is current.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Self::Valid { generation, .. } | Self::Rejected { generation, .. } => *generation,
        }
    }

    /// Whether the entry still stands at `now` (before its `kept_until`). `moka` may hold an entry
    /// past it (see [`TimeToLive`]): every reader checks this or the stricter
    /// [`is_fresh`](Self::is_fresh).
    pub(crate) fn is_kept(&self, now: Instant) -> bool {
        now < self.kept_until()
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

/// How long after its last write `moka` keeps an entry of each store: at least until the
/// latest `kept_until` the cache gives one, so `moka` never drops an entry that still stands.
/// Readers check `kept_until` themselves ([`Entry::is_kept`], [`Entry::is_fresh`]), so an entry
/// `moka` still holds past it is never served.
///
/// One time to live per store rather than per-entry expiry: a read then skips `moka`'s
/// per-entry expiry bookkeeping (about 260 instructions of a store read), and an entry takes
/// 15 B less. The price: an entry whose token expires before `max_ttl` stays in memory (never
/// served) until `max_ttl` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeToLive {
    /// Verified identities: `kept_until` is at most `max_ttl` after the verification, or with
    /// stale-if-error the token's expiry, kept at most [`STALE_HORIZON`].
    pub(crate) identities: Duration,
    /// Rejections: `kept_until` is at most `negative_ttl` after the verdict.
    pub(crate) rejections: Duration,
}

impl TimeToLive {
    /// The times to live for a cache of these settings.
    pub(crate) fn new(max_ttl: Duration, negative_ttl: Duration, stale_if_error: bool) -> Self {
        Self {
            identities: if stale_if_error {
                max_ttl.max(STALE_HORIZON)
            } else {
                max_ttl
            },
            rejections: negative_ttl,
        }
    }
}

/// Per-entry expiry of a revocation (a tombstone holds the instant its token expires): at the
/// token's expiry.
pub(crate) struct RevokedExpiry;

impl moka::Expiry<TokenKey, Instant> for RevokedExpiry {
    fn expire_after_create(&self, _: &TokenKey, until: &Instant, now: Instant) -> Option<Duration> {
        Some(until.saturating_duration_since(now))
    }
}
