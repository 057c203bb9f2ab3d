//! [`InFlight`]: the verifications under way (single-flight). At most one verification per
//! token and generation is under way; a miss for a token already being verified waits for that
//! verification's verdict instead of asking Amazon.
//!
//! The table belongs to the cache, so the cache decides what a verification may do:
//!
//! - a verification is stamped with the token's [generation](super::generation) it started
//!   under, and a request waits only for one of the generation it read or a newer one: a
//!   request that starts after an invalidation never gets the verdict of a verification that
//!   started before it;
//! - [`InFlight::forget`] detaches a token's verification from the table: the requests already
//!   waiting still get its verdict, nobody else joins it, and (its generation being old) the
//!   cache does not store its verdict;
//! - the request that started a verification does it ([`Verifying`]); if it is dropped before
//!   finishing (its client went away), the verification is taken off the table and the
//!   requests waiting for it join again, one of them starting the next, so nobody waits for a
//!   verification nobody does.
//!
//! Generic over the verdict, so a second cache level can reuse it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use foldhash::fast::RandomState;
use tokio::sync::watch;

use crate::token_key::TokenKey;

/// Shards of the table: joining locks one, briefly, never across an `.await`.
const SHARDS: usize = 16;

/// One shard of the table.
type Shard<V> = HashMap<TokenKey, Verification<V>, RandomState>;

/// The verifications under way, one per token.
pub(crate) struct InFlight<V> {
    shards: Box<[Mutex<Shard<V>>]>,
}

/// A verification in the table.
struct Verification<V> {
    generation: u64,
    verdict: watch::Receiver<Option<V>>,
}

/// What a request does after [`InFlight::join`].
pub(crate) enum Joined<'a, V> {
    /// It started the verification: it verifies, then [`Verifying::finish`]es with the verdict.
    Verify(Verifying<'a, V>),
    /// A verification was under way: [`Waiting::verdict`] waits for its verdict.
    Wait(Waiting<V>),
}

/// The request doing a verification. Dropped without finishing, it takes the verification off
/// the table.
pub(crate) struct Verifying<'a, V> {
    table: &'a InFlight<V>,
    key: TokenKey,
    verdict: watch::Sender<Option<V>>,
    /// A receiver of the verification's own channel: tells it from one that replaced it.
    own: watch::Receiver<Option<V>>,
}

/// A request waiting for another's verification.
pub(crate) struct Waiting<V> {
    verdict: watch::Receiver<Option<V>>,
}

impl<V> Default for InFlight<V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::default())).collect(),
        }
    }
}

impl<V> InFlight<V> {
    fn shard(&self, key: TokenKey) -> MutexGuard<'_, Shard<V>> {
        // Truncation intended: the low bits pick the shard.
        lock(&self.shards[key.low_bits() % SHARDS])
    }
}

impl<V: Clone> InFlight<V> {
    /// Joins the verification of `key` under `generation` (or a newer one), or starts one: one
    /// of an older generation is left to the requests waiting for it, and replaced.
    pub(crate) fn join(&self, key: TokenKey, generation: u64) -> Joined<'_, V> {
        let mut shard = self.shard(key);
        if let Some(verification) = shard.get(&key) {
            // A newer verification serves a request that read an older generation just as well.
            if verification.generation >= generation && verification.verdict.has_changed().is_ok() {
                return Joined::Wait(Waiting {
                    verdict: verification.verdict.clone(),
                });
            }
        }
        let (sender, receiver) = watch::channel(None);
        shard.insert(
            key,
            Verification {
                generation,
                verdict: receiver.clone(),
            },
        );
        Joined::Verify(Verifying {
            table: self,
            key,
            verdict: sender,
            own: receiver,
        })
    }

    /// Detaches the verification of `key`, if any: nobody joins it any more.
    pub(crate) fn forget(&self, key: TokenKey) {
        self.shard(key).remove(&key);
    }

    /// Detaches every verification.
    pub(crate) fn forget_all(&self) {
        for shard in &*self.shards {
            lock(shard).clear();
        }
    }

    /// The number of verifications in the table.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }
}

