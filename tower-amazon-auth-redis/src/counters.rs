//! [`Counters`]: what the fleet level counts, live (read through
//! [`FleetStats`](crate::FleetStats)).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What the fleet level counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    Hits,
    Misses,
    Errors,
    Received,
    LockWaits,
    Subscriptions,
    LivenessFailures,
    Dropped,
}

/// The live counters, one atomic per [`Count`].
#[derive(Debug, Default)]
pub(crate) struct Counters([AtomicU64; 8]);

impl Counters {
    /// Counts one more `what`.
    pub(crate) fn incr(&self, what: Count) {
        self.0[what as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn get(&self, what: Count) -> u64 {
        self.0[what as usize].load(Relaxed)
    }
}
