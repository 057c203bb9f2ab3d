//! [`AmazonAuth`], the middleware service, and the state its clones share: decide what to do
//! with a request, admit it with its user, or refuse it.
//!
//! The hit path (a cached verdict) runs inside `call`: extract, digest, one synchronous cache
//! read, one extension insert, then the inner service's own future. Only a miss allocates a
//! boxed future for the verification.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use tower_service::Service;
use tracing::Instrument;

use crate::access_token::{AccessToken, TokenRules};
use crate::cache::IdentityCache;
use crate::error::{AuthError, Rejection};
use crate::future::{AuthBody, ResponseFuture};
use crate::identity::AmazonUser;
use crate::response::{ErrorContext, Responder};
use crate::sign_in::{SessionDecision, SessionRequest, SignIn};
use crate::token::{self, TokenSource};
use crate::token_key::TokenKey;

/// Settings the service reads on every request.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) realm: Box<str>,
    pub(crate) rules: TokenRules,
    pub(crate) optional: bool,
    pub(crate) strip_token: bool,
    pub(crate) retry_after: Duration,
    pub(crate) responder: Responder,
    /// Website sign-in: requests without a token are authenticated by their session cookie.
    pub(crate) sign_in: Option<SignIn>,
}

impl Settings {
    /// The response for a refused request.
    pub(crate) fn respond(&self, error: &AuthError) -> Response<Full<Bytes>> {
        tracing::debug!(%error, status = error.status().as_u16(), "request refused");
        let cx = ErrorContext {
            realm: &self.realm,
            retry_after: error.retry_after(self.retry_after),
        };
        let mut response = self.responder.0.respond(error, cx);
        // An ended session: the browser forgets its cookie.
        if let (AuthError::InvalidToken(Rejection::SessionEnded), Some(sign_in)) = (error, &self.sign_in) {
            response
                .headers_mut()
                .append(http::header::SET_COOKIE, sign_in.clear_cookie());
        }
        response
    }
}

/// Everything a service instance shares with its clones (and its layer), behind one `Arc`.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cache: IdentityCache,
    pub(crate) settings: Settings,
}

