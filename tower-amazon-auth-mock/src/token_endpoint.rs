//! The token endpoint (`POST /auth/o2/token`): form parsing, client authentication (form or
//! `Basic`), and the authorization-code and refresh-token grants against the mock's state.

use std::collections::HashMap;
use std::time::Duration;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use http::header;
use http::Request;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use crate::plan::{error_action, fixed_plan, json_action, Action, Plan};
use crate::state::{lock, Shared, State};

/// Lifetime, in seconds, of the access tokens the token endpoint hands out.
const ISSUED_TOKEN_LIFETIME: u64 = 3600;
/// The token endpoint refuses form bodies larger than this.
const MAX_FORM_BYTES: usize = 64 * 1024;

#[derive(Serialize)]
struct TokenJson<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
}

pub(crate) async fn token_endpoint(shared: &Shared, request: Request<Incoming>) -> Plan {
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
