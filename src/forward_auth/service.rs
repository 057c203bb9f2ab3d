//! [`ForwardAuth`]: the service that answers a proxy's authorization subrequest with the
//! layer's own decision (the same extraction, cache and verification as
//! [`AmazonAuth`](crate::AmazonAuth)), and [`AmazonAuthLayer::forward_auth`].

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower_service::Service;
use tracing::Instrument;

use super::answer::{allow, deny, not_found};
use super::future::ForwardAuthFuture;
use super::headers::X_AUTH_REQUEST_REDIRECT;
use super::original_method::original_method;
use super::original_uri::original_uri;
use crate::access_token::AccessToken;
use crate::error::AuthError;
use crate::identity::AmazonUser;
use crate::layer::AmazonAuthLayer;
use crate::service::{Decision, Shared};
use crate::token::{self, TokenSource};

/// The path a proxy's subrequest goes to; paths under it (`/verify/…`) are answered too.
pub const VERIFY_PATH: &str = "/verify";

/// Answers a reverse proxy's authorization subrequest: `200` with the `X-Auth-Request-*`
/// identity headers, `401`/`403` with the RFC 6750 challenge, `503` + `Retry-After` when Amazon
/// cannot answer. See the [module docs](crate::forward_auth) for the whole contract.
///
/// Built from an [`AmazonAuthLayer`], whose cache, rules and settings it shares; cheap to
/// clone. It serves requests with any body type and never reads the body.
///
/// ```
/// use tower_amazon_auth::{forward_auth::ForwardAuth, AmazonAuthLayer};
///
/// let layer = AmazonAuthLayer::new("amzn1.application-oa2-client.0123456789abcdef")?;
/// let service: ForwardAuth = layer.forward_auth(); // or ForwardAuth::new(&layer)
/// # let _ = service;
/// # Ok::<(), tower_amazon_auth::BuildError>(())
/// ```
#[derive(Clone)]
pub struct ForwardAuth {
    shared: Arc<Shared>,
    /// Whether an allow carries the access token ([`Self::pass_access_token`]).
    pass_access_token: bool,
}

impl fmt::Debug for ForwardAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardAuth")
            .field("realm", &self.shared.settings.realm)
            .field("pass_access_token", &self.pass_access_token)
            .finish_non_exhaustive()
    }
}

impl ForwardAuth {
    /// The forward-auth service of `layer`, sharing its cache and settings.
    pub fn new(layer: &AmazonAuthLayer) -> Self {
        Self {
            shared: Arc::clone(layer.shared()),
            pass_access_token: false,
        }
    }

    /// Whether an allow also carries the access token in
    /// [`X-Auth-Request-Access-Token`](super::X_AUTH_REQUEST_ACCESS_TOKEN): the request's own,
    /// or a session's current one (refreshed tokens included), for an upstream that calls
    /// Amazon itself. Off by default. The proxy must then set that header on the upstream
    /// request from the answer *always* (replacing a client's own), as the sign-in snippets do.
    ///
    /// ```
    /// use tower_amazon_auth::AmazonAuthLayer;
    ///
    /// let layer = AmazonAuthLayer::new("amzn1.application-oa2-client.0123456789abcdef")?;
    /// let service = layer.forward_auth().pass_access_token(true);
    /// # let _ = service;
    /// # Ok::<(), tower_amazon_auth::BuildError>(())
    /// ```
    pub fn pass_access_token(mut self, pass: bool) -> Self {
        self.pass_access_token = pass;
        self
    }

