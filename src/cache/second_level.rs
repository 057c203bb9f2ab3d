//! Where the cache's local levels meet a [second level](crate::second_level): the verifying
//! request's look there before Amazon (its payload checked here as Amazon's answer is), the
//! write-back of a verdict through the level's [`Claim`], the second-level half of `invalidate`
//! and `revoke`, and the [`LocalLevels`] that the level's remote events reach. The rules are
//! those of `mod.rs` and of the `second_level` module.

use std::time::{Duration, Instant, SystemTime};

use super::entry::Entry;
use super::payload::{rejection_code, Decoded, Record};
use super::{IdentityCache, Inner, Verdict};
use crate::access_token::AccessToken;
use crate::error::{AuthError, CacheError, Rejection};
use crate::second_level::{Claim, LocalLevels, Lookup};
use crate::token_key::TokenKey;

/// The claim a verification that found nothing usable in the second level holds while it asks
/// Amazon (`None` without a second level).
pub(super) type HeldClaim = Option<Box<dyn Claim>>;

impl IdentityCache {
    /// The verifying request's look in the second level, before asking Amazon: `Ok` verdict
    /// when the level had one (or a tombstone), stored locally as a fresh verification's would
    /// be, after the same checks (`aud`, expiry: see [`Record::decode`]) and this cache's own:
    /// no older than its lives, not verified before this instance last forgot the token.
    /// `Err` with the claim to hand to [`Inner::tell_second_level`] once Amazon answered.
    pub(super) async fn ask_second_level(
        &self,
        key: TokenKey,
        generation: u64,
        token: &AccessToken,
    ) -> Result<Verdict, HeldClaim> {
        let inner = &*self.inner;
        let Some(level) = inner.second_level.as_ref() else {
            return Err(None);
        };
        let (payload, life, claim) = match level.lookup(key, token).await {
            Lookup::Miss(claim) => return Err(Some(claim)),
            Lookup::Revoked(left) => {
                // Here too from now on, even if the level goes away.
                inner.install_tombstone(key, left);
                return Ok(Err(AuthError::InvalidToken(Rejection::Revoked)));
            }
            Lookup::Found { payload, life, claim } => (payload, life, claim),
        };
        let verifier = &inner.verifier;
        let Some((decoded, age)) = Record::decode(&payload, &verifier.client_ids, verifier.check_audience)
        else {
            return Err(Some(claim));
        };
        let now = Instant::now();
        let policy = &inner.policy;
        let forgotten = inner.forgotten.get(&key);
        match decoded {
            // Verified before this instance last forgot the token: a copy from before an
            // invalidation, written back. Asked of Amazon again.
            _ if forgotten.is_some_and(|at| now.checked_sub(age).is_none_or(|verified| verified <= at)) => {
                Err(Some(claim))
            }
            // Held to this cache's own lives, counted from the verification: a verdict older
            // than that is asked of Amazon again.
            Decoded::Valid(_) if age >= policy.max_ttl => Err(Some(claim)),
            Decoded::Rejected(_) if age >= policy.negative_ttl => Err(Some(claim)),
            // Too close to its expiry for this cache's clock skew: Amazon refuses it as expired.
            Decoded::Valid(identity) if policy.usable_for(&identity, now).is_zero() => Err(Some(claim)),
            Decoded::Valid(identity) => {
                let max_fresh = life.min(policy.max_ttl - age);
                let entry = policy.identity_entry(identity, inner.origin(), now, max_fresh, generation);
                inner.store_identity(key, generation, &entry);
                Ok(Ok(entry))
            }
            Decoded::Rejected(error) => {
                let max_life = life.min(policy.negative_ttl - age);
                let entry = policy.rejection_entry(error, now, max_life, generation);
                inner.remember_rejection(key, generation, &entry);
                Ok(Ok(entry))
            }
        }
    }
}

impl Inner {
    /// Writes a verdict this instance got from Amazon (and stored) to the second level, in the
    /// background; with `None`, only gives the claim up.
    pub(super) fn tell_second_level(&self, entry: Option<&Entry>, claim: HeldClaim) {
        let Some(claim) = claim else { return };
        let now = Instant::now();
        let fill = match entry {
            Some(Entry::Valid {
                identity,
                fresh_until,
                ..
            }) => Some((
                Record::Valid(identity.record()),
                fresh_until.saturating_duration_since(now),
            )),
            Some(Entry::Rejected {
                error, kept_until, ..
            }) => rejection_code(error)
                .map(|code| (Record::Rejected(code), kept_until.saturating_duration_since(now))),
            None => None,
        };
        let Some((payload, life)) =
            fill.and_then(|(record, life)| Some((record.encode(SystemTime::now())?, life)))
        else {
            // Dropped: the claim is released.
            return;
        };
        tokio::spawn(claim.fill(payload, life));
    }

    /// The second-level half of `invalidate` (without `revoked_for`) and of a revocation.
    pub(super) async fn forget_in_second_level(
        &self,
        key: TokenKey,
        token: Option<&AccessToken>,
        revoked_for: Option<Duration>,
    ) -> Result<(), CacheError> {
        let Some(level) = &self.second_level else {
            return Ok(());
        };
        level
            .forget(key, token, revoked_for)
            .await
            .map_err(|_| CacheError::SecondLevel)
    }
}

impl LocalLevels for Inner {
    fn forget(&self, key: TokenKey) {
        Inner::forget(self, key);
    }

    fn revoke(&self, key: TokenKey, revoked_for: Duration) {
        self.install_tombstone(key, revoked_for);
    }

    fn forget_all(&self) {
        self.flush();
    }
}
