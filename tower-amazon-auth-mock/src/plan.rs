//! A plan: what the mock answers to one request (a body, one of Amazon's errors in Amazon's
//! shape, or a transport failure), decided under the lock, and rendering it into a response
//! once the latency has passed; or, for the authorization endpoint, an HTML page or a redirect.
//! The endpoints ([`crate::endpoints`], [`crate::token_endpoint`], [`crate::authorize`]) decide
//! plans; this file knows nothing of tokens.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::reply::{MockReply, ReplyKind};
use crate::state::Shared;
use crate::transport::MockBody;
use crate::{ISSUER, MOCK_APP_ID, MOCK_CLIENT_ID};

const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";
const HTML_CONTENT_TYPE: &str = "text/html; charset=utf-8";
/// The pages run no script, load nothing, and are never framed.
const HTML_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");

const DESC_INVALID_REQUEST: &str = "The request is missing a required parameter, includes an invalid parameter value, or is otherwise malformed.";
const DESC_INVALID_TOKEN: &str =
    "The access token provided is expired, revoked, malformed, or invalid for other reasons.";
pub(crate) const DESC_EXPIRED_TOKEN: &str = "The access token provided has expired.";
const DESC_INSUFFICIENT_SCOPE: &str = "The access token provided does not have access to the required scope.";
const DESC_SERVER_ERROR: &str = "The server encountered a runtime error.";
const DESC_TOO_MANY_REQUESTS: &str = "The request was throttled. Retry later.";
const DESC_INVALID_CLIENT: &str = "The client authentication failed.";
const DESC_INVALID_GRANT: &str = "The authorization code or refresh token is invalid, expired, revoked, or was issued to a different client.";
const DESC_UNSUPPORTED_GRANT: &str = "The client specified an unsupported grant type.";
pub(crate) const DESC_NOT_FOUND: &str = "The requested resource does not exist.";
pub(crate) const DESC_METHOD: &str = "The HTTP method is not supported by this resource.";

/// What to answer, decided under the lock and carried out after the latency.
pub(crate) struct Plan {
    pub(crate) delay: Duration,
    pub(crate) retry_after: Option<u64>,
    /// Adds `Cache-Control: no-store` and `Pragma: no-cache` (token endpoint).
    pub(crate) no_store: bool,
    /// The `Allow` header of a 405.
    pub(crate) allow: Option<&'static str>,
    pub(crate) action: Action,
}

pub(crate) enum Action {
    Body(StatusCode, Vec<u8>),
    /// An HTML page (the authorization endpoint's consent and error pages).
    Html(StatusCode, String),
    /// `303 See Other` to this `Location`, with an empty body.
    Redirect(HeaderValue),
    Error {
        status: StatusCode,
        error: &'static str,
        description: &'static str,
    },
    Garbage,
    Truncated,
    Reset,
    Oversized(usize),
    Hang,
}

impl Plan {
    pub(crate) fn new(action: Action) -> Plan {
        Plan {
            delay: Duration::ZERO,
            retry_after: None,
            no_store: false,
            allow: None,
            action,
        }
    }

    pub(crate) fn error(status: u16, error: &'static str) -> Plan {
        Plan::new(error_action(status, error))
    }
}

