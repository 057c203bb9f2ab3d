//! What the three sign-in routes do: `GET /login` starts a login and sends the browser to
//! Amazon; `GET /login/callback` finishes it (state, PKCE, code exchange, verification, a new
//! session); `POST /logout` ends what authenticated the request. Every answer is `no-store`.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use http_body_util::Full;

use super::cookies;
use super::csrf;
use super::page::{empty, page, redirect, with_cookies};
use super::pending::{Mismatch, LOGIN_LIFE};
use super::return_to::checked_return_to;
use super::session::{usable_until, Tokens};
use super::SignInShared;
use crate::access_token::TokenRules;
use crate::defaults;
use crate::error::{AmazonError, AuthError};
use crate::response::{default_response, ErrorContext};
use crate::token;

/// The most logins one browser has under way (tabs signing in at once), each with a cookie.
const MAX_PENDING_COOKIES: usize = 4;

impl SignInShared {
    /// Answers a request to one of the routes (`404` for any other path).
    pub(super) async fn route(&self, parts: &Parts) -> Response<Full<Bytes>> {
        let path = parts.uri.path();
        let paths = &self.paths;
        let expected = if path == paths.login || path == paths.callback {
            Method::GET
        } else if path == paths.logout {
            Method::POST
        } else {
            return page(StatusCode::NOT_FOUND, "Not found", "There is nothing here.", "/");
        };
        if parts.method == Method::HEAD && expected == Method::GET {
            // A HEAD starts nothing and sets no cookie.
            return page(StatusCode::OK, "Sign in", "", &paths.login);
        }
        if parts.method != expected {
            let mut response = page(
                StatusCode::METHOD_NOT_ALLOWED,
                "Not allowed",
                "Use another method.",
                "/",
            );
            if let Ok(allow) = http::HeaderValue::from_str(expected.as_str()) {
                response.headers_mut().insert(http::header::ALLOW, allow);
            }
            return response;
        }
        if path == paths.login {
            self.login(&parts.uri, &parts.headers).await
        } else if path == paths.callback {
            self.callback(&parts.uri, &parts.headers).await
        } else {
            self.logout(parts).await
        }
    }

