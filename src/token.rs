//! Where a token is in a request: where it came from ([`TokenSource`]), finding exactly one
//! token without any network call ([`extract_token`], under [`TokenRules`]), and removing it
//! from an accepted request (one set of helpers for both, so they always agree on what a token
//! is). The token itself is an [`AccessToken`].

use std::borrow::Cow;
use std::fmt;

use http::header::{HeaderName, AUTHORIZATION};
use http::{HeaderMap, Request, Uri};

use crate::access_token::{check_bytes, check_length, check_prefixes, AccessToken};
pub use crate::access_token::{TokenRules, ACCESS_TOKEN_PREFIX, MAX_TOKEN_LEN, REFRESH_TOKEN_PREFIX};
use crate::error::{AuthError, Malformed};

/// The header Amazon's own APIs accept besides `Authorization`.
pub const AMZ_ACCESS_TOKEN: HeaderName = HeaderName::from_static("x-amz-access-token");
/// The query parameter that carries a token.
pub const ACCESS_TOKEN_PARAM: &str = "access_token";

/// Where in the request the token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenSource {
    /// The `access_token` query parameter.
    Query,
    /// `Authorization: Bearer <token>` (scheme matched case-insensitively).
    Bearer,
    /// The `x-amz-access-token` header.
    AmzHeader,
    /// The session cookie of website sign-in (see [`sign_in`](crate::sign_in)): the request
    /// carried no token of its own.
    Session,
}

impl TokenSource {
    /// A short stable name: `query`, `bearer` or `x-amz-access-token`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Bearer => "bearer",
            Self::AmzHeader => "x-amz-access-token",
            Self::Session => "session",
        }
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Finds the access token in a request under `rules`, as a layer with those rules does:
/// exactly one of the `access_token` query parameter, `Authorization: Bearer` or
/// `x-amz-access-token`, checked with [`AccessToken::check`]. For code outside the middleware
/// (a WebSocket upgrade, a custom extractor): pass the layer's
/// [`token_rules`](crate::AmazonAuthLayer::token_rules) and both give the same answer.
///
/// ```
/// use tower_amazon_auth::token::{extract_token, TokenRules, TokenSource};
/// let request = http::Request::get("/me?access_token=Atza%7Cabc").body(()).unwrap();
/// let (uri, headers) = (request.uri(), request.headers());
/// let (token, source) = extract_token(uri, headers, TokenRules::default()).unwrap().unwrap();
/// assert_eq!((token.expose(), source), ("Atza|abc", TokenSource::Query));
/// // A layer built with `allow_query_token(false)` refuses it, and so does this.
/// assert!(extract_token(uri, headers, TokenRules::default().allow_query_token(false)).is_err());
/// ```
pub fn extract_token(
    uri: &Uri,
    headers: &HeaderMap,
    rules: TokenRules,
) -> Result<Option<(AccessToken, TokenSource)>, AuthError> {
    let found = extract(uri, headers, rules)?;
    found.map(|f| Ok((f.access_token()?, f.source))).transpose()
}

/// A token found in a request, borrowed where it could be: its bytes, of an acceptable length
/// (see [`find`]).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Found<'a> {
    pub(crate) token: Cow<'a, [u8]>,
    pub(crate) source: TokenSource,
}

impl Found<'_> {
    /// [`check_bytes`] on the token: what must pass before it is verified.
    pub(crate) fn check(&self, rules: TokenRules) -> Result<(), AuthError> {
        check_bytes(&self.token, rules.require_prefix)
    }

    /// The cheap part of [`check`](Self::check): the prefix rules, without the scan of every
    /// byte. What a token the cache holds a verdict for still needs: every verdict comes from a
    /// verification, which only a token that passed the character check gets (a token of any
    /// other bytes has another key). When it fails, [`check`](Self::check) gives the answer
    /// (its character rule comes first).
    pub(crate) fn check_prefixes(&self, rules: TokenRules) -> Result<(), AuthError> {
        check_prefixes(&self.token, rules.require_prefix)
    }

    /// The token as an [`AccessToken`] (a copy, for a verification). Call it after
    /// [`check`](Self::check), whose characters are ASCII; anything else is refused as bad
    /// characters.
    pub(crate) fn access_token(&self) -> Result<AccessToken, AuthError> {
        String::from_utf8(self.token.to_vec())
            .map(AccessToken::new)
            .map_err(|_| AuthError::InvalidRequest(Malformed::BadCharacters))
    }
}

