//! [`Sessions`]: the signed-in sessions, on the server. The browser holds only an opaque random
//! id (256 bits); the record (the access and refresh tokens, when they expire, the user) is kept
//! here, keyed by a keyed digest of the id, in an LRU without an admission filter (a new session
//! is never turned away: when `max_sessions` are live, the least recently used one ends), at
//! most `max_per_user` per user (the oldest ends), each ending when idle or too old.
//!
//! The tokens of a session change in place when it is refreshed (under its own lock, one refresh
//! at a time); ending a session removes its record, so a refresh that finishes afterwards
//! writes into a record nobody can reach any more.
//!
//! With a [`SessionStore`](crate::second_level::SessionStore) shared by the fleet
//! (`shared_sessions`), the records here are this instance's copies: each is served for at
//! most `copy_life`, then read from the store again; a copy this instance drops (its life, the
//! LRU, an event) leaves the session live in the store.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;

use super::pending::random_text;
use super::session_memo::SessionMemo;
use super::shared_store::SharedStore;
use crate::access_token::AccessToken;
use crate::client::RefreshToken;
use crate::error::AuthError;
use crate::identity::Identity;
use crate::token_key::{KeyedDigest, TokenKey};

/// A session id's length: 256 bits in base64url.
const ID_LEN: usize = 43;
/// The longest life Amazon's `expires_in` is believed for (Amazon's tokens live an hour).
const MAX_TOKEN_LIFE: Duration = Duration::from_secs(24 * 3600);

/// Until when a token Amazon says lives `expires_in` seconds from `now` is usable, less
/// `clock_skew` (an absurd `expires_in` is held to a day).
pub(crate) fn usable_until(now: Instant, expires_in: u64, clock_skew: Duration) -> Instant {
    let life = Duration::from_secs(expires_in).min(MAX_TOKEN_LIFE);
    now + life.saturating_sub(clock_skew)
}

/// The limits of the sessions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_sessions: u64,
    pub(crate) max_per_user: usize,
    pub(crate) idle: Duration,
    pub(crate) absolute: Duration,
}

/// The tokens of a session.
#[derive(Clone)]
pub(crate) struct Tokens {
    pub(crate) access: AccessToken,
    /// `access`'s key in the identity cache (computed once).
    pub(crate) key: TokenKey,
    pub(crate) refresh: Option<RefreshToken>,
    /// When `access` has no usable life left (its expiry less the clock skew).
    pub(crate) usable_until: Instant,
    /// `access`'s identity as the cache verified it, under which generation, fresh until when:
    /// served without a second store read while that generation stands (see
    /// [`Session::verified`]).
    pub(crate) verified: Option<(Arc<Identity>, u64, Instant)>,
}

/// `Session::saved` of a copy never written to the shared store.
pub(super) const NEVER_SAVED: u64 = u64::MAX;

/// One signed-in session.
pub(crate) struct Session {
    pub(crate) user_id: Box<str>,
    pub(super) created: Instant,
    /// Milliseconds from `created` to the last request.
    pub(super) last_used: AtomicU64,
    /// (shared store) Milliseconds from `created` to the request whose use was last written
    /// there ([`NEVER_SAVED`]: not written yet).
    pub(super) saved: AtomicU64,
    /// (shared store) Until when this copy is served without reading the store again.
    pub(super) copy_until: Option<Instant>,
    /// (shared store) Its tokens were refreshed here and not yet written there.
    pub(super) unsaved: AtomicBool,
    tokens: RwLock<Tokens>,
    /// Held while the session's tokens are refreshed: one refresh at a time (owned by the task
    /// doing it, so a request that goes away does not cut a refresh short).
    pub(crate) refreshing: Arc<tokio::sync::Mutex<()>>,
    /// Refreshes tried so far, and why the last one failed (if it did): a request that waited
    /// for another's refresh takes its outcome instead of asking Amazon again.
    pub(crate) attempts: Mutex<(u64, Option<AuthError>)>,
}

