//! PKCE (RFC 7636) as the mock's authorization server sees it: the two challenge methods, the
//! grammar of challenges and verifiers, and checking a verifier against the challenge an
//! authorization code was issued with.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// How a `code_challenge` was derived from its verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeMethod {
    /// `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`, without padding.
    S256,
    /// The challenge is the verifier itself.
    Plain,
}

impl ChallengeMethod {
    /// The method a request names, `plain` when it names none (as Amazon assumes); `None` for
    /// an unknown name (compared exactly, as RFC 7636 spells them).
    pub(crate) fn parse(name: Option<&str>) -> Option<ChallengeMethod> {
        match name {
            None | Some("plain") => Some(ChallengeMethod::Plain),
            Some("S256") => Some(ChallengeMethod::S256),
            Some(_) => None,
        }
    }
}

/// The challenge an authorization code was issued with.
#[derive(Debug, Clone)]
pub(crate) struct Challenge {
    pub(crate) value: String,
    pub(crate) method: ChallengeMethod,
}

/// Whether `s` is 43 to 128 characters of `[A-Za-z0-9-._~]`: RFC 7636's grammar of a
/// `code_verifier` (§4.1), and of a `plain` challenge, which is a verifier.
pub(crate) fn is_verifier_shaped(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `challenge` can have come from `method`: an `S256` challenge is the 43 characters of
/// an unpadded base64url SHA-256 digest, a `plain` one is a verifier.
pub(crate) fn is_challenge_shaped(challenge: &str, method: ChallengeMethod) -> bool {
    match method {
        ChallengeMethod::S256 => {
            challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        }
        ChallengeMethod::Plain => is_verifier_shaped(challenge),
    }
}

/// Whether `verifier` answers `challenge` (the verifier's grammar is checked separately).
pub(crate) fn verifies(challenge: &Challenge, verifier: &str) -> bool {
    match challenge.method {
        ChallengeMethod::S256 => {
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge.value
        }
        ChallengeMethod::Plain => verifier == challenge.value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b() {
        let challenge = Challenge {
            value: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
            method: ChallengeMethod::S256,
        };
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(is_verifier_shaped(verifier));
        assert!(is_challenge_shaped(&challenge.value, ChallengeMethod::S256));
        assert!(verifies(&challenge, verifier));
        assert!(!verifies(&challenge, &verifier.replace('d', "e")));
    }

    #[test]
    fn grammar() {
        assert!(!is_verifier_shaped(&"a".repeat(42)));
        assert!(is_verifier_shaped(&"a".repeat(43)));
        assert!(is_verifier_shaped(&"a".repeat(128)));
        assert!(!is_verifier_shaped(&"a".repeat(129)));
        assert!(!is_verifier_shaped(&format!("{}+", "a".repeat(43))));
        assert!(!is_challenge_shaped(&"a".repeat(44), ChallengeMethod::S256));
        assert!(!is_challenge_shaped(
            &format!("{}~", "a".repeat(42)),
            ChallengeMethod::S256
        ));
        assert_eq!(ChallengeMethod::parse(None), Some(ChallengeMethod::Plain));
        assert_eq!(ChallengeMethod::parse(Some("S256")), Some(ChallengeMethod::S256));
        assert_eq!(ChallengeMethod::parse(Some("s256")), None);
    }
}
