//! Logins under way: what `/login` starts and `/login/callback` finishes. Each login has a fresh
//! `state` and PKCE verifier (256 bits each), kept here on the server (keyed by a keyed digest of
//! the state) with the login's `return_to` and a digest of a nonce the browser holds in a cookie
//! of its own. [`PendingLogins::take`] removes the login: a state works once, whoever presents
//! it, and only in the browser that started it.
//!
//! With a [`SessionStore`] every instance shares, a login is kept there (written only if its
//! name is free, taken by a read that deletes it), so the callback may land on any instance;
//! a store that cannot be reached at the start keeps it here (the callback must then come back
//! to this instance), and logs why.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use foldhash::fast::RandomState;
use sha2::{Digest, Sha256};

use super::record::LoginRecord;
use crate::second_level::SessionStore;
use crate::token_key::{KeyedDigest, TokenKey};

/// How long a login may take, from `/login` to the callback (the pending cookie's life too).
pub(crate) const LOGIN_LIFE: Duration = Duration::from_secs(10 * 60);

/// A login started and not finished.
pub(crate) struct Pending {
    /// The PKCE verifier whose challenge went to Amazon.
    pub(crate) verifier: String,
    /// Where to go once signed in (already checked).
    pub(crate) return_to: String,
    /// The digest of the nonce in the browser's pending-login cookie.
    browser: TokenKey,
}

/// What `/login` hands the browser.
pub(crate) struct Started {
    /// The `state` parameter of the authorize request.
    pub(crate) state: String,
    /// `BASE64URL(SHA-256(verifier))`, sent with `code_challenge_method=S256`.
    pub(crate) challenge: String,
    /// Names this login's pending cookie (a short digest of the state: two tabs, two cookies).
    pub(crate) tag: String,
    /// The pending cookie's value.
    pub(crate) nonce: String,
}

/// Why a callback is not the end of a login this browser started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// No `state`, or one no login under way has (unknown, used, expired).
    UnknownState,
    /// The login is not this browser's (its pending cookie is missing or differs).
    OtherBrowser,
    /// The shared store could not be asked.
    StoreUnavailable,
}

/// The logins under way.
pub(crate) struct PendingLogins {
    logins: moka::sync::Cache<TokenKey, Arc<Pending>, RandomState>,
    digest: KeyedDigest,
    /// The store every instance shares, if any.
    shared: Option<Arc<dyn SessionStore>>,
}

impl PendingLogins {
    /// Room for `capacity` logins under way here (the least recently started go first beyond
    /// it), and `shared`'s, when given.
    pub(crate) fn new(
        capacity: u64,
        shared: Option<Arc<dyn SessionStore>>,
    ) -> Result<Self, getrandom::Error> {
        Ok(Self {
            logins: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(LOGIN_LIFE)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build_with_hasher(RandomState::default()),
            digest: match &shared {
                Some(store) => KeyedDigest::with_key(store.digest_key()),
                None => KeyedDigest::random()?,
            },
            shared,
        })
    }

    /// Starts a login that ends at `return_to`.
    pub(crate) async fn start(&self, return_to: &str) -> Result<Started, getrandom::Error> {
        let state = random_text()?;
        let verifier = random_text()?;
        let nonce = random_text()?;
        let key = self.digest.key(state.as_bytes());
        let pending = Pending {
            verifier: verifier.clone(),
            return_to: return_to.to_owned(),
            browser: self.digest.key(nonce.as_bytes()),
        };
        let kept = match &self.shared {
            Some(store) => {
                let record = LoginRecord {
                    verifier: pending.verifier.clone(),
                    return_to: pending.return_to.clone(),
                    browser: pending.browser,
                };
                match store.put_login(key, record.encode(), LOGIN_LIFE).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(%error, "sign-in: a login is kept on this instance only: the session store could not be reached");
                        false
                    }
                }
            }
            None => false,
        };
        if !kept {
            self.logins.insert(key, Arc::new(pending));
        }
        Ok(Started {
            tag: tag(key),
            challenge: s256(&verifier),
            state,
            nonce,
        })
    }

    /// The tag naming the pending cookie of the login with `state`.
    pub(crate) fn tag_of(&self, state: &str) -> String {
        tag(self.digest.key(state.as_bytes()))
    }

    /// Ends the login with `state`, started by the browser holding `nonce` (its pending
    /// cookie): the login is removed whatever the outcome, so a state never works twice.
    pub(crate) async fn take(
        &self,
        state: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<Arc<Pending>, Mismatch> {
        let state = state
            .filter(|state| !state.is_empty())
            .ok_or(Mismatch::UnknownState)?;
        let key = self.digest.key(state.as_bytes());
        let pending = match (self.logins.remove(&key), &self.shared) {
            (Some(pending), _) => pending,
            (None, None) => return Err(Mismatch::UnknownState),
            (None, Some(store)) => {
                let taken = store.take_login(key).await.map_err(|error| {
                    tracing::warn!(%error, "sign-in: a callback could not be checked: the session store could not be reached");
                    Mismatch::StoreUnavailable
                })?;
                // The verifier is in it: wiped once read.
                let taken = taken.map(zeroize::Zeroizing::new);
                let record = taken
                    .as_deref()
                    .and_then(|bytes| LoginRecord::decode(bytes))
                    .ok_or(Mismatch::UnknownState)?;
                Arc::new(Pending {
                    verifier: record.verifier,
                    return_to: record.return_to,
                    browser: record.browser,
                })
            }
        };
        match nonce {
            Some(nonce) if self.digest.key(nonce.as_bytes()) == pending.browser => Ok(pending),
            _ => Err(Mismatch::OtherBrowser),
        }
    }
}

/// 256 random bits, base64url without padding (43 characters: a valid PKCE verifier too).
pub(crate) fn random_text() -> Result<String, getrandom::Error> {
    let mut bytes = [0; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The S256 code challenge of `verifier` (RFC 7636 §4.2).
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Eight hex digits of a login's key.
fn tag(key: TokenKey) -> String {
    let bytes = key.to_be_bytes();
    bytes[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s_example() {
        // RFC 7636, Appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[tokio::test]
    async fn a_state_works_once_and_only_with_its_browser() {
        let logins = PendingLogins::new(10, None).unwrap();
        let started = logins.start("/orders").await.unwrap();
        assert_eq!(started.state.len(), 43);
        assert_eq!(logins.tag_of(&started.state), started.tag);
        let other = logins.start("/").await.unwrap();
        assert_eq!(
            logins.take(Some(&other.state), Some(&started.nonce)).await.err(),
            Some(Mismatch::OtherBrowser)
        );
        assert_eq!(
            logins.take(Some(&other.state), Some(&other.nonce)).await.err(),
            Some(Mismatch::UnknownState),
            "a refused attempt used the state up"
        );
        let pending = logins
            .take(Some(&started.state), Some(&started.nonce))
            .await
            .unwrap();
        assert_eq!(pending.return_to, "/orders");
        assert_eq!(s256(&pending.verifier), started.challenge);
        assert_eq!(
            logins
                .take(Some(&started.state), Some(&started.nonce))
                .await
                .err(),
            Some(Mismatch::UnknownState)
        );
        assert_eq!(
            logins.take(None, Some(&started.nonce)).await.err(),
            Some(Mismatch::UnknownState)
        );
    }
}