    /// Starts a login: a fresh state and verifier, the pending cookie, `303` to Amazon. A
    /// browser keeps at most [`MAX_PENDING_COOKIES`] logins under way: beyond that, the older
    /// ones' cookies are cleared (those logins then fail at their callback).
    async fn login(&self, uri: &Uri, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let params = query(uri);
        let return_to = params
            .as_ref()
            .and_then(|p| p.get(&self.paths.return_param))
            .map(|target| {
                // An absolute URL on the public origin is its path.
                match target.strip_prefix(self.public_origin.as_str()) {
                    Some("") => "/",
                    Some(path) if path.starts_with('/') => path,
                    _ => target.as_str(),
                }
            });
        let routes = [
            self.paths.login.as_str(),
            &self.paths.callback,
            &self.paths.logout,
        ];
        let return_to = checked_return_to(return_to, &routes);
        let Ok(started) = self.pending.start(return_to).await else {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                "Please try again.",
                &self.paths.login,
            );
        };
        let authorize = format!(
            "{}?{}",
            self.authorize_url,
            form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", self.credentials.client_id())
                .append_pair("scope", &self.scope)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("state", &started.state)
                .append_pair("code_challenge", &started.challenge)
                .append_pair("code_challenge_method", "S256")
                .finish()
        );
        let name = self.cookies.pending_name(&started.tag);
        let pending = self.cookies.pending_in(headers);
        let cleared = match pending.len() >= MAX_PENDING_COOKIES {
            true => pending,
            false => Vec::new(),
        };
        with_cookies(
            redirect(&authorize),
            cleared
                .into_iter()
                .map(|old| self.cookies.clear(old))
                .chain([self.cookies.set(&name, &started.nonce, Some(LOGIN_LIFE))]),
        )
    }

    /// Finishes a login this browser started: a new session, `303` to where it was going.
    async fn callback(&self, uri: &Uri, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let again = &self.paths.login;
        let params = query(uri).unwrap_or_default();
        let state = params.get("state").map(String::as_str);
        let pending_cookie = state.map(|state| self.cookies.pending_name(&self.pending.tag_of(state)));
        let nonce = pending_cookie
            .as_deref()
            .and_then(|name| cookies::find(headers, name));
        let clear = pending_cookie.map(|name| self.cookies.clear(&name));
        let failed = |status, message: &str| {
            with_cookies(page(status, "Sign-in failed", message, again), clear.clone())
        };
        let pending = match self.pending.take(state, nonce).await {
            Ok(pending) => pending,
            Err(Mismatch::StoreUnavailable) => {
                return failed(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in is not available right now. Please try again.",
                );
            }
            Err(mismatch) => {
                tracing::debug!(?mismatch, "sign-in callback refused");
                return failed(
                    StatusCode::BAD_REQUEST,
                    "This sign-in is not valid here: it was used already, has expired, or was started in another browser.",
                );
            }
        };
        if let Some(error) = params.get("error") {
            if error == "access_denied" {
                return with_cookies(
                    page(
                        StatusCode::OK,
                        "Signed out",
                        "Sign-in was cancelled: you are not signed in.",
                        again,
                    ),
                    clear,
                );
            }
            return failed(StatusCode::BAD_REQUEST, "Amazon did not sign you in.");
        }
        let Some(code) = params.get("code").filter(|code| !code.is_empty()) else {
            return failed(StatusCode::BAD_REQUEST, "Amazon sent no authorization code.");
        };
        let client = self.cache.amazon_client();
        let granted = client
            .exchange_code_with_verifier(code, &self.redirect_uri, &pending.verifier, &self.credentials)
            .await;
        let granted = match granted {
            Ok(granted) => granted,
            Err(AmazonError::OAuth { code, .. }) if code == "invalid_client" => {
                tracing::error!("sign-in: Amazon refused the client credentials (check the client secret)");
                return failed(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in is not available right now.",
                );
            }
            Err(AmazonError::OAuth { code, .. }) => {
                tracing::debug!(code, "sign-in: the code exchange was refused");
                return failed(StatusCode::BAD_REQUEST, "Amazon did not confirm this sign-in.");
            }
            Err(error) => {
                tracing::warn!(%error, "sign-in: the code exchange failed");
                return failed(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Amazon could not be reached. Please try again.",
                );
            }
        };
        let access = granted.access_token;
        let key = self.cache.key(access.expose().as_bytes());
        let identity = match self.cache.resolve(key, &access).await {
            Ok(identity) => identity,
            Err(AuthError::Unavailable(error)) => {
                tracing::warn!(%error, "sign-in: the new token could not be verified");
                return failed(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Amazon could not be reached. Please try again.",
                );
            }
            Err(error) => {
                tracing::warn!(%error, "sign-in: Amazon's new token was refused");
                return failed(
                    StatusCode::BAD_REQUEST,
                    "Amazon did not confirm this sign-in for this site.",
                );
            }
        };
        let tokens = Tokens {
            access,
            key,
            refresh: granted.refresh_token,
            usable_until: usable_until(Instant::now(), granted.expires_in, self.cache.clock_skew()),
            verified: self.cache.cached_stamped(&key),
        };
        let Ok(id) = self.sessions.create(identity.user_id(), tokens) else {
            return failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is not available right now.",
            );
        };
        if let Some((key, session)) = self.sessions.created(&id) {
            // For the fleet: a session the other instances cannot find is no sign-in.
            if self.sessions.save(key, &session).await.is_err() {
                self.sessions.end(&key);
                return failed(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in is not available right now. Please try again.",
                );
            }
        }
        tracing::info!(user_id = identity.user_id(), "signed in");
        let session_cookie = self
            .cookies
            .set(self.cookies.session_name(), &id, Some(self.absolute));
        with_cookies(
            redirect(&pending.return_to),
            [session_cookie].into_iter().chain(clear),
        )
    }

    /// Ends what authenticated the request: the bearer token it carries (revoked, `204`), or
    /// its session (ended, the cookie expired, `303` to `/`).
    async fn logout(&self, parts: &Parts) -> Response<Full<Bytes>> {
        let refuse = |error: &AuthError| {
            default_response(
                error,
                ErrorContext::new(defaults::REALM, error.retry_after(defaults::RETRY_AFTER)),
            )
        };
        match token::find(&parts.uri, &parts.headers, TokenRules::default()) {
            Err(error) => return refuse(&error),
            Ok(Some(found)) => {
                let token = match found
                    .check(TokenRules::default())
                    .and_then(|()| found.access_token())
                {
                    Ok(token) => token,
                    Err(error) => return refuse(&error),
                };
                let key = self.cache.key(token.expose().as_bytes());
                if let Err(error) = self.cache.resolve(key, &token).await {
                    return refuse(&error);
                }
                return match self.cache.revoke(&token).await {
                    Ok(()) => empty(StatusCode::NO_CONTENT),
                    Err(error) => {
                        tracing::warn!(%error, "logout of a bearer token failed");
                        page(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "Sign-out failed",
                            "Please try again.",
                            "/",
                        )
                    }
                };
            }
            Ok(None) => {}
        }
        let name = self.cookies.session_name();
        let Some(id) = cookies::find(&parts.headers, name) else {
            return refuse(&AuthError::MissingToken);
        };
        if !csrf::allowed(&parts.method, &parts.headers, &self.public_origin) {
            return refuse(&AuthError::CrossSite);
        }
        if let Some(key) = self.sessions.key(id) {
            if self.end_session(&key).await.is_err() {
                // Ended here only: the cookie stays, so the browser can sign out again.
                return page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-out failed",
                    "You may still be signed in elsewhere. Please try again.",
                    "/",
                );
            }
        }
        with_cookies(redirect("/"), [self.cookies.clear(name)])
    }
}

/// The query's parameters; `None` when one appears twice (which one counts would be a guess).
fn query(uri: &Uri) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        if params.insert(name.into_owned(), value.into_owned()).is_some() {
            return None;
        }
    }
    Some(params)
}
