//! [`RemoteEvents`]: how a second level tells the cache what other instances did. Each event
//! goes through the same generation bump as a local `invalidate` or `revoke`, so the cache's one
//! rule holds for it.

use std::sync::Weak;
use std::time::Duration;

use super::TokenKey;

/// The local levels of a cache, as a level's events reach them (the cache implements it).
pub(crate) trait LocalLevels: Send + Sync {
    /// Forgets `key` on every local level.
    fn forget(&self, key: TokenKey);
    /// Refuses `key` locally for `revoked_for` (at most a day), and forgets it.
    fn revoke(&self, key: TokenKey, revoked_for: Duration);
    /// Forgets every cached verdict (revocations stay).
    fn forget_all(&self);
}

/// The cache's side of a second level's subscription, given to
/// [`SecondLevel::subscribe`](super::SecondLevel::subscribe). Cheap to clone; it does not keep
/// the cache alive: once the cache is dropped, every call answers `false` and the level should
/// stop listening.
#[derive(Clone)]
pub struct RemoteEvents {
    local: Weak<dyn LocalLevels>,
}

impl RemoteEvents {
    pub(crate) fn new(local: Weak<dyn LocalLevels>) -> Self {
        Self { local }
    }

    /// Another instance invalidated the token `key`: forget it here. `false` when the cache is
    /// gone.
    pub fn forget(&self, key: TokenKey) -> bool {
        self.local.upgrade().map(|local| local.forget(key)).is_some()
    }

    /// Another instance revoked the token `key`, for `revoked_for` longer: refuse it here too
    /// (for at most a day, whatever the level says), and forget it. `false` when the cache is
    /// gone.
    pub fn revoke(&self, key: TokenKey, revoked_for: Duration) -> bool {
        self.local
            .upgrade()
            .map(|local| local.revoke(key, revoked_for))
            .is_some()
    }

    /// Events may have been missed (a reconnect), or one named a token this instance cannot
    /// tell: forget every cached verdict here (revocations stay). `false` when the cache is
    /// gone.
    pub fn forget_all(&self) -> bool {
        self.local.upgrade().map(|local| local.forget_all()).is_some()
    }

    /// Whether the cache is gone (the level should stop listening).
    pub fn is_closed(&self) -> bool {
        self.local.strong_count() == 0
    }
}

impl std::fmt::Debug for RemoteEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEvents")
            .field("closed", &self.is_closed())
            .finish()
    }
}