    /// The access token an allow of `user` carries, when the operator asked for it: a
    /// session's current token, else the request's own.
    fn passed_token(
        &self,
        user: &AmazonUser,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> Option<AccessToken> {
        if !self.pass_access_token {
            return None;
        }
        if user.source() == TokenSource::Session {
            return self.session_token(user);
        }
        let found = token::find(uri, headers, self.shared.settings.rules).ok()??;
        found.access_token().ok()
    }

    /// The current access token of the session `user` came from, while it is signed in.
    fn session_token(&self, user: &AmazonUser) -> Option<AccessToken> {
        self.shared.settings.sign_in.as_ref()?.session_access_token(user)
    }

    /// The answer to a subrequest with this URI and these headers.
    fn answer(&self, uri: &http::Uri, headers: &http::HeaderMap) -> ForwardAuthFuture {
        let shared = &*self.shared;
        if !on_verify_path(uri.path()) {
            return ForwardAuthFuture::ready(not_found());
        }
        let uri = match original_uri(uri, headers) {
            Ok(uri) => uri,
            Err(error) => return ForwardAuthFuture::ready(self.refuse(&error)),
        };
        // The original request's method, for the CSRF rule of a session: reported by the proxy.
        let method = original_method(headers);
        let decision = shared.decide(method.as_ref(), &uri, headers);
        let sign_in = shared.settings.sign_in.as_ref();
        if method.is_none()
            && matches!(
                decision,
                Decision::Refuse(AuthError::MissingToken) | Decision::Forward(None)
            )
            && sign_in.is_some_and(|sign_in| sign_in.has_session_cookie(headers))
        {
            // A snippet that forgot the method header would switch CSRF off silently.
            tracing::error!(
                "forward auth: a session cookie without X-Original-Method or X-Forwarded-Method: \
                 the CSRF rule cannot be kept, so it is refused; set the method header in the proxy's configuration"
            );
            return ForwardAuthFuture::ready(self.refuse(&AuthError::CrossSite));
        }
        // Where a signed-out browser navigation is sent to sign in.
        let sign_in_hint = sign_in.filter(|_| is_navigation(headers)).and_then(|sign_in| {
            let original = uri.path_and_query().map_or("/", http::uri::PathAndQuery::as_str);
            http::HeaderValue::from_str(&sign_in.login_location(original)).ok()
        });
        let signed_out = move |mut response: Response<Full<Bytes>>| {
            if let (Some(hint), http::StatusCode::UNAUTHORIZED) = (&sign_in_hint, response.status()) {
                response
                    .headers_mut()
                    .insert(X_AUTH_REQUEST_REDIRECT, hint.clone());
            }
            response
        };
        match decision {
            Decision::Forward(Some(user)) => {
                let token = self.passed_token(&user, &uri, headers);
                ForwardAuthFuture::ready(allow(&user, token.as_ref()))
            }
            // An optional layer lets a request without a token through; here that would be an
            // allow without a user, so it is the layer's own 401 instead.
            Decision::Forward(None) | Decision::ForwardSignedOut => {
                ForwardAuthFuture::ready(signed_out(self.refuse(&AuthError::MissingToken)))
            }
            Decision::Refuse(error) => ForwardAuthFuture::ready(signed_out(deny(&shared.settings, &error))),
            Decision::Resolve(key, token, source) => {
                let shared = Arc::clone(&self.shared);
                let pass = self.pass_access_token;
                let span = tracing::debug_span!("amazon_auth", source = source.as_str(), forward_auth = true);
                ForwardAuthFuture::resolving(Box::pin(
                    async move {
                        match shared.cache.resolve(key, &token).await {
                            Ok(identity) => allow(
                                &AmazonUser::new(identity, source, Some(key)),
                                pass.then_some(&token),
                            ),
                            Err(error) => deny(&shared.settings, &error),
                        }
                    }
                    .instrument(span),
                ))
            }
            Decision::ResolveSession(session) => {
                let this = self.clone();
                let span = tracing::debug_span!("amazon_auth", source = "session", forward_auth = true);
                ForwardAuthFuture::resolving(Box::pin(
                    async move {
                        let shared = &this.shared;
                        match session.resolve().await {
                            Ok(user) => {
                                let token = this
                                    .pass_access_token
                                    .then(|| this.session_token(&user))
                                    .flatten();
                                allow(&user, token.as_ref())
                            }
                            Err(error) => signed_out(deny(&shared.settings, &error)),
                        }
                    }
                    .instrument(span),
                ))
            }
        }
    }

    /// A refusal decided here rather than by `decide`, counted as the layer counts its own.
    fn refuse(&self, error: &AuthError) -> Response<Full<Bytes>> {
        self.shared.cache.stats_handle().record_refusal(error);
        deny(&self.shared.settings, error)
    }
}

/// `/verify`, or a path under it.
fn on_verify_path(path: &str) -> bool {
    path.strip_prefix(VERIFY_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl AmazonAuthLayer {
    /// The [`ForwardAuth`] service of this layer: the same verification, answered to a reverse
    /// proxy's authorization subrequest instead of wrapping a service.
    pub fn forward_auth(&self) -> ForwardAuth {
        ForwardAuth::new(self)
    }
}

impl<B> Service<Request<B>> for ForwardAuth {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ForwardAuthFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    /// Answers from the URI and headers alone: the body is dropped unread with the request.
    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.answer(request.uri(), request.headers())
    }
}

/// Whether the subrequest is for a browser navigation (a page, not an API call): the client's
/// `Sec-Fetch-Mode: navigate`, or, from a browser without it, `text/html` in `Accept`.
fn is_navigation(headers: &http::HeaderMap) -> bool {
    match headers.get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes() == b"navigate",
        None => headers
            .get(http::header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html")),
    }
}

#[cfg(test)]
mod tests {
    use super::on_verify_path;

    #[test]
    fn verify_path_and_under_it_only() {
        for path in ["/verify", "/verify/", "/verify/api/orders"] {
            assert!(on_verify_path(path), "{path}");
        }
        for path in ["/", "/verifyx", "/v", "/healthz", "/api/verify"] {
            assert!(!on_verify_path(path), "{path}");
        }
    }
}
