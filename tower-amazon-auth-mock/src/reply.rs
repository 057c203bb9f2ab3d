//! What a test registers: the [`MockUser`] a token belongs to, the [`MockScope`] they granted,
//! and the [`MockReply`] the mock gives for a token (a user, one of Amazon's errors or a
//! transport failure).

use std::time::Duration;

use crate::{ISSUER, MOCK_APP_ID, MOCK_CLIENT_ID, MOCK_DEMO_USER_ID};
use tower_amazon_auth::client::{Profile, TokenInfo};
use tower_amazon_auth::AmazonUser;

/// The scope a user granted, which decides the fields `/user/profile` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockScope {
    /// `profile:user_id`: the profile carries `user_id` only.
    UserId,
    /// `profile`: `user_id`, and `email` and `name` when they are set.
    Profile,
    /// `profile` and `postal_code`: as [`MockScope::Profile`], plus `postal_code` when it is set.
    ProfileAndPostalCode,
    /// `profile:user_id` and `postal_code`: `user_id`, and `postal_code` when it is set.
    UserIdAndPostalCode,
}

/// A Login with Amazon user, as the mock's tokeninfo and profile endpoints describe them.
///
/// Built with [`MockUser::new`] and the builder methods; register it for a token with
/// [`MockAmazon::register`] (a `MockUser` converts into a [`MockReply`]).
///
/// Defaults: `aud` [`MOCK_CLIENT_ID`], `app_id` [`MOCK_APP_ID`], `exp` 3600 seconds, no email,
/// name or postal code, scope [`MockScope::Profile`], a normal profile answer.
///
/// [`MockAmazon::register`]: crate::MockAmazon::register
#[derive(Debug, Clone)]
pub struct MockUser {
    pub(super) user_id: String,
    pub(super) email: Option<String>,
    pub(super) name: Option<String>,
    pub(super) postal_code: Option<String>,
    pub(super) aud: String,
    pub(super) app_id: String,
    pub(super) exp: i64,
    pub(super) scope: MockScope,
    pub(super) profile_reply: Option<Box<MockReply>>,
    pub(super) tokeninfo_reply: Option<Box<MockReply>>,
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
            tokeninfo_reply: None,
        }
    }

    /// The demo user the consent page of [`MockAmazon::authorize_url`] offers when the test
    /// added no sign-in user: user id [`MOCK_DEMO_USER_ID`], name `Demo User`, email
    /// `demo@example.com`, postal code `98109`.
    ///
    /// ```
    /// use tower_amazon_auth_mock::{MockUser, MOCK_DEMO_USER_ID};
    ///
    /// assert_eq!(MockUser::demo().user_id(), MOCK_DEMO_USER_ID);
    /// ```
    ///
    /// [`MockAmazon::authorize_url`]: crate::MockAmazon::authorize_url
    #[must_use]
    pub fn demo() -> MockUser {
        MockUser::new(MOCK_DEMO_USER_ID)
            .name("Demo User")
            .email("demo@example.com")
            .postal_code("98109")
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
    /// [`MockScope::ProfileAndPostalCode`] or [`MockScope::UserIdAndPostalCode`].
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
    ///
    /// [`MockAmazon::register`]: crate::MockAmazon::register
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

    /// Profile answers normally for this user, but `/auth/o2/tokeninfo` answers `reply` instead
    /// (default: the user's token info): with [`profile_reply`](Self::profile_reply), each
    /// endpoint can answer its own way, with its own [`MockReply::delayed`]. An expired token
    /// answers `invalid_token` on both endpoints regardless.
    #[must_use]
    pub fn tokeninfo_reply(mut self, reply: MockReply) -> Self {
        self.tokeninfo_reply = Some(Box::new(reply));
        self
    }

    /// The [`AmazonUser`] a layer would hand a handler for this user's token (as verified now,
    /// with the user's scope deciding the profile fields): to unit-test handlers without running
    /// the layer or a server. Its [`revoke`](AmazonUser::revoke) answers
    /// [`CacheError::NoCache`](tower_amazon_auth::CacheError::NoCache), as no cache verified it.
    ///
    /// ```
    /// use tower_amazon_auth_mock::{MockScope, MockUser};
    ///
    /// let user = MockUser::new("amzn1.account.TEST")
    ///     .email("test@example.com")
    ///     .scope(MockScope::Profile)
    ///     .amazon_user();
    /// assert_eq!(user.user_id(), "amzn1.account.TEST");
    /// assert_eq!(user.email(), Some("test@example.com"));
    /// assert!(user.expires_at().is_some());
    /// ```
    #[must_use]
    pub fn amazon_user(&self) -> AmazonUser {
        let (email, name, postal_code) = self.granted();
        // `TokenInfo` and `Profile` are `#[non_exhaustive]`: built, as a user's code would, from
        // the JSON Amazon answers.
        let info = serde_json::json!({
            "iss": ISSUER,
            "user_id": self.user_id,
            "aud": self.aud,
            "app_id": self.app_id,
            "exp": self.exp,
        });
        let profile = serde_json::json!({
            "user_id": self.user_id,
            "email": email,
            "name": name,
            "postal_code": postal_code,
        });
        let info: TokenInfo = serde_json::from_value(info).expect("tokeninfo's own shape deserializes");
        let profile: Profile = serde_json::from_value(profile).expect("the profile's own shape deserializes");
        AmazonUser::from_answers(info, Some(profile))
    }

    /// The `email`, `name` and `postal_code` the user's scope lets `/user/profile` return.
    pub(super) fn granted(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        match self.scope {
            MockScope::UserId => (None, None, None),
            MockScope::UserIdAndPostalCode => (None, None, self.postal_code.as_deref()),
            MockScope::Profile => (self.email.as_deref(), self.name.as_deref(), None),
            MockScope::ProfileAndPostalCode => (
                self.email.as_deref(),
                self.name.as_deref(),
                self.postal_code.as_deref(),
            ),
        }
    }
}

/// What the mock answers for a token (or, with [`MockAmazon::set_token_endpoint_reply`], for
/// the token endpoint).
///
/// A reply registered for a token applies to both tokeninfo and profile, except for
/// [`MockUser::profile_reply`] and [`MockReply::insufficient_scope`], which only change the
/// profile. [`MockReply::delayed`] and [`MockReply::retry_after`] combine with any reply.
///
/// [`MockAmazon::set_token_endpoint_reply`]: crate::MockAmazon::set_token_endpoint_reply
#[derive(Debug, Clone)]
pub struct MockReply {
    pub(super) kind: ReplyKind,
    pub(super) retry_after: Option<u64>,
    pub(super) delay: Duration,
}

/// What a [`MockReply`] is, apart from its delay and `Retry-After`.
#[derive(Debug, Clone)]
pub(super) enum ReplyKind {
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
    ///
    /// [`MockAmazon`]: crate::MockAmazon
    #[must_use]
    pub fn hang() -> MockReply {
        MockReply::new(ReplyKind::Hang)
    }

    /// This reply after an extra `delay` (added to any earlier `delayed` and to
    /// [`MockAmazon::set_latency`]).
    ///
    /// [`MockAmazon::set_latency`]: crate::MockAmazon::set_latency
    #[must_use]
    pub fn delayed(mut self, delay: Duration) -> MockReply {
        self.delay = self.delay.saturating_add(delay);
        self
    }
}
