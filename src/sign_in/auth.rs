//! The layer's side of sign-in: a request without a token of its own is authenticated by its
//! session cookie. One session-store read; the session's access token then goes through the
//! identity cache exactly as a bearer token does (its generations and revocations included).
//! A token past its usable life, or one Amazon calls expired, is refreshed first, one refresh
//! per session at a time; only `invalid_grant` ends the session.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Method};

use super::session::{usable_until, Session, Tokens};
use super::{cookies, csrf, SignIn, SignInShared};
use crate::cache::revocation::Budget;
use crate::error::{AmazonError, AuthError, CacheError, Rejection, Unavailable};
use crate::identity::{AmazonUser, Identity, SessionEnd};
use crate::second_level::{LocalSessions, Saved};
use crate::token_key::TokenKey;
use crate::verify::upstream;

/// How often an instance waiting for another's refresh of a session reads its record.
const FLEET_REFRESH_POLL: Duration = Duration::from_millis(50);

/// What the layer does with a request that carries a session cookie and no token.
pub(crate) enum SessionDecision {
    /// Signed in, from the cache: the hit path.
    Admit(AmazonUser),
    /// Refused: an ended session (`SessionEnded`: the cookie is cleared) or a cross-site
    /// unsafe request (`CrossSite`).
    Refuse(AuthError),
    /// The token must be verified, or refreshed, first.
    Resolve(SessionRequest),
}

/// A session request whose token must be verified or refreshed (and, with a shared store,
/// whose session must be read from it first).
pub(crate) struct SessionRequest {
    shared: Arc<SignInShared>,
    key: TokenKey,
    /// `None`: this instance holds no copy it may serve; the shared store has the session.
    session: Option<Arc<Session>>,
}

impl SignIn {
    /// The decision for a request without a token, with these method and headers; `None` when
    /// it carries no session cookie.
    pub(crate) fn decide(&self, method: &Method, headers: &HeaderMap) -> Option<SessionDecision> {
        let shared = &self.shared;
        let id = cookies::find(headers, shared.cookies.session_name())?;
        if !csrf::allowed(method, headers, &shared.public_origin) {
            return Some(SessionDecision::Refuse(AuthError::CrossSite));
        }
        let ended = SessionDecision::Refuse(AuthError::InvalidToken(Rejection::SessionEnded));
        let Some(key) = shared.sessions.key(id) else {
            return Some(ended);
        };
        let now = Instant::now();
        let Some(session) = shared.sessions.get(&key, now) else {
            return Some(match shared.sessions.is_shared() {
                true => SessionDecision::Resolve(SessionRequest {
                    shared: Arc::clone(shared),
                    key,
                    session: None,
                }),
                false => ended,
            });
        };
        // One store read: the session carries its token's identity, served while the
        // generation it was verified under stands (an `invalidate` or `revoke` moves it).
        let (token_key, verified) = session.verified(now);
        if let Some((identity, generation)) = verified {
            if shared.cache.is_current(token_key, generation) {
                shared.cache.stats_handle().hits.incr();
                return Some(SessionDecision::Admit(self.user(identity, key)));
            }
        }
        Some(SessionDecision::Resolve(SessionRequest {
            shared: Arc::clone(shared),
            key,
            session: Some(session),
        }))
    }

    /// The `Set-Cookie` that clears the session cookie (answered with an ended session).
    pub(crate) fn clear_cookie(&self) -> HeaderValue {
        self.shared.cookies.clear(self.shared.cookies.session_name())
    }

    /// Removes the session cookie (only it) from `headers`, before the inner service runs.
    pub(crate) fn strip(&self, headers: &mut HeaderMap) {
        cookies::strip(headers, self.shared.cookies.session_name());
    }

    fn user(&self, identity: Arc<Identity>, key: TokenKey) -> AmazonUser {
        SignInShared::user(&self.shared, identity, key)
    }
}

