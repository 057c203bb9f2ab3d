//! [`AmazonAuth`], the middleware service, and its [`ResponseFuture`].
//!
//! The hit path (a cached verdict) runs inside `call`: extract, digest, one synchronous cache
//! read, one extension insert, then the inner service's own future. Only a miss allocates a
//! boxed future for the verification.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, Uri};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;
use tower_service::Service;
use tracing::Instrument;

use crate::error::AuthError;
use crate::identity::AmazonUser;
use crate::layer::Shared;
use crate::resolver::TokenKey;
use crate::token::{self, AccessToken, TokenSource, AMZ_ACCESS_TOKEN};

/// The body of a response from [`AmazonAuth`]: `Either::Left` holds the inner service's body,
/// `Either::Right` the middleware's own error body.
///
/// To give routes outside the layer the same response type (with plain hyper), wrap their
/// bodies in `Either::Left` too:
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{Either, Full};
/// use tower_amazon_auth::AuthBody;
///
/// let open: http::Response<AuthBody<Full<Bytes>>> =
///     http::Response::new(Either::Left(Full::new(Bytes::from_static(b"ok"))));
/// # let _ = open;
/// ```
pub type AuthBody<B> = Either<B, Full<Bytes>>;

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

/// What to do with a request, decided without touching it mutably.
enum Decision {
    /// Accepted with this user, or (optional mode) let through without a token.
    Forward(Option<AmazonUser>),
    Refuse(AuthError),
    Resolve(TokenKey, AccessToken, TokenSource),
}

impl Shared {
    fn decide(&self, uri: &Uri, headers: &http::HeaderMap) -> Decision {
        let found = match token::extract(uri, headers, self.settings.require_prefix) {
            Ok(Some(found)) => found,
            Ok(None) if self.settings.optional => return Decision::Forward(None),
            Ok(None) => return self.refuse(AuthError::MissingToken),
            Err(error) => return self.refuse(error),
        };
        let key = self.resolver.key(&found.token);
        match self.resolver.cached(&key) {
            Some(Ok(identity)) => {
                self.resolver.stats_handle().hits.incr();
                tracing::trace!(
                    user_id = identity.user_id(),
                    source = found.source.as_str(),
                    "cache hit"
                );
                Decision::Forward(Some(AmazonUser::new(identity, found.source)))
            }
            Some(Err(error)) => Decision::Refuse(error),
            None => Decision::Resolve(key, AccessToken::new(found.token.into_owned()), found.source),
        }
    }

    fn refuse(&self, error: AuthError) -> Decision {
        self.resolver.stats_handle().record_refusal(&error);
        Decision::Refuse(error)
    }

    /// Hands `user` to the inner service, without the token when so configured.
    fn admit<B>(&self, request: &mut Request<B>, user: AmazonUser) {
        if self.settings.strip_token {
            strip_token(request, user.source());
        }
        request.extensions_mut().insert(user);
    }
}

/// Removes the token from where it came, so the inner service's logs cannot record it.
fn strip_token<B>(request: &mut Request<B>, source: TokenSource) {
    match source {
        TokenSource::Bearer => {
            request.headers_mut().remove(http::header::AUTHORIZATION);
        }
        TokenSource::AmzHeader => {
            request.headers_mut().remove(AMZ_ACCESS_TOKEN);
        }
        TokenSource::Query => {
            let uri = request.uri();
            let Some(query) = uri.query() else { return };
            // Drop the access_token pairs textually: the other parameters keep their encoding.
            let mut path_and_query = String::with_capacity(uri.path().len() + query.len());
            path_and_query.push_str(uri.path());
            let kept = query
                .split('&')
                .filter(|pair| !token::is_token_param(pair.split('=').next().unwrap_or("")));
            for (i, pair) in kept.enumerate() {
                path_and_query.push(if i == 0 { '?' } else { '&' });
                path_and_query.push_str(pair);
            }
            let mut parts = uri.clone().into_parts();
            // Both parse: they are pieces of a URI that parsed already.
            if let Ok(path_and_query) = path_and_query.parse() {
                parts.path_and_query = Some(path_and_query);
                if let Ok(stripped) = Uri::from_parts(parts) {
                    *request.uri_mut() = stripped;
                }
            }
        }
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
        match shared.decide(request.uri(), request.headers()) {
            Decision::Forward(user) => {
                match user {
                    Some(user) => shared.admit(&mut request, user),
                    None => {
                        request
                            .extensions_mut()
                            .insert(Anonymous(Arc::clone(&self.shared)));
                    }
                }
                ResponseFuture::called(self.take_inner().call(request))
            }
            Decision::Refuse(error) => ResponseFuture::refused(shared.settings.respond(&error)),
            Decision::Resolve(key, token, source) => {
                let shared = Arc::clone(&self.shared);
                let mut inner = self.take_inner();
                let span = tracing::debug_span!("amazon_auth", source = source.as_str());
                ResponseFuture::resolving(Box::pin(
                    async move {
                        match shared.resolver.resolve(key, &token).await {
                            Ok(identity) => {
                                shared.admit(&mut request, AmazonUser::new(identity, source));
                                Ok(inner.call(request))
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

pin_project! {
    /// The response future of [`AmazonAuth`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // The inner service is serving the request (the hit path starts here).
        Called { #[pin] future: F },
        // A miss: verifying the token, then calling the inner service.
        Resolving { future: BoxFuture<'static, Result<F, Response<Full<Bytes>>>> },
        // Refused before reaching the inner service.
        Refused { response: Option<Response<Full<Bytes>>> },
    }
}

impl<F> ResponseFuture<F> {
    fn called(future: F) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    fn resolving(future: BoxFuture<'static, Result<F, Response<Full<Bytes>>>>) -> Self {
        Self {
            state: State::Resolving { future },
        }
    }

    fn refused(response: Response<Full<Bytes>>) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Called { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(Either::Left)));
                }
                StateProj::Resolving { future } => match ready!(future.as_mut().poll(cx)) {
                    Ok(future) => State::Called { future },
                    Err(response) => return Poll::Ready(Ok(response.map(Either::Right))),
                },
                StateProj::Refused { response } => {
                    let response = response.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(Either::Right)));
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}
