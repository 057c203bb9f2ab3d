//! What goes out on the socket: [`MockBody`], a response body sent whole or cut short (a clean
//! early end or an error), and [`MockStream`], the TCP stream that closes with an RST instead of
//! a FIN once a reply asked for a reset.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// How long a cut-off body waits after its partial chunk, so that hyper flushes the chunk to the
/// socket before the connection goes away.
const CUT_PAUSE: Duration = Duration::from_millis(20);

/// A TCP stream that, once `reset` is set, closes with an RST instead of a FIN.
pub(super) struct MockStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl MockStream {
    /// Wraps `inner`; whoever holds `reset` decides how it closes.
    pub(super) fn new(inner: TcpStream, reset: Arc<AtomicBool>) -> MockStream {
        MockStream { inner, reset }
    }
}

impl Drop for MockStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            // SO_LINGER 0: close() sends RST and discards unsent data. A zero linger does not
            // block, unlike the non-zero values this deprecation warns about.
            #[allow(deprecated)]
            let _ = self.inner.set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for MockStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for MockStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Response body: whole, or a part of it followed by an early end or an error.
pub(super) enum MockBody {
    Full(Option<Bytes>),
    Cut {
        chunk: Option<Bytes>,
        pause: Pin<Box<Sleep>>,
        fail: bool,
        done: bool,
    },
}

impl MockBody {
    pub(super) fn full(bytes: impl Into<Bytes>) -> MockBody {
        MockBody::Full(Some(bytes.into()))
    }

    pub(super) fn cut(chunk: Bytes, fail: bool) -> MockBody {
        MockBody::Cut {
            chunk: Some(chunk),
            pause: Box::pin(tokio::time::sleep(CUT_PAUSE)),
            fail,
            done: false,
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            MockBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Cut {
                chunk,
                pause,
                fail,
                done,
            } => {
                if let Some(chunk) = chunk.take() {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                if *done {
                    return Poll::Ready(None);
                }
                // Returning Pending once lets hyper flush the partial chunk to the socket.
                ready!(pause.as_mut().poll(cx));
                *done = true;
                if *fail {
                    Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "mock connection reset",
                    ))))
                } else {
                    Poll::Ready(None)
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, MockBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            // Unknown, so hyper frames the body with the Content-Length header we set.
            MockBody::Cut { .. } => SizeHint::default(),
        }
    }
}
