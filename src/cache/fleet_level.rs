//! (feature `redis`) Where the cache's local levels meet the fleet level: the verifying request's look in
//! Redis before Amazon, the write-back of a verdict, the fleet half of a revocation, and the
//! [`Local`] side the subscriber applies other instances' messages through. The rules are
//! those of `mod.rs` and `src/fleet/mod.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::entry::Entry;
use super::{IdentityCache, Inner, Verdict};
use crate::access_token::AccessToken;
use crate::error::{AuthError, CacheError, Rejection};
use crate::fleet::level::{FleetLevel, Lookup, Seen};
use crate::fleet::record::{rejection_code, Decoded, Record};
use crate::fleet::subscriber::Local;
use crate::token_key::TokenKey;

impl IdentityCache {
    /// The verifying request's look in Redis, before asking Amazon: `Ok` verdict when Redis had one (or a
    /// tombstone), stored locally as a fresh verification's would be, with the same checks
    /// (`aud`, expiry: see [`Record::decode`]); `Err` with the [`FleetClaim`] to hand to
    /// [`Inner::tell_fleet`] once Amazon answered.
    pub(super) async fn ask_fleet(
        &self,
        key: TokenKey,
        generation: u64,
        token: &AccessToken,
    ) -> Result<Verdict, FleetClaim> {
        let inner = &*self.inner;
        let Some(fleet) = inner.fleet.as_ref() else {
            return Err(FleetClaim::default());
        };
        let now = Instant::now();
        let claim = |seen| FleetClaim {
            fleet: Some(Arc::clone(fleet)),
            key,
            seen,
        };
        let forgotten = inner.forgotten.get(&key);
        match fleet.lookup(key, token.expose()).await {
            Lookup::Miss(seen) => Err(claim(seen)),
            Lookup::Revoked(left) => {
                // Here too from now on, even if Redis goes away.
                inner.install_tombstone(key, left);
                Ok(Err(AuthError::InvalidToken(Rejection::Revoked)))
            }
            // Verified before this instance last forgot the token: a copy from before an
            // invalidation, written back. Asked of Amazon again.
            Lookup::Found(_, _, age)
                if forgotten.is_some_and(|at| now.checked_sub(age).is_none_or(|verified| verified <= at)) =>
            {
                Err(claim(Seen::default()))
            }
            // Held to this cache's own lives, counted from the verification (see
            // `fleet::record`): a verdict older than that is asked of Amazon again.
            Lookup::Found(Decoded::Valid(_), _, age) if age >= inner.policy.max_ttl => {
                Err(claim(Seen::default()))
            }
            // Too close to its expiry for this cache's clock skew: Amazon refuses it as expired.
            Lookup::Found(Decoded::Valid(identity), ..)
                if inner.policy.usable_for(&identity, now).is_zero() =>
            {
                Err(claim(Seen::default()))
            }
            Lookup::Found(Decoded::Rejected(_), _, age) if age >= inner.policy.negative_ttl => {
                Err(claim(Seen::default()))
            }
            Lookup::Found(Decoded::Valid(identity), life, age) => {
                let policy = &inner.policy;
                let max_fresh = life.min(policy.max_ttl - age);
                let entry = policy.identity_entry(identity, inner.origin(), now, max_fresh, generation);
                inner.store_identity(key, generation, &entry);
                Ok(Ok(entry))
            }
            Lookup::Found(Decoded::Rejected(error), life, age) => {
                let max_life = life.min(inner.policy.negative_ttl - age);
                let entry = inner.policy.rejection_entry(error, now, max_life, generation);
                inner.remember_rejection(key, generation, &entry);
                Ok(Ok(entry))
            }
        }
    }
}

/// What a request doing the verification that found nothing in Redis holds while it asks Amazon: the fleet generation
/// its read saw, and perhaps the fleet lock. Handed to [`Inner::tell_fleet`]; dropped instead
/// (the request went away mid-verification, a client gone), it gives the lock up at once, so
/// the other instances' first requests for the token need not wait for it to expire.
#[derive(Default)]
pub(super) struct FleetClaim {
    fleet: Option<Arc<FleetLevel>>,
    key: TokenKey,
    seen: Seen,
}

impl Drop for FleetClaim {
    fn drop(&mut self) {
        let Some(fleet) = self.fleet.take() else { return };
        let key = self.key;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { fleet.release(key).await });
        }
    }
}

impl Inner {
    /// Writes a verdict this instance got from Amazon (and stored) to Redis, in the
    /// background, unless the token's fleet generation moved since the claim's read; with
    /// `None`, only gives up the fleet lock.
    pub(super) fn tell_fleet(&self, entry: Option<&Entry>, mut claim: FleetClaim) {
        let Some(fleet) = claim.fleet.take() else { return };
        let (key, seen) = (claim.key, std::mem::take(&mut claim.seen));
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
        tokio::spawn(async move {
            match fill {
                Some((record, life)) => fleet.fill(key, record, life, seen).await,
                None => fleet.release(key).await,
            }
        });
    }

    /// The fleet half of a revocation: the tombstone in Redis until `until`, published.
    pub(super) async fn revoke_fleet(
        &self,
        key: TokenKey,
        token: Option<&str>,
        until: Instant,
    ) -> Result<(), CacheError> {
        let Some(fleet) = &self.fleet else {
            return Ok(());
        };
        let life = until.saturating_duration_since(Instant::now());
        fleet
            .forget(key, token, Some(life))
            .await
            .map_err(|()| CacheError::Fleet)
    }
}

impl Local for Inner {
    fn forget(&self, key: TokenKey) {
        Inner::forget(self, key);
    }

    fn revoke(&self, key: TokenKey, revoked_for: Duration) {
        self.install_tombstone(key, revoked_for);
    }

    fn flush(&self) {
        Inner::flush(self);
    }
}
