//! `MockAmazon`: a Login with Amazon server on `127.0.0.1` for tests, examples, benchmarks and
//! your own test suite.
//!
//! [`MockAmazon::start`] binds a real HTTP/1.1 server to `127.0.0.1:0` (a free port) that speaks
//! Amazon's wire format for the three endpoints this crate uses:
//!
//! | endpoint | what the mock does |
//! | --- | --- |
//! | `GET /auth/o2/tokeninfo?access_token=…` | `{"iss","user_id","aud","app_id","exp","iat"}` for a registered token; `exp` is the number of seconds *remaining* and counts down in real time |
//! | `GET /user/profile` | `{"user_id","email","name","postal_code"}` limited to the [`MockScope`] of the token. The token may come as `Authorization: Bearer …` (scheme case-insensitive), `x-amz-access-token: …` or `?access_token=…` |
//! | `POST /auth/o2/token` | the authorization-code and refresh-token grants for one client (see [`MockAmazon::set_client`]) |
//!
//! Every answer carries `content-type: application/json;charset=UTF-8` and a fresh
//! `x-amzn-requestid`; every error body has Amazon's shape
//! `{"error","error_description","request_id"}`. Unknown paths answer 404 and a wrong method 405,
//! in the same shape.
//!
//! What a token answers is decided by the [`MockReply`] registered for it: a [`MockUser`]
//! (optionally with a failing profile), one of Amazon's errors, or a transport failure
//! (garbage, a truncated body, a connection reset mid-body, an oversized body, an answer that
//! never comes, a delay). Tokens that were never registered answer `400 invalid_token`, as
//! Amazon does for a revoked or made-up token.
//!
//! The mock counts the calls it receives ([`MockAmazon::calls`], [`MockAmazon::calls_for`]) the
//! moment they arrive, before any latency or delay, so a test can assert "exactly one tokeninfo
//! call" while that call is still hanging. It never logs a token.
//!
//! Dropping the [`MockAmazon`] closes its port at once and aborts every connection, including
//! ones held open by [`MockReply::hang`].
//!
//! Real access tokens are 350 to 2048 bytes long: [`mock_access_token`] makes a realistic
//! `Atza|…` token from any seed. (The middleware enforces only the maximum, so short tokens
//! work in tests too.)
//!
//! # Example
//!
//! In your own test suite the body below goes inside a `#[tokio::test] async fn`; point the
//! middleware (or any other client) at [`MockAmazon::base_url`] instead of
//! `https://api.amazon.com`.
//!
//! ```
//! use std::time::Duration;
//! use tower_amazon_auth::mock::{mock_access_token, MockAmazon, MockReply, MockScope, MockUser};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let amazon = MockAmazon::start().await?;
//!
//! // A signed-in user whose token is valid for another hour.
//! let alice = mock_access_token("alice");
//! amazon.register(
//!     &alice,
//!     MockUser::new("amzn1.account.ALICE")
//!         .email("alice@example.com")
//!         .name("Alice")
//!         .scope(MockScope::Profile),
//! );
//!
//! // A token Amazon has revoked, and an Amazon that is having a bad day.
//! let revoked = mock_access_token("revoked");
//! amazon.register(&revoked, MockReply::invalid_token());
//! let unlucky = mock_access_token("unlucky");
//! amazon.register(&unlucky, MockReply::status(503).retry_after(2));
//!
//! // Answers take 5 ms, like a nearby region.
//! amazon.set_latency(Duration::from_millis(5));
//!
//! let http = reqwest::Client::new();
//! let info = http
//!     .get(format!("{}/auth/o2/tokeninfo", amazon.base_url()))
//!     .query(&[("access_token", &alice)])
//!     .send()
//!     .await?
//!     .text()
//!     .await?;
//! let info: serde_json::Value = serde_json::from_str(&info)?;
//! assert_eq!(info["user_id"], "amzn1.account.ALICE");
//! assert_eq!(info["aud"], tower_amazon_auth::mock::MOCK_CLIENT_ID);
//!
//! let profile = http
//!     .get(format!("{}/user/profile", amazon.base_url()))
//!     .bearer_auth(&revoked)
//!     .send()
//!     .await?;
//! assert_eq!(profile.status(), 400);
//!
//! assert_eq!(amazon.calls().tokeninfo, 1);
//! assert_eq!(amazon.calls_for(&revoked).profile, 1);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, Sleep};

