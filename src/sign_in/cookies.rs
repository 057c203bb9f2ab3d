//! The sign-in cookies: their names (`__Host-` whenever they are `Secure`), their attributes
//! (`HttpOnly`, `SameSite=Lax`, `Path=/`), reading one from a request, removing one before the
//! inner service sees it. Built and parsed with the `cookie` crate.

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
    for (at, pair) in pairs(headers).enumerate() {
        if at >= MAX_COOKIES {
            return None;
        }
        let (key, value) = pair;
        if key == name {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
    }
    found
}

/// Removes the cookie `name` (every copy) from the request's `Cookie` headers, keeping the
/// others as they were; a header left empty is dropped.
pub(crate) fn strip(headers: &mut HeaderMap, name: &str) {
    if !pairs(headers).any(|(key, _)| key == name) {
        return;
    }
    let kept: Vec<String> = pairs(headers)
        .filter(|(key, _)| *key != name)
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(COOKIE, value);
        }
    }
}

/// Every `name=value` pair of the request's `Cookie` headers, as the `cookie` crate parses
/// them (what does not parse is skipped).
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(|cookie| {
            let cookie = cookie.ok()?;
            Some((cookie.name_raw()?, cookie.value_raw()?))
        })
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
    fn stripping_keeps_the_other_cookies() {
        let mut request = headers(&["a=1; taa_session=xyz", "b=2"]);
        strip(&mut request, "taa_session");
        assert_eq!(request.get(COOKIE).unwrap(), "a=1; b=2");
        let mut only = headers(&["taa_session=xyz"]);
        strip(&mut only, "taa_session");
        assert!(only.get(COOKIE).is_none());
    }
}
