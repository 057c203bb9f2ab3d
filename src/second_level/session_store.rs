//! [`SessionStore`]: website sign-in's sessions and logins under way, kept where every instance
//! of the service reaches them (Redis, in the `tower-amazon-auth-redis` crate), so a session
//! signed in on one instance is served by all, and a logout on one ends it on all. A second
//! level offers one through [`SecondLevel::session_store`](super::SecondLevel::session_store);
//! a [`SignIn`](crate::sign_in::SignIn) built on a cache with such a level uses it. The
//! contract is on the trait.

use std::sync::Weak;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{SecondLevelError, TokenKey};

/// Website sign-in's sessions and logins under way, shared by every instance. Offered by a
/// second level through [`SecondLevel::session_store`](super::SecondLevel::session_store).
///
/// # The contract
///
/// - **The records are the sign-in's.** The store keeps opaque bytes under a [`TokenKey`] (a
///   keyed digest of the session id, or of a login's `state`, under
///   [`digest_key`](SessionStore::digest_key)); it seals them (they hold tokens) and names them
///   by a MAC of the key, never by the id. Sign-in encodes them and checks them on the way
///   back (the session's lives).
/// - **Each instance keeps a first-level copy** of a session it served, for at most the
///   cache's `max_ttl`, and reads the store again after that or when the copy is gone.
/// - **Ends win.** [`end`](SessionStore::end) leaves a tombstone (for as long as a copy may
///   live anywhere and a refresh may take), deletes the record and tells every instance
///   ([`SessionEvents::end`]); [`save`](SessionStore::save) and [`touch`](SessionStore::touch)
///   never write over a tombstone, so a refresh or an idle-life extension that finishes after
///   a logout brings nothing back. An instance keeps a copy of a record it read only if no end
///   of that session was heard while it read (the generation rule of tokens).
/// - **The record's life in the store is the session's idle life**: a record that is there
///   has been used within it. Its tokens are written only at sign-in and by the refresh that
///   holds the lock; a request's use only extends the life ([`touch`](SessionStore::touch)).
/// - **One refresh per session for the fleet.** A refresh takes [`lock`](SessionStore::lock),
///   reads the record again once it holds it (another instance may have refreshed), and ends
///   the session on Amazon's `invalid_grant` only after reading it again.
/// - **Logins under way are single use fleet-wide**: [`put_login`](SessionStore::put_login)
///   writes one only if its name is free, [`take_login`](SessionStore::take_login) reads and
///   deletes it in one step.
/// - **Missed events mean forgetting every copy.** A store that may have missed events (a
///   reconnect) calls [`SessionEvents::forget_all`].
/// - **Trouble is an error, never a verdict.** A store that cannot answer says so; sign-in then
///   answers `503` where it needed the store (a session this instance does not hold, a
///   refresh), and keeps serving the copies it has.
pub trait SessionStore: Send + Sync + 'static {
    /// The key session ids and login states are digested with, the same on every instance.
    fn digest_key(&self) -> [u8; 16];

    /// The record of session `key`; `None` when there is none (never signed in, ended, its
    /// idle or absolute life over).
    fn load(&self, key: TokenKey) -> BoxFuture<'_, Result<Option<Vec<u8>>, SecondLevelError>>;

    /// Writes the record of session `key`, kept `life` longer (its idle life, within its
    /// absolute one), unless the session has ended: then [`Saved::Ended`]. Called when the
    /// session is created and, under [`lock`](Self::lock), when it is refreshed. The record
    /// holds the session's tokens: a store should wipe its copy of the bytes once sealed.
    fn save(
        &self,
        key: TokenKey,
        record: Vec<u8>,
        life: Duration,
    ) -> BoxFuture<'_, Result<Saved, SecondLevelError>>;

    /// Keeps the record of session `key` `life` longer (a request used it: its idle life starts
    /// again), without writing it, unless the session has ended or its record is gone:
    /// [`Saved::Ended`]. Never a write of the tokens, so a copy that has not heard of a refresh
    /// elsewhere cannot undo it.
    fn touch(&self, key: TokenKey, life: Duration) -> BoxFuture<'_, Result<Saved, SecondLevelError>>;

    /// Ends session `key` everywhere: a tombstone for `tombstone_for`, the record deleted,
    /// every instance told ([`SessionEvents::end`]).
    fn end(&self, key: TokenKey, tombstone_for: Duration) -> BoxFuture<'_, Result<(), SecondLevelError>>;

    /// Takes the fleet-wide lock that lets one instance refresh session `key`, for at most
    /// `hold`; `None` while another instance holds it.
    fn lock(
        &self,
        key: TokenKey,
        hold: Duration,
    ) -> BoxFuture<'_, Result<Option<Box<dyn StoreLock>>, SecondLevelError>>;

    /// Keeps the login under way `key` for `life`, if no login has that name.
    fn put_login(
        &self,
        key: TokenKey,
        record: Vec<u8>,
        life: Duration,
    ) -> BoxFuture<'_, Result<(), SecondLevelError>>;

    /// Takes the login under way `key`: read and deleted in one step, so it works once.
    fn take_login(&self, key: TokenKey) -> BoxFuture<'_, Result<Option<Vec<u8>>, SecondLevelError>>;

    /// Starts telling `events` what other instances did to sessions (called once by each
    /// sign-in built on the store).
    fn watch(&self, events: SessionEvents);
}

/// What [`SessionStore::save`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// The record is written.
    Written,
    /// The session has ended (a tombstone): nothing was written.
    Ended,
}

/// A session's refresh lock, from [`SessionStore::lock`].
pub trait StoreLock: Send + 'static {
    /// Releases the lock (if it is still this holder's).
    fn release(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// The local copies of the sessions, as a store's events reach them (sign-in implements it).
pub(crate) trait LocalSessions: Send + Sync {
    /// Drops the copy of session `key`: it ended on another instance.
    fn end(&self, key: TokenKey);
    /// Drops every copy: events may have been missed.
    fn forget_all(&self);
}

/// A sign-in's side of a store's events, given to [`SessionStore::watch`]. Cheap to clone; it
/// does not keep the sign-in alive: once it is dropped, every call answers `false` and the
/// store should stop telling it.
#[derive(Clone)]
pub struct SessionEvents {
    local: Weak<dyn LocalSessions>,
}

impl SessionEvents {
    pub(crate) fn new(local: Weak<dyn LocalSessions>) -> Self {
        Self { local }
    }

    /// Another instance ended session `key`: drop the copy here. `false` when the sign-in is
    /// gone.
    pub fn end(&self, key: TokenKey) -> bool {
        self.local.upgrade().map(|local| local.end(key)).is_some()
    }

    /// Events may have been missed (a reconnect): drop every copy here (the store has the
    /// records). `false` when the sign-in is gone.
    pub fn forget_all(&self) -> bool {
        self.local.upgrade().map(|local| local.forget_all()).is_some()
    }

    /// Whether the sign-in is gone.
    pub fn is_closed(&self) -> bool {
        self.local.strong_count() == 0
    }
}

impl std::fmt::Debug for SessionEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionEvents")
            .field("closed", &self.is_closed())
            .finish()
    }
}
