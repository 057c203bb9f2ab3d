//! [`AccessToken`]: an access token, redacted in `Debug` and `Display`, and what a token must
//! be before any network call ([`TokenRules`], [`AccessToken::check`]). Where a token is found
//! in a request is `token`'s business.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{AuthError, Malformed, Rejection};

/// Amazon's documented maximum length of an access token, in bytes.
pub const MAX_TOKEN_LEN: usize = 2048;
/// The prefix of every Login with Amazon access token.
pub const ACCESS_TOKEN_PREFIX: &str = "Atza|";
/// The prefix of a Login with Amazon refresh token, which must never be accepted as access.
pub const REFRESH_TOKEN_PREFIX: &str = "Atzr|";
/// An access token. `Debug` and `Display` never show it, and its buffer is wiped when it is
/// dropped ([`ZeroizeOnDrop`]; every clone wipes its own). Copies made elsewhere are not: the
/// `String` given to [`new`](Self::new) if it had spare capacity (it is reallocated to fit),
/// the request's header, and the HTTP client's buffers (see the README's security section).
///
/// ```
/// use tower_amazon_auth::AccessToken;
/// let token = AccessToken::new("Atza|secret");
/// assert_eq!(format!("{token:?} {token}"), "AccessToken(<redacted>) <redacted>");
/// assert_eq!(token.expose(), "Atza|secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Box<str>);

impl AccessToken {
    /// Wraps a token. No validation: see [`AccessToken::check`] for the crate's rules.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into().into_boxed_str())
    }

    /// The raw token, for sending to Amazon. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks the token against `rules` as the layer does before any network call (where the
    /// token came from is [`extract_token`](crate::token::extract_token)'s business).
    ///
    /// A refresh token is an [`AuthError::InvalidToken`]; everything else wrong is an
    /// [`AuthError::InvalidRequest`].
    ///
    /// ```
    /// use tower_amazon_auth::token::TokenRules;
    /// use tower_amazon_auth::{AccessToken, AuthError, Malformed};
    /// let rules = TokenRules::default();
    /// assert!(AccessToken::check("Atza|abc", rules).is_ok());
    /// assert_eq!(AccessToken::check("abc", rules), Err(AuthError::InvalidRequest(Malformed::BadPrefix)));
    /// assert!(AccessToken::check("abc", rules.require_access_token_prefix(false)).is_ok());
    /// ```
    pub fn check(token: &str, rules: TokenRules) -> Result<(), AuthError> {
        check_bytes(token.as_bytes(), rules.require_prefix)
    }
}

/// What a token must pass before any network call, besides the one-token rule: the layer's
/// own ([`AmazonAuthLayer::token_rules`](crate::AmazonAuthLayer::token_rules)), or these
/// defaults adjusted, for [`extract_token`](crate::token::extract_token) and [`AccessToken::check`].
///
/// ```
/// use tower_amazon_auth::token::TokenRules;
/// let rules = TokenRules::default().allow_query_token(false);
/// assert!(rules.requires_access_token_prefix() && !rules.allows_query_token());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRules {
    /// A token must start `Atza|`.
    pub(crate) require_prefix: bool,
    /// A token may come in the `access_token` query parameter.
    pub(crate) allow_query: bool,
}

impl Default for TokenRules {
    /// The layer's defaults: the `Atza|` prefix required, query tokens allowed.
    fn default() -> Self {
        Self {
            require_prefix: true,
            allow_query: true,
        }
    }
}

impl TokenRules {
    /// Whether a token must start `Atza|`. Default: `true`.
    pub const fn require_access_token_prefix(mut self, require: bool) -> Self {
        self.require_prefix = require;
        self
    }

    /// Whether a token may come in the `access_token` query parameter. Default: `true`.
    pub const fn allow_query_token(mut self, allow: bool) -> Self {
        self.allow_query = allow;
        self
    }

    /// Whether a token must start `Atza|`.
    pub const fn requires_access_token_prefix(&self) -> bool {
        self.require_prefix
    }

    /// Whether a token may come in the `access_token` query parameter.
    pub const fn allows_query_token(&self) -> bool {
        self.allow_query
    }
}

/// [`AccessToken::check`] on the raw bytes: what passes is visible ASCII, so valid UTF-8 (the
/// hit path never runs a separate UTF-8 check).
pub(crate) fn check_bytes(token: &[u8], require_prefix: bool) -> Result<(), AuthError> {
    check_length(token)?;
    check_characters(token)?;
    check_prefixes(token, require_prefix)
}

/// The first of [`check_bytes`]'s rules: not empty, not longer than [`MAX_TOKEN_LEN`].
pub(crate) fn check_length(token: &[u8]) -> Result<(), AuthError> {
    if token.is_empty() {
        return Err(AuthError::InvalidRequest(Malformed::Empty));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::InvalidRequest(Malformed::TooLong));
    }
    Ok(())
}

/// The second: visible ASCII (RFC 6750's b64token is too strict: Amazon tokens contain `|`),
/// minus quotes and backslash, which have no place in a token and break quoted-strings. The
/// only one that reads every byte.
fn check_characters(token: &[u8]) -> Result<(), AuthError> {
    // A fold without early exit, so the compiler vectorizes the scan of ~400 bytes.
    let bad = |b: u8| !(0x21..=0x7e).contains(&b) | (b == b'"') | (b == b'\'') | (b == b'\\');
    if token.iter().fold(false, |any, &b| any | bad(b)) {
        return Err(AuthError::InvalidRequest(Malformed::BadCharacters));
    }
    Ok(())
}

/// The last: not a refresh token, and `Atza|` when `require_prefix`.
pub(crate) fn check_prefixes(token: &[u8], require_prefix: bool) -> Result<(), AuthError> {
    if token.starts_with(REFRESH_TOKEN_PREFIX.as_bytes()) {
        return Err(AuthError::InvalidToken(Rejection::RefreshToken));
    }
    if require_prefix && !token.starts_with(ACCESS_TOKEN_PREFIX.as_bytes()) {
        return Err(AuthError::InvalidRequest(Malformed::BadPrefix));
    }
    Ok(())
}

impl Drop for AccessToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for AccessToken {}

impl From<String> for AccessToken {
    fn from(token: String) -> Self {
        Self::new(token)
    }
}

impl From<&str> for AccessToken {
    fn from(token: &str) -> Self {
        Self::new(token)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_wiped_on_drop_and_never_shown() {
        fn wiped_on_drop<T: ZeroizeOnDrop>() {}
        wiped_on_drop::<AccessToken>();
        // What drop runs, observed while the value is alive.
        let mut token = AccessToken::new("Atza|wipe-me");
        token.0.zeroize();
        assert!(token.expose().bytes().all(|b| b == 0));
        assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
    }
}
