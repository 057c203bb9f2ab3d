//! The CSRF rule of cookie-authenticated requests: a request the session cookie authenticates
//! with an unsafe method (not `GET`, `HEAD`, `OPTIONS`), or a WebSocket handshake (a `GET` that
//! opens a two-way channel: cross-site WebSocket hijacking), must come from the site itself:
//! `Origin` equal to the public origin, or `Sec-Fetch-Site: same-origin`. Cookies are ambient (a form on
//! another site sends them); bearer tokens are not, so a request carrying a token never gets
//! here.

use http::{HeaderMap, Method};

/// Whether a cookie-authenticated request with `method` and `headers` may proceed for a site at
/// `origin`.
pub(crate) fn allowed(method: &Method, headers: &HeaderMap, origin: &str) -> bool {
    let websocket = headers
        .get(http::header::UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"))
        || headers
            .get("sec-fetch-mode")
            .is_some_and(|value| value.as_bytes() == b"websocket");
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) && !websocket {
        return true;
    }
    let same_site_fetch = headers
        .get("sec-fetch-site")
        .is_some_and(|value| value.as_bytes() == b"same-origin");
    let own_origin = headers
        .get(http::header::ORIGIN)
        .is_some_and(|value| value.as_bytes() == origin.as_bytes());
    same_site_fetch || own_origin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    http::HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn unsafe_methods_need_the_sites_own_origin() {
        let site = "https://shop.example";
        assert!(allowed(
            &Method::GET,
            &headers(&[("origin", "https://evil.example")]),
            site
        ));
        assert!(allowed(
            &Method::POST,
            &headers(&[("origin", "https://shop.example")]),
            site
        ));
        assert!(allowed(
            &Method::DELETE,
            &headers(&[("sec-fetch-site", "same-origin")]),
            site
        ));
        assert!(!allowed(&Method::POST, &headers(&[]), site), "no Origin at all");
        assert!(!allowed(
            &Method::POST,
            &headers(&[("origin", "https://evil.example")]),
            site
        ));
        assert!(!allowed(&Method::POST, &headers(&[("origin", "null")]), site));
        assert!(!allowed(
            &Method::POST,
            &headers(&[("sec-fetch-site", "same-site")]),
            site
        ));
        assert!(!allowed(
            &Method::PUT,
            &headers(&[("origin", "https://shop.example.evil.example")]),
            site
        ));
    }
}
