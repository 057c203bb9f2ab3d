//! The original request's method, as the proxy reports it on the subrequest (nginx's is always
//! a `GET`): `X-Original-Method` (the nginx snippet sets it) and `X-Forwarded-Method` (Caddy,
//! Traefik). A client can send either header itself (nginx passes a client's
//! `X-Forwarded-Method` on, Caddy a client's `X-Original-Method`), so the request counts as
//! unsafe if *any* of them names an unsafe method, or one that does not parse.

use http::{HeaderMap, Method};

use super::headers::{X_FORWARDED_METHOD, X_ORIGINAL_METHOD};

/// The method the CSRF rule judges the original request by: the first unsafe one any header
/// names (`POST` for one that does not parse), else `GET`; `None` when no header says.
pub(crate) fn original_method(headers: &HeaderMap) -> Option<Method> {
    let mut seen = false;
    for value in headers
        .get_all(X_ORIGINAL_METHOD)
        .iter()
        .chain(headers.get_all(X_FORWARDED_METHOD).iter())
    {
        seen = true;
        let method = Method::from_bytes(value.as_bytes().trim_ascii()).unwrap_or(Method::POST);
        if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Some(method);
        }
    }
    seen.then_some(Method::GET)
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::*;

    fn headers(pairs: &[(HeaderName, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), http::HeaderValue::from_static(value)))
            .collect()
    }

    #[test]
    fn any_unsafe_method_header_makes_the_request_unsafe() {
        assert_eq!(original_method(&headers(&[])), None);
        assert_eq!(
            original_method(&headers(&[(X_ORIGINAL_METHOD, "GET")])),
            Some(Method::GET)
        );
        assert_eq!(
            original_method(&headers(&[(X_FORWARDED_METHOD, "POST")])),
            Some(Method::POST)
        );
        // A client forging a safe method in the header the other proxy reads changes nothing.
        assert_eq!(
            original_method(&headers(&[
                (X_ORIGINAL_METHOD, "POST"),
                (X_FORWARDED_METHOD, "GET")
            ])),
            Some(Method::POST)
        );
        assert_eq!(
            original_method(&headers(&[
                (X_ORIGINAL_METHOD, "GET"),
                (X_FORWARDED_METHOD, "DELETE")
            ])),
            Some(Method::DELETE)
        );
        assert_eq!(
            original_method(&headers(&[(X_ORIGINAL_METHOD, "G E T")])),
            Some(Method::POST)
        );
    }
}
