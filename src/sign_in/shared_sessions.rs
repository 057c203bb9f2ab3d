//! The sessions' side of a [`SessionStore`] every instance shares: a session is read from the
//! store where this instance holds no copy it may serve ([`Sessions::load`]), written there when
//! it is created or refreshed ([`Sessions::save`]) and when its idle life is extended (at most
//! once per tenth of that life, never per request), and ended there for the whole fleet
//! ([`Sessions::end_everywhere`]). See the store's contract at
//! [`second_level::SessionStore`](crate::second_level::SessionStore).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::record::{Clock, SessionRecord};
use super::session::{Limits, Session, Sessions, Tokens, NEVER_SAVED};
use super::shared_store::SharedStore;
use crate::cache::IdentityCache;
use crate::error::{AuthError, Unavailable};
use crate::second_level::{Saved, StoreLock};
use crate::token_key::TokenKey;

/// The error of a store that could not answer.
fn unreachable(error: impl std::fmt::Display) -> AuthError {
    tracing::warn!(%error, "sign-in: the session store could not be reached");
    AuthError::Unavailable(Unavailable::SessionStore)
}

impl Sessions {
    fn shared(&self) -> Result<&SharedStore, AuthError> {
        self.shared
            .as_ref()
            .ok_or(AuthError::Unavailable(Unavailable::SessionStore))
    }

    /// Reads session `key` from the shared store and keeps a copy here: `None` when it has
    /// ended (or never was). The copy is kept only if no end of a session was heard here while
    /// it was read (that read may have come before the end); otherwise the store is read again,
    /// and that read, which began after the end was heard, serves this request without being
    /// kept.
    pub(crate) async fn load(
        &self,
        key: TokenKey,
        cache: &IdentityCache,
    ) -> Result<Option<Arc<Session>>, AuthError> {
        let shared = self.shared()?;
        for kept in [true, false] {
            let epoch = self.memo.epoch(key);
            let Some(record) = self.read(key).await? else {
                return Ok(None);
            };
            let now = Instant::now();
            let tokens = Tokens {
                key: cache.key(record.access.expose().as_bytes()),
                access: record.access,
                refresh: record.refresh,
                usable_until: record.usable_until,
                verified: None,
            };
            // A record the store still has was used within its idle life (its life there).
            let mut session = Session::new(record.user_id, record.created, now, tokens);
            session.copy_until = Some(now + shared.copy_life);
            let last_used = session.last_used.load(Relaxed);
            session.saved.store(last_used, Relaxed);
            if session.is_over(now, &self.limits) {
                return Ok(None);
            }
            if !kept {
                return Ok(Some(Arc::new(session)));
            }
            let session = self.keep(key, session);
            // Checked after keeping it: an end heard from here on finds the copy and drops it.
            if self.memo.epoch(key) == epoch {
                return Ok(Some(session));
            }
            self.end(&key);
        }
        Ok(None)
    }

    /// (shared store) The key and record of the session just created with `id`, to write it
    /// to the store before its cookie is sent.
    pub(crate) fn created(&self, id: &str) -> Option<(TokenKey, Arc<Session>)> {
        self.shared.as_ref()?;
        let key = self.key(id)?;
        Some((key, self.local.get(&key)?))
    }

    /// The record of session `key` in the shared store, as it is there now (not kept here).
    pub(crate) async fn read(&self, key: TokenKey) -> Result<Option<SessionRecord>, AuthError> {
        let shared = self.shared()?;
        // The record holds the tokens: its bytes are wiped once read.
        let Some(bytes) = shared
            .store
            .load(key)
            .await
            .map_err(unreachable)?
            .map(Zeroizing::new)
        else {
            return Ok(None);
        };
        let record = SessionRecord::decode(&bytes, Clock::now());
        if record.is_none() {
            tracing::warn!(
                "sign-in: a session record in the store could not be read; the session is unknown here"
            );
        }
        Ok(record)
    }

