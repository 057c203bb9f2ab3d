//! Reading `application/x-www-form-urlencoded` parameters, from a request body (the token
//! endpoint, the consent page's form) or a query string (the authorization endpoint): size
//! limit, content type, and RFC 6749's rule that no parameter appears twice.

use std::collections::HashMap;

use http::header;
use http::request::Parts;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// Form bodies larger than this are refused.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Parameters by name; a parameter sent empty is absent.
pub(crate) type Form = HashMap<String, String>;

/// The form a request body carries: `None` when the body is not
/// `application/x-www-form-urlencoded`, is larger than 64 KiB, cannot be read, or repeats a
/// parameter.
pub(crate) async fn read_form(parts: &Parts, body: Incoming) -> Option<Form> {
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes());
    match (bytes, is_form) {
        (Ok(bytes), true) => parse_form(&bytes),
        _ => None,
    }
}

/// Parses form-encoded `bytes` (a body or a query string); `None` when a parameter appears
/// twice (RFC 6749 §3.1, §3.2). Empty values are left out.
pub(crate) fn parse_form(bytes: &[u8]) -> Option<Form> {
    let mut form = HashMap::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        if value.is_empty() {
            continue;
        }
        if form.insert(name.into_owned(), value.into_owned()).is_some() {
            return None;
        }
    }
    Some(form)
}
