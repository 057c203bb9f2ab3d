//! Where a query token is looked for: the original request's URI, which the proxy sends in
//! `X-Original-URI` (nginx) or `X-Forwarded-Uri` (Caddy, Traefik), or else the subrequest's
//! own URI (Envoy appends the original path and query to its path prefix).

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue, Uri};
use percent_encoding::{AsciiSet, CONTROLS};

use super::headers::{X_FORWARDED_URI, X_ORIGINAL_URI};
use crate::error::{AuthError, Malformed};

/// Bytes `http::Uri` refuses but a proxy may pass on from a client's request line, encoded so
/// the URI parses. `%` and `+` are left alone: they already mean something in a query, and a
/// token decodes as it would have.
const UNSAFE_IN_URI: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The URI whose query may carry the token.
///
/// A repeated `X-Original-URI` or `X-Forwarded-Uri`, or both with different values, is refused
/// as [`Malformed::DuplicateHeader`]: the proxy's view of the request would be ambiguous. A value
/// that is no URI even once its unsafe bytes are escaped is [`Malformed::BadCharacters`].
pub(crate) fn original_uri<'a>(own: &'a Uri, headers: &HeaderMap) -> Result<Cow<'a, Uri>, AuthError> {
    let mut values = headers
        .get_all(X_ORIGINAL_URI)
        .iter()
        .chain(headers.get_all(X_FORWARDED_URI).iter());
    let Some(first) = values.next() else {
        return Ok(Cow::Borrowed(own));
    };
    if values.any(|other| other != first) {
        return Err(AuthError::InvalidRequest(Malformed::DuplicateHeader));
    }
    parse(first).map(Cow::Owned)
}

fn parse(value: &HeaderValue) -> Result<Uri, AuthError> {
    let bytes = value.as_bytes().trim_ascii();
    if let Ok(uri) = Uri::try_from(bytes) {
        return Ok(uri);
    }
    let escaped = percent_encoding::percent_encode(bytes, UNSAFE_IN_URI).to_string();
    Uri::try_from(escaped).map_err(|_| AuthError::InvalidRequest(Malformed::BadCharacters))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn picks_the_header_then_the_own_uri() {
        let own: Uri = "/verify/api?access_token=Atza%7Cenvoy".parse().unwrap();
        let none = original_uri(&own, &HeaderMap::new()).unwrap();
        assert_eq!(none.query(), Some("access_token=Atza%7Cenvoy"));
        let nginx = headers(&[("x-original-uri", b"/app?access_token=Atza%7Cx")]);
        assert_eq!(
            original_uri(&own, &nginx).unwrap().query(),
            Some("access_token=Atza%7Cx")
        );
        let caddy = headers(&[("x-forwarded-uri", b"/app?a=1")]);
        assert_eq!(original_uri(&own, &caddy).unwrap().query(), Some("a=1"));
        let same = headers(&[("x-original-uri", b"/a?b"), ("x-forwarded-uri", b"/a?b")]);
        assert_eq!(original_uri(&own, &same).unwrap().query(), Some("b"));
    }

    #[test]
    fn refuses_ambiguity_and_escapes_what_uri_refuses() {
        let own: Uri = "/verify".parse().unwrap();
        let two = headers(&[("x-original-uri", b"/a"), ("x-forwarded-uri", b"/b")]);
        assert_eq!(
            original_uri(&own, &two),
            Err(AuthError::InvalidRequest(Malformed::DuplicateHeader))
        );
        let repeated = headers(&[("x-forwarded-uri", b"/a"), ("x-forwarded-uri", b"/b")]);
        assert!(original_uri(&own, &repeated).is_err());
        let raw = headers(&[("x-original-uri", "/caf\u{e9} x?q={1}".as_bytes())]);
        assert_eq!(original_uri(&own, &raw).unwrap().path(), "/caf%C3%A9%20x");
    }
}
