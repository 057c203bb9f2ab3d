//! Fuzzes token extraction: an `http::Request` built from arbitrary bytes (URI, header names
//! and values, non-UTF-8 bytes, duplicates) goes through `tower_amazon_auth::token::extract_token`.
//!
//! Input layout: one flag byte, then segments separated by `0x00`: the URI, then header
//! name/value pairs. A name segment whose first byte is below 0x20 picks one of the credential
//! headers (so the fuzzer reaches them at once); any other is taken as raw header-name bytes.
//!
//! Invariants: never panics; the same request always gives the same answer; an accepted token
//! passes `AccessToken::check`, is 1..=2048 bytes of visible ASCII without quotes, backslash
//! or space, is no refresh token, starts `Atza|` when the prefix is required, and came from a
//! source actually present (exactly once) in the request; a refusal is a 400 or 401 with a
//! valid `WWW-Authenticate` challenge and a definite verdict (never a 5xx).
#![no_main]

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Uri};
use libfuzzer_sys::fuzz_target;
use tower_amazon_auth::AccessToken;
use tower_amazon_auth::token::{extract_token, TokenRules, TokenSource, AMZ_ACCESS_TOKEN};

const KNOWN: [&str; 6] = [
    "authorization",
    "x-amz-access-token",
    "Authorization",
    "X-Amz-Access-Token",
    "cookie",
    "www-authenticate",
];

fn build(data: &[u8]) -> Option<(bool, Uri, HeaderMap)> {
    let (&flags, rest) = data.split_first()?;
    let mut segments = rest.split(|b| *b == 0);
    let raw_uri = segments.next().unwrap_or_default();
    let uri_bytes = match flags & 0b110 {
        0b010 => [b"/?access_token=".as_slice(), raw_uri].concat(),
        0b100 => [b"/me?".as_slice(), raw_uri].concat(),
        _ => raw_uri.to_vec(),
    };
    let uri = if uri_bytes.is_empty() {
        Uri::from_static("/")
    } else {
        Uri::try_from(uri_bytes).ok()?
    };
    let mut headers = HeaderMap::new();
    while let Some(name) = segments.next() {
        let value = segments.next().unwrap_or_default();
        let name = match name.first() {
            Some(&b) if b < 0x20 => {
                let known = KNOWN[usize::from(b) % KNOWN.len()];
                HeaderName::from_bytes(known.as_bytes()).ok()?
            }
            _ => match HeaderName::from_bytes(name) {
                Ok(name) => name,
                Err(_) => continue,
            },
        };
        // Bytes 0x80..=0xff (obs-text) are valid header bytes but not UTF-8.
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        headers.append(name, value);
    }
    Some((flags & 1 == 1, uri, headers))
}

fuzz_target!(|data: &[u8]| {
    let Some((require_prefix, uri, headers)) = build(data) else {
        return;
    };
    let rules = TokenRules::default().require_access_token_prefix(require_prefix);
    let first = extract_token(&uri, &headers, rules);
    let second = extract_token(&uri, &headers, rules);
    assert_eq!(first, second, "extraction is deterministic");
    match first {
        Ok(None) => {}
        Ok(Some((token, source))) => {
            let t = token.expose();
            assert!(!t.is_empty() && t.len() <= 2048, "length {}", t.len());
            assert!(
                t.bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'"' | b'\'' | b'\\')),
                "only visible ASCII without quotes or backslash"
            );
            assert!(!t.starts_with("Atzr|"), "a refresh token is never accepted");
            if require_prefix {
                assert!(t.starts_with("Atza|"));
            }
            assert!(AccessToken::check(t, rules).is_ok());
            match source {
                TokenSource::Query => assert!(uri.query().is_some()),
                TokenSource::Bearer => assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1),
                TokenSource::AmzHeader => {
                    assert_eq!(headers.get_all(AMZ_ACCESS_TOKEN).iter().count(), 1)
                }
                _ => {}
            }
            // Debug and Display never show the token.
            assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
            assert_eq!(format!("{token}"), "<redacted>");
        }
        Err(error) => {
            let status = error.status().as_u16();
            assert!(status == 400 || status == 401, "refusal status {status}");
            assert!(error.is_definite());
            assert!(error.challenge("api").is_some(), "a refusal always has a challenge");
        }
    }
});