    /// Writes `session` (its tokens now) as the record of `key`, for the rest of its idle life:
    /// [`Saved::Ended`] when it ended meanwhile (nothing written). Only at sign-in and by the
    /// refresh that holds the lock: a copy's tokens may be older than the store's.
    pub(crate) async fn save(&self, key: TokenKey, session: &Session) -> Result<Saved, AuthError> {
        let shared = self.shared()?;
        let (record, life) = record_of(session, &self.limits);
        let saved = shared.store.save(key, record, life).await.map_err(unreachable)?;
        session.saved.store(session.last_used.load(Relaxed), Relaxed);
        Ok(saved)
    }

    /// Ends session `key` here and, with a shared store, everywhere: a tombstone, the record
    /// deleted, every instance told. `Err` when the store could not be reached: the session
    /// has then ended on this instance only (logged).
    pub(crate) async fn end_everywhere(&self, key: TokenKey) -> Result<(), AuthError> {
        self.end(&key);
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        shared.store.end(key, shared.tombstone_life).await.map_err(|error| {
            tracing::error!(%error, "sign-in: a session ended on this instance only: the session store could not be reached");
            AuthError::Unavailable(Unavailable::SessionStore)
        })
    }

    /// Takes the fleet's refresh lock of session `key`, held for at most `hold`; `None` while
    /// another instance holds it.
    pub(crate) async fn lock(
        &self,
        key: TokenKey,
        hold: Duration,
    ) -> Result<Option<Box<dyn StoreLock>>, AuthError> {
        self.shared()?.store.lock(key, hold).await.map_err(unreachable)
    }

    /// After a request: extends the session's life in the shared store when a tenth of its
    /// idle life has passed since the last extension (in the background; one at a time per
    /// copy; never a write of the tokens). One that fails is tried at the next request.
    pub(super) fn extend_idle_life(&self, key: TokenKey, session: &Arc<Session>) {
        let (Some(shared), Ok(runtime)) = (&self.shared, tokio::runtime::Handle::try_current()) else {
            return;
        };
        let used = session.last_used.load(Relaxed);
        let saved = session.saved.load(Relaxed);
        let step = u64::try_from((self.limits.idle / 10).as_millis()).unwrap_or(u64::MAX);
        if saved != NEVER_SAVED && used.saturating_sub(saved) < step {
            return;
        }
        // One extension at a time: whoever moves `saved` writes.
        if session
            .saved
            .compare_exchange(saved, used, Relaxed, Relaxed)
            .is_err()
        {
            return;
        }
        let life = life_left(session, &self.limits);
        let store = Arc::clone(&shared.store);
        let (local, forget, session) = (self.local.clone(), self.memo.forgetting(), Arc::clone(session));
        runtime.spawn(async move {
            match store.touch(key, life).await {
                Ok(Saved::Written) => {}
                // Ended elsewhere (or its idle life over there), and the event not heard yet:
                // drop the copy.
                Ok(Saved::Ended) => {
                    local.invalidate(&key);
                    forget.forget(key);
                }
                Err(error) => {
                    tracing::debug!(%error, "sign-in: a session's idle life was not extended in the store");
                    let _ = session.saved.compare_exchange(used, saved, Relaxed, Relaxed);
                }
            }
        });
    }
}

/// What is left of `session`'s idle life from its last use, within its absolute life: how long
/// the shared store keeps its record.
fn life_left(session: &Session, limits: &Limits) -> Duration {
    let ends = (session.last_used() + limits.idle).min(session.created + limits.absolute);
    ends.saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// `session`'s record for the store, and how long the store keeps it.
fn record_of(session: &Session, limits: &Limits) -> (Vec<u8>, Duration) {
    let clock = Clock::now();
    let tokens = session.tokens();
    let record = SessionRecord {
        user_id: session.user_id.clone(),
        created: session.created,
        last_used: session.last_used(),
        access: tokens.access,
        refresh: tokens.refresh,
        usable_until: tokens.usable_until,
    };
    (record.encode(clock), life_left(session, limits))
}
