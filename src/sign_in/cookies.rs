//! The sign-in cookies: their names (`__Host-` whenever they are `Secure`), their attributes
//! (`HttpOnly`, `SameSite=Lax`, `Path=/`), reading one from a request, removing one before the
//! inner service sees it. `Set-Cookie` values are built with the `cookie` crate. A request's
//! `Cookie` header is only `name=value` pairs separated by `;` (RFC 6265 §4.2.1): it is read
//! with a plain split, since the crate's parser reads every pair as a full `Set-Cookie` line
//! with its attributes (about 900 instructions a pair, twice per request on the hit path).

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

/// The session cookie's name without its prefix.
const SESSION: &str = "taa_session";
/// The pending-login cookies' names start so (then a short digest of the login's `state`).
const PENDING: &str = "taa_login_";
/// The most `Cookie` headers (and cookies in them) read: a request with more is treated as if
/// it had none of ours.
const MAX_COOKIES: usize = 64;

/// How the site's cookies are named and flagged.
#[derive(Debug, Clone)]
pub(crate) struct CookieRules {
    /// `Secure` and the `__Host-` prefix (an https public origin, or forced).
    pub(crate) secure: bool,
    session: String,
}

impl CookieRules {
    pub(crate) fn new(secure: bool) -> Self {
        Self {
            secure,
            session: prefixed(secure, SESSION),
        }
    }

    /// The session cookie's name.
    pub(crate) fn session_name(&self) -> &str {
        &self.session
    }

    /// The name of the pending-login cookie of the login whose state digests to `tag`.
    pub(crate) fn pending_name(&self, tag: &str) -> String {
        prefixed(self.secure, &format!("{PENDING}{tag}"))
    }

    /// The names of the pending-login cookies the request carries.
    pub(crate) fn pending_in<'h>(&self, headers: &'h HeaderMap) -> Vec<&'h str> {
        let prefix = self.pending_name("");
        pairs(headers)
            .filter(|(name, _)| name.starts_with(prefix.as_bytes()))
            .filter_map(|(name, _)| std::str::from_utf8(name).ok())
            .collect()
    }

    /// A `Set-Cookie` value setting `name` to `value` for `max_age` (a session cookie of the
    /// browser without one).
    pub(crate) fn set(&self, name: &str, value: &str, max_age: Option<Duration>) -> HeaderValue {
        let mut cookie = Cookie::build((name, value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.secure);
        if let Some(age) = max_age {
            let seconds = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
            cookie = cookie.max_age(cookie::time::Duration::seconds(seconds));
        }
        header(&cookie.build())
    }

    /// A `Set-Cookie` value that removes `name` from the browser.
    pub(crate) fn clear(&self, name: &str) -> HeaderValue {
        let cookie = Cookie::build((name, ""))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.secure)
            .removal()
            .build();
        header(&cookie)
    }
}

