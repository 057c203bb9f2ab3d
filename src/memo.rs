//! [`Memo`]: each thread's small memory of the identities it served last, in front of the
//! resolver's `moka` store.
//!
//! A hit answered by `moka` costs about 150 ns: the read is recorded for the eviction policy
//! (a channel send, later an access-order update) and touches atomics every core shares, so a
//! hot token slows down as cores are added. A client on a kept-alive connection sends the same
//! token request after request, so each thread keeps the last few verdicts it read from the
//! store in a direct-mapped table only it touches. A memo hit costs a coarse clock read (the
//! kernel's tick-granular monotonic clock: 4 ns where `Instant::now` takes 22 ns) and a compare.
//! The first time a thread serves an identity from its memo, it makes itself a copy, so the
//! reference count every request bumps is in memory no other core writes; that copy is the
//! only allocation the memo makes on a hit, once per token and thread. A table holds at most
//! [`SLOTS`] identities.
//!
//! The memo never decides anything the store did not: it holds a verified identity read from
//! the store, and forgets it [`CLOCK_MARGIN`] before that entry's `fresh_until`, so the coarse
//! clock's lag cannot stretch a verdict. Invalidation bumps an epoch that every slot is checked
//! against, so `invalidate` and `invalidate_all` reach every thread's memo at once.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coarsetime::Instant;
use crossbeam_utils::CachePadded;
use thread_local::ThreadLocal;

use crate::identity::Identity;
use crate::resolver::TokenKey;

/// Slots per thread. A power of two: the slot is the key's low bits. Keys are a secret-keyed
/// digest, so nobody can aim many tokens at one slot.
const SLOTS: usize = 64;

/// How much earlier than the store the memo forgets an identity: more than the coarse clock's
/// lag (one kernel tick, at most 10 ms on Linux, about 16 ms on Windows).
const CLOCK_MARGIN: Duration = Duration::from_millis(50);

/// One remembered verdict.
struct Slot {
    key: TokenKey,
    /// The epoch read before the store was, so an invalidation racing the read wins.
    epoch: u64,
    /// On the coarse clock, [`CLOCK_MARGIN`] before the store's `fresh_until`.
    until: Instant,
    identity: Arc<Identity>,
    /// Whether `identity` is this thread's own copy rather than the store's shared `Arc`.
    owned: bool,
}

/// One thread's slots.
type Table = Box<[Option<Slot>]>;

/// Per-thread tables of recently served identities; see the module docs.
#[derive(Default)]
pub(crate) struct Memo {
    /// `ThreadLocal` keeps the threads' values side by side: padded, so one thread's borrow
    /// flag never shares a cache line with another's.
    threads: ThreadLocal<CachePadded<RefCell<Table>>>,
    epoch: AtomicU64,
}

impl Memo {
    /// The current epoch: read it before reading the store, and pass it to [`Memo::put`].
    #[inline]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The identity this thread remembers for `key`, if still fresh and not invalidated since
    /// `epoch` (from [`Memo::epoch`]).
    #[inline]
    pub(crate) fn get(&self, key: TokenKey, epoch: u64) -> Option<Arc<Identity>> {
        let mut table = self.threads.get()?.borrow_mut();
        let slot = table[slot_of(key)].as_mut()?;
        if slot.key != key || slot.epoch != epoch || now() >= slot.until {
            return None;
        }
        if !slot.owned {
            // The first memo hit: this thread's own copy from now on (see the module docs).
            slot.identity = Arc::new(Identity::clone(&slot.identity));
            slot.owned = true;
        }
        Some(Arc::clone(&slot.identity))
    }

    /// Remembers, on this thread, that `key` maps to `identity`, fresh for `fresh_for` more, as
    /// read from the store in `epoch`. Replaces whatever the slot held.
    #[inline]
    pub(crate) fn put(&self, key: TokenKey, epoch: u64, fresh_for: Duration, identity: &Arc<Identity>) {
        let Some(lifetime) = fresh_for.checked_sub(CLOCK_MARGIN) else {
            return;
        };
        let table = self.threads.get_or(|| {
            CachePadded::new(RefCell::new(
                std::iter::repeat_with(|| None).take(SLOTS).collect(),
            ))
        });
        table.borrow_mut()[slot_of(key)] = Some(Slot {
            key,
            epoch,
            until: now() + lifetime.into(),
            identity: Arc::clone(identity),
            owned: false,
        });
    }

    /// Forgets everything every thread remembers (their slots go stale at once and are
    /// overwritten on the next store read).
    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
    }
}

/// The coarse clock, without `coarsetime`'s shared "recent" cell (a write every core would
/// fight over).
#[inline]
fn now() -> Instant {
    Instant::now_without_cache_update()
}

#[inline]
fn slot_of(key: TokenKey) -> usize {
    // Truncation intended: the low bits pick the slot.
    (key as usize) & (SLOTS - 1)
}
