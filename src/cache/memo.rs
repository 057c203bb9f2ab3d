//! [`Memo`]: each thread's small memory of the identities it served last, in front of the
//! identity cache's `moka` store.
//!
//! A hit answered by `moka` costs about 150 ns: the read is recorded for the eviction policy
//! (a channel send, later an access-order update) and touches atomics every core shares, so a
//! hot token slows down as cores are added. A client on a kept-alive connection sends the same
//! token request after request, so each thread keeps the last few verdicts it read from the
//! store in a direct-mapped table only it touches. A memo hit costs a clock read and a compare.
//!
//! The first memo hit of an identity on a thread makes the thread a copy of it, so the
//! reference count every request bumps is in memory no other core writes. That copy is the only
//! allocation the memo makes on a hit: once per token and thread for as long as the token keeps
//! its slot (again after an invalidation, a slot collision or expiry). A table holds at most
//! [`SLOTS`] identities, and a thread's table lives as long as the cache (a later thread may
//! take it over).
//!
//! With many tokens, slots are shared and overwritten often. A slot whose identity the memo
//! has served since another token last came by keeps it that once (a second chance, as in
//! CLOCK): under a skewed load a hot token is not displaced by every cold one that shares its
//! slot. (Simulated on the peer bench's Zipf(1.0) sequence over 100 000 tokens, this raises the
//! memo's hit rate from 19.6 % to 23.8 % of requests; with 10 000 uniform tokens it stays at
//! 0.6 %.)
//!
//! The memo holds only verified identities read from the store (or just stored by this thread's
//! verification), each until the store entry's own `fresh_until`, on the same clock, and each
//! with a [`Stamp`] of what it was read under:
//!
//! - the token's [generation](super::generation): `invalidate`, `revoke` and `invalidate_all`
//!   bump it, and every level, the memos included, ignores what was read under an older one;
//! - its slot's epoch, shared by every thread: [`Memo::forget`] bumps it when the store learns
//!   that a token is rejected, in case a memo still holds the token as valid (the store may have
//!   dropped its entry to make room). That outdates the other tokens of the slot index in every
//!   memo too, which costs them a store read, never a verification: so rejections, which a flood
//!   of made-up tokens makes frequent, never bump generations.
//!
//! A slot whose stamp is not the current one is never served; no message goes to any thread.
//!
//! `moka` does not see memo hits, so its eviction policy may take a token the memo keeps
//! serving for a cold one. That costs at most one early verification on each thread that has not
//! memoized the token (whose verdict it then memoizes); a memo still serves the token only until
//! the `fresh_until` at which the store's entry would have expired anyway.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_utils::CachePadded;
use thread_local::ThreadLocal;

use crate::identity::Identity;
use crate::token_key::TokenKey;

/// Slots per thread. A power of two: the slot is the key's low bits. Keys are a secret-keyed
/// digest, so nobody can aim many tokens at one slot.
const SLOTS: usize = 64;

/// One remembered verdict.
struct Slot {
    key: TokenKey,
    /// What it was read under, read before the store was, so an invalidation racing the read
    /// wins.
    stamp: Stamp,
    /// The store entry's `fresh_until`.
    until: Instant,
    identity: Arc<Identity>,
    /// Whether `identity` is this thread's own copy rather than the store's shared `Arc`.
    owned: bool,
    /// Served from the memo since the slot last turned another token away (see the module
    /// docs).
    used: bool,
}

/// One thread's slots.
type Table = Box<[Option<Slot>]>;

/// Per-thread tables of recently served identities; see the module docs.
pub(crate) struct Memo {
    /// `ThreadLocal` keeps the threads' values side by side: padded, so one thread's borrow
    /// flag never shares a cache line with another's.
    threads: ThreadLocal<CachePadded<RefCell<Table>>>,
    /// One epoch per slot index, shared by every thread's table.
    epochs: Box<[AtomicU64]>,
}

/// What a remembered identity was read under (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    generation: u64,
    epoch: u64,
}

impl Default for Memo {
    fn default() -> Self {
        Self {
            threads: ThreadLocal::new(),
            epochs: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Memo {
    /// The current stamp of `key`, whose generation is `generation`: read it before reading the
    /// store, and pass it to [`Memo::get`] and [`Memo::put`].
    #[inline]
    pub(crate) fn stamp(&self, key: TokenKey, generation: u64) -> Stamp {
        Stamp {
            generation,
            epoch: self.epochs[slot_of(key)].load(Ordering::Acquire),
        }
    }

    /// The identity this thread remembers for `key`, if still fresh at `now` and remembered
    /// under `stamp`, the current one.
    #[inline]
    pub(crate) fn get(&self, key: TokenKey, stamp: Stamp, now: Instant) -> Option<Arc<Identity>> {
        let mut table = self.threads.get()?.borrow_mut();
        let slot = table[slot_of(key)].as_mut()?;
        if slot.key != key || slot.stamp != stamp || now >= slot.until {
            return None;
        }
        if !slot.owned {
            // The first memo hit: this thread's own copy from now on (see the module docs).
            slot.identity = Arc::new(Identity::clone(&slot.identity));
            slot.owned = true;
        }
        slot.used = true;
        Some(Arc::clone(&slot.identity))
    }

    /// Remembers, on this thread, that the store served `identity` for `key` at `now`, fresh
    /// until `fresh_until`, read under `stamp`, unless the slot holds another token's identity
    /// that the memo served since another token last came by: that one keeps its slot, once
    /// (see the module docs).
    #[inline]
    pub(crate) fn offer(
        &self,
        key: TokenKey,
        stamp: Stamp,
        now: Instant,
        fresh_until: Instant,
        identity: &Arc<Identity>,
    ) {
        let mut table = self.table().borrow_mut();
        let slot = &mut table[slot_of(key)];
        if let Some(held) = slot {
            if held.used && held.key != key && now < held.until {
                held.used = false;
                return;
            }
        }
        *slot = Some(Slot::new(key, stamp, fresh_until, identity));
    }

    /// Remembers, on this thread, that `key` maps to `identity` until `fresh_until`, as this
    /// thread just verified under `stamp`. Replaces whatever the slot held.
    pub(crate) fn put(&self, key: TokenKey, stamp: Stamp, fresh_until: Instant, identity: &Arc<Identity>) {
        self.table().borrow_mut()[slot_of(key)] = Some(Slot::new(key, stamp, fresh_until, identity));
    }

    /// This thread's table, created at its first use.
    #[inline]
    fn table(&self) -> &RefCell<Table> {
        self.threads.get_or(|| {
            CachePadded::new(RefCell::new(
                std::iter::repeat_with(|| None).take(SLOTS).collect(),
            ))
        })
    }

    /// Forgets `key` on every thread (with whatever shares its slot index). Call it after the
    /// store has changed.
    pub(crate) fn forget(&self, key: TokenKey) {
        self.epochs[slot_of(key)].fetch_add(1, Ordering::Release);
    }
}

impl Slot {
    fn new(key: TokenKey, stamp: Stamp, until: Instant, identity: &Arc<Identity>) -> Self {
        Self {
            key,
            stamp,
            until,
            identity: Arc::clone(identity),
            owned: false,
            used: false,
        }
    }
}

#[inline]
fn slot_of(key: TokenKey) -> usize {
    // Truncation intended: the low bits pick the slot.
    key.low_bits() & (SLOTS - 1)
}