impl SessionRequest {
    /// Verifies the session's token (refreshing it when due: at most once per request) and
    /// answers its user.
    pub(crate) async fn resolve(self) -> Result<AmazonUser, AuthError> {
        let shared = &self.shared;
        let ended = AuthError::InvalidToken(Rejection::SessionEnded);
        let session = match self.session {
            Some(session) => session,
            None => shared
                .sessions
                .load(self.key, &shared.cache)
                .await?
                .ok_or(ended.clone())?,
        };
        let mut refreshed = false;
        loop {
            let tokens = session.tokens();
            if Instant::now() < tokens.usable_until {
                match shared.cache.resolve(tokens.key, &tokens.access).await {
                    // A refreshed token that names another user ends the session (Amazon
                    // would not do that; nothing is served if it did).
                    Ok(identity) if *identity.user_id() != *session.user_id => {
                        tracing::warn!("session ended: a refreshed token named another user");
                        // Unreachable store: logged; ended here, and refused.
                        let _ = shared.sessions.end_everywhere(self.key).await;
                        return Err(ended);
                    }
                    Ok(identity) => {
                        if let Some(stamped) = shared.cache.cached_stamped(&tokens.key) {
                            session.set_verified(tokens.key, stamped);
                        }
                        return Ok(SignInShared::user(shared, identity, self.key));
                    }
                    // Amazon calls it expired (or invalid): refresh, not an end.
                    Err(AuthError::InvalidToken(Rejection::Expired | Rejection::Invalid)) if !refreshed => {}
                    // Revoked here (a logout elsewhere): the session is over.
                    Err(AuthError::InvalidToken(Rejection::Revoked)) => {
                        // Unreachable store: logged; ended here, and refused.
                        let _ = shared.sessions.end_everywhere(self.key).await;
                        return Err(ended);
                    }
                    Err(error) => return Err(error),
                }
            } else if refreshed {
                // Refreshed, and already past its usable life: nothing to serve.
                return Err(AuthError::InvalidToken(Rejection::Expired));
            }
            let refresh =
                SignInShared::refresh(Arc::clone(shared), self.key, Arc::clone(&session), tokens.key);
            refresh.await?;
            refreshed = true;
        }
    }
}

impl SignInShared {
    fn user(this: &Arc<Self>, identity: Arc<Identity>, key: TokenKey) -> AmazonUser {
        AmazonUser::of_session(identity, key, Arc::clone(this) as Arc<dyn SessionEnd>)
    }

    /// Refreshes the session's tokens unless another request did since it saw `seen`: one
    /// refresh per session at a time. A request that waited for another's failed refresh takes
    /// that failure rather than asking Amazon again; waiting is bounded by the verification
    /// deadline. The grant runs in a task of its own, so a request that goes away does not lose
    /// a refresh token Amazon rotated.
    async fn refresh(
        this: Arc<Self>,
        key: TokenKey,
        session: Arc<Session>,
        seen: TokenKey,
    ) -> Result<(), AuthError> {
        let unavailable = AuthError::Unavailable(Unavailable::Timeout);
        let tried = lock(&session.attempts).0;
        let turn = tokio::time::timeout(
            this.cache.deadline(),
            Arc::clone(&session.refreshing).lock_owned(),
        )
        .await
        .map_err(|_| unavailable.clone())?;
        let task = tokio::spawn(async move {
            let _turn = turn;
            let tokens = session.tokens();
            if tokens.key != seen {
                return Ok(());
            }
            // Without a shared store, a session ended meanwhile is gone from here; with one,
            // the store's record decides (read once the fleet's lock is held).
            if !this.sessions.is_shared() && !this.sessions.contains(&key) {
                return Err(AuthError::InvalidToken(Rejection::SessionEnded));
            }
            {
                let attempts = lock(&session.attempts);
                if attempts.0 != tried {
                    // Another request's refresh failed while this one waited: its outcome.
                    return Err(attempts
                        .1
                        .clone()
                        .unwrap_or(AuthError::Unavailable(Unavailable::Timeout)));
                }
            }
            let outcome = match this.sessions.is_shared() {
                true => Self::grant_for_fleet(&this, key, &session, tokens).await,
                false => this.grant(&key, &session, tokens).await,
            };
            let mut attempts = lock(&session.attempts);
            *attempts = (attempts.0 + 1, outcome.clone().err());
            outcome
        });
        task.await.unwrap_or(Err(unavailable))
    }

