//! The header names of the forward-auth contract, and the encoding of a profile value into a
//! header value that is always valid and never ambiguous.

use std::borrow::Cow;

use http::{HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS};

/// The response header carrying the Amazon `user_id` of an allowed request.
pub const X_AUTH_REQUEST_USER: HeaderName = HeaderName::from_static("x-auth-request-user");
/// The response header carrying the user's e-mail address (empty without the `profile` scope).
pub const X_AUTH_REQUEST_EMAIL: HeaderName = HeaderName::from_static("x-auth-request-email");
/// The response header carrying the user's name (empty without the `profile` scope).
pub const X_AUTH_REQUEST_NAME: HeaderName = HeaderName::from_static("x-auth-request-name");
/// The response header carrying the request's Amazon access token, only from a
/// [`ForwardAuth`](super::ForwardAuth) built with
/// [`pass_access_token(true)`](super::ForwardAuth::pass_access_token) (oauth2-proxy's
/// `--pass-access-token`): for a session, the session's current token, which the browser never
/// holds; for a bearer request, the request's own.
pub const X_AUTH_REQUEST_ACCESS_TOKEN: HeaderName = HeaderName::from_static("x-auth-request-access-token");
/// The request header nginx is configured to send the original request's URI in.
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// The request header Caddy and Traefik send the original request's URI in.
pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
/// The request header the nginx snippet sends the original request's method in (nginx's
/// subrequest is always a `GET`).
pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
/// The request header Caddy and Traefik send the original request's method in.
pub const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
/// The response header of a `401` to a signed-out browser navigation (with sign-in on): where
/// to send the browser to sign in, `/oauth2/start?rd=<the original URI>` (nginx cannot
/// percent-encode `$request_uri` itself, so the snippet redirects to this).
pub const X_AUTH_REQUEST_REDIRECT: HeaderName = HeaderName::from_static("x-auth-request-redirect");

/// Bytes written `%XX` anywhere: controls (`0x00`–`0x1F`, `0x7F`), `%` itself, and `,` (a
/// backend may split a header on commas, and read `Doe, Jane` as two values). The
/// `percent-encoding` crate also encodes every non-ASCII byte.
const ENCODED: &AsciiSet = &CONTROLS.add(b'%').add(b',');

/// `value` as a header value: bytes outside printable ASCII, `%`, and a leading or trailing
/// space are percent-encoded (see the [module docs](super)); percent-decoding gives `value`
/// back.
pub(crate) fn encode(value: &str) -> HeaderValue {
    let mut encoded: Cow<'_, str> = percent_encoding::utf8_percent_encode(value, ENCODED).into();
    // A proxy trims the spaces around a header value: encoded, they survive.
    if encoded.starts_with(' ') || encoded.ends_with(' ') {
        let inner = encoded.trim_matches(' ');
        let leading = encoded.len() - encoded.trim_start_matches(' ').len();
        let trailing = if inner.is_empty() {
            0
        } else {
            encoded.len() - encoded.trim_end_matches(' ').len()
        };
        let mut spaced = "%20".repeat(leading);
        spaced.push_str(inner);
        spaced.push_str(&"%20".repeat(trailing));
        encoded = Cow::Owned(spaced);
    }
    // Only printable ASCII is left: always a valid header value.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(value: &HeaderValue) -> String {
        percent_encoding::percent_decode(value.as_bytes())
            .decode_utf8()
            .unwrap()
            .into_owned()
    }

    #[test]
    fn encodes_what_a_header_cannot_hold_and_decodes_back() {
        let cases = [
            ("Demo User", "Demo User"),
            ("demo@example.com", "demo@example.com"),
            ("Zoë 100%", "Zo%C3%AB 100%25"),
            ("山田", "%E5%B1%B1%E7%94%B0"),
            ("a\r\nX-Evil: 1", "a%0D%0AX-Evil: 1"),
            (" padded ", "%20padded%20"),
            ("   ", "%20%20%20"),
            ("%41", "%2541"),
            ("Doe, Jane", "Doe%2C Jane"),
            ("", ""),
        ];
        for (value, expected) in cases {
            let encoded = encode(value);
            assert_eq!(encoded, expected, "{value:?}");
            assert_eq!(decode(&encoded), value);
        }
    }
}
