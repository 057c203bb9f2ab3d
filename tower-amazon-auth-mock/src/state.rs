//! The state a `MockAmazon` shares with its connections: what is registered (tokens, codes and
//! what they were issued for, refresh tokens, the client and its redirect URIs, the sign-in
//! users, the token endpoint's reply), the latency, and the [`MockCalls`] counters.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::pkce::Challenge;
use crate::reply::{MockReply, MockUser};
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
                next_issue: 1,
                client_id: MOCK_CLIENT_ID.to_owned(),
                client_secret: MOCK_CLIENT_SECRET.to_owned(),
                redirect_uris: Vec::new(),
                sign_in_users: Vec::new(),
                code_lifetime: DEFAULT_CODE_LIFETIME,
                rotate_refresh_tokens: false,
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
    /// Authorization codes; a code is removed when it is presented, whatever the outcome.
    pub(super) codes: HashMap<String, IssuedCode>,
    /// Refresh tokens and what they renew.
    pub(super) refresh_tokens: HashMap<String, RefreshGrant>,
    pub(super) next_refresh: u64,
    /// Counter of the codes and access tokens the authorization endpoint issues.
    pub(super) next_issue: u64,
    pub(super) client_id: String,
    pub(super) client_secret: String,
    /// The client's registered redirect URIs, compared by string equality.
    pub(super) redirect_uris: Vec<String>,
    /// The users the consent page offers (the demo user when empty).
    pub(super) sign_in_users: Vec<MockUser>,
    /// How long a code from the consent page can be exchanged.
    pub(super) code_lifetime: Duration,
    /// Whether each refresh grant replaces the refresh token.
    pub(super) rotate_refresh_tokens: bool,
    pub(super) token_endpoint_reply: Option<MockReply>,
    pub(super) latency: Duration,
    pub(super) calls: MockCalls,
    pub(super) calls_per_token: HashMap<String, MockCalls>,
}

/// How long a code from the consent page can be exchanged, by default (Amazon's: 5 minutes).
pub(super) const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// A registered access token: its reply and when it was registered.
pub(super) struct Registration {
    pub(super) reply: MockReply,
    pub(super) registered_at: Instant,
    pub(super) iat: u64,
}

impl Registration {
    /// `reply`, registered now.
    pub(super) fn new(reply: MockReply) -> Registration {
        Registration {
            reply,
            registered_at: Instant::now(),
            iat: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        }
    }
}

/// An authorization code waiting to be exchanged.
pub(super) struct IssuedCode {
    /// The access token the exchange hands out.
    pub(super) access_token: String,
    /// What the consent page issued the code for; `None` for a code from
    /// `MockAmazon::register_code`, which is only single use.
    pub(super) consent: Option<Consent>,
}

/// What a user allowed on the consent page, which binds the code it issued.
pub(super) struct Consent {
    pub(super) grant: Grant,
    /// The `redirect_uri` of the authorization request, which the exchange must repeat.
    pub(super) redirect_uri: String,
    /// The PKCE challenge of the authorization request, if it had one.
    pub(super) challenge: Option<Challenge>,
    /// When the code was issued (tokio's clock).
    pub(super) issued_at: Instant,
    /// How long after `issued_at` the code can be exchanged.
    pub(super) lifetime: Duration,
}

/// Who a grant is for: the client, and the chosen user with the scope they granted (and the
/// client as `aud`), from whom every access token of the grant is minted.
#[derive(Clone)]
pub(super) struct Grant {
    pub(super) client_id: String,
    pub(super) user: MockUser,
}

/// What a refresh token renews.
pub(super) struct RefreshGrant {
    /// The latest access token of the grant.
    pub(super) access_token: String,
    /// For a grant from the consent page, who it is for (each refresh mints a new access
    /// token); `None` for a code from `MockAmazon::register_code` (each refresh answers the same
    /// access token).
    pub(super) grant: Option<Grant>,
}

/// Locks `mutex`, ignoring poisoning (a panicking test thread must not take the mock down).
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
