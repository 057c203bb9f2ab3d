//! [`Generations`]: the one rule every cache level obeys. Each token has a generation; forgetting
//! the token ([`IdentityCache::invalidate`](crate::IdentityCache::invalidate), `revoke`,
//! `invalidate_all`) bumps it, and a verdict computed under an older generation is never stored
//! and never served. (A rejection learned from Amazon replaces the token's entry itself and
//! tells the memos through their own epochs: rejections are frequent, and bumping a striped
//! generation would outdate unrelated verified tokens.)
//!
//! Generations are striped: tokens share [`STRIPES`] counters by their key's high bits, so the
//! table has a fixed size (512 KiB) and a read is one atomic load. Bumping a token's generation
//! also outdates the tokens that share its stripe (about one in 65 536): they are verified again
//! at their next request, never served wrongly. The per-thread memo picks its slot with the
//! key's low bits, so the two never line up.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::token_key::TokenKey;

/// Counters in the table; a power of two.
pub(crate) const STRIPES: usize = 1 << 16;

/// The generation of every token, striped.
pub(crate) struct Generations {
    stripes: Box<[AtomicU64]>,
}

impl Default for Generations {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Generations {
    /// The current generation of `key`. Read it before reading any level, and stamp what is
    /// computed from that read with it.
    #[inline]
    pub(crate) fn current(&self, key: TokenKey) -> u64 {
        self.stripes[stripe(key)].load(Ordering::Acquire)
    }

    /// Outdates everything computed under `key`'s current generation. Call it before clearing
    /// the levels, so a verdict stored in between is stamped with an old generation.
    pub(crate) fn bump(&self, key: TokenKey) {
        self.stripes[stripe(key)].fetch_add(1, Ordering::AcqRel);
    }

    /// Outdates every token's generation.
    pub(crate) fn bump_all(&self) {
        for stripe in &*self.stripes {
            stripe.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[inline]
fn stripe(key: TokenKey) -> usize {
    // Truncation intended: the high 64 bits, then their low bits pick the stripe.
    key.high_bits() & (STRIPES - 1)
}
