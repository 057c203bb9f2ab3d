//! [`MockAmazon`]: binding the port, what a test registers and reads back (tokens, codes, the
//! client, latency, counters), and the accept loop that serves each connection with hyper
//! until the handle is dropped.

use std::convert::Infallible;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::endpoints::handle;
use crate::reply::MockReply;
use crate::state::{lock, MockCalls, Registration, Shared};
use crate::transport::MockStream;

/// A Login with Amazon server on `127.0.0.1`, for tests. See the [module docs](super).
///
/// Dropping it closes the port immediately and aborts every connection, including hanging
/// ones. Its `Debug` output shows the address and the number of registered tokens, never a
/// token.
pub struct MockAmazon {
    shared: Arc<Shared>,
    addr: SocketAddr,
    base_url: String,
    listener: Arc<Mutex<Option<TcpListener>>>,
    task: JoinHandle<()>,
}

impl fmt::Debug for MockAmazon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.shared.state);
        f.debug_struct("MockAmazon")
            .field("base_url", &self.base_url)
            .field("registered_tokens", &state.tokens.len())
            .field("client_id", &state.client_id)
            .field("latency", &state.latency)
            .field("calls", &state.calls)
            .finish_non_exhaustive()
    }
}

impl Drop for MockAmazon {
    fn drop(&mut self) {
        // Closing the listener here, rather than when the aborted task is next polled, makes
        // the port refuse connections as soon as `drop` returns.
        let listener = lock(&self.listener).take();
        drop(listener);
        // The accept loop owns the connection tasks (a `JoinSet`): aborting it aborts them all.
        self.task.abort();
    }
}

impl MockAmazon {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// Fails only if the port cannot be bound.
    pub async fn start() -> io::Result<MockAmazon> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let shared = Arc::new(Shared::new(format!(
            "{:08x}-{:04x}",
            epoch & 0xffff_ffff,
            addr.port()
        )));
        let listener = Arc::new(Mutex::new(Some(listener)));
        let task = tokio::spawn(accept_loop(Arc::clone(&listener), Arc::clone(&shared)));
        Ok(MockAmazon {
            shared,
            addr,
            base_url: format!("http://{addr}"),
            listener,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the base URL to give a client in
    /// place of `https://api.amazon.com`.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the mock listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Decides what `token` answers from now on, replacing any earlier registration of it.
    ///
    /// A [`MockUser`]'s `exp` starts counting down now.
    ///
    /// [`MockUser`]: crate::MockUser
    pub fn register(&self, token: impl Into<String>, reply: impl Into<MockReply>) {
        let registration = Registration {
            reply: reply.into(),
            registered_at: Instant::now(),
            iat: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        };
        lock(&self.shared.state).tokens.insert(token.into(), registration);
    }

    /// Forgets `token`, which then answers `400 invalid_token` like a revoked token. Returns
    /// whether it was registered.
    pub fn unregister(&self, token: &str) -> bool {
        lock(&self.shared.state).tokens.remove(token).is_some()
    }

    /// A delay added before every answer of every endpoint (default: zero), on top of any
    /// [`MockReply::delayed`]. Applies to requests that arrive after the call.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.state).latency = latency;
    }

    /// Calls received since the start or the last [`MockAmazon::reset_calls`].
    #[must_use]
    pub fn calls(&self) -> MockCalls {
        lock(&self.shared.state).calls
    }

    /// Calls received that carried `token`, since the start or the last
    /// [`MockAmazon::reset_calls`].
    ///
    /// For tokeninfo and profile this is the access token; for the token endpoint it is the
    /// authorization code or refresh token the request presented.
    #[must_use]
    pub fn calls_for(&self, token: &str) -> MockCalls {
        lock(&self.shared.state)
            .calls_per_token
            .get(token)
            .copied()
            .unwrap_or_default()
    }

    /// Sets every counter, total and per token, back to zero.
    pub fn reset_calls(&self) {
        let mut state = lock(&self.shared.state);
        state.calls = MockCalls::default();
        state.calls_per_token.clear();
    }

    /// The only client `POST /auth/o2/token` accepts (default: [`MOCK_CLIENT_ID`] with secret
    /// [`MOCK_CLIENT_SECRET`]). Credentials may come in the form body (`client_id`,
    /// `client_secret`) or as HTTP Basic authentication, not both.
    ///
    /// [`MOCK_CLIENT_ID`]: crate::MOCK_CLIENT_ID
    /// [`MOCK_CLIENT_SECRET`]: crate::MOCK_CLIENT_SECRET
    pub fn set_client(&self, client_id: impl Into<String>, client_secret: impl Into<String>) {
        let mut state = lock(&self.shared.state);
        state.client_id = client_id.into();
        state.client_secret = client_secret.into();
    }

    /// Makes authorization `code` exchangeable, once, for `access_token` at
    /// `POST /auth/o2/token`. Register the access token too if it should then be valid at
    /// tokeninfo and profile.
    ///
    /// A successful exchange answers `{"access_token","refresh_token","token_type":"bearer",
    /// "expires_in":3600}` with a fresh refresh token `Atzr|mock-refresh-<n>`; the refresh grant
    /// with that refresh token answers the same access and refresh tokens again.
    pub fn register_code(&self, code: impl Into<String>, access_token: impl Into<String>) {
        lock(&self.shared.state)
            .codes
            .insert(code.into(), access_token.into());
    }

    /// When `Some`, `POST /auth/o2/token` answers this reply instead of exchanging anything
    /// (for instance `MockReply::status(500)`); `None` (the default) restores normal exchanges.
    ///
    /// A reply that describes a user ([`MockReply::user`], [`MockReply::insufficient_scope`])
    /// means nothing to the token endpoint: exchanges proceed normally, after the reply's
    /// [`MockReply::delayed`] delay.
    pub fn set_token_endpoint_reply(&self, reply: Option<MockReply>) {
        lock(&self.shared.state).token_endpoint_reply = reply;
    }
}

async fn accept_loop(listener: Arc<Mutex<Option<TcpListener>>>, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let accept = poll_fn(|cx| match lock(&listener).as_ref() {
            Some(listener) => listener.poll_accept(cx).map(Some),
            None => Poll::Ready(None),
        });
        tokio::select! {
            accepted = accept => match accepted {
                Some(Ok((stream, _peer))) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                // Out of file descriptors or similar: back off briefly, keep serving.
                Some(Err(_)) => tokio::time::sleep(Duration::from_millis(5)).await,
                // The mock was dropped.
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(MockStream::new(stream, Arc::clone(&reset)));
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        let reset = Arc::clone(&reset);
        async move { Ok::<_, Infallible>(handle(&shared, &reset, request).await) }
    });
    // Errors here are the client going away or a deliberately cut-off body.
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
}