/// Client id of the mock's application: the default `aud` of a [`MockUser`] and the default
/// client accepted by the mock's token endpoint (see [`MockAmazon::set_client`]).
pub const MOCK_CLIENT_ID: &str = "amzn1.application-oa2-client.mock";

/// Client secret the mock's token endpoint accepts by default (see [`MockAmazon::set_client`]).
pub const MOCK_CLIENT_SECRET: &str = "mock-secret";

/// Application id of the mock's application: the default `app_id` of a [`MockUser`].
pub const MOCK_APP_ID: &str = "amzn1.application.mock";

const ISSUER: &str = "https://www.amazon.com";
const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const ACCESS_TOKEN_HEADER: &str = "x-amz-access-token";
/// Lifetime, in seconds, of the access tokens the token endpoint hands out.
const ISSUED_TOKEN_LIFETIME: u64 = 3600;
/// The token endpoint refuses form bodies larger than this.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// How long a cut-off body waits after its partial chunk, so that hyper flushes the chunk to the
/// socket before the connection goes away.
const CUT_PAUSE: Duration = Duration::from_millis(20);

const DESC_INVALID_REQUEST: &str = "The request is missing a required parameter, includes an invalid parameter value, or is otherwise malformed.";
const DESC_INVALID_TOKEN: &str =
    "The access token provided is expired, revoked, malformed, or invalid for other reasons.";
const DESC_EXPIRED_TOKEN: &str = "The access token provided has expired.";
const DESC_INSUFFICIENT_SCOPE: &str = "The access token provided does not have access to the required scope.";
const DESC_SERVER_ERROR: &str = "The server encountered a runtime error.";
const DESC_TOO_MANY_REQUESTS: &str = "The request was throttled. Retry later.";
const DESC_INVALID_CLIENT: &str = "The client authentication failed.";
const DESC_INVALID_GRANT: &str = "The authorization code or refresh token is invalid, expired, revoked, or was issued to a different client.";
const DESC_UNSUPPORTED_GRANT: &str = "The client specified an unsupported grant type.";
const DESC_NOT_FOUND: &str = "The requested resource does not exist.";
const DESC_METHOD: &str = "The HTTP method is not supported by this resource.";

/// Makes a realistic Login with Amazon access token from `seed`.
///
/// The token is `Atza|IwEBI` followed by 400 characters of `[A-Za-z0-9_-]` (410 bytes in all,
/// inside Amazon's 350–2048 range). The same seed always gives the same token and different
/// seeds give different tokens, so tests can name their users:
///
/// ```
/// use tower_amazon_auth::mock::mock_access_token;
///
/// let token = mock_access_token("alice");
/// assert!(token.starts_with("Atza|IwEBI"));
/// assert_eq!(token.len(), 410);
/// assert_eq!(token, mock_access_token("alice"));
/// assert_ne!(token, mock_access_token("bob"));
/// ```
#[must_use]
pub fn mock_access_token(seed: impl AsRef<str>) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // FNV-1a of the seed, then splitmix64 as a stream of pseudo-random characters.
    let mut state = seed.as_ref().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut token = String::with_capacity(410);
    token.push_str("Atza|IwEBI");
    while token.len() < 410 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        for _ in 0..10 {
            if token.len() == 410 {
                break;
            }
            token.push(char::from(ALPHABET[(z & 63) as usize]));
            z >>= 6;
        }
    }
    token
}

// ---------------------------------------------------------------------------------------------
// Public configuration types
// ---------------------------------------------------------------------------------------------

/// Number of calls the mock received, per endpoint.
///
/// Calls are counted the moment they arrive, before any latency or delay is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MockCalls {
    /// Calls to `GET /auth/o2/tokeninfo`.
    pub tokeninfo: usize,
    /// Calls to `GET /user/profile`.
    pub profile: usize,
    /// Calls to `POST /auth/o2/token`.
    pub token: usize,
}

impl MockCalls {
    /// All calls, whatever the endpoint.
    #[must_use]
    pub fn total(&self) -> usize {
        self.tokeninfo + self.profile + self.token
    }
}

/// The scope a user granted, which decides the fields `/user/profile` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockScope {
    /// `profile:user_id`: the profile carries `user_id` only.
    UserId,
    /// `profile`: `user_id`, and `email` and `name` when they are set.
    Profile,
    /// `profile` and `postal_code`: as [`MockScope::Profile`], plus `postal_code` when it is set.
    ProfileAndPostalCode,
}