/// Middleware that authenticates each request with its Amazon access token; built by
/// [`AmazonAuthLayer`](crate::AmazonAuthLayer).
///
/// An accepted request reaches the inner service with an [`AmazonUser`] extension; any other
/// is answered by the middleware itself.
#[derive(Debug, Clone)]
pub struct AmazonAuth<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> AmazonAuth<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the middleware, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Takes the readied inner service, leaving a fresh clone in its place (as tower-http
    /// does): the instance `poll_ready` approved is the one that serves the request.
    fn take_inner(&mut self) -> S
    where
        S: Clone,
    {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

/// Marks a request an optional-mode layer let through without a token, so an extractor that
/// requires a user answers as the layer itself would have: 401 with its challenge.
#[derive(Clone)]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) struct Anonymous(Arc<Shared>);

#[cfg(feature = "axum")]
impl Anonymous {
    /// The layer's own response to a request without a token.
    pub(crate) fn refusal(&self) -> Response<Full<Bytes>> {
        self.0.settings.respond(&AuthError::MissingToken)
    }
}

/// What to do with a request, decided without touching it mutably. Shared with
/// [`ForwardAuth`](crate::forward_auth::ForwardAuth), which answers the same decision itself
/// instead of calling an inner service.
pub(crate) enum Decision {
    /// Accepted with this user, or (optional mode) let through without a token.
    Forward(Option<AmazonUser>),
    /// (optional mode) Let through signed out: its session cookie named an ended session, which
    /// the response clears.
    ForwardSignedOut,
    Refuse(AuthError),
    Resolve(TokenKey, AccessToken, TokenSource),
    /// A session whose token must be verified or refreshed first.
    ResolveSession(SessionRequest),
}

impl Shared {
    /// The decision for a request with this URI (where a query token is looked for) and these
    /// headers: extraction, junk refusal, one synchronous cache read, and for a token the cache
    /// does not know, the check of its characters. A request without a token is decided by its
    /// session cookie when sign-in is on and `method` is given (the request's own method, for
    /// the CSRF rule); without `method` sessions are not consulted.
    pub(crate) fn decide(
        &self,
        method: Option<&http::Method>,
        uri: &Uri,
        headers: &http::HeaderMap,
    ) -> Decision {
        let rules = self.settings.rules;
        let found = match token::find(uri, headers, rules) {
            Ok(Some(found)) => found,
            Ok(None) => return self.decide_session(method, headers),
            Err(error) => return self.refuse(error),
        };
        // The prefix rules come before the cache (a layer that shares its cache with one of
        // other rules still applies its own), the character scan only for a token the cache
        // does not know (see `check_prefixes`). Every answer is the one the full check first
        // would give.
        if let Err(error) = found.check_prefixes(rules) {
            return self.refuse(found.check(rules).err().unwrap_or(error));
        }
        let key = self.cache.key(&found.token);
        match self.cache.cached(&key) {
            Some(Ok(identity)) => {
                self.cache.stats_handle().hits.incr();
                tracing::trace!(
                    user_id = identity.user_id(),
                    source = found.source.as_str(),
                    "cache hit"
                );
                Decision::Forward(Some(AmazonUser::new(identity, found.source, Some(key))))
            }
            Some(Err(error)) => Decision::Refuse(error),
            None => match found.check(rules).and_then(|()| found.access_token()) {
                Ok(token) => Decision::Resolve(key, token, found.source),
                Err(error) => self.refuse(error),
            },
        }
    }

    /// The decision for a request without a token: by its session cookie, if any.
    fn decide_session(&self, method: Option<&http::Method>, headers: &http::HeaderMap) -> Decision {
        let optional = self.settings.optional;
        let session = match (method, &self.settings.sign_in) {
            (Some(method), Some(sign_in)) => sign_in.decide(method, headers),
            _ => None,
        };
        match session {
            None if optional => Decision::Forward(None),
            None => self.refuse(AuthError::MissingToken),
            Some(SessionDecision::Admit(user)) => Decision::Forward(Some(user)),
            Some(SessionDecision::Refuse(AuthError::InvalidToken(Rejection::SessionEnded))) if optional => {
                Decision::ForwardSignedOut
            }
            Some(SessionDecision::Refuse(error)) => self.refuse(error),
            Some(SessionDecision::Resolve(request)) => Decision::ResolveSession(request),
        }
    }

    fn refuse(&self, error: AuthError) -> Decision {
        self.cache.stats_handle().record_refusal(&error);
        Decision::Refuse(error)
    }

    /// Hands `user` to the inner service, without the token when so configured. `Err` when the
    /// token could not be removed: the request is then refused (fail closed).
    fn admit<B>(&self, request: &mut Request<B>, user: AmazonUser) -> Result<(), AuthError> {
        if self.settings.strip_token {
            match (user.source(), &self.settings.sign_in) {
                (TokenSource::Session, Some(sign_in)) => sign_in.strip(request.headers_mut()),
                (source, _) => token::strip(request, source)?,
            }
        }
        request.extensions_mut().insert(user);
        Ok(())
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AmazonAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        match shared.decide(Some(request.method()), request.uri(), request.headers()) {
            Decision::Forward(Some(user)) => match shared.admit(&mut request, user) {
                Ok(()) => ResponseFuture::called(self.take_inner().call(request)),
                Err(error) => ResponseFuture::refused(shared.settings.respond(&error)),
            },
            Decision::Forward(None) => {
                self.shared.anonymous(&mut request);
                ResponseFuture::called(self.take_inner().call(request))
            }
            Decision::ForwardSignedOut => {
                self.shared.anonymous(&mut request);
                let clear = self.shared.clear_session_cookie();
                let future = self.take_inner().call(request);
                match clear {
                    Some(clear) => ResponseFuture::called_clearing(future, clear),
                    None => ResponseFuture::called(future),
                }
            }
            Decision::Refuse(error) => ResponseFuture::refused(shared.settings.respond(&error)),
            Decision::Resolve(key, token, source) => {
                let shared = Arc::clone(&self.shared);
                let mut inner = self.take_inner();
                let span = tracing::debug_span!("amazon_auth", source = source.as_str());
                ResponseFuture::resolving(Box::pin(
                    async move {
                        let admitted = shared.cache.resolve(key, &token).await.and_then(|identity| {
                            shared.admit(&mut request, AmazonUser::new(identity, source, Some(key)))
                        });
                        match admitted {
                            Ok(()) => Ok((inner.call(request), None)),
                            Err(error) => Err(shared.settings.respond(&error)),
                        }
                    }
                    .instrument(span),
                ))
            }
            Decision::ResolveSession(session) => {
                let shared = Arc::clone(&self.shared);
                let mut inner = self.take_inner();
                let span = tracing::debug_span!("amazon_auth", source = "session");
                ResponseFuture::resolving(Box::pin(
                    async move {
                        let admitted = session
                            .resolve()
                            .await
                            .and_then(|user| shared.admit(&mut request, user));
                        match admitted {
                            Ok(()) => Ok((inner.call(request), None)),
                            // Optional mode: an ended session is a signed-out visitor.
                            Err(AuthError::InvalidToken(Rejection::SessionEnded))
                                if shared.settings.optional =>
                            {
                                shared.anonymous(&mut request);
                                Ok((inner.call(request), shared.clear_session_cookie()))
                            }
                            Err(error) => Err(shared.settings.respond(&error)),
                        }
                    }
                    .instrument(span),
                ))
            }
        }
    }
}

impl Shared {
    /// Marks `request` as let through without a user (optional mode).
    fn anonymous<B>(self: &Arc<Self>, request: &mut Request<B>) {
        let extensions = request.extensions_mut();
        // Whoever set an `AmazonUser` before this layer (an outer layer, other code), it is
        // not this layer's verified user.
        extensions.remove::<AmazonUser>();
        extensions.insert(Anonymous(Arc::clone(self)));
    }

    /// The `Set-Cookie` that clears the session cookie, with sign-in on.
    fn clear_session_cookie(&self) -> Option<http::HeaderValue> {
        self.settings.sign_in.as_ref().map(SignIn::clear_cookie)
    }
}
