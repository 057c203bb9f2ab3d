//! Issuing credentials into the mock's state: fresh authorization codes, access tokens minted
//! for a grant (and registered at tokeninfo and profile at once) and refresh tokens.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::mock_access_token;
use crate::reply::MockReply;
use crate::state::{Grant, RefreshGrant, Registration, State};

/// Lifetime, in seconds, of the access tokens the token endpoint hands out for a code from
/// `MockAmazon::register_code` (a minted token's is its user's `exp`).
pub(crate) const ISSUED_TOKEN_LIFETIME: u64 = 3600;

/// 16 unpredictable bytes, as 22 characters of unpadded base64url.
fn random_part() -> String {
    let mut bytes = [0_u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness (it is a mock): the standard library's per-process random
        // hash keys, over the time.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        for half in bytes.chunks_mut(8) {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u128(nanos);
            half.copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The next value of the state's issue counter.
fn next_issue(state: &mut State) -> u64 {
    let n = state.next_issue;
    state.next_issue += 1;
    n
}

/// A fresh authorization code, `ANmock<n>` and 22 random characters of `[A-Za-z0-9_-]`.
pub(crate) fn new_code(state: &mut State) -> String {
    let n = next_issue(state);
    format!("ANmock{n}{}", random_part())
}

/// A fresh access token (see [`mock_access_token`]) for `grant`'s user, registered at once:
/// valid at tokeninfo and profile for the user's `exp` seconds, with the user's scope.
pub(crate) fn mint_access_token(state: &mut State, grant: &Grant) -> String {
    let n = next_issue(state);
    let token = mock_access_token(format!("mock-authorize-{n}-{}", random_part()));
    state.tokens.insert(
        token.clone(),
        Registration::new(MockReply::user(grant.user.clone())),
    );
    token
}

/// A fresh refresh token, `Atzr|mock-refresh-<n>`, that renews `grant`.
pub(crate) fn new_refresh_token(state: &mut State, grant: RefreshGrant) -> String {
    let refresh_token = format!("Atzr|mock-refresh-{}", state.next_refresh);
    state.next_refresh += 1;
    state.refresh_tokens.insert(refresh_token.clone(), grant);
    refresh_token
}

/// `expires_in` of a token endpoint answer: the minted user's `exp` (never negative), or
/// [`ISSUED_TOKEN_LIFETIME`] for a token the test registered itself.
pub(crate) fn expires_in(grant: Option<&Grant>) -> u64 {
    grant.map_or(ISSUED_TOKEN_LIFETIME, |grant| {
        u64::try_from(grant.user.exp).unwrap_or(0)
    })
}
