//! The state a `MockAmazon` shares with its connections: what is registered (tokens, codes,
//! refresh tokens, the client, the token endpoint's reply), the latency, and the [`MockCalls`]
//! counters.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::reply::MockReply;
use crate::{MOCK_CLIENT_ID, MOCK_CLIENT_SECRET};

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

/// What the `MockAmazon` handle and every connection task hold (in an `Arc`).
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// The first two groups of every `x-amzn-requestid`.
    pub(super) request_id_prefix: String,
}

impl Shared {
    /// Nothing registered, the default client ([`MOCK_CLIENT_ID`], [`MOCK_CLIENT_SECRET`]), no
    /// latency, zero calls.
    pub(super) fn new(request_id_prefix: String) -> Shared {
        Shared {
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
            request_id_prefix,
        }
    }
}

/// Everything a test can change or read while the mock runs, behind [`Shared::state`].
pub(super) struct State {
    pub(super) tokens: HashMap<String, Registration>,
    /// Authorization code → access token; a code is removed when it is exchanged.
    pub(super) codes: HashMap<String, String>,
    /// Refresh token → access token.
    pub(super) refresh_tokens: HashMap<String, String>,
    pub(super) next_refresh: u64,
    pub(super) client_id: String,
    pub(super) client_secret: String,
    pub(super) token_endpoint_reply: Option<MockReply>,
    pub(super) latency: Duration,
    pub(super) calls: MockCalls,
    pub(super) calls_per_token: HashMap<String, MockCalls>,
}

/// A registered access token: its reply and when it was registered.
pub(super) struct Registration {
    pub(super) reply: MockReply,
    pub(super) registered_at: Instant,
    pub(super) iat: u64,
}

/// Locks `mutex`, ignoring poisoning (a panicking test thread must not take the mock down).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