/// A Login with Amazon user, as the mock's tokeninfo and profile endpoints describe them.
///
/// Built with [`MockUser::new`] and the builder methods; register it for a token with
/// [`MockAmazon::register`] (a `MockUser` converts into a [`MockReply`]).
///
/// Defaults: `aud` [`MOCK_CLIENT_ID`], `app_id` [`MOCK_APP_ID`], `exp` 3600 seconds, no email,
/// name or postal code, scope [`MockScope::Profile`], a normal profile answer.
#[derive(Debug, Clone)]
pub struct MockUser {
    user_id: String,
    email: Option<String>,
    name: Option<String>,
    postal_code: Option<String>,
    aud: String,
    app_id: String,
    exp: i64,
    scope: MockScope,
    profile_reply: Option<Box<MockReply>>,
}

impl MockUser {
    /// A user with this `user_id` (Amazon's look like `amzn1.account.AF2EXAMPLE`).
    #[must_use]
    pub fn new(user_id: impl Into<String>) -> MockUser {
        MockUser {
            user_id: user_id.into(),
            email: None,
            name: None,
            postal_code: None,
            aud: MOCK_CLIENT_ID.to_owned(),
            app_id: MOCK_APP_ID.to_owned(),
            exp: 3600,
            scope: MockScope::Profile,
            profile_reply: None,
        }
    }

    /// The user's `user_id`.
    #[must_use]
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The user's email address (default: none). Returned by the profile when the scope is
    /// [`MockScope::Profile`] or wider.
    #[must_use]
    pub fn email(mut self, v: impl Into<String>) -> Self {
        self.email = Some(v.into());
        self
    }

    /// The user's name (default: none). Returned by the profile when the scope is
    /// [`MockScope::Profile`] or wider.
    #[must_use]
    pub fn name(mut self, v: impl Into<String>) -> Self {
        self.name = Some(v.into());
        self
    }

    /// The user's postal code (default: none). Returned by the profile only with
    /// [`MockScope::ProfileAndPostalCode`].
    #[must_use]
    pub fn postal_code(mut self, v: impl Into<String>) -> Self {
        self.postal_code = Some(v.into());
        self
    }

    /// The client id the token was issued to, tokeninfo's `aud` (default: [`MOCK_CLIENT_ID`]).
    /// Set another to play a token issued to someone else's application.
    #[must_use]
    pub fn aud(mut self, v: impl Into<String>) -> Self {
        self.aud = v.into();
        self
    }

    /// The application id, tokeninfo's `app_id` (default: [`MOCK_APP_ID`]).
    #[must_use]
    pub fn app_id(mut self, v: impl Into<String>) -> Self {
        self.app_id = v.into();
        self
    }

    /// Seconds the token has left when it is registered (default: 3600).
    ///
    /// The mock counts down: tokeninfo's `exp` is this value minus the whole seconds elapsed
    /// since [`MockAmazon::register`]. Once a positive value has counted down to zero, both
    /// endpoints answer `400 invalid_token` (expired). A value of zero or less is returned as is
    /// (still counting down) and never expires the token, so tests can see how a client copes with
    /// such an `exp`.
    ///
    /// The countdown follows tokio's clock: on a runtime whose clock is paused (tokio's
    /// `test-util` feature), `tokio::time::advance` moves it too.
    #[must_use]
    pub fn exp(mut self, seconds_remaining: i64) -> Self {
        self.exp = seconds_remaining;
        self
    }

    /// The scope the user granted (default: [`MockScope::Profile`]).
    #[must_use]
    pub fn scope(mut self, scope: MockScope) -> Self {
        self.scope = scope;
        self
    }

    /// Tokeninfo answers normally for this user, but `/user/profile` answers `reply` instead
    /// (default: the user's profile). An expired token answers `invalid_token` on both endpoints
    /// regardless.
    #[must_use]
    pub fn profile_reply(mut self, reply: MockReply) -> Self {
        self.profile_reply = Some(Box::new(reply));
        self
    }
}

/// What the mock answers for a token (or, with [`MockAmazon::set_token_endpoint_reply`], for
/// the token endpoint).
///
/// A reply registered for a token applies to both tokeninfo and profile, except for
/// [`MockUser::profile_reply`] and [`MockReply::insufficient_scope`], which only change the
/// profile. [`MockReply::delayed`] and [`MockReply::retry_after`] combine with any reply.
#[derive(Debug, Clone)]
pub struct MockReply {
    kind: ReplyKind,
    retry_after: Option<u64>,
    delay: Duration,
}

