//! The authorization endpoint, Amazon's `https://www.amazon.com/ap/oa`: validating an
//! authorization request, the consent page (`GET /ap/oa`), and the user's decision
//! (`POST /ap/oa`): Allow mints an access token and a single-use code bound to the request,
//! Cancel answers `access_denied`; both redirect to the app's registered `redirect_uri`.

use http::header::HeaderValue;
use http::{Request, StatusCode, Uri};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::consent_page::{error_page, ConsentPage};
use crate::form::{parse_form, read_form, Form};
use crate::issue::{mint_access_token, new_code};
use crate::pkce::{is_challenge_shaped, Challenge, ChallengeMethod};
use crate::plan::{Action, Plan};
use crate::reply::{MockScope, MockUser};
use crate::state::{lock, Consent, Grant, IssuedCode, Shared, State};

/// The parameters of an authorization request, in the order the consent page sends them back.
const PARAMETERS: [&str; 7] = [
    "client_id",
    "scope",
    "response_type",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// The scopes the mock knows, as Amazon spells them.
const SCOPES: [&str; 3] = ["profile", "profile:user_id", "postal_code"];

/// The `error_description` of a Cancel.
const DESC_ACCESS_DENIED: &str = "The user denied the request.";

/// An authorization request that passed [`validate`].
struct AuthorizeRequest<'a> {
    client_id: &'a str,
    /// The requested scopes, each once, in the request's order.
    scopes: Vec<&'a str>,
    /// What the scopes let the profile return.
    scope: MockScope,
    redirect_uri: &'a str,
    state: Option<&'a str>,
    challenge: Option<Challenge>,
}

/// Checks an authorization request against the state: a known client, a `redirect_uri`
/// registered for it (string equality, no fragment), `response_type=code`, known scopes, and a
/// well-formed PKCE challenge if any. `Err` says what is wrong, for the error page.
fn validate<'a>(form: &'a Form, state: &State) -> Result<AuthorizeRequest<'a>, &'static str> {
    let param = |name: &str| form.get(name).map(String::as_str);
    let client_id = param("client_id").ok_or("The request has no client_id.")?;
    if client_id != state.client_id {
        return Err("The client_id is not an app this server knows.");
    }
    let redirect_uri = param("redirect_uri").ok_or("The request has no redirect_uri.")?;
    if !state.redirect_uris.iter().any(|uri| uri == redirect_uri) {
        return Err("The redirect_uri is not registered for this app.");
    }
    if redirect_uri.contains('#') || HeaderValue::from_str(redirect_uri).is_err() {
        return Err("The redirect_uri cannot be redirected to (it has a fragment or control characters).");
    }
    if param("response_type") != Some("code") {
        return Err("The response_type must be code.");
    }
    let mut scopes: Vec<&str> = Vec::new();
    for scope in param("scope")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        if !SCOPES.contains(&scope) {
            return Err("The scope holds a value other than profile, profile:user_id and postal_code.");
        }
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let postal_code = scopes.contains(&"postal_code");
    let scope = match (scopes.contains(&"profile"), postal_code) {
        _ if scopes.is_empty() => return Err("The request asks for no scope."),
        (true, false) => MockScope::Profile,
        (true, true) => MockScope::ProfileAndPostalCode,
        (false, false) => MockScope::UserId,
        (false, true) => MockScope::UserIdAndPostalCode,
    };
    let method = param("code_challenge_method");
    let challenge = match (param("code_challenge"), method) {
        (None, None) => None,
        (None, Some(_)) => return Err("The request has a code_challenge_method but no code_challenge."),
        (Some(value), method) => {
            let method =
                ChallengeMethod::parse(method).ok_or("The code_challenge_method must be S256 or plain.")?;
            if !is_challenge_shaped(value, method) {
                return Err("The code_challenge is not one its code_challenge_method can produce.");
            }
            Some(Challenge {
                value: value.to_owned(),
                method,
            })
        }
    };
    Ok(AuthorizeRequest {
        client_id,
        scopes,
        scope,
        redirect_uri,
        state: param("state"),
        challenge,
    })
}

/// The users the consent page offers: the ones the test added, or the demo user.
fn sign_in_users(state: &State) -> Vec<MockUser> {
    if state.sign_in_users.is_empty() {
        vec![MockUser::demo()]
    } else {
        state.sign_in_users.clone()
    }
}

/// An HTML page with `status`, never stored by a cache.
fn page(status: StatusCode, html: String) -> Plan {
    let mut plan = Plan::new(Action::Html(status, html));
    plan.no_store = true;
    plan
}

/// `400` with the error page: the mock redirects nowhere for an invalid request.
fn refuse(message: &str) -> Plan {
    page(StatusCode::BAD_REQUEST, error_page(message))
}

/// A request's query as a form (an absent query is an empty one).
fn query_form(uri: &Uri) -> Option<Form> {
    parse_form(uri.query().unwrap_or_default().as_bytes())
}

