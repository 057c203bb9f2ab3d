//! Amazon's side of the conversation: routing a request to tokeninfo, profile or the token
//! endpoint, the plan each answers (decided under the lock, carried out after the latency), the
//! JSON shapes Amazon answers with (tokeninfo, profile, token, errors), the token endpoint's
//! form parsing and client authentication, and rendering a plan into a response.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use tokio::time::Instant;

use super::reply::{MockReply, ReplyKind};
use super::state::{lock, Registration, Shared, State};
use super::transport::MockBody;
use super::{ISSUER, MOCK_APP_ID, MOCK_CLIENT_ID};

const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const ACCESS_TOKEN_HEADER: &str = "x-amz-access-token";
/// Lifetime, in seconds, of the access tokens the token endpoint hands out.
const ISSUED_TOKEN_LIFETIME: u64 = 3600;
/// The token endpoint refuses form bodies larger than this.
const MAX_FORM_BYTES: usize = 64 * 1024;

const DESC_INVALID_REQUEST: &str = "The request is missing a required parameter, includes an invalid parameter value, or is otherwise malformed.";
const DESC_INVALID_TOKEN: &str =
    "The access token provided is expired, revoked, malformed, or invalid for other reasons.";
const DESC_EXPIRED_TOKEN: &str = "The access token provided has expired.";
const DESC_INSUFFICIENT_SCOPE: &str = "The access token provided does not have access to the required scope.";
const DESC_SERVER_ERROR: &str = "The server encountered a runtime error.";
const DESC_TOO_MANY_REQUESTS: &str = "The request was throttled. Retry later.";
const DESC_INVALID_CLIENT: &str = "The client authentication failed.";
const DESC_INVALID_GRANT: &str = "The authorization code or refresh token is invalid, expired, revoked, or was issued to a different client.";
const DESC_UNSUPPORTED_GRANT: &str = "The client specified an unsupported grant type.";
const DESC_NOT_FOUND: &str = "The requested resource does not exist.";
const DESC_METHOD: &str = "The HTTP method is not supported by this resource.";

// ---------------------------------------------------------------------------------------------
// Plans, routing, tokeninfo and profile
// ---------------------------------------------------------------------------------------------

/// What to answer, decided under the lock and carried out after the latency.
struct Plan {
    delay: Duration,
    retry_after: Option<u64>,
    /// Adds `Cache-Control: no-store` and `Pragma: no-cache` (token endpoint).
    no_store: bool,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
    action: Action,
}

enum Action {
    Body(StatusCode, Vec<u8>),
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
    fn new(action: Action) -> Plan {
        Plan {
            delay: Duration::ZERO,
            retry_after: None,
            no_store: false,
            allow: None,
            action,
        }
    }

    fn error(status: u16, error: &'static str) -> Plan {
        Plan::new(error_action(status, error))
    }
}