    /// Asks Amazon for new tokens with the session's refresh token, and writes them back (with
    /// a shared store, there too, unless the session ended meanwhile).
    async fn grant(&self, key: &TokenKey, session: &Session, tokens: Tokens) -> Result<(), AuthError> {
        let ended = AuthError::InvalidToken(Rejection::SessionEnded);
        let Some(refresh) = tokens.refresh else {
            let _ = self.sessions.end_everywhere(*key).await;
            return Err(ended);
        };
        let client = self.cache.amazon_client();
        match client.refresh(&refresh, &self.credentials).await {
            Ok(granted) => {
                let access = granted.access_token;
                session.set_tokens(Tokens {
                    key: self.cache.key(access.expose().as_bytes()),
                    access,
                    // Amazon may send a new refresh token: keep whichever came back last.
                    refresh: Some(granted.refresh_token.unwrap_or(refresh)),
                    usable_until: usable_until(Instant::now(), granted.expires_in, self.cache.clock_skew()),
                    verified: None,
                });
                tracing::debug!(user_id = &*session.user_id, "session refreshed");
                if !self.sessions.is_shared() {
                    // Signed out while Amazon answered: the refresh brings nothing back.
                    return match self.sessions.contains(key) {
                        true => Ok(()),
                        false => Err(ended),
                    };
                }
                match self.sessions.save(*key, session).await {
                    Ok(Saved::Written) => Ok(()),
                    // Signed out while Amazon answered: the refresh brings nothing back.
                    Ok(Saved::Ended) => {
                        self.sessions.end(key);
                        Err(ended)
                    }
                    // Served here with the new tokens, and written in the background while
                    // the fleet's lock is kept (`grant_for_fleet`).
                    Err(_) => {
                        session.unsaved.store(true, Relaxed);
                        Ok(())
                    }
                }
            }
            Err(AmazonError::OAuth { code, .. }) if code == "invalid_grant" => {
                // Another instance may have rotated the refresh token meanwhile: its tokens.
                if self.sessions.is_shared() && self.adopt_stored(key, session, Some(&refresh)).await? {
                    return Ok(());
                }
                tracing::info!(
                    user_id = &*session.user_id,
                    "session ended: Amazon refused its refresh token"
                );
                let _ = self.sessions.end_everywhere(*key).await;
                Err(ended)
            }
            Err(AmazonError::OAuth { code, .. }) => {
                tracing::error!(
                    code,
                    "session refresh: Amazon refused the site's client credentials (check the client secret); sessions kept"
                );
                Err(AuthError::Unavailable(Unavailable::ClientRejected))
            }
            Err(error) => {
                tracing::warn!(%error, "session refresh failed; session kept");
                match upstream(error) {
                    error @ AuthError::Unavailable(_) => Err(error),
                    _ => Err(AuthError::Unavailable(Unavailable::Unreadable)),
                }
            }
        }
    }

