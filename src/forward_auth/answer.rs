//! The forward-auth answers: allow (`200` with the identity headers), deny (the layer's own
//! refusal, with `400` turned into `401`), and `404` off the verify path. Every one carries
//! `Cache-Control: no-store`.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::headers::{
    encode, X_AUTH_REQUEST_ACCESS_TOKEN, X_AUTH_REQUEST_EMAIL, X_AUTH_REQUEST_NAME, X_AUTH_REQUEST_USER,
};
use crate::access_token::AccessToken;
use crate::error::AuthError;
use crate::identity::AmazonUser;
use crate::service::Settings;

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const EMPTY: HeaderValue = HeaderValue::from_static("");

/// `200` with the user's identity; a field the scope did not grant is an empty header. The
/// access token header is always there too (a proxy that copies it then overwrites a client's
/// own): `token` (the operator opted in), marked sensitive, else empty.
pub(crate) fn allow(user: &AmazonUser, token: Option<&AccessToken>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    let headers = response.headers_mut();
    headers.insert(X_AUTH_REQUEST_USER, encode(user.user_id()));
    headers.insert(X_AUTH_REQUEST_EMAIL, encode(user.email().unwrap_or_default()));
    headers.insert(X_AUTH_REQUEST_NAME, encode(user.name().unwrap_or_default()));
    // An accepted token passed the crate's character rules: always a valid header value.
    let mut token = token
        .and_then(|token| HeaderValue::from_str(token.expose()).ok())
        .unwrap_or(EMPTY);
    token.set_sensitive(true);
    headers.insert(X_AUTH_REQUEST_ACCESS_TOKEN, token);
    headers.insert(CACHE_CONTROL, NO_STORE);
    response
}

/// The layer's response to `error` (challenge, `Retry-After`, body from its responder), held to
/// the forward-auth contract whatever a custom responder answered: the status is the error's
/// own, with a malformed request's `400` answered `401` (nginx makes a 500 of any status but
/// 2xx, 401 and 403; the challenge still says `error="invalid_request"`), and the challenge and
/// `Retry-After` are added where the responder left them out.
pub(crate) fn deny(settings: &Settings, error: &AuthError) -> Response<Full<Bytes>> {
    let mut response = settings.respond(error);
    *response.status_mut() = match error.status() {
        StatusCode::BAD_REQUEST => StatusCode::UNAUTHORIZED,
        status => status,
    };
    let headers = response.headers_mut();
    if let Some(challenge) = error.challenge(&settings.realm) {
        headers.entry(WWW_AUTHENTICATE).or_insert(challenge);
    }
    if let Some(seconds) = error.retry_after(settings.retry_after) {
        headers.entry(RETRY_AFTER).or_insert(HeaderValue::from(seconds));
    }
    headers.insert(CACHE_CONTROL, NO_STORE);
    response
}

/// `404` for a path that is not the verify path: no token is looked at.
pub(crate) fn not_found() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    response
}