/// Finds the one token in `uri` and `headers`, checked with [`AccessToken::check`].
///
/// `Ok(None)` when the request carries no token (an `Authorization` header of another scheme,
/// such as `Basic`, counts as none). Two methods at once, a repeated credential header or
/// parameter, unreadable header bytes, or a query token where `rules` refuse them are `400
/// invalid_request`.
pub(crate) fn extract<'a>(
    uri: &'a Uri,
    headers: &'a HeaderMap,
    rules: TokenRules,
) -> Result<Option<Found<'a>>, AuthError> {
    let found = find(uri, headers, rules)?;
    if let Some(found) = &found {
        found.check(rules)?;
    }
    Ok(found)
}

/// [`extract`] without [`Found::check`]: the token's length is checked (so it is safe to
/// digest), its characters and prefixes not yet.
pub(crate) fn find<'a>(
    uri: &'a Uri,
    headers: &'a HeaderMap,
    rules: TokenRules,
) -> Result<Option<Found<'a>>, AuthError> {
    let mut found = None;
    let candidates = [
        (from_query(uri)?.map(into_bytes), TokenSource::Query),
        (from_authorization(headers)?, TokenSource::Bearer),
        (from_amz_header(headers)?, TokenSource::AmzHeader),
    ];
    for (token, source) in candidates {
        if let Some(token) = token {
            if found.is_some() {
                return Err(AuthError::InvalidRequest(Malformed::MultipleMethods));
            }
            found = Some(Found { token, source });
        }
    }
    if let Some(found) = &found {
        if found.source == TokenSource::Query && !rules.allow_query {
            return Err(AuthError::InvalidRequest(Malformed::QueryNotAllowed));
        }
        check_length(&found.token)?;
    }
    Ok(found)
}

fn from_query(uri: &Uri) -> Result<Option<Cow<'_, str>>, AuthError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let mut token = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let is_token = is_token_param(name);
        if names_token_param_inside(pair, is_token) {
            return Err(AuthError::InvalidRequest(Malformed::AmbiguousQuery));
        }
        // Other parameters' values are never decoded; the token's only when escaped.
        if !is_token {
            continue;
        }
        if token.is_some() {
            return Err(AuthError::InvalidRequest(Malformed::DuplicateParameter));
        }
        token = Some(decode_value(pair, value));
    }
    Ok(token)
}

/// Decodes the token's value (`value` is the part of `pair` after `=`). An Amazon token escapes
/// only its `|`, so `%7C` alone is replaced directly; anything else escaped goes through
/// form_urlencoded (five times slower on a 400-byte token).
fn decode_value<'a>(pair: &'a str, value: &'a str) -> Cow<'a, str> {
    if !has_escapes(value) {
        return Cow::Borrowed(value);
    }
    if !value.contains('+') {
        let piped = value.replace("%7C", "|").replace("%7c", "|");
        if !piped.contains('%') {
            return Cow::Owned(piped);
        }
    }
    form_urlencoded::parse(pair.as_bytes())
        .next()
        .map_or_else(Cow::default, |(_, v)| v)
}

/// Whether the (still encoded) query parameter name `name` is `access_token`: compared as is
/// when plain, decoded as a form parser would when escaped.
fn is_token_param(name: &str) -> bool {
    if has_escapes(name) {
        form_urlencoded::parse(name.as_bytes())
            .next()
            .is_some_and(|(name, _)| name == ACCESS_TOKEN_PARAM)
    } else {
        name == ACCESS_TOKEN_PARAM
    }
}