fn status_code(code: u16) -> StatusCode {
    if (200..=599).contains(&code) {
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

fn error_action(status: u16, error: &'static str) -> Action {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    TokenInfo,
    Profile,
}

/// Answers one request: routes it to its endpoint, waits the latency and the plan's delay, then
/// renders the plan.
pub(super) async fn handle(
    shared: &Shared,
    reset: &AtomicBool,
    request: Request<Incoming>,
) -> Response<MockBody> {
    let path = request.uri().path();
    let plan = match (path, request.method()) {
        ("/auth/o2/tokeninfo", &Method::GET) => tokeninfo(shared, request.uri()),
        ("/user/profile", &Method::GET) => profile(shared, &request),
        ("/auth/o2/token", &Method::POST) => token_endpoint(shared, request).await,
        ("/auth/o2/tokeninfo" | "/user/profile", _) => method_not_allowed("GET"),
        ("/auth/o2/token", _) => method_not_allowed("POST"),
        _ => Plan::new(Action::Error {
            status: StatusCode::NOT_FOUND,
            error: "invalid_request",
            description: DESC_NOT_FOUND,
        }),
    };
    let latency = lock(&shared.state).latency;
    let wait = latency.saturating_add(plan.delay);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let mut response = render(shared, reset, plan.action).await;
    let headers = response.headers_mut();
    if let Some(seconds) = plan.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if plan.no_store {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    if let Some(allow) = plan.allow {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

fn method_not_allowed(allow: &'static str) -> Plan {
    let mut plan = Plan::new(Action::Error {
        status: StatusCode::METHOD_NOT_ALLOWED,
        error: "invalid_request",
        description: DESC_METHOD,
    });
    plan.allow = Some(allow);
    plan
}

/// The request's `access_token` query parameter, percent-decoded; empty counts as absent.
fn query_token(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "access_token")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

fn tokeninfo(shared: &Shared, uri: &Uri) -> Plan {
    let token = query_token(uri);
    let mut state = lock(&shared.state);
    state.calls.tokeninfo += 1;
    let Some(token) = token else {
        return Plan::error(400, "invalid_request");
    };
    state.calls_per_token.entry(token.clone()).or_default().tokeninfo += 1;
    match state.tokens.get(&token) {
        Some(registration) => plan_for(
            &registration.reply,
            Endpoint::TokenInfo,
            registration,
            Instant::now(),
        ),
        None => Plan::error(400, "invalid_token"),
    }
}

/// The token of a profile request: `Authorization: Bearer`, then `x-amz-access-token`, then
/// the query string.
fn profile_token(request: &Request<Incoming>) -> Option<String> {
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty());
    if let Some(token) = bearer {
        return Some(token.to_owned());
    }
    let header_token = headers
        .get(ACCESS_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(token) = header_token {
        return Some(token.to_owned());
    }
    query_token(request.uri())
}

fn profile(shared: &Shared, request: &Request<Incoming>) -> Plan {
    let token = profile_token(request);
    let mut state = lock(&shared.state);
    state.calls.profile += 1;
    let Some(token) = token else {
        return Plan::error(400, "invalid_request");
    };
    state.calls_per_token.entry(token.clone()).or_default().profile += 1;
    match state.tokens.get(&token) {
        Some(registration) => plan_for(
            &registration.reply,
            Endpoint::Profile,
            registration,
            Instant::now(),
        ),
        None => Plan::error(400, "invalid_token"),
    }
}

/// The plan for a reply that is not about a user (`None` for a user reply).
fn fixed_plan(reply: &MockReply) -> Option<Plan> {
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

#[derive(Serialize)]
struct TokenInfoJson<'a> {
    iss: &'static str,
    user_id: &'a str,
    aud: &'a str,
    app_id: &'a str,
    exp: i64,
    iat: u64,
}

#[derive(Serialize)]
struct ProfileJson<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    postal_code: Option<&'a str>,
}

fn plan_for(reply: &MockReply, endpoint: Endpoint, registration: &Registration, now: Instant) -> Plan {
    let Some(user) = (match &reply.kind {
        ReplyKind::User(user) => Some(user),
        _ => None,
    }) else {
        return fixed_plan(reply).unwrap_or_else(|| Plan::error(500, "ServerError"));
    };
    let elapsed = now
        .saturating_duration_since(registration.registered_at)
        .as_secs();
    let remaining = user
        .exp
        .saturating_sub(i64::try_from(elapsed).unwrap_or(i64::MAX));
    let mut plan = if user.exp > 0 && remaining <= 0 {
        Plan::new(Action::Error {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_token",
            description: DESC_EXPIRED_TOKEN,
        })
    } else {
        match (endpoint, &user.tokeninfo_reply, &user.profile_reply) {
            (Endpoint::TokenInfo, Some(tokeninfo_reply), _) => {
                plan_for(tokeninfo_reply, Endpoint::TokenInfo, registration, now)
            }
            (Endpoint::TokenInfo, None, _) => Plan::new(json_action(&TokenInfoJson {
                iss: ISSUER,
                user_id: &user.user_id,
                aud: &user.aud,
                app_id: &user.app_id,
                exp: remaining,
                iat: registration.iat,
            })),
            (Endpoint::Profile, _, Some(profile_reply)) => {
                plan_for(profile_reply, Endpoint::Profile, registration, now)
            }
            (Endpoint::Profile, _, None) => {
                let (email, name, postal_code) = user.granted();
                Plan::new(json_action(&ProfileJson {
                    user_id: &user.user_id,
                    email,
                    name,
                    postal_code,
                }))
            }
        }
    };
    plan.delay = plan.delay.saturating_add(reply.delay);
    plan.retry_after = plan.retry_after.or(reply.retry_after);
    plan
}

fn json_action<T: Serialize>(value: &T) -> Action {
    match serde_json::to_vec(value) {
        Ok(body) => Action::Body(StatusCode::OK, body),
        Err(_) => error_action(500, "ServerError"),
    }
}

// ---------------------------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct TokenJson<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
}

async fn token_endpoint(shared: &Shared, request: Request<Incoming>) -> Plan {
    let (parts, body) = request.into_parts();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let body = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes());
    let form = match (&body, is_form) {
        (Ok(bytes), true) => parse_form(bytes),
        _ => None,
    };
    let credential = form
        .as_ref()
        .and_then(|form| match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => form.get("code").cloned(),
            Some("refresh_token") => form.get("refresh_token").cloned(),
            _ => None,
        });
    let basic = match parts.headers.get(header::AUTHORIZATION) {
        None => ClientAuth::Form,
        Some(value) => match value.to_str().ok().and_then(parse_basic) {
            Some((id, secret)) => ClientAuth::Basic(id, secret),
            None => ClientAuth::Malformed,
        },
    };

    let mut state = lock(&shared.state);
    state.calls.token += 1;
    if let Some(credential) = &credential {
        state.calls_per_token.entry(credential.clone()).or_default().token += 1;
    }
    let mut delay = Duration::ZERO;
    let mut retry_after = None;
    if let Some(reply) = &state.token_endpoint_reply {
        if let Some(mut plan) = fixed_plan(reply) {
            plan.no_store = true;
            return plan;
        }
        delay = reply.delay;
        retry_after = reply.retry_after;
    }
    let action = match form {
        None => error_action(400, "invalid_request"),
        Some(form) => match exchange(&mut state, &form, basic) {
            Ok(action) => action,
            Err((status, error)) => error_action(status, error),
        },
    };
    let mut plan = Plan::new(action);
    plan.delay = delay;
    plan.retry_after = retry_after;
    plan.no_store = true;
    plan
}

/// Parses a form body; `None` when a parameter appears twice (RFC 6749 §3.2).
fn parse_form(bytes: &[u8]) -> Option<HashMap<String, String>> {
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

/// Where the token endpoint request put its client credentials.
enum ClientAuth {
    /// No `Authorization` header: `client_id` and `client_secret` in the form.
    Form,
    /// HTTP Basic authentication.
    Basic(String, String),
    /// An `Authorization` header that is not valid Basic credentials.
    Malformed,
}

/// The id and secret of a `Basic` `Authorization` header value.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Decodes base64 in the standard or the URL-safe alphabet (even mixed), padded or not, and
/// ignores stray bits in the last character: clients are not all strict about Basic credentials.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let standard: String = input
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    LENIENT.decode(standard).ok()
}

/// Decodes `application/x-www-form-urlencoded` text (RFC 6749 §2.3.1 encodes Basic
/// credentials this way; most clients do not bother, so both forms are accepted): `+` is a
/// space, `%XX` a byte, a `%` without two hex digits stays as it is, and invalid UTF-8 becomes
/// U+FFFD.
fn form_decode(s: &str) -> String {
    // `form_urlencoded::parse` reads a whole form; escaping its separators keeps `s` one name.
    let one_name = s.replace('&', "%26").replace('=', "%3D");
    form_urlencoded::parse(one_name.as_bytes())
        .next()
        .map(|(name, _)| name.into_owned())
        .unwrap_or_default()
}

fn credential_matches(given: &str, expected: &str, basic: bool) -> bool {
    given == expected || (basic && form_decode(given) == expected)
}

type ExchangeError = (u16, &'static str);

fn exchange(
    state: &mut State,
    form: &HashMap<String, String>,
    auth: ClientAuth,
) -> Result<Action, ExchangeError> {
    const INVALID_REQUEST: ExchangeError = (400, "invalid_request");
    let grant_type = form.get("grant_type").ok_or(INVALID_REQUEST)?;
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return Err((400, "unsupported_grant_type"));
    }
    let (client_id, client_secret, via_basic) = match auth {
        ClientAuth::Malformed => return Err((401, "invalid_client")),
        ClientAuth::Basic(id, secret) => {
            // One authentication method per request (RFC 6749 §2.3).
            if form.contains_key("client_secret") {
                return Err(INVALID_REQUEST);
            }
            if let Some(form_id) = form.get("client_id") {
                if form_id != &id && form_decode(&id) != *form_id {
                    return Err((401, "invalid_client"));
                }
            }
            (id, secret, true)
        }
        ClientAuth::Form => {
            let id = form.get("client_id").ok_or(INVALID_REQUEST)?;
            let secret = form.get("client_secret").ok_or(INVALID_REQUEST)?;
            (id.clone(), secret.clone(), false)
        }
    };
    if !credential_matches(&client_id, &state.client_id, via_basic)
        || !credential_matches(&client_secret, &state.client_secret, via_basic)
    {
        return Err((401, "invalid_client"));
    }
    let (access_token, refresh_token) = if grant_type == "authorization_code" {
        let code = form.get("code").ok_or(INVALID_REQUEST)?;
        let access_token = state.codes.remove(code).ok_or((400, "invalid_grant"))?;
        let refresh_token = format!("Atzr|mock-refresh-{}", state.next_refresh);
        state.next_refresh += 1;
        state
            .refresh_tokens
            .insert(refresh_token.clone(), access_token.clone());
        (access_token, refresh_token)
    } else {
        let refresh_token = form.get("refresh_token").ok_or(INVALID_REQUEST)?;
        let access_token = state
            .refresh_tokens
            .get(refresh_token)
            .ok_or((400, "invalid_grant"))?;
        (access_token.clone(), refresh_token.clone())
    };
    Ok(json_action(&TokenJson {
        access_token: &access_token,
        refresh_token: &refresh_token,
        token_type: "bearer",
        expires_in: ISSUED_TOKEN_LIFETIME,
    }))
}
// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

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

async fn render(shared: &Shared, reset: &AtomicBool, action: Action) -> Response<MockBody> {
    let id = request_id(shared);
    let (status, body, declared_len) = match action {
        Action::Body(status, body) => (status, MockBody::full(body), None),
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
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, value);
    }
    if let Some(len) = declared_len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}
