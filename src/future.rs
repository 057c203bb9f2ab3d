//! [`ResponseFuture`], the response future of [`AmazonAuth`](crate::AmazonAuth), and
//! [`AuthBody`], the body of its responses.
//!
//! A state machine: `Called` (the inner service is serving: where the hit path starts),
//! `Resolving` (a miss: verifying the token, then calling the inner service), `Refused` (the
//! middleware's own answer) and `CalledClearing` (the inner service is serving a signed-out
//! request whose dead session cookie the response clears).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::SET_COOKIE;
use http::{HeaderValue, Response};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;

/// The body of a response from [`AmazonAuth`](crate::AmazonAuth): `Either::Left` holds the inner service's body,
/// `Either::Right` the middleware's own error body.
///
/// To give routes outside the layer the same response type (with plain hyper), wrap their
/// bodies in `Either::Left` too:
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{Either, Full};
/// use tower_amazon_auth::future::AuthBody;
///
/// let open: http::Response<AuthBody<Full<Bytes>>> =
///     http::Response::new(Either::Left(Full::new(Bytes::from_static(b"ok"))));
/// # let _ = open;
/// ```
pub type AuthBody<B> = Either<B, Full<Bytes>>;

/// A miss's work: the inner service's future once the request is admitted (and perhaps a
/// cookie its response clears), or the middleware's own answer.
type Resolution<F> = BoxFuture<'static, Result<(F, Option<HeaderValue>), Response<Full<Bytes>>>>;

pin_project! {
    /// The response future of [`AmazonAuth`](crate::AmazonAuth).
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
        // A miss: verifying the token, then calling the inner service (whose response may
        // also clear a cookie).
        Resolving { future: Resolution<F> },
        // Refused before reaching the inner service.
        Refused { response: Option<Response<Full<Bytes>>> },
        // The inner service is serving; its response also clears a cookie.
        CalledClearing { #[pin] future: F, set_cookie: Option<HeaderValue> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn called(future: F) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    pub(crate) fn resolving(future: Resolution<F>) -> Self {
        Self {
            state: State::Resolving { future },
        }
    }

    pub(crate) fn called_clearing(future: F, set_cookie: HeaderValue) -> Self {
        Self {
            state: State::CalledClearing {
                future,
                set_cookie: Some(set_cookie),
            },
        }
    }

    pub(crate) fn refused(response: Response<Full<Bytes>>) -> Self {
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
                    Ok((future, None)) => State::Called { future },
                    Ok((future, set_cookie @ Some(_))) => State::CalledClearing { future, set_cookie },
                    Err(response) => return Poll::Ready(Ok(response.map(Either::Right))),
                },
                StateProj::Refused { response } => {
                    let response = response.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(Either::Right)));
                }
                StateProj::CalledClearing { future, set_cookie } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(set_cookie) = set_cookie.take() {
                        response.headers_mut().append(SET_COOKIE, set_cookie);
                    }
                    return Poll::Ready(Ok(response.map(Either::Left)));
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}
