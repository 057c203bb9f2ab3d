//! [`SharedStore`]: the [`SessionStore`] every instance shares, as the sessions use it: how
//! long a copy is served, how long an ended session's tombstone stays, the fleet's digest.

use std::sync::Arc;
use std::time::Duration;

use crate::second_level::SessionStore;
use crate::token_key::KeyedDigest;

/// The store every instance shares, and how this instance uses it.
pub(crate) struct SharedStore {
    pub(super) store: Arc<dyn SessionStore>,
    /// How long a copy is served before the store is read again (the cache's `max_ttl`).
    pub(super) copy_life: Duration,
    /// How long an ended session's tombstone stays: longer than any copy may be served, plus a
    /// refresh that was under way.
    pub(super) tombstone_life: Duration,
}

impl SharedStore {
    /// `store`, with copies served for `copy_life` and refreshes taking up to `refresh_time`.
    pub(crate) fn new(store: Arc<dyn SessionStore>, copy_life: Duration, refresh_time: Duration) -> Self {
        Self {
            store,
            copy_life,
            tombstone_life: copy_life + refresh_time * 2,
        }
    }

    /// The digest the fleet names sessions (and logins) with.
    pub(super) fn digest(&self) -> KeyedDigest {
        KeyedDigest::with_key(self.store.digest_key())
    }
}