pub(crate) fn status_code(code: u16) -> StatusCode {
    if (200..=599).contains(&code) {
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

pub(crate) fn error_action(status: u16, error: &'static str) -> Action {
    let description = match error {
        "invalid_request" => DESC_INVALID_REQUEST,
        "invalid_token" => DESC_INVALID_TOKEN,
        "insufficient_scope" => DESC_INSUFFICIENT_SCOPE,
        "ServerError" => DESC_SERVER_ERROR,
        "TooManyRequests" => DESC_TOO_MANY_REQUESTS,
        "invalid_client" => DESC_INVALID_CLIENT,
        "invalid_grant" => DESC_INVALID_GRANT,
        "unsupported_grant_type" => DESC_UNSUPPORTED_GRANT,
        _ => DESC_INVALID_REQUEST,
    };
    Action::Error {
        status: status_code(status),
        error,
        description,
    }
}

/// The plan for a reply that is not about a user (`None` for a user reply).
pub(crate) fn fixed_plan(reply: &MockReply) -> Option<Plan> {
    let action = match &reply.kind {
        ReplyKind::User(_) => return None,
        ReplyKind::Error { status, error } => error_action(*status, error),
        ReplyKind::Json { status, body } => {
            Action::Body(status_code(*status), serde_json::to_vec(body).unwrap_or_default())
        }
        ReplyKind::Garbage => Action::Garbage,
        ReplyKind::Truncated => Action::Truncated,
        ReplyKind::Reset => Action::Reset,
        ReplyKind::Oversized(n) => Action::Oversized(*n),
        ReplyKind::Hang => Action::Hang,
    };
    let mut plan = Plan::new(action);
    plan.delay = reply.delay;
    plan.retry_after = reply.retry_after;
    Some(plan)
}

pub(crate) fn json_action<T: Serialize>(value: &T) -> Action {
    match serde_json::to_vec(value) {
        Ok(body) => Action::Body(StatusCode::OK, body),
        Err(_) => error_action(500, "ServerError"),
    }
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(1);

fn request_id(shared: &Shared) -> String {
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}-4{:03x}-8{:03x}-{:012x}",
        shared.request_id_prefix,
        (n >> 60) & 0xfff,
        (n >> 48) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    error: &'a str,
    error_description: &'a str,
    request_id: &'a str,
}

/// A sample tokeninfo body, cut short by `truncated` and `reset`.
fn sample_body() -> Vec<u8> {
    format!(
        r#"{{"iss":"{ISSUER}","user_id":"amzn1.account.MOCKCUTOFF","aud":"{MOCK_CLIENT_ID}","app_id":"{MOCK_APP_ID}","exp":3600,"iat":1700000000}}"#
    )
    .into_bytes()
}

fn oversized_body(n: usize) -> Vec<u8> {
    const HEAD: &[u8] = b"{\"pad\":\"";
    const TAIL: &[u8] = b"\"}";
    if n < HEAD.len() + TAIL.len() {
        return vec![b'x'; n];
    }
    let mut body = Vec::with_capacity(n);
    body.extend_from_slice(HEAD);
    body.resize(n - TAIL.len(), b'x');
    body.extend_from_slice(TAIL);
    body
}

pub(crate) async fn render(shared: &Shared, reset: &AtomicBool, action: Action) -> Response<MockBody> {
    let id = request_id(shared);
    let mut content_type = JSON_CONTENT_TYPE;
    let mut location = None;
    let (status, body, declared_len) = match action {
        Action::Body(status, body) => (status, MockBody::full(body), None),
        Action::Html(status, html) => {
            content_type = HTML_CONTENT_TYPE;
            (status, MockBody::full(html), None)
        }
        Action::Redirect(to) => {
            content_type = HTML_CONTENT_TYPE;
            location = Some(to);
            (StatusCode::SEE_OTHER, MockBody::full(Bytes::new()), None)
        }
        Action::Error {
            status,
            error,
            description,
        } => {
            let body = serde_json::to_vec(&ErrorJson {
                error,
                error_description: description,
                request_id: &id,
            })
            .unwrap_or_default();
            (status, MockBody::full(body), None)
        }
        Action::Garbage => (
            StatusCode::OK,
            MockBody::full(&b"<html><body><h1>Service Unavailable</h1> not JSON {\"user_id\":"[..]),
            None,
        ),
        Action::Oversized(n) => (StatusCode::OK, MockBody::full(oversized_body(n)), None),
        Action::Truncated | Action::Reset => {
            let fail = matches!(action, Action::Reset);
            if fail {
                reset.store(true, Ordering::Relaxed);
            }
            let full = sample_body();
            let len = full.len();
            let part = Bytes::from(full).slice(..len / 2);
            (StatusCode::OK, MockBody::cut(part, fail), Some(len))
        }
        Action::Hang => match std::future::pending::<Infallible>().await {},
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if content_type == HTML_CONTENT_TYPE {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(HTML_CSP),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    if let Some(location) = location {
        headers.insert(header::LOCATION, location);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, value);
    }
    if let Some(len) = declared_len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}