impl<V> Verifying<'_, V> {
    /// Ends the verification: off the table, and `verdict` to every request waiting for it.
    pub(crate) fn finish(self, verdict: V) {
        // Drop takes it off the table; the waiting requests keep their receivers.
        self.verdict.send_replace(Some(verdict));
    }
}

impl<V> Drop for Verifying<'_, V> {
    fn drop(&mut self) {
        // `finish` sends before this runs, so the requests waiting for a finished verification
        // see its verdict; those waiting for an abandoned one see the channel close and join
        // again. Only this verification is taken off: not one that replaced it after a
        // `forget`.
        let mut shard = self.table.shard(self.key);
        if shard
            .get(&self.key)
            .is_some_and(|verification| self.own.same_channel(&verification.verdict))
        {
            shard.remove(&self.key);
        }
    }
}

impl<V: Clone> Waiting<V> {
    /// The verification's verdict, or `None` when the request doing it was dropped before
    /// finishing (join again).
    pub(crate) async fn verdict(mut self) -> Option<V> {
        match self.verdict.wait_for(Option::is_some).await {
            Ok(verdict) => verdict.clone(),
            Err(_) => None,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard cannot leave a map half-updated: recover it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: TokenKey = TokenKey::from_bits(7);

    fn verifying(seat: Joined<'_, u32>) -> Verifying<'_, u32> {
        match seat {
            Joined::Verify(verifying) => verifying,
            Joined::Wait(_) => panic!("expected to start the verification"),
        }
    }

    fn waiting(seat: Joined<'_, u32>) -> Waiting<u32> {
        match seat {
            Joined::Wait(waiting) => waiting,
            Joined::Verify(_) => panic!("expected to wait for a verification under way"),
        }
    }

    #[tokio::test]
    async fn waiting_requests_get_the_verdict_and_the_table_empties() {
        let table = InFlight::default();
        let first = verifying(table.join(KEY, 0));
        let second = waiting(table.join(KEY, 0));
        assert_eq!(table.len(), 1);
        first.finish(42);
        assert_eq!(table.len(), 0, "a finished verification leaves the table");
        assert_eq!(second.verdict().await, Some(42));
    }

    #[tokio::test]
    async fn a_newer_generation_never_waits_for_an_older_verification() {
        let table = InFlight::default();
        let old = verifying(table.join(KEY, 0));
        let old_waiting = waiting(table.join(KEY, 0));
        let new = verifying(table.join(KEY, 1));
        old.finish(1);
        // The old verification's end did not take the newer one off the table.
        assert_eq!(table.len(), 1);
        let new_waiting = waiting(table.join(KEY, 1));
        new.finish(2);
        assert_eq!(old_waiting.verdict().await, Some(1));
        assert_eq!(new_waiting.verdict().await, Some(2));
    }

    #[tokio::test]
    async fn a_forgotten_verification_is_joined_by_nobody_else() {
        let table = InFlight::default();
        let detached = verifying(table.join(KEY, 0));
        let waiting_before = waiting(table.join(KEY, 0));
        table.forget(KEY);
        // Even under the same generation, a request after `forget` starts its own verification.
        let fresh = verifying(table.join(KEY, 0));
        detached.finish(1);
        assert_eq!(
            table.len(),
            1,
            "the detached verification did not take the fresh one off"
        );
        assert_eq!(waiting_before.verdict().await, Some(1));
        fresh.finish(2);
        assert_eq!(table.len(), 0);
    }

    #[tokio::test]
    async fn requests_waiting_for_an_abandoned_verification_join_again() {
        let table = InFlight::<u32>::default();
        let abandoned = verifying(table.join(KEY, 0));
        let waiting = waiting(table.join(KEY, 0));
        drop(abandoned);
        assert_eq!(table.len(), 0);
        assert_eq!(
            waiting.verdict().await,
            None,
            "told to join again, not left waiting"
        );
        let _next = verifying(table.join(KEY, 0));
    }
}
