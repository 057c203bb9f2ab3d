//! The layer's side of sign-in: a request without a token of its own is authenticated by its
//! session cookie. One session-store read; the session's access token then goes through the
//! identity cache exactly as a bearer token does (its generations and revocations included).
//! A token past its usable life, or one Amazon calls expired, is refreshed first, one refresh
//! per session at a time; only `invalid_grant` ends the session.

use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Method};

use super::session::{usable_until, Session, Tokens};
use super::{cookies, csrf, SignIn, SignInShared};
use crate::cache::revocation::Budget;
use crate::error::{AmazonError, AuthError, CacheError, Rejection, Unavailable};
use crate::identity::{AmazonUser, Identity, SessionEnd};
use crate::token_key::TokenKey;
use crate::verify::upstream;

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

/// A session request whose token must be verified or refreshed.
pub(crate) struct SessionRequest {
    shared: Arc<SignInShared>,
    key: TokenKey,
    session: Arc<Session>,
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
            return Some(ended);
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
            session,
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
        let mut refreshed = false;
        loop {
            let tokens = self.session.tokens();
            if Instant::now() < tokens.usable_until {
                match shared.cache.resolve(tokens.key, &tokens.access).await {
                    // A refreshed token that names another user ends the session (Amazon
                    // would not do that; nothing is served if it did).
                    Ok(identity) if *identity.user_id() != *self.session.user_id => {
                        tracing::warn!("session ended: a refreshed token named another user");
                        shared.sessions.end(&self.key);
                        return Err(AuthError::InvalidToken(Rejection::SessionEnded));
                    }
                    Ok(identity) => {
                        if let Some(stamped) = shared.cache.cached_stamped(&tokens.key) {
                            self.session.set_verified(tokens.key, stamped);
                        }
                        return Ok(SignInShared::user(shared, identity, self.key));
                    }
                    // Amazon calls it expired (or invalid): refresh, not an end.
                    Err(AuthError::InvalidToken(Rejection::Expired | Rejection::Invalid)) if !refreshed => {}
                    // Revoked here (a logout elsewhere): the session is over.
                    Err(AuthError::InvalidToken(Rejection::Revoked)) => {
                        shared.sessions.end(&self.key);
                        return Err(AuthError::InvalidToken(Rejection::SessionEnded));
                    }
                    Err(error) => return Err(error),
                }
            } else if refreshed {
                // Refreshed, and already past its usable life: nothing to serve.
                return Err(AuthError::InvalidToken(Rejection::Expired));
            }
            let refresh = SignInShared::refresh(
                Arc::clone(shared),
                self.key,
                Arc::clone(&self.session),
                tokens.key,
            );
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
            if !this.sessions.contains(&key) {
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
            let outcome = this.grant(&key, &session, tokens).await;
            let mut attempts = lock(&session.attempts);
            *attempts = (attempts.0 + 1, outcome.clone().err());
            outcome
        });
        task.await.unwrap_or(Err(unavailable))
    }

    /// Asks Amazon for new tokens with the session's refresh token, and writes them back.
    async fn grant(&self, key: &TokenKey, session: &Session, tokens: Tokens) -> Result<(), AuthError> {
        let ended = AuthError::InvalidToken(Rejection::SessionEnded);
        let Some(refresh) = tokens.refresh else {
            self.sessions.end(key);
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
                // Signed out while Amazon answered: the refresh brings nothing back.
                if self.sessions.contains(key) {
                    Ok(())
                } else {
                    Err(ended)
                }
            }
            Err(AmazonError::OAuth { code, .. }) if code == "invalid_grant" => {
                tracing::info!(
                    user_id = &*session.user_id,
                    "session ended: Amazon refused its refresh token"
                );
                self.sessions.end(key);
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

    /// Ends the session of `key`: its record deleted (no refresh can bring it back), its access
    /// token revoked where that is possible (best effort: the token never left the server).
    pub(super) async fn end_session(&self, key: &TokenKey) {
        let Some(session) = self.sessions.get(key, Instant::now()) else {
            return;
        };
        self.sessions.end(key);
        let token = session.tokens().access;
        if let Err(error) = self.cache.revoke_within(&token, Budget::Exempt).await {
            tracing::debug!(%error, "logout: the session's token was not revoked (best effort)");
        }
    }
}

/// What [`AmazonUser::revoke`] reaches for a session's user.
impl SessionEnd for SignInShared {
    fn end(&self, key: TokenKey) -> BoxFuture<'_, Result<(), CacheError>> {
        Box::pin(async move {
            self.end_session(&key).await;
            Ok(())
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
