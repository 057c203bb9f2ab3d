//! The token endpoint (`POST /auth/o2/token`): client authentication (form or `Basic`), and
//! the authorization-code grant (single use; for a code from the consent page also its expiry,
//! its `redirect_uri` and PKCE) and the refresh-token grant against the mock's state.

use std::time::Duration;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use http::header;
use http::Request;
use hyper::body::Incoming;
use serde::Serialize;

use crate::form::{read_form, Form};
use crate::issue::{expires_in, mint_access_token, new_refresh_token};
use crate::pkce::{is_verifier_shaped, verifies};
use crate::plan::{error_action, fixed_plan, json_action, Action, Plan};
use crate::state::{lock, Consent, Grant, RefreshGrant, Shared, State};

#[derive(Serialize)]
struct TokenJson<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
}

pub(crate) async fn token_endpoint(shared: &Shared, request: Request<Incoming>) -> Plan {
    let (parts, body) = request.into_parts();
    let form = read_form(&parts, body).await;
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

const INVALID_REQUEST: ExchangeError = (400, "invalid_request");
const INVALID_GRANT: ExchangeError = (400, "invalid_grant");

fn exchange(state: &mut State, form: &Form, auth: ClientAuth) -> Result<Action, ExchangeError> {
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
    let (access_token, refresh_token, grant) = if grant_type == "authorization_code" {
        let code = form.get("code").ok_or(INVALID_REQUEST)?;
        // Removed before any check: a code that failed once never works later.
        let issued = state.codes.remove(code).ok_or(INVALID_GRANT)?;
        if let Some(consent) = &issued.consent {
            check_consent(consent, &state.client_id, form)?;
        }
        let grant = issued.consent.map(|consent| consent.grant);
        let refresh_token = new_refresh_token(
            state,
            RefreshGrant {
                access_token: issued.access_token.clone(),
                grant: grant.clone(),
            },
        );
        (issued.access_token, refresh_token, grant)
    } else {
        let refresh_token = form.get("refresh_token").ok_or(INVALID_REQUEST)?;
        refresh(state, refresh_token)?
    };
    Ok(json_action(&TokenJson {
        access_token: &access_token,
        refresh_token: &refresh_token,
        token_type: "bearer",
        expires_in: expires_in(grant.as_ref()),
    }))
}

/// The checks of a code the consent page issued, once the client is authenticated: issued to
/// this client, not expired, the same `redirect_uri` (missing counts as different), and PKCE.
///
/// PKCE: a code issued with a challenge needs a `code_verifier` that answers it; a code issued
/// without one refuses any `code_verifier` (RFC 9700 §2.1.1, against PKCE downgrade). Both are
/// `invalid_grant`. A `code_verifier` outside RFC 7636's grammar (43 to 128 characters of
/// `[A-Za-z0-9-._~]`) is `invalid_request`, with or without a challenge. Every failure has already used
/// the code up.
fn check_consent(consent: &Consent, client_id: &str, form: &Form) -> Result<(), ExchangeError> {
    if consent.grant.client_id != client_id || consent.issued_at.elapsed() >= consent.lifetime {
        return Err(INVALID_GRANT);
    }
    if form.get("redirect_uri") != Some(&consent.redirect_uri) {
        return Err(INVALID_GRANT);
    }
    let verifier = form.get("code_verifier");
    if verifier.is_some_and(|v| !is_verifier_shaped(v)) {
        return Err(INVALID_REQUEST);
    }
    match (&consent.challenge, verifier) {
        (Some(challenge), Some(verifier)) if verifies(challenge, verifier) => Ok(()),
        (None, None) => Ok(()),
        _ => Err(INVALID_GRANT),
    }
}

/// The refresh grant: the access token to hand out, the refresh token to hand back, and the
/// grant (for `expires_in`).
///
/// A grant from the consent page gets a newly minted access token (the earlier ones stay valid
/// until they expire); a code from `register_code` gets its access token again. With rotation
/// on, the refresh token is replaced, and the old one answers `invalid_grant` from then on.
fn refresh(state: &mut State, refresh_token: &str) -> Result<(String, String, Option<Grant>), ExchangeError> {
    let current = state.refresh_tokens.get(refresh_token).ok_or(INVALID_GRANT)?;
    let grant = current.grant.clone();
    let mut access_token = current.access_token.clone();
    if let Some(grant) = &grant {
        if grant.client_id != state.client_id {
            return Err(INVALID_GRANT);
        }
        access_token = mint_access_token(state, grant);
    }
    let refresh_token = if state.rotate_refresh_tokens {
        state.refresh_tokens.remove(refresh_token);
        new_refresh_token(
            state,
            RefreshGrant {
                access_token: access_token.clone(),
                grant: grant.clone(),
            },
        )
    } else {
        if let Some(current) = state.refresh_tokens.get_mut(refresh_token) {
            current.access_token.clone_from(&access_token);
        }
        refresh_token.to_owned()
    };
    Ok((access_token, refresh_token, grant))
}