/// Whether the query pair `pair` names the token parameter anywhere but as its own name (when
/// `is_token`): `access_token=` inside it, or a `;`-separated piece named `access_token`. A
/// backend whose parser also splits on `;` would read another token there than the one
/// authenticated, so such a query is refused. Other parameters' values are not decoded, so an
/// escaped `access_token%3D` in one is no parameter to anyone.
fn names_token_param_inside(pair: &str, is_token: bool) -> bool {
    const NEEDLE: &str = "access_token=";
    let mut from = usize::from(is_token);
    while let Some(at) = pair.get(from..).and_then(|rest| rest.find(NEEDLE)) {
        if from + at != 0 {
            return true;
        }
        from += at + 1;
    }
    pair.split(';')
        .skip(1)
        .any(|piece| is_token_param(piece.split('=').next().unwrap_or("")))
}

/// Whether form-urlencoded text needs decoding (`%XX` or `+`). A fold without early exit, so
/// the compiler vectorizes it.
fn has_escapes(text: &str) -> bool {
    text.bytes().fold(false, |any, b| any | (b == b'%') | (b == b'+'))
}

/// The one value of header `name`, trimmed of spaces and tabs; a repeated header is refused.
fn single_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a [u8]>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(Malformed::DuplicateHeader));
    }
    Ok(Some(value.as_bytes().trim_ascii()))
}

/// A decoded query value's bytes.
fn into_bytes(text: Cow<'_, str>) -> Cow<'_, [u8]> {
    match text {
        Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
        Cow::Owned(text) => Cow::Owned(text.into_bytes()),
    }
}

fn from_authorization(headers: &HeaderMap) -> Result<Option<Cow<'_, [u8]>>, AuthError> {
    let Some(value) = single_header(headers, &AUTHORIZATION)? else {
        return Ok(None);
    };
    let split = value.iter().position(|b| matches!(b, b' ' | b'\t'));
    let (scheme, credentials) = match split {
        Some(at) => value.split_at(at),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    // RFC 7235 says `1*SP`; be lenient about extra spaces and tabs between the two. The bytes
    // are checked once, by `check_bytes` (non-UTF-8 bytes are bad characters there).
    Ok(Some(Cow::Borrowed(credentials.trim_ascii_start())))
}

fn from_amz_header(headers: &HeaderMap) -> Result<Option<Cow<'_, [u8]>>, AuthError> {
    Ok(single_header(headers, &AMZ_ACCESS_TOKEN)?.map(Cow::Borrowed))
}

/// Removes the token from where it came, so the inner service's logs cannot record it. A
/// query token is removed from the request's URI and, with the `axum` feature, from axum's
/// `OriginalUri` too (axum's router sets it before any layer runs). `Err` when the URI could
/// not be rebuilt without the token: the request must then be refused, never forwarded.
pub(crate) fn strip<B>(request: &mut Request<B>, source: TokenSource) -> Result<(), AuthError> {
    match source {
        TokenSource::Bearer => {
            request.headers_mut().remove(AUTHORIZATION);
        }
        TokenSource::AmzHeader => {
            request.headers_mut().remove(AMZ_ACCESS_TOKEN);
        }
        TokenSource::Query => {
            strip_query(request.uri_mut())?;
            #[cfg(feature = "axum")]
            if let Some(::axum::extract::OriginalUri(original)) = request.extensions_mut().get_mut() {
                strip_query(original)?;
            }
        }
        // The session cookie's name is the sign-in's: the layer strips it (see `sign_in`).
        TokenSource::Session => {}
    }
    Ok(())
}

