//! [`ForwardAuthFuture`], the response future of [`ForwardAuth`](super::ForwardAuth): ready at
//! once for a cached verdict or a refusal, a boxed verification on a miss.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Response;
use http_body_util::Full;

/// The response future of [`ForwardAuth`](super::ForwardAuth). It never fails.
pub struct ForwardAuthFuture {
    state: State,
}

enum State {
    /// Answered without waiting (cached verdict, refusal, 404).
    Ready(Option<Response<Full<Bytes>>>),
    /// A miss: verifying the token with Amazon (or joining a verification under way).
    Resolving(BoxFuture<'static, Response<Full<Bytes>>>),
}

impl ForwardAuthFuture {
    pub(crate) fn ready(response: Response<Full<Bytes>>) -> Self {
        Self {
            state: State::Ready(Some(response)),
        }
    }

    pub(crate) fn resolving(future: BoxFuture<'static, Response<Full<Bytes>>>) -> Self {
        Self {
            state: State::Resolving(future),
        }
    }
}

impl fmt::Debug for ForwardAuthFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Ready(_) => "ready",
            State::Resolving(_) => "resolving",
        };
        f.debug_struct("ForwardAuthFuture")
            .field("state", &state)
            .finish()
    }
}

impl Future for ForwardAuthFuture {
    type Output = Result<Response<Full<Bytes>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Both states are `Unpin` (an `Option` and a `Pin<Box<_>>`).
        match &mut self.state {
            State::Ready(response) => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: stay pending rather than panic.
                None => Poll::Pending,
            },
            State::Resolving(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}
