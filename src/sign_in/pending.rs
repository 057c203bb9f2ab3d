//! Logins under way: what `/login` starts and `/login/callback` finishes. Each login has a fresh
//! `state` and PKCE verifier (256 bits each), kept here on the server (keyed by a keyed digest of
//! the state) with the login's `return_to` and a digest of a nonce the browser holds in a cookie
//! of its own. [`PendingLogins::take`] removes the login: a state works once, whoever presents
//! it, and only in the browser that started it.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use foldhash::fast::RandomState;
use sha2::{Digest, Sha256};

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
}

/// The logins under way.
pub(crate) struct PendingLogins {
    logins: moka::sync::Cache<TokenKey, Arc<Pending>, RandomState>,
    digest: KeyedDigest,
}

impl PendingLogins {
    /// Room for `capacity` logins under way (the least recently started go first beyond it).
    pub(crate) fn new(capacity: u64) -> Result<Self, getrandom::Error> {
        Ok(Self {
            logins: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(LOGIN_LIFE)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build_with_hasher(RandomState::default()),
            digest: KeyedDigest::random()?,
        })
    }

    /// Starts a login that ends at `return_to`.
    pub(crate) fn start(&self, return_to: &str) -> Result<Started, getrandom::Error> {
        let state = random_text()?;
        let verifier = random_text()?;
        let nonce = random_text()?;
        let key = self.digest.key(state.as_bytes());
        self.logins.insert(
            key,
            Arc::new(Pending {
                verifier: verifier.clone(),
                return_to: return_to.to_owned(),
                browser: self.digest.key(nonce.as_bytes()),
            }),
        );
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
    pub(crate) fn take(&self, state: Option<&str>, nonce: Option<&str>) -> Result<Arc<Pending>, Mismatch> {
        let state = state
            .filter(|state| !state.is_empty())
            .ok_or(Mismatch::UnknownState)?;
        let pending = self
            .logins
            .remove(&self.digest.key(state.as_bytes()))
            .ok_or(Mismatch::UnknownState)?;
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

    #[test]
    fn a_state_works_once_and_only_with_its_browser() {
        let logins = PendingLogins::new(10).unwrap();
        let started = logins.start("/orders").unwrap();
        assert_eq!(started.state.len(), 43);
        assert_eq!(logins.tag_of(&started.state), started.tag);
        let other = logins.start("/").unwrap();
        assert_eq!(
            logins.take(Some(&other.state), Some(&started.nonce)).err(),
            Some(Mismatch::OtherBrowser)
        );
        assert_eq!(
            logins.take(Some(&other.state), Some(&other.nonce)).err(),
            Some(Mismatch::UnknownState),
            "a refused attempt used the state up"
        );
        let pending = logins.take(Some(&started.state), Some(&started.nonce)).unwrap();
        assert_eq!(pending.return_to, "/orders");
        assert_eq!(s256(&pending.verifier), started.challenge);
        assert_eq!(
            logins.take(Some(&started.state), Some(&started.nonce)).err(),
            Some(Mismatch::UnknownState)
        );
        assert_eq!(
            logins.take(None, Some(&started.nonce)).err(),
            Some(Mismatch::UnknownState)
        );
    }
}