/// Drops the `access_token` pairs from `uri`'s query, textually: the other parameters keep
/// their encoding.
fn strip_query(uri: &mut Uri) -> Result<(), AuthError> {
    let Some(query) = uri.query() else {
        return Ok(());
    };
    let mut path_and_query = String::with_capacity(uri.path().len() + query.len());
    path_and_query.push_str(uri.path());
    let kept = query
        .split('&')
        .filter(|pair| !is_token_param(pair.split('=').next().unwrap_or("")));
    for (i, pair) in kept.enumerate() {
        path_and_query.push(if i == 0 { '?' } else { '&' });
        path_and_query.push_str(pair);
    }
    // Pieces of a URI that parsed already: this does not fail, but if it ever did, the request
    // must not go on with its token.
    let unstrippable = || AuthError::InvalidRequest(Malformed::Unstrippable);
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().map_err(|_| unstrippable())?);
    *uri = Uri::from_parts(parts).map_err(|_| unstrippable())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Rejection;

    fn run(uri: &str, headers: &[(&str, &str)]) -> Result<Option<(String, TokenSource)>, AuthError> {
        let uri: Uri = uri.parse().unwrap();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        extract(&uri, &map, TokenRules::default())
            .map(|f| f.map(|f| (String::from_utf8(f.token.into_owned()).unwrap(), f.source)))
    }

    #[test]
    fn finds_each_source() {
        let ok = |s| Ok(Some(("Atza|x".to_owned(), s)));
        assert_eq!(run("/?access_token=Atza%7Cx", &[]), ok(TokenSource::Query));
        assert_eq!(run("/?a=1&access_token=Atza|x", &[]), ok(TokenSource::Query));
        assert_eq!(
            run("/", &[("authorization", "bearer  Atza|x")]),
            ok(TokenSource::Bearer)
        );
        assert_eq!(
            run("/", &[("x-amz-access-token", "Atza|x")]),
            ok(TokenSource::AmzHeader)
        );
        assert_eq!(run("/", &[("authorization", "Basic Zm9vOmJhcg==")]), Ok(None));
        assert_eq!(run("/?other=1", &[]), Ok(None));
        // The `%7C` shortcut and the general decoder agree.
        let query = |q: &str| run(&format!("/?{q}"), &[]).map(|f| f.map(|(t, _)| t));
        assert_eq!(query("access_token=Atza%7cx"), Ok(Some("Atza|x".to_owned())));
        assert_eq!(
            query("access_token=Atza%7Cx%41%7C"),
            Ok(Some("Atza|xA|".to_owned()))
        );
        assert_eq!(query("access%5Ftoken=Atza%7Cx"), Ok(Some("Atza|x".to_owned())));
        assert_eq!(
            query("access_token=Atza%7Cx+y"),
            Err(AuthError::InvalidRequest(Malformed::BadCharacters))
        );
    }

    #[test]
    fn refuses_ambiguity_and_junk() {
        let bad = |m| Err(AuthError::InvalidRequest(m));
        let both = run("/?access_token=Atza|x", &[("authorization", "Bearer Atza|x")]);
        assert_eq!(both, bad(Malformed::MultipleMethods));
        assert_eq!(
            run("/?access_token=Atza|x&access_token=Atza|y", &[]),
            bad(Malformed::DuplicateParameter)
        );
        assert_eq!(
            run("/", &[("authorization", "Bearer"), ("authorization", "Bearer")]),
            bad(Malformed::DuplicateHeader)
        );
        assert_eq!(run("/", &[("authorization", "Bearer")]), bad(Malformed::Empty));
        assert_eq!(
            run("/", &[("authorization", "Bearer Atza|x y")]),
            bad(Malformed::BadCharacters)
        );
        assert_eq!(
            run("/", &[("authorization", "Bearer \"Atza|x\"")]),
            bad(Malformed::BadCharacters)
        );
        assert_eq!(run("/?access_token=abc", &[]), bad(Malformed::BadPrefix));
        let long = format!("/?access_token=Atza|{}", "a".repeat(3000));
        assert_eq!(run(&long, &[]), bad(Malformed::TooLong));
        assert_eq!(
            run("/", &[("x-amz-access-token", "Atzr|refresh")]),
            Err(AuthError::InvalidToken(Rejection::RefreshToken))
        );
    }
}