impl Session {
    /// The session's tokens now.
    pub(crate) fn tokens(&self) -> Tokens {
        self.tokens.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The hit path: the access token's key, and its identity with the generation it was
    /// verified under, when both the token and that verification are still fresh at `now`. The
    /// caller serves it only if the cache says the generation still stands.
    pub(crate) fn verified(&self, now: Instant) -> (TokenKey, Option<(Arc<Identity>, u64)>) {
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        let verified = match &tokens.verified {
            Some((identity, generation, fresh_until)) if now < *fresh_until && now < tokens.usable_until => {
                Some((Arc::clone(identity), *generation))
            }
            _ => None,
        };
        (tokens.key, verified)
    }

    /// Records the identity the cache verified for the session's current token (unless the
    /// token changed meanwhile: a refresh).
    pub(crate) fn set_verified(&self, key: TokenKey, verified: (Arc<Identity>, u64, Instant)) {
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        if tokens.key == key {
            tokens.verified = Some(verified);
        }
    }

    /// Replaces the session's tokens (a refresh).
    pub(crate) fn set_tokens(&self, tokens: Tokens) {
        *self.tokens.write().unwrap_or_else(PoisonError::into_inner) = tokens;
    }

    /// A session of `user_id` created at `created`, last used at `last_used`.
    pub(super) fn new(user_id: Box<str>, created: Instant, last_used: Instant, tokens: Tokens) -> Self {
        Self {
            user_id,
            created,
            last_used: AtomicU64::new(millis(last_used.saturating_duration_since(created))),
            saved: AtomicU64::new(NEVER_SAVED),
            copy_until: None,
            unsaved: AtomicBool::new(false),
            tokens: RwLock::new(tokens),
            refreshing: Arc::default(),
            attempts: Mutex::default(),
        }
    }

    /// When it was last used.
    pub(super) fn last_used(&self) -> Instant {
        self.created + Duration::from_millis(self.last_used.load(Relaxed))
    }

    /// Whether the session is past its idle or absolute life at `now`.
    pub(super) fn is_over(&self, now: Instant, limits: &Limits) -> bool {
        let age = now.saturating_duration_since(self.created);
        let idle = now.saturating_duration_since(self.last_used());
        age >= limits.absolute || idle >= limits.idle
    }

    fn touch(&self, now: Instant) {
        self.last_used
            .store(millis(now.saturating_duration_since(self.created)), Relaxed);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Each user's sessions, oldest first.
type PerUser = Arc<Mutex<HashMap<Box<str>, VecDeque<TokenKey>, RandomState>>>;

/// The sessions of one site.
pub(crate) struct Sessions {
    /// The records (with a shared store: this instance's copies).
    pub(super) local: moka::sync::Cache<TokenKey, Arc<Session>, RandomState>,
    /// Each thread's sessions served lately, in front of `local`.
    pub(super) memo: SessionMemo<Session>,
    per_user: PerUser,
    digest: KeyedDigest,
    pub(super) limits: Limits,
    /// The store every instance shares, if any.
    pub(super) shared: Option<SharedStore>,
}

impl Sessions {
    /// Sessions of this instance only.
    #[cfg(test)]
    pub(crate) fn new(limits: Limits) -> Result<Self, getrandom::Error> {
        Self::with_store(limits, None)
    }

    /// Sessions kept in `shared` when given (its digest key names them), else in this
    /// instance only.
    pub(crate) fn with_store(limits: Limits, shared: Option<SharedStore>) -> Result<Self, getrandom::Error> {
        let per_user = PerUser::default();
        let forget = Arc::clone(&per_user);
        let memo = SessionMemo::<Session>::default();
        let forget_memo = memo.forgetting();
        let store = moka::sync::Cache::builder()
            .max_capacity(limits.max_sessions)
            // No admission filter: TinyLFU would turn a new session away in favour of old ones.
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            // The idle life is checked at each read (`is_over`): moka's own idle tracking would
            // cost every read a write; its time to live reclaims what nobody reads again.
            .time_to_live(limits.absolute)
            .eviction_listener(move |key: Arc<TokenKey>, session: Arc<Session>, cause| {
                // A copy replaced by a newer one of the same session (a read from the shared
                // store) has not ended: nothing to forget.
                if cause == moka::notification::RemovalCause::Replaced {
                    return;
                }
                forget_memo.forget(*key);
                let mut per_user = forget.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(keys) = per_user.get_mut(&session.user_id) {
                    keys.retain(|k| k != &*key);
                    if keys.is_empty() {
                        per_user.remove(&session.user_id);
                    }
                }
            })
            .build_with_hasher(RandomState::default());
        let digest = match &shared {
            Some(shared) => shared.digest(),
            None => KeyedDigest::random()?,
        };
        Ok(Self {
            local: store,
            memo,
            per_user,
            digest,
            limits,
            shared,
        })
    }

    /// Whether the sessions are kept in a store every instance shares.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The key of the session id `id`, if it is shaped like one.
    pub(crate) fn key(&self, id: &str) -> Option<TokenKey> {
        let shaped = id.len() == ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        shaped.then(|| self.digest.key(id.as_bytes()))
    }

    /// The live session of `key` at `now` (touched), or `None` (unknown, ended, idle, too old:
    /// ended now). With a shared store, `None` only says this instance holds no copy it may
    /// serve: the store decides ([`Self::load`]).
    pub(crate) fn get(&self, key: &TokenKey, now: Instant) -> Option<Arc<Session>> {
        // Read before the store: a session ended in between is outdated in the memo too.
        let epoch = self.memo.epoch(*key);
        let session = match self.memo.get(*key, epoch) {
            Some(session) => session,
            None => {
                let session = self.local.get(key)?;
                self.memo.put(*key, epoch, &session);
                session
            }
        };
        let copy_over = session.copy_until.is_some_and(|until| now >= until);
        if copy_over || session.is_over(now, &self.limits) {
            // A copy's life, or what this instance saw of the session's: the store has the
            // last word (another instance may have served it since).
            self.end(key);
            return None;
        }
        session.touch(now);
        if self.shared.is_some() {
            self.extend_idle_life(*key, &session);
        }
        Some(session)
    }

    /// Whether this instance still holds the session of `key` (without a shared store, a
    /// refresh checks it did not end meanwhile): the store's word, not a memo's. With a shared
    /// store, only whether a copy is here.
    pub(crate) fn contains(&self, key: &TokenKey) -> bool {
        self.local.contains_key(key)
    }

    /// A new session for `user_id` with `tokens`: its id, for the cookie. Beyond
    /// `max_per_user` sessions of the user, the oldest ends.
    pub(crate) fn create(&self, user_id: &str, tokens: Tokens) -> Result<String, getrandom::Error> {
        let id = random_text()?;
        let key = self.digest.key(id.as_bytes());
        let now = Instant::now();
        let mut session = Session::new(user_id.into(), now, now, tokens);
        session.copy_until = self.shared.as_ref().map(|shared| now + shared.copy_life);
        self.insert(key, Arc::new(session));
        Ok(id)
    }

    /// Keeps `session` as the record of `key`. Beyond `max_per_user` sessions of its user (on
    /// this instance), the oldest ends.
    fn insert(&self, key: TokenKey, session: Arc<Session>) {
        let user_id = session.user_id.clone();
        self.local.insert(key, session);
        self.count_for_user(key, user_id);
    }

    /// Keeps `session` as the copy of `key`, unless a copy is there already (another request
    /// read it at the same time): the copy kept, which requests then share.
    pub(super) fn keep(&self, key: TokenKey, session: Session) -> Arc<Session> {
        let user_id = session.user_id.clone();
        let entry = self.local.entry(key).or_insert_with(|| Arc::new(session));
        if entry.is_fresh() {
            self.count_for_user(key, user_id);
        }
        entry.into_value()
    }

    /// Counts `key` among `user_id`'s sessions here; beyond `max_per_user`, the oldest ends.
    fn count_for_user(&self, key: TokenKey, user_id: Box<str>) {
        // `moka` applies writes lazily, and a read of an entry whose write is still pending
        // does not count as a use: apply it now (a sign-in is rare enough to pay for it), so
        // the least recently *used* session is the one a full store ends.
        self.local.run_pending_tasks();
        let ended: Vec<TokenKey> = {
            let mut per_user = self.per_user.lock().unwrap_or_else(PoisonError::into_inner);
            let keys = per_user.entry(user_id).or_default();
            if !keys.contains(&key) {
                keys.push_back(key);
            }
            let over = keys.len().saturating_sub(self.limits.max_per_user);
            keys.drain(..over).collect()
        };
        // Outside the lock: the eviction listener takes it.
        for key in ended {
            self.end(&key);
        }
    }

    /// Ends the session of `key` here (logout, a refused refresh, its life over): gone from the
    /// store, then from every thread's memo. With a shared store, only this instance's copy
    /// (see [`Self::end_everywhere`]).
    pub(crate) fn end(&self, key: &TokenKey) {
        self.local.invalidate(key);
        self.memo.forgetting().forget(*key);
    }

    /// Drops every record here (with a shared store: the copies; events were missed).
    pub(super) fn end_all_here(&self) {
        self.local.invalidate_all();
        self.memo.forgetting().forget_all();
    }

    /// The number of live sessions (pending maintenance applied first).
    pub(crate) fn count(&self) -> u64 {
        self.local.run_pending_tasks();
        self.local.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_sessions: u64, max_per_user: usize) -> Limits {
        Limits {
            max_sessions,
            max_per_user,
            idle: Duration::from_secs(3600),
            absolute: Duration::from_secs(7200),
        }
    }

    /// A session record's tokens are wiped when the record (or a copy of its tokens) is
    /// dropped: the types of its fields say so.
    #[test]
    fn a_records_tokens_are_wiped_on_drop() {
        fn wiped<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let tokens = Tokens {
            refresh: Some(RefreshToken::new("Atzr|r")),
            ..tokens()
        };
        wiped(&tokens.access);
        wiped(&tokens.refresh);
    }

    fn tokens() -> Tokens {
        Tokens {
            access: AccessToken::new("Atza|x"),
            key: TokenKey::default(),
            refresh: None,
            usable_until: Instant::now(),
            verified: None,
        }
    }

    #[test]
    fn a_user_keeps_at_most_its_cap_the_oldest_ending() {
        let sessions = Sessions::new(limits(100, 2)).unwrap();
        let ids: Vec<String> = (0..3)
            .map(|_| sessions.create("alice", tokens()).unwrap())
            .collect();
        let live = |id: &str| sessions.get(&sessions.key(id).unwrap(), Instant::now()).is_some();
        assert!(!live(&ids[0]), "the oldest ended");
        assert!(live(&ids[1]) && live(&ids[2]));
        let bob = sessions.create("bob", tokens()).unwrap();
        assert!(live(&bob), "another user's sessions are theirs");
    }

    #[test]
    fn an_ended_session_is_never_served_from_a_memo() {
        let sessions = Sessions::new(limits(10, 10)).unwrap();
        let id = sessions.create("alice", tokens()).unwrap();
        let key = sessions.key(&id).unwrap();
        assert!(
            sessions.get(&key, Instant::now()).is_some(),
            "read once: now in this thread's memo"
        );
        assert!(sessions.get(&key, Instant::now()).is_some(), "served again");
        sessions.end(&key);
        assert!(
            sessions.get(&key, Instant::now()).is_none(),
            "ended: the memo no longer serves it"
        );
    }

    /// A copy replaced by another of the same session (two requests read the shared store at
    /// once) has not ended: the memo's epoch stays, the user's count keeps the session.
    #[test]
    fn a_replaced_copy_ends_nothing() {
        let sessions = Sessions::new(limits(10, 10)).unwrap();
        let key = TokenKey::from_be_bytes([9; 16]);
        let now = Instant::now();
        sessions.insert(key, Arc::new(Session::new("alice".into(), now, now, tokens())));
        let epoch = sessions.memo.epoch(key);
        sessions.insert(key, Arc::new(Session::new("alice".into(), now, now, tokens())));
        sessions.local.run_pending_tasks();
        assert_eq!(sessions.memo.epoch(key), epoch, "a replacement bumped the epoch");
        let per_user = sessions.per_user.lock().unwrap();
        assert_eq!(per_user.get("alice").map(VecDeque::len), Some(1));
    }

    #[test]
    fn ids_are_opaque_and_a_tampered_one_names_nothing() {
        let sessions = Sessions::new(limits(100, 5)).unwrap();
        let id = sessions.create("alice", tokens()).unwrap();
        assert_eq!(id.len(), ID_LEN);
        let mut tampered = id.clone().into_bytes();
        tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(sessions
            .get(&sessions.key(&tampered).unwrap(), Instant::now())
            .is_none());
        assert!(sessions.key("short").is_none());
        assert!(sessions.key(&format!("{}!", &id[..42])).is_none());
    }
}
