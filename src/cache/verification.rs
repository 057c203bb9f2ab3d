//! A miss's work, done by one request per token and generation: [`IdentityCache::verify_and_store`]
//! asks the second level, then Amazon (under the in-flight limit), and stores the verdict if it
//! is still of the token's current [generation](super::generation); when Amazon cannot answer,
//! stale-if-error may serve the identity kept from before.

use std::sync::Weak;
use std::time::Instant;

use super::entry::Entry;
use super::expiry::serve_stale;
use super::{IdentityCache, Inner, Verdict};
use crate::access_token::AccessToken;
use crate::error::{AuthError, Unavailable};
use crate::identity::Origin;
use crate::token_key::TokenKey;

impl IdentityCache {
    /// Asks Amazon once about `token` and stores the verdict, if it is still of the token's
    /// current generation.
    pub(super) async fn verify_and_store(
        &self,
        key: TokenKey,
        generation: u64,
        token: &AccessToken,
    ) -> Verdict {
        let inner = &*self.inner;
        // A verification that ended between our cache read and joining, or a stale identity
        // kept for stale-if-error.
        let now = Instant::now();
        let stale = match inner.store.get(&key) {
            Some(entry) if entry.generation() == generation && entry.is_kept(now) => {
                if entry.is_fresh(now) {
                    return Ok(entry);
                }
                Some(entry)
            }
            _ => None,
        };
        let standing = |entry: &Entry| entry.generation() == generation && entry.is_kept(now);
        if let Some(entry) = inner.rejected.get(&key).filter(standing) {
            return Ok(entry);
        }
        let claim = match self.ask_second_level(key, generation, token).await {
            Ok(verdict) => return verdict,
            Err(claim) => claim,
        };
        let started = Instant::now();
        // Over the in-flight limit is a failure like any other: shed at once, or stale-if-error.
        let outcome = match inner.limiter.try_acquire() {
            Ok(_permit) => inner.verifier.verify(token, &inner.stats).await,
            Err(_) => Err(AuthError::Unavailable(Unavailable::Overloaded)),
        };
        let elapsed_us = started.elapsed().as_micros() as u64;
        match outcome {
            Ok((identity, received)) => {
                tracing::debug!(user_id = identity.user_id(), elapsed_us, "token verified");
                let policy = &inner.policy;
                let entry =
                    policy.identity_entry(identity, inner.origin(), received, policy.max_ttl, generation);
                let stored = inner.store_identity(key, generation, &entry);
                inner.tell_second_level(stored.then_some(&entry), claim);
                Ok(entry)
            }
            Err(error) if error.is_definite() => {
                tracing::debug!(%error, elapsed_us, "token rejected");
                let negative_ttl = inner.policy.negative_ttl;
                let entry = inner
                    .policy
                    .rejection_entry(error, Instant::now(), negative_ttl, generation);
                let stored = inner.remember_rejection(key, generation, &entry);
                inner.tell_second_level(stored.then_some(&entry), claim);
                Ok(entry)
            }
            Err(error) => {
                inner.stats.record_error(&error);
                // No verdict for the second level: let another instance try.
                inner.tell_second_level(None, claim);
                if let Some(entry) = stale.and_then(|stale| serve_stale(stale, Instant::now())) {
                    if let Some(suppressed) = inner.warn_stale.admit() {
                        tracing::warn!(%error, elapsed_us, suppressed, "Amazon unavailable: serving a stale identity");
                    }
                    inner.stats.stale_served.incr();
                    inner.store_identity(key, generation, &entry);
                    return Ok(entry);
                }
                match inner.warn_unverified.admit() {
                    Some(suppressed) => {
                        tracing::warn!(%error, elapsed_us, suppressed, "token could not be verified");
                    }
                    None => tracing::debug!(%error, elapsed_us, "token could not be verified"),
                }
                Err(error)
            }
        }
    }
}

impl Inner {
    /// This cache, as the identities it stores know it.
    pub(super) fn origin(&self) -> Weak<dyn Origin> {
        self.this.clone() as Weak<dyn Origin>
    }

    /// Whether a verdict computed under `generation` may be stored for `key`: it is still the
    /// current generation, and the token is not revoked (a second line of defence: `resolve`
    /// checks the tombstone before joining).
    fn storable(&self, key: TokenKey, generation: u64) -> bool {
        self.generations.current(key) == generation && !self.is_revoked(key)
    }

    /// Stores an identity computed under `generation`, if [storable](Self::storable); whether
    /// it did. Stamped with `generation`: if an invalidation bumps it after this check, readers
    /// ignore the entry.
    pub(super) fn store_identity(&self, key: TokenKey, generation: u64, entry: &Entry) -> bool {
        let storable = self.storable(key, generation);
        if storable {
            self.store.insert(key, entry.clone());
        }
        storable
    }

    /// Remembers a definite rejection computed under `generation`, if that is still current;
    /// whether it did.
    pub(super) fn remember_rejection(&self, key: TokenKey, generation: u64, entry: &Entry) -> bool {
        if self.generations.current(key) != generation {
            return false;
        }
        self.store.invalidate(&key);
        self.rejected.insert(key, entry.clone());
        // A thread may still remember the token as valid, if the store dropped it to make room
        // before this verification: from now on, none does.
        self.memo.forget(key);
        true
    }
}