#[derive(Debug, Clone)]
enum ReplyKind {
    User(MockUser),
    Error { status: u16, error: &'static str },
    Json { status: u16, body: serde_json::Value },
    Garbage,
    Truncated,
    Reset,
    Oversized(usize),
    Hang,
}

impl From<MockUser> for MockReply {
    fn from(user: MockUser) -> MockReply {
        MockReply::user(user)
    }
}

impl MockReply {
    fn new(kind: ReplyKind) -> MockReply {
        MockReply {
            kind,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }

    /// A valid token belonging to `user`: tokeninfo and profile answer 200 with the user's data.
    #[must_use]
    pub fn user(user: MockUser) -> MockReply {
        MockReply::new(ReplyKind::User(user))
    }

    /// An expired, revoked or malformed token: `400 {"error":"invalid_token",…}` from tokeninfo
    /// and profile. Unregistered tokens answer this too.
    #[must_use]
    pub fn invalid_token() -> MockReply {
        MockReply::new(ReplyKind::Error {
            status: 400,
            error: "invalid_token",
        })
    }

    /// A token whose user did not grant the profile scope: tokeninfo answers normally for
    /// `user`, profile answers `401 {"error":"insufficient_scope",…}`.
    #[must_use]
    pub fn insufficient_scope(user: MockUser) -> MockReply {
        MockReply::user(user.profile_reply(MockReply::new(ReplyKind::Error {
            status: 401,
            error: "insufficient_scope",
        })))
    }

    /// HTTP status `code` with Amazon's error JSON: `"ServerError"` for 5xx,
    /// `"TooManyRequests"` for 429, `"invalid_request"` for any other code. A code outside
    /// `200..=599` is answered as 500.
    #[must_use]
    pub fn status(code: u16) -> MockReply {
        let code = if (200..=599).contains(&code) { code } else { 500 };
        let error = match code {
            500..=599 => "ServerError",
            429 => "TooManyRequests",
            _ => "invalid_request",
        };
        MockReply::new(ReplyKind::Error { status: code, error })
    }

    /// Adds a `Retry-After: <seconds>` header to the answer (meaningful with status 429 or 503).
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> MockReply {
        self.retry_after = Some(seconds);
        self
    }

    /// Any JSON `body` with any `status`, for instance valid JSON of the wrong shape. A status
    /// outside `200..=599` is answered as 500.
    #[must_use]
    pub fn json(status: u16, body: serde_json::Value) -> MockReply {
        MockReply::new(ReplyKind::Json { status, body })
    }

    /// 200 with `content-type: application/json` and a body that is not JSON.
    #[must_use]
    pub fn garbage() -> MockReply {
        MockReply::new(ReplyKind::Garbage)
    }

    /// 200 whose `Content-Length` promises more bytes than are sent; the connection then closes
    /// cleanly (FIN), so the client sees a body that ends early.
    #[must_use]
    pub fn truncated() -> MockReply {
        MockReply::new(ReplyKind::Truncated)
    }

    /// Sends the status line, the headers and part of the body, then resets the connection
    /// (TCP RST).
    #[must_use]
    pub fn reset() -> MockReply {
        MockReply::new(ReplyKind::Reset)
    }

    /// 200 with a JSON-looking body of exactly `bytes` bytes (an object with one long string
    /// field when `bytes` ≥ 10).
    #[must_use]
    pub fn oversized(bytes: usize) -> MockReply {
        MockReply::new(ReplyKind::Oversized(bytes))
    }

    /// Never answers: the connection stays open until the [`MockAmazon`] is dropped.
    #[must_use]
    pub fn hang() -> MockReply {
        MockReply::new(ReplyKind::Hang)
    }

    /// This reply after an extra `delay` (added to any earlier `delayed` and to
    /// [`MockAmazon::set_latency`]).
    #[must_use]
    pub fn delayed(mut self, delay: Duration) -> MockReply {
        self.delay = self.delay.saturating_add(delay);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// A Login with Amazon server on `127.0.0.1`, for tests. See the [module docs](self).
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

struct Shared {
    state: Mutex<State>,
    request_id_prefix: String,
}

struct State {
    tokens: HashMap<String, Registration>,
    /// Authorization code → access token; a code is removed when it is exchanged.
    codes: HashMap<String, String>,
    /// Refresh token → access token.
    refresh_tokens: HashMap<String, String>,
    next_refresh: u64,
    client_id: String,
    client_secret: String,
    token_endpoint_reply: Option<MockReply>,
    latency: Duration,
    calls: MockCalls,
    calls_per_token: HashMap<String, MockCalls>,
}

struct Registration {
    reply: MockReply,
    registered_at: Instant,
    iat: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                tokens: HashMap::new(),
                codes: HashMap::new(),
                refresh_tokens: HashMap::new(),
                next_refresh: 1,
                client_id: MOCK_CLIENT_ID.to_owned(),
                client_secret: MOCK_CLIENT_SECRET.to_owned(),
                token_endpoint_reply: None,
                latency: Duration::ZERO,
                calls: MockCalls::default(),
                calls_per_token: HashMap::new(),
            }),
            request_id_prefix: format!("{:08x}-{:04x}", epoch & 0xffff_ffff, addr.port()),
        });
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

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

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
    let io = TokioIo::new(MockStream {
        inner: stream,
        reset: Arc::clone(&reset),
    });
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

/// A TCP stream that, once `reset` is set, closes with an RST instead of a FIN.
struct MockStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
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
enum MockBody {
    Full(Option<Bytes>),
    Cut {
        chunk: Option<Bytes>,
        pause: Pin<Box<Sleep>>,
        fail: bool,
        done: bool,
    },
}

impl MockBody {
    fn full(bytes: impl Into<Bytes>) -> MockBody {
        MockBody::Full(Some(bytes.into()))
    }

