//! [`MockAmazon`]: binding the port, what a test registers and reads back (tokens, codes, the
//! client and its redirect URIs, the sign-in users, latency, counters), and the accept loop
//! that serves each connection with hyper until the handle is dropped.

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

use crate::endpoints::handle;
use crate::reply::{MockReply, MockUser};
use crate::state::{lock, IssuedCode, MockCalls, Registration, Shared};
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
        let registration = Registration::new(reply.into());
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
    /// Such a code has no other constraint: it does not expire, and the exchange's
    /// `redirect_uri` and `code_verifier` are not looked at (codes from the consent page of
    /// [`MockAmazon::authorize_url`] check both).
    ///
    /// A successful exchange answers `{"access_token","refresh_token","token_type":"bearer",
    /// "expires_in":3600}` with a fresh refresh token `Atzr|mock-refresh-<n>`; the refresh grant
    /// with that refresh token answers the same access token again, and the same refresh token
    /// unless [`MockAmazon::set_rotate_refresh_tokens`] is on.
    pub fn register_code(&self, code: impl Into<String>, access_token: impl Into<String>) {
        let issued = IssuedCode {
            access_token: access_token.into(),
            consent: None,
        };
        lock(&self.shared.state).codes.insert(code.into(), issued);
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

    /// `{base_url}/ap/oa`: the mock's authorization endpoint, in place of Amazon's
    /// `https://www.amazon.com/ap/oa`, where a "Login with Amazon" link sends a browser.
    ///
    /// `GET` with `client_id` (the client of [`MockAmazon::set_client`]), `scope` (`profile`,
    /// `profile:user_id`, `postal_code`, space-separated), `response_type=code`, `redirect_uri`
    /// (one registered with [`MockAmazon::allow_redirect_uri`], compared as a string), and
    /// optionally `state` and `code_challenge` with `code_challenge_method` (`S256` or `plain`;
    /// `plain` when the method is missing) answers a consent page: plain HTML, no script. It
    /// shows the app and the scopes, offers the [sign-in users](MockAmazon::add_sign_in_user)
    /// as radio buttons (`name="user_id"`, `id="user-0"`, `id="user-1"`…, the first checked),
    /// and has one form with the buttons `id="allow"` and `id="cancel"` that posts everything
    /// back to `/ap/oa` (as `action=allow` or `action=cancel`).
    ///
    /// The `POST` checks the request again, then:
    /// - Cancel: `303` to `redirect_uri?error=access_denied&error_description=…&state=…`;
    /// - Allow: mints an access token for the chosen user (registered at once at tokeninfo and
    ///   profile, with `aud` the client id and the [`MockScope`] of the requested scopes) and
    ///   `303`s to `redirect_uri?code=…&state=…`. The code exchanges once at
    ///   `POST /auth/o2/token`, within 5 minutes ([`MockAmazon::set_code_lifetime`]), with the
    ///   same `redirect_uri` and, if a challenge was sent, the `code_verifier` that answers it.
    ///
    /// An invalid request (unknown client, unregistered `redirect_uri`, `response_type` other
    /// than `code`, no or an unknown scope, a bad challenge or method, a parameter sent twice)
    /// gets a `400` HTML page and is never redirected. Pages carry
    /// `Cache-Control: no-store`. The endpoint is not counted in [`MockCalls`].
    ///
    /// [`MockScope`]: crate::MockScope
    ///
    /// ```
    /// use base64::Engine as _;
    /// use sha2::Digest as _;
    /// use tower_amazon_auth_mock::{MockAmazon, MOCK_CLIENT_ID, MOCK_CLIENT_SECRET, MOCK_DEMO_USER_ID};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let amazon = MockAmazon::start().await?;
    /// amazon.allow_redirect_uri("https://app.example.com/callback");
    /// let http = reqwest::Client::builder()
    ///     .redirect(reqwest::redirect::Policy::none())
    ///     .build()?;
    ///
    /// let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    /// let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
    ///     .encode(sha2::Sha256::digest(verifier));
    /// let request = [
    ///     ("client_id", MOCK_CLIENT_ID),
    ///     ("scope", "profile"),
    ///     ("response_type", "code"),
    ///     ("redirect_uri", "https://app.example.com/callback"),
    ///     ("state", "xyz"),
    ///     ("code_challenge", &challenge),
    ///     ("code_challenge_method", "S256"),
    /// ];
    /// // What a browser shows…
    /// let page = http.get(amazon.authorize_url()).query(&request).send().await?;
    /// assert!(page.text().await?.contains("id=\"allow\""));
    ///
    /// // …and what it posts when the person presses Allow.
    /// let mut form = request.to_vec();
    /// form.extend([("user_id", MOCK_DEMO_USER_ID), ("action", "allow")]);
    /// let allowed = http.post(amazon.authorize_url()).form(&form).send().await?;
    /// assert_eq!(allowed.status(), 303);
    /// let location = allowed.headers()["location"].to_str()?.to_owned();
    /// let back = reqwest::Url::parse(&location)?;
    /// let code = back.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned());
    /// let code = code.ok_or("no code")?;
    ///
    /// // The app's server exchanges the code.
    /// let tokens: serde_json::Value = http
    ///     .post(format!("{}/auth/o2/token", amazon.base_url()))
    ///     .form(&[
    ///         ("grant_type", "authorization_code"),
    ///         ("code", &code),
    ///         ("redirect_uri", "https://app.example.com/callback"),
    ///         ("code_verifier", verifier),
    ///         ("client_id", MOCK_CLIENT_ID),
    ///         ("client_secret", MOCK_CLIENT_SECRET),
    ///     ])
    ///     .send()
    ///     .await?
    ///     .json()
    ///     .await?;
    /// assert!(tokens["access_token"].as_str().unwrap_or_default().starts_with("Atza|"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn authorize_url(&self) -> String {
        format!("{}/ap/oa", self.base_url)
    }

    /// Registers `uri` as a `redirect_uri` of the mock's client (none by default, so the
    /// authorization endpoint refuses every request until one is registered). Several may be
    /// registered; a request must name one of them exactly (string equality: no prefix
    /// matching, no normalization). Registering one twice changes nothing.
    ///
    /// Amazon insists on HTTPS; the mock takes any URI without a fragment, for instance
    /// `http://127.0.0.1:PORT/callback` for an app under test on loopback.
    pub fn allow_redirect_uri(&self, uri: impl Into<String>) {
        let uri = uri.into();
        let mut state = lock(&self.shared.state);
        if !state.redirect_uris.contains(&uri) {
            state.redirect_uris.push(uri);
        }
    }

    /// Offers `user` on the consent page of [`MockAmazon::authorize_url`], after the users
    /// added earlier (a user with the same `user_id` as an earlier one replaces it, in its
    /// place). Until one is added the page offers [`MockUser::demo`].
    ///
    /// The access tokens minted for the user are theirs with `aud` the client id and the scope
    /// of the request; the user's `exp` (default 3600) is their lifetime and the token
    /// endpoint's `expires_in`, and any [`MockUser::profile_reply`] or
    /// [`MockUser::tokeninfo_reply`] applies to them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tower_amazon_auth_mock::{MockAmazon, MockUser};
    ///
    /// let amazon = MockAmazon::start().await?;
    /// amazon.add_sign_in_user(MockUser::new("amzn1.account.ALICE").name("Alice"));
    /// amazon.add_sign_in_user(MockUser::new("amzn1.account.BOB").name("Bob").exp(60));
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_sign_in_user(&self, user: MockUser) {
        let mut state = lock(&self.shared.state);
        match state
            .sign_in_users
            .iter_mut()
            .find(|known| known.user_id == user.user_id)
        {
            Some(known) => *known = user,
            None => state.sign_in_users.push(user),
        }
    }

    /// When `true`, each refresh grant answers a new refresh token and the one it presented
    /// answers `invalid_grant` from then on, as Amazon may do; when `false` (the default), a
    /// refresh token stays valid and comes back unchanged.
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        lock(&self.shared.state).rotate_refresh_tokens = rotate;
    }

    /// How long a code issued by the consent page can be exchanged (default: 5 minutes, as
    /// Amazon's); after that the token endpoint answers `invalid_grant`. Applies to codes
    /// issued after the call. Codes from [`MockAmazon::register_code`] never expire.
    pub fn set_code_lifetime(&self, lifetime: Duration) {
        lock(&self.shared.state).code_lifetime = lifetime;
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
