//! Amazon's side of the conversation: routing a request to tokeninfo, profile, the token
//! endpoint or the authorization endpoint, the plans tokeninfo and profile answer for a
//! registered token (the JSON shapes Amazon answers with), then waiting the latency and
//! rendering the plan.

use std::sync::atomic::AtomicBool;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use serde::Serialize;
use tokio::time::Instant;

use crate::authorize::{authorize_decision, authorize_page};
use crate::plan::{
    fixed_plan, json_action, render, Action, Plan, DESC_EXPIRED_TOKEN, DESC_METHOD, DESC_NOT_FOUND,
};
use crate::reply::{MockReply, ReplyKind};
use crate::state::{lock, Registration, Shared};
use crate::token_endpoint::token_endpoint;
use crate::transport::MockBody;
use crate::ISSUER;

const ACCESS_TOKEN_HEADER: &str = "x-amz-access-token";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    TokenInfo,
    Profile,
}

/// Answers one request: routes it to its endpoint, waits the latency and the plan's delay, then
/// renders the plan.
pub(crate) async fn handle(
    shared: &Shared,
    reset: &AtomicBool,
    request: Request<Incoming>,
) -> Response<MockBody> {
    let path = request.uri().path();
    let plan = match (path, request.method()) {
        ("/auth/o2/tokeninfo", &Method::GET) => tokeninfo(shared, request.uri()),
        ("/user/profile", &Method::GET) => profile(shared, &request),
        ("/auth/o2/token", &Method::POST) => token_endpoint(shared, request).await,
        ("/ap/oa", &Method::GET) => authorize_page(shared, request.uri()),
        ("/ap/oa", &Method::POST) => authorize_decision(shared, request).await,
        ("/auth/o2/tokeninfo" | "/user/profile", _) => method_not_allowed("GET"),
        ("/auth/o2/token", _) => method_not_allowed("POST"),
        ("/ap/oa", _) => method_not_allowed("GET, POST"),
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
