//! Revocation (logout) and forgetting: the tombstones that refuse a token until its expiry,
//! and outdating a token (or every token) on every level by bumping its
//! [generation](super::generation) first, then clearing the levels.

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use super::entry::Entry;
use super::Inner;
use crate::error::{AuthError, CacheError, Rejection};
use crate::identity::Origin;
use crate::token_key::TokenKey;

/// Whose share of `max_revocations` a revocation counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// The token's user's (`max_revocations_per_user`), when the cache knows the user.
    User,
    /// Nobody's: a website session's own token at logout (it never left the server, so the
    /// user's logouts from sessions must not use up what their bearer tokens may need).
    Exempt,
}

/// How long a revocation lasts when the token's expiry is unknown (Amazon's tokens live an
/// hour).
const REVOKED_UNKNOWN_EXPIRY: Duration = Duration::from_secs(3600);

/// The longest a revocation learned from a second level is kept here (its word is not trusted
/// to overflow a deadline).
const MAX_TOMBSTONE: Duration = Duration::from_secs(24 * 3600);

impl Inner {
    /// Whether `key` is revoked now.
    pub(super) fn is_revoked(&self, key: TokenKey) -> bool {
        self.revoked.get(&key).is_some_and(|until| Instant::now() < until)
    }

    /// Counts and returns the refusal of a revoked token.
    pub(super) fn refuse_revoked(&self) -> AuthError {
        self.stats.revoked.incr();
        AuthError::InvalidToken(Rejection::Revoked)
    }

    /// Outdates every token on every level, then clears them (revocations stay).
    pub(super) fn flush(&self) {
        self.generations.bump_all();
        self.store.invalidate_all();
        self.rejected.invalidate_all();
        self.in_flight.forget_all();
    }

    /// Outdates `key` on every level, then clears them.
    pub(super) fn forget(&self, key: TokenKey) {
        self.generations.bump(key);
        if self.second_level.is_some() {
            self.forgotten.insert(key, Instant::now());
        }
        self.store.invalidate(&key);
        self.rejected.invalidate(&key);
        self.in_flight.forget(key);
    }

    /// Writes `key`'s tombstone, then forgets it everywhere; refuses when `max_revocations` are
    /// in force, or (counted against `budget`) the user's share of them. Returns for how long
    /// the token is revoked.
    pub(super) fn revoke_key(&self, key: TokenKey, budget: Budget) -> Result<Duration, CacheError> {
        let now = Instant::now();
        let identity = match self.store.get(&key) {
            Some(Entry::Valid { identity, .. }) => Some(identity),
            _ => None,
        };
        let until = identity
            .as_ref()
            .and_then(|identity| identity.token_expires())
            .unwrap_or(now + REVOKED_UNKNOWN_EXPIRY)
            .max(now + self.policy.negative_ttl);
        if !self.revoked.contains_key(&key) {
            // `moka` counts lazily: apply the pending writes and sweep the expired first (a
            // logout is rare enough to pay for it).
            self.revoked.run_pending_tasks();
            if self.revoked.entry_count() >= self.policy.max_revocations {
                tracing::warn!(
                    max_revocations = self.policy.max_revocations,
                    "revocation refused: too many in force"
                );
                return Err(CacheError::TooManyRevocations);
            }
            // Counted against the user last, so a refusal above costs the user nothing.
            if let (Budget::User, Some(identity)) = (budget, &identity) {
                if !self.user_revocations.admit(identity.user_id(), until, now) {
                    tracing::warn!(
                        user_id = identity.user_id(),
                        max_revocations_per_user = self.policy.max_revocations_per_user,
                        "revocation refused: too many of this user's in force"
                    );
                    return Err(CacheError::TooManyRevocations);
                }
            }
        }
        self.revoked.insert(key, until);
        self.stats.revocations.incr();
        self.forget(key);
        Ok(until.saturating_duration_since(now).max(Duration::from_millis(1)))
    }

    /// A revocation another instance made (or found in the second level): refused here for
    /// `revoked_for` (at most a day, whatever the level says: no token lives longer), and
    /// forgotten. Beyond `max_revocations` only forgotten (the tombstone in the level still
    /// refuses it at the next miss).
    pub(super) fn install_tombstone(&self, key: TokenKey, revoked_for: Duration) {
        let until = Instant::now() + revoked_for.min(MAX_TOMBSTONE);
        let known = self.revoked.get(&key);
        if known.is_none_or(|known| known < until)
            && (known.is_some() || self.revoked.entry_count() < self.policy.max_revocations)
        {
            self.revoked.insert(key, until);
        }
        self.forget(key);
    }
}

/// What [`AmazonUser::revoke`](crate::AmazonUser::revoke) reaches through the identity.
impl Origin for Inner {
    fn revoke(&self, key: TokenKey) -> BoxFuture<'_, Result<(), CacheError>> {
        Box::pin(async move {
            let revoked_for = self.revoke_key(key, Budget::User)?;
            self.forget_in_second_level(key, None, Some(revoked_for)).await
        })
    }
}