    fn cut(chunk: Bytes, fail: bool) -> MockBody {
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

// ---------------------------------------------------------------------------------------------
// Request handling
// ---------------------------------------------------------------------------------------------

/// What to answer, decided under the lock and carried out after the latency.
struct Plan {
    delay: Duration,
    retry_after: Option<u64>,
    /// Adds `Cache-Control: no-store` and `Pragma: no-cache` (token endpoint).
    no_store: bool,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
    action: Action,
}

enum Action {
    Body(StatusCode, Vec<u8>),
    Error {
        status: StatusCode,
        error: &'static str,
        description: &'static str,
    },
    Garbage,
    Truncated,
    Reset,
    Oversized(usize),
    Hang,
}

impl Plan {
    fn new(action: Action) -> Plan {
        Plan {
            delay: Duration::ZERO,
            retry_after: None,
            no_store: false,
            allow: None,
            action,
        }
    }

    fn error(status: u16, error: &'static str) -> Plan {
        Plan::new(error_action(status, error))
    }
}

fn status_code(code: u16) -> StatusCode {
    if (200..=599).contains(&code) {
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

fn error_action(status: u16, error: &'static str) -> Action {
    let description = match error {
        "invalid_request" => DESC_INVALID_REQUEST,
        "invalid_token" => DESC_INVALID_TOKEN,
        "insufficient_scope" => DESC_INSUFFICIENT_SCOPE,
        "ServerError" => DESC_SERVER_ERROR,
        "TooManyRequests" => DESC_TOO_MANY_REQUESTS,
        "invalid_client" => DESC_INVALID_CLIENT,
        "invalid_grant" => DESC_INVALID_GRANT,
        "unsupported_grant_type" => DESC_UNSUPPORTED_GRANT,
        _ => DESC_INVALID_REQUEST,
    };
    Action::Error {
        status: status_code(status),
        error,
        description,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    TokenInfo,
    Profile,
}

async fn handle(shared: &Shared, reset: &AtomicBool, request: Request<Incoming>) -> Response<MockBody> {
    let path = request.uri().path();
    let plan = match (path, request.method()) {
        ("/auth/o2/tokeninfo", &Method::GET) => tokeninfo(shared, request.uri()),
        ("/user/profile", &Method::GET) => profile(shared, &request),
        ("/auth/o2/token", &Method::POST) => token_endpoint(shared, request).await,
        ("/auth/o2/tokeninfo" | "/user/profile", _) => method_not_allowed("GET"),
        ("/auth/o2/token", _) => method_not_allowed("POST"),
        _ => Plan::new(Action::Error {
            status: StatusCode::NOT_FOUND,
            error: "invalid_request",
            description: DESC_NOT_FOUND,
        }),
    };
    let latency = lock(&shared.state).latency;
    let wait = latency.saturating_add(plan.delay);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let mut response = render(shared, reset, plan.action).await;
    let headers = response.headers_mut();
    if let Some(seconds) = plan.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if plan.no_store {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    if let Some(allow) = plan.allow {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

fn method_not_allowed(allow: &'static str) -> Plan {
    let mut plan = Plan::new(Action::Error {
        status: StatusCode::METHOD_NOT_ALLOWED,
        error: "invalid_request",
        description: DESC_METHOD,
    });
    plan.allow = Some(allow);
    plan
}

/// The request's `access_token` query parameter, percent-decoded; empty counts as absent.
fn query_token(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "access_token")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

fn tokeninfo(shared: &Shared, uri: &Uri) -> Plan {
    let token = query_token(uri);
    let mut state = lock(&shared.state);
    state.calls.tokeninfo += 1;
    let Some(token) = token else {
        return Plan::error(400, "invalid_request");
    };
    state.calls_per_token.entry(token.clone()).or_default().tokeninfo += 1;
    match state.tokens.get(&token) {
        Some(registration) => plan_for(
            &registration.reply,
            Endpoint::TokenInfo,
            registration,
            Instant::now(),
        ),
        None => Plan::error(400, "invalid_token"),
    }
}

/// The token of a profile request: `Authorization: Bearer`, then `x-amz-access-token`, then
/// the query string.
fn profile_token(request: &Request<Incoming>) -> Option<String> {
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty());
    if let Some(token) = bearer {
        return Some(token.to_owned());
    }
    let header_token = headers
        .get(ACCESS_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(token) = header_token {
        return Some(token.to_owned());
    }
    query_token(request.uri())
}

fn profile(shared: &Shared, request: &Request<Incoming>) -> Plan {
    let token = profile_token(request);
    let mut state = lock(&shared.state);
    state.calls.profile += 1;
    let Some(token) = token else {
        return Plan::error(400, "invalid_request");
    };
    state.calls_per_token.entry(token.clone()).or_default().profile += 1;
    match state.tokens.get(&token) {
        Some(registration) => plan_for(
            &registration.reply,
            Endpoint::Profile,
            registration,
            Instant::now(),
        ),
        None => Plan::error(400, "invalid_token"),
    }
}

/// The plan for a reply that is not about a user (`None` for a user reply).
fn fixed_plan(reply: &MockReply) -> Option<Plan> {
    let action = match &reply.kind {
        ReplyKind::User(_) => return None,
        ReplyKind::Error { status, error } => error_action(*status, error),
        ReplyKind::Json { status, body } => {
            Action::Body(status_code(*status), serde_json::to_vec(body).unwrap_or_default())
        }
        ReplyKind::Garbage => Action::Garbage,
        ReplyKind::Truncated => Action::Truncated,
        ReplyKind::Reset => Action::Reset,
        ReplyKind::Oversized(n) => Action::Oversized(*n),
        ReplyKind::Hang => Action::Hang,
    };
    let mut plan = Plan::new(action);
    plan.delay = reply.delay;
    plan.retry_after = reply.retry_after;
    Some(plan)
}

#[derive(Serialize)]
struct TokenInfoJson<'a> {
    iss: &'static str,
    user_id: &'a str,
    aud: &'a str,
    app_id: &'a str,
    exp: i64,
    iat: u64,
}

#[derive(Serialize)]
struct ProfileJson<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    postal_code: Option<&'a str>,
}

fn plan_for(reply: &MockReply, endpoint: Endpoint, registration: &Registration, now: Instant) -> Plan {
    let Some(user) = (match &reply.kind {
        ReplyKind::User(user) => Some(user),
        _ => None,
    }) else {
        return fixed_plan(reply).unwrap_or_else(|| Plan::error(500, "ServerError"));
    };
    let elapsed = now
        .saturating_duration_since(registration.registered_at)
        .as_secs();
    let remaining = user
        .exp
        .saturating_sub(i64::try_from(elapsed).unwrap_or(i64::MAX));
    let mut plan = if user.exp > 0 && remaining <= 0 {
        Plan::new(Action::Error {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_token",
            description: DESC_EXPIRED_TOKEN,
        })
    } else {
        match (endpoint, &user.profile_reply) {
            (Endpoint::TokenInfo, _) => Plan::new(json_action(&TokenInfoJson {
                iss: ISSUER,
                user_id: &user.user_id,
                aud: &user.aud,
                app_id: &user.app_id,
                exp: remaining,
                iat: registration.iat,
            })),
            (Endpoint::Profile, Some(profile_reply)) => {
                plan_for(profile_reply, Endpoint::Profile, registration, now)
            }
            (Endpoint::Profile, None) => {
                let (email, name, postal_code) = match user.scope {
                    MockScope::UserId => (None, None, None),
                    MockScope::Profile => (user.email.as_deref(), user.name.as_deref(), None),
                    MockScope::ProfileAndPostalCode => (
                        user.email.as_deref(),
                        user.name.as_deref(),
                        user.postal_code.as_deref(),
                    ),
                };
                Plan::new(json_action(&ProfileJson {
                    user_id: &user.user_id,
                    email,
                    name,
                    postal_code,
                }))
            }
        }
    };
    plan.delay = plan.delay.saturating_add(reply.delay);
    plan.retry_after = plan.retry_after.or(reply.retry_after);
    plan
}

fn json_action<T: Serialize>(value: &T) -> Action {
    match serde_json::to_vec(value) {
        Ok(body) => Action::Body(StatusCode::OK, body),
        Err(_) => error_action(500, "ServerError"),
    }
}

// ---------------------------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct TokenJson<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
}

async fn token_endpoint(shared: &Shared, request: Request<Incoming>) -> Plan {
    let (parts, body) = request.into_parts();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let body = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes());
    let form = match (&body, is_form) {
        (Ok(bytes), true) => parse_form(bytes),
        _ => None,
    };
    let credential = form
        .as_ref()
        .and_then(|form| match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => form.get("code").cloned(),
            Some("refresh_token") => form.get("refresh_token").cloned(),
            _ => None,
        });
    let basic = match parts.headers.get(header::AUTHORIZATION) {
        None => ClientAuth::Form,
        Some(value) => match value.to_str().ok().and_then(parse_basic) {
            Some((id, secret)) => ClientAuth::Basic(id, secret),
            None => ClientAuth::Malformed,
        },
    };

    let mut state = lock(&shared.state);
    state.calls.token += 1;
    if let Some(credential) = &credential {
        state.calls_per_token.entry(credential.clone()).or_default().token += 1;
    }
    let mut delay = Duration::ZERO;
    let mut retry_after = None;
    if let Some(reply) = &state.token_endpoint_reply {
        if let Some(mut plan) = fixed_plan(reply) {
            plan.no_store = true;
            return plan;
        }
        delay = reply.delay;
        retry_after = reply.retry_after;
    }
    let action = match form {
        None => error_action(400, "invalid_request"),
        Some(form) => match exchange(&mut state, &form, basic) {
            Ok(action) => action,
            Err((status, error)) => error_action(status, error),
        },
    };
    let mut plan = Plan::new(action);
    plan.delay = delay;
    plan.retry_after = retry_after;
    plan.no_store = true;
    plan
}

/// Parses a form body; `None` when a parameter appears twice (RFC 6749 §3.2).
fn parse_form(bytes: &[u8]) -> Option<HashMap<String, String>> {
    let mut form = HashMap::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        if value.is_empty() {
            continue;
        }
        if form.insert(name.into_owned(), value.into_owned()).is_some() {
            return None;
        }
    }
    Some(form)
}

/// Where the token endpoint request put its client credentials.
enum ClientAuth {
    /// No `Authorization` header: `client_id` and `client_secret` in the form.
    Form,
    /// HTTP Basic authentication.
    Basic(String, String),
    /// An `Authorization` header that is not valid Basic credentials.
    Malformed,
}

/// The id and secret of a `Basic` `Authorization` header value.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let input = input.trim_end_matches('=');
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in input.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Decodes `application/x-www-form-urlencoded` text (RFC 6749 §2.3.1 encodes Basic
/// credentials this way; most clients do not bother, so both forms are accepted).
fn form_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'+' {
            out.push(b' ');
            i += 1;
            continue;
        }
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn credential_matches(given: &str, expected: &str, basic: bool) -> bool {
    given == expected || (basic && form_decode(given) == expected)
}

type ExchangeError = (u16, &'static str);

fn exchange(
    state: &mut State,
    form: &HashMap<String, String>,
    auth: ClientAuth,
) -> Result<Action, ExchangeError> {
    const INVALID_REQUEST: ExchangeError = (400, "invalid_request");
    let grant_type = form.get("grant_type").ok_or(INVALID_REQUEST)?;
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return Err((400, "unsupported_grant_type"));
    }
    let (client_id, client_secret, via_basic) = match auth {
        ClientAuth::Malformed => return Err((401, "invalid_client")),
        ClientAuth::Basic(id, secret) => {
            // One authentication method per request (RFC 6749 §2.3).
            if form.contains_key("client_secret") {
                return Err(INVALID_REQUEST);
            }
            if let Some(form_id) = form.get("client_id") {
                if form_id != &id && form_decode(&id) != *form_id {
                    return Err((401, "invalid_client"));
                }
            }
            (id, secret, true)
        }
        ClientAuth::Form => {
            let id = form.get("client_id").ok_or(INVALID_REQUEST)?;
            let secret = form.get("client_secret").ok_or(INVALID_REQUEST)?;
            (id.clone(), secret.clone(), false)
        }
    };
    if !credential_matches(&client_id, &state.client_id, via_basic)
        || !credential_matches(&client_secret, &state.client_secret, via_basic)
    {
        return Err((401, "invalid_client"));
    }
    let (access_token, refresh_token) = if grant_type == "authorization_code" {
        let code = form.get("code").ok_or(INVALID_REQUEST)?;
        let access_token = state.codes.remove(code).ok_or((400, "invalid_grant"))?;
        let refresh_token = format!("Atzr|mock-refresh-{}", state.next_refresh);
        state.next_refresh += 1;
        state
            .refresh_tokens
            .insert(refresh_token.clone(), access_token.clone());
        (access_token, refresh_token)
    } else {
        let refresh_token = form.get("refresh_token").ok_or(INVALID_REQUEST)?;
        let access_token = state
            .refresh_tokens
            .get(refresh_token)
            .ok_or((400, "invalid_grant"))?;
        (access_token.clone(), refresh_token.clone())
    };
    Ok(json_action(&TokenJson {
        access_token: &access_token,
        refresh_token: &refresh_token,
        token_type: "bearer",
        expires_in: ISSUED_TOKEN_LIFETIME,
    }))
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(1);

fn request_id(shared: &Shared) -> String {
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}-4{:03x}-8{:03x}-{:012x}",
        shared.request_id_prefix,
        (n >> 60) & 0xfff,
        (n >> 48) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    error: &'a str,
    error_description: &'a str,
    request_id: &'a str,
}

/// A sample tokeninfo body, cut short by `truncated` and `reset`.
fn sample_body() -> Vec<u8> {
    format!(
        r#"{{"iss":"{ISSUER}","user_id":"amzn1.account.MOCKCUTOFF","aud":"{MOCK_CLIENT_ID}","app_id":"{MOCK_APP_ID}","exp":3600,"iat":1700000000}}"#
    )
    .into_bytes()
}

fn oversized_body(n: usize) -> Vec<u8> {
    const HEAD: &[u8] = b"{\"pad\":\"";
    const TAIL: &[u8] = b"\"}";
    if n < HEAD.len() + TAIL.len() {
        return vec![b'x'; n];
    }
    let mut body = Vec::with_capacity(n);
    body.extend_from_slice(HEAD);
    body.resize(n - TAIL.len(), b'x');
    body.extend_from_slice(TAIL);
    body
}

async fn render(shared: &Shared, reset: &AtomicBool, action: Action) -> Response<MockBody> {
    let id = request_id(shared);
    let (status, body, declared_len) = match action {
        Action::Body(status, body) => (status, MockBody::full(body), None),
        Action::Error {
            status,
            error,
            description,
        } => {
            let body = serde_json::to_vec(&ErrorJson {
                error,
                error_description: description,
                request_id: &id,
            })
            .unwrap_or_default();
            (status, MockBody::full(body), None)
        }
        Action::Garbage => (
            StatusCode::OK,
            MockBody::full(&b"<html><body><h1>Service Unavailable</h1> not JSON {\"user_id\":"[..]),
            None,
        ),
        Action::Oversized(n) => (StatusCode::OK, MockBody::full(oversized_body(n)), None),
        Action::Truncated | Action::Reset => {
            let fail = matches!(action, Action::Reset);
            if fail {
                reset.store(true, Ordering::Relaxed);
            }
            let full = sample_body();
            let len = full.len();
            let part = Bytes::from(full).slice(..len / 2);
            (StatusCode::OK, MockBody::cut(part, fail), Some(len))
        }
        Action::Hang => match std::future::pending::<Infallible>().await {},
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, value);
    }
    if let Some(len) = declared_len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}
