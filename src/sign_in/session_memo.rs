//! [`SessionMemo`]: each thread's memory of the sessions it served last, in front of the
//! session store's `moka` read, as the identity cache's memo is in front of its own: a browser
//! on a kept-alive connection sends the same cookie request after request.
//!
//! A slot is served only under the epoch its slot index had when the store was read: ending a
//! session (logout, a refused refresh, the per-user cap, or the store evicting it) bumps that
//! epoch, after the store entry is gone, so no thread serves an ended session from its memo.
//! (An eviction by the store is seen through its eviction listener, a moment later: what a
//! memo may then still serve for that moment is a session ended for room, not by a logout.)
//! The session's idle and absolute lives are checked on every request, memo hit or not.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use thread_local::ThreadLocal;

use crate::token_key::TokenKey;

/// Slots per thread: the key's low bits pick one.
const SLOTS: usize = 16;

/// One thread's slots: a session's key, the epoch it was read under, the session.
type Table<S> = [Option<(TokenKey, u64, Arc<S>)>; SLOTS];

/// Per-thread tables of recently served sessions (`S`, a session record); see the module docs.
pub(crate) struct SessionMemo<S: Send + Sync> {
    threads: ThreadLocal<CachePadded<RefCell<Table<S>>>>,
    /// One epoch per slot index, shared by every thread's table.
    epochs: Arc<[AtomicU64]>,
}

/// Outdates every thread's memory of one slot index (held by the store's eviction listener).
#[derive(Clone)]
pub(crate) struct Forget(Arc<[AtomicU64]>);

impl Forget {
    /// Outdates what any thread remembers of `key` (and of the keys sharing its slot index).
    pub(crate) fn forget(&self, key: TokenKey) {
        self.0[slot_of(key)].fetch_add(1, Ordering::AcqRel);
    }

    /// Outdates what any thread remembers of every key.
    pub(crate) fn forget_all(&self) {
        for epoch in self.0.iter() {
            epoch.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl<S: Send + Sync> Default for SessionMemo<S> {
    fn default() -> Self {
        Self {
            threads: ThreadLocal::new(),
            epochs: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl<S: Send + Sync> SessionMemo<S> {
    /// What ends sessions holds to outdate them here.
    pub(crate) fn forgetting(&self) -> Forget {
        Forget(Arc::clone(&self.epochs))
    }

    /// The epoch of `key`'s slot: read it before reading the store, and pass it to
    /// [`get`](Self::get) and [`put`](Self::put).
    #[inline]
    pub(crate) fn epoch(&self, key: TokenKey) -> u64 {
        self.epochs[slot_of(key)].load(Ordering::Acquire)
    }

    /// The session this thread remembers for `key` under `epoch`, the current one.
    #[inline]
    pub(crate) fn get(&self, key: TokenKey, epoch: u64) -> Option<Arc<S>> {
        let table = self.threads.get()?.borrow();
        match &table[slot_of(key)] {
            Some((remembered, stamped, session)) if *remembered == key && *stamped == epoch => {
                Some(Arc::clone(session))
            }
            _ => None,
        }
    }

    /// Remembers, on this thread, the session the store served for `key`, read under `epoch`.
    #[inline]
    pub(crate) fn put(&self, key: TokenKey, epoch: u64, session: &Arc<S>) {
        let table = self
            .threads
            .get_or(|| CachePadded::new(RefCell::new(std::array::from_fn(|_| None))));
        table.borrow_mut()[slot_of(key)] = Some((key, epoch, Arc::clone(session)));
    }
}

#[inline]
fn slot_of(key: TokenKey) -> usize {
    key.low_bits() % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_served_only_under_its_epoch() {
        let memo = SessionMemo::<&str>::default();
        let key = TokenKey::from_bits(3);
        let epoch = memo.epoch(key);
        assert!(memo.get(key, epoch).is_none());
        memo.put(key, epoch, &Arc::new("alice"));
        assert_eq!(memo.get(key, epoch).as_deref(), Some(&"alice"));
        assert!(memo.get(TokenKey::from_bits(4), epoch).is_none(), "another key");
        let other = TokenKey::from_bits(3 + SLOTS as u128);
        memo.forgetting().forget(other);
        assert_eq!(
            memo.epoch(key),
            epoch + 1,
            "keys sharing a slot index share its epoch"
        );
        assert!(memo.get(key, memo.epoch(key)).is_none(), "outdated");
    }
}