/// `name` with the `__Host-` prefix when `secure` (the browser then only accepts it `Secure`,
/// host-only and on `Path=/`: a sibling subdomain cannot plant it).
fn prefixed(secure: bool, name: &str) -> String {
    if secure {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

fn header(cookie: &Cookie<'_>) -> HeaderValue {
    // Names and values are ASCII the crate made (base64url, hex): always a valid header.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of the cookie `name` in the request's `Cookie` headers; `None` when it is absent,
/// or present more than once (a planted duplicate must not choose which one counts).
pub(crate) fn find<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut found = None;
    for (at, (key, value)) in pairs(headers).enumerate() {
        if at >= MAX_COOKIES {
            return None;
        }
        if key == name.as_bytes() {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
    }
    // Cookie values are visible ASCII (RFC 6265 §4.1.1); anything else is no value of ours.
    let value = match found? {
        [b'"', inner @ .., b'"'] => inner,
        value => value,
    };
    std::str::from_utf8(value).ok()
}

/// Removes the cookie `name` (every copy) from the request's `Cookie` headers, keeping the
/// others as they were; a header left empty is dropped.
pub(crate) fn strip(headers: &mut HeaderMap, name: &str) {
    // The usual case: one header holding the session cookie alone.
    let only_it = {
        let mut values = headers.get_all(COOKIE).iter();
        let first = values.next().map(HeaderValue::as_bytes);
        values.next().is_none()
            && first.is_some_and(|value| {
                let value = value.trim_ascii();
                memchr::memchr(b';', value).is_none()
                    && value
                        .strip_prefix(name.as_bytes())
                        .is_some_and(|rest| rest.first() == Some(&b'='))
            })
    };
    if only_it {
        headers.remove(COOKIE);
        return;
    }
    let kept: Vec<Vec<u8>> = pairs(headers)
        .filter(|(key, _)| *key != name.as_bytes())
        .map(|(key, value)| [key, b"=", value].concat())
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty() {
        if let Ok(value) = HeaderValue::from_bytes(&kept.join(&b"; "[..])) {
            headers.insert(COOKIE, value);
        }
    }
}

/// Every `name=value` pair of the request's `Cookie` headers (RFC 6265 §4.2.1: separated by
/// `;`, optional whitespace around each; a value may be quoted, and is given as sent), as
/// bytes. A pair without `=` or with an empty name is skipped.
fn pairs(headers: &HeaderMap) -> Pairs<'_> {
    Pairs {
        values: headers.get_all(COOKIE).iter(),
        rest: None,
    }
}

/// The iterator of [`pairs`]: a plain loop over the bytes (on the hit path, iterator adapters
/// cost several times the work).
struct Pairs<'h> {
    values: http::header::ValueIter<'h, HeaderValue>,
    /// What is left of the header being read.
    rest: Option<&'h [u8]>,
}

impl<'h> Iterator for Pairs<'h> {
    type Item = (&'h [u8], &'h [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = match self.rest {
                Some(rest) => rest,
                None => self.values.next()?.as_bytes(),
            };
            let (pair, after) = match memchr::memchr(b';', rest) {
                Some(at) => (&rest[..at], Some(&rest[at + 1..])),
                None => (rest, None),
            };
            self.rest = after;
            let Some(at) = memchr::memchr(b'=', pair) else {
                continue;
            };
            // The value as sent, quotes included: `strip` writes it back as it came.
            let (name, value) = (pair[..at].trim_ascii(), pair[at + 1..].trim_ascii());
            if !name.is_empty() {
                return Some((name, value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for cookie in cookies {
            headers.append(COOKIE, HeaderValue::from_str(cookie).unwrap());
        }
        headers
    }

    #[test]
    fn a_secure_site_gets_host_prefixed_flagged_cookies() {
        let rules = CookieRules::new(true);
        assert_eq!(rules.session_name(), "__Host-taa_session");
        let set = rules.set(rules.session_name(), "abc", Some(Duration::from_secs(60)));
        let set = set.to_str().unwrap();
        for attribute in [
            "__Host-taa_session=abc",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Secure",
            "Max-Age=60",
        ] {
            assert!(set.contains(attribute), "{set}");
        }
        let plain = CookieRules::new(false);
        let set = plain.set(plain.session_name(), "abc", None);
        assert!(!set.to_str().unwrap().contains("Secure"));
        assert!(!set.to_str().unwrap().contains("Max-Age"));
        assert!(plain.clear("x").to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn one_cookie_is_found_and_a_duplicate_counts_as_none() {
        let one = headers(&["a=1; taa_session=xyz; b=2"]);
        assert_eq!(find(&one, "taa_session"), Some("xyz"));
        let two = headers(&["taa_session=xyz", "taa_session=planted"]);
        assert_eq!(find(&two, "taa_session"), None);
        assert_eq!(find(&headers(&[]), "taa_session"), None);
    }

    #[test]
    fn pairs_are_read_as_browsers_send_them() {
        let sent = headers(&["a=1;b = 2 ; c=\"3\"; junk; =x; d=4=5"]);
        let read: Vec<(&[u8], &[u8])> = pairs(&sent).collect();
        let expected: [(&[u8], &[u8]); 4] = [(b"a", b"1"), (b"b", b"2"), (b"c", b"\"3\""), (b"d", b"4=5")];
        assert_eq!(read, expected);
    }

    #[test]
    fn stripping_keeps_the_other_cookies() {
        let mut request = headers(&["a=1; taa_session=xyz", "b=\"2 2\""]);
        strip(&mut request, "taa_session");
        assert_eq!(
            request.get(COOKIE).unwrap(),
            "a=1; b=\"2 2\"",
            "the others as they came"
        );
        assert_eq!(find(&headers(&["q=\"quoted\""]), "q"), Some("quoted"));
        let mut only = headers(&["taa_session=xyz"]);
        strip(&mut only, "taa_session");
        assert!(only.get(COOKIE).is_none());
    }
}