/// `GET /ap/oa`: the consent page for a valid authorization request, the error page otherwise.
pub(crate) fn authorize_page(shared: &Shared, uri: &Uri) -> Plan {
    let Some(form) = query_form(uri) else {
        return refuse("A parameter appears more than once.");
    };
    let state = lock(&shared.state);
    let request = match validate(&form, &state) {
        Ok(request) => request,
        Err(message) => return refuse(message),
    };
    let users = sign_in_users(&state);
    drop(state);
    let hidden: Vec<(&str, &str)> = PARAMETERS
        .iter()
        .filter_map(|name| form.get(*name).map(|value| (*name, value.as_str())))
        .collect();
    let html = ConsentPage {
        client_id: request.client_id,
        scopes: &request.scopes,
        users: &users,
        hidden: &hidden,
    }
    .render();
    page(StatusCode::OK, html)
}

/// `POST /ap/oa`, the consent page's form: the request is validated again, then `action`
/// decides. `cancel` redirects with `error=access_denied`; `allow` mints an access token for the
/// chosen `user_id` (one of the sign-in users) with the requested scope and `aud` the client,
/// issues a code for it and redirects with `code`. Both echo `state` when the request had one.
pub(crate) async fn authorize_decision(shared: &Shared, request: Request<Incoming>) -> Plan {
    let (parts, body) = request.into_parts();
    let Some(form) = read_form(&parts, body).await else {
        return refuse("The form is not form-encoded, is too large or repeats a parameter.");
    };
    let mut state = lock(&shared.state);
    let request = match validate(&form, &state) {
        Ok(request) => request,
        Err(message) => return refuse(message),
    };
    match form.get("action").map(String::as_str) {
        Some("cancel") => redirect(
            request.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", DESC_ACCESS_DENIED),
            ],
            request.state,
        ),
        Some("allow") => allow(&mut state, &form, request),
        _ => refuse("The form must press allow or cancel."),
    }
}

/// Allow: the code, bound to the request, for a freshly minted access token of the chosen user.
fn allow(state: &mut State, form: &Form, request: AuthorizeRequest<'_>) -> Plan {
    let Some(user_id) = form.get("user_id") else {
        return refuse("The form chose no user to sign in as.");
    };
    let Some(user) = sign_in_users(state).into_iter().find(|u| &u.user_id == user_id) else {
        return refuse("The user_id is not one of the users one can sign in as.");
    };
    let code = new_code(state);
    let plan = redirect(request.redirect_uri, &[("code", &code)], request.state);
    if !matches!(plan.action, Action::Redirect(_)) {
        return plan;
    }
    let grant = Grant {
        client_id: request.client_id.to_owned(),
        user: user.aud(request.client_id).scope(request.scope),
    };
    let access_token = mint_access_token(state, &grant);
    let consent = Consent {
        grant,
        redirect_uri: request.redirect_uri.to_owned(),
        challenge: request.challenge,
        issued_at: Instant::now(),
        lifetime: state.code_lifetime,
    };
    state.codes.insert(
        code,
        IssuedCode {
            access_token,
            consent: Some(consent),
        },
    );
    plan
}

/// `303` to `redirect_uri` with `params` (and `state` when given) added to its query.
fn redirect(redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Plan {
    let mut location = redirect_uri.to_owned();
    let mut separator = match redirect_uri.find('?') {
        None => Some('?'),
        Some(_) if redirect_uri.ends_with(['?', '&']) => None,
        Some(_) => Some('&'),
    };
    for (name, value) in params.iter().copied().chain(state.map(|s| ("state", s))) {
        location.extend(separator);
        separator = Some('&');
        location.push_str(name);
        location.push('=');
        percent_encode(value, &mut location);
    }
    match HeaderValue::from_str(&location) {
        Ok(location) => {
            let mut plan = Plan::new(Action::Redirect(location));
            plan.no_store = true;
            plan
        }
        Err(_) => refuse("The redirect_uri cannot be redirected to."),
    }
}

/// Appends `value` to `out` with every byte but RFC 3986's unreserved characters
/// (`[A-Za-z0-9-._~]`) percent-encoded.
fn percent_encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(plan: &Plan) -> &str {
        match &plan.action {
            Action::Redirect(location) => location.to_str().unwrap_or_default(),
            _ => "",
        }
    }

    #[test]
    fn redirect_appends_to_the_query() {
        let plan = redirect("https://a.example/cb", &[("code", "x y&z")], Some("s/é"));
        assert_eq!(
            location(&plan),
            "https://a.example/cb?code=x%20y%26z&state=s%2F%C3%A9"
        );
        let plan = redirect("https://a.example/cb?app=1", &[("code", "c")], None);
        assert_eq!(location(&plan), "https://a.example/cb?app=1&code=c");
        let plan = redirect("https://a.example/cb?", &[("code", "c")], None);
        assert_eq!(location(&plan), "https://a.example/cb?code=c");
    }
}