    /// Refreshes session `key` for the whole fleet: under the store's lock (waiting, up to the
    /// verification deadline, for another instance's refresh to land instead), with the record
    /// read again once the lock is held. The store out of reach is a `503`. A refresh whose
    /// write-back failed keeps the lock while it is written in the background (another
    /// instance refreshing with the old refresh token meanwhile could end the session).
    async fn grant_for_fleet(
        this: &Arc<Self>,
        key: TokenKey,
        session: &Arc<Session>,
        tokens: Tokens,
    ) -> Result<(), AuthError> {
        let deadline = Instant::now() + this.cache.deadline();
        // The refresh's own bound: Amazon's answer (the store adds what its commands take).
        let hold = this.cache.deadline();
        let fleet_lock = loop {
            if let Some(lock) = this.sessions.lock(key, hold).await? {
                break lock;
            }
            // Another instance refreshes: its tokens, once written.
            if this.adopt_stored(&key, session, None).await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(AuthError::Unavailable(Unavailable::SessionStore));
            }
            tokio::time::sleep(FLEET_REFRESH_POLL).await;
        };
        let outcome = match this.adopt_stored(&key, session, None).await {
            Ok(true) => Ok(()),
            Ok(false) => this.grant(&key, session, tokens).await,
            Err(error) => Err(error),
        };
        if !session.unsaved.load(Relaxed) {
            fleet_lock.release().await;
            return outcome;
        }
        let (this, session) = (Arc::clone(this), Arc::clone(session));
        tokio::spawn(async move {
            let give_up = Instant::now() + hold;
            while Instant::now() < give_up {
                tokio::time::sleep(FLEET_REFRESH_POLL * 4).await;
                match this.sessions.save(key, &session).await {
                    Ok(Saved::Written) => {
                        session.unsaved.store(false, Relaxed);
                        tracing::debug!("sign-in: a refreshed session written once the store answered");
                        break;
                    }
                    Ok(Saved::Ended) => {
                        this.sessions.end(&key);
                        break;
                    }
                    Err(_) => {}
                }
            }
            fleet_lock.release().await;
        });
        outcome
    }

    /// Takes the tokens of session `key`'s record in the store if another instance refreshed
    /// it (its access token is not this copy's, or with `used`, its refresh token is not the
    /// one Amazon just refused): `true` then. A session the store no longer has has ended.
    async fn adopt_stored(
        &self,
        key: &TokenKey,
        session: &Session,
        used: Option<&crate::client::RefreshToken>,
    ) -> Result<bool, AuthError> {
        let Some(record) = self.sessions.read(*key).await? else {
            self.sessions.end(key);
            return Err(AuthError::InvalidToken(Rejection::SessionEnded));
        };
        let mine = session.tokens();
        let access_moved = record.access != mine.access;
        let refresh_moved =
            used.is_some_and(|used| record.refresh.as_ref().map(|r| r.expose()) != Some(used.expose()));
        if !access_moved && !refresh_moved {
            return Ok(false);
        }
        session.set_tokens(Tokens {
            key: self.cache.key(record.access.expose().as_bytes()),
            access: record.access,
            refresh: record.refresh,
            usable_until: record.usable_until,
            verified: None,
        });
        tracing::debug!(
            user_id = &*session.user_id,
            "session refreshed by another instance"
        );
        Ok(true)
    }

    /// Ends the session of `key`: its record deleted (no refresh can bring it back; with a
    /// shared store, everywhere), its access token revoked where that is possible (best effort:
    /// the token never left the server). With a shared store, the token revoked is the store's
    /// (another instance may have refreshed it). `Err` when the store could not be reached: the
    /// session has then ended on this instance only, and the caller should say so.
    pub(super) async fn end_session(&self, key: &TokenKey) -> Result<(), AuthError> {
        let token = match self.sessions.is_shared() {
            true => match self.sessions.read(*key).await {
                Ok(record) => record.map(|record| record.access),
                Err(error) => {
                    self.sessions.end(key);
                    return Err(error);
                }
            },
            false => self
                .sessions
                .get(key, Instant::now())
                .map(|session| session.tokens().access),
        };
        self.sessions.end_everywhere(*key).await?;
        if let Some(token) = token {
            if let Err(error) = self.cache.revoke_within(&token, Budget::Exempt).await {
                tracing::debug!(%error, "logout: the session's token was not revoked (best effort)");
            }
        }
        Ok(())
    }
}

/// What [`AmazonUser::revoke`] reaches for a session's user.
impl SessionEnd for SignInShared {
    fn end(&self, key: TokenKey) -> BoxFuture<'_, Result<(), CacheError>> {
        Box::pin(async move { self.end_session(&key).await.map_err(|_| CacheError::SecondLevel) })
    }
}

/// What [`SessionEvents`](crate::second_level::SessionEvents) reach: this sign-in's copies.
impl LocalSessions for SignInShared {
    fn end(&self, key: TokenKey) {
        self.sessions.end(&key);
    }

    fn forget_all(&self) {
        self.sessions.end_all_here();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
