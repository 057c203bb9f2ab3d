//! `MockAmazon`: a Login with Amazon server on `127.0.0.1` for tests, examples, benchmarks and
//! your own test suite.
//!
//! [`MockAmazon::start`] binds a real HTTP/1.1 server to `127.0.0.1:0` (a free port) that speaks
//! Amazon's wire format for the endpoints this crate uses, and plays Amazon's sign-in page:
//!
//! | endpoint | what the mock does |
//! | --- | --- |
//! | `GET /ap/oa?client_id&scope&response_type=code&redirect_uri&state&code_challenge&code_challenge_method` | the authorization endpoint ([`MockAmazon::authorize_url`], Amazon's `https://www.amazon.com/ap/oa`): checks the request against the client and its [registered redirect URIs](MockAmazon::allow_redirect_uri) and answers a consent page (plain HTML, no script) to choose a [sign-in user](MockAmazon::add_sign_in_user) and press Allow or Cancel; an invalid request gets a `400` page and no redirect |
//! | `POST /ap/oa` | the consent page's form: Allow mints an access token for the chosen user and `303`s to the `redirect_uri` with a single-use `code` (5 minutes, bound to the `redirect_uri` and the PKCE challenge) and the `state`; Cancel `303`s with `error=access_denied` |
//! | `GET /auth/o2/tokeninfo?access_token=…` | `{"iss","user_id","aud","app_id","exp","iat"}` for a registered token; `exp` is the number of seconds *remaining* and counts down in real time |
//! | `GET /user/profile` | `{"user_id","email","name","postal_code"}` limited to the [`MockScope`] of the token. The token may come as `Authorization: Bearer …` (scheme case-insensitive), `x-amz-access-token: …` or `?access_token=…` |
//! | `POST /auth/o2/token` | the authorization-code and refresh-token grants for one client (see [`MockAmazon::set_client`]); a code from the consent page also checks its expiry, the `redirect_uri` and PKCE (`code_verifier`, `S256` or `plain`); a refresh mints a new access token (and, with [`MockAmazon::set_rotate_refresh_tokens`], a new refresh token) |
//!
//! Every answer but the authorization endpoint's carries
//! `content-type: application/json;charset=UTF-8`, and every answer a fresh
//! `x-amzn-requestid`; every JSON error body has Amazon's shape
//! `{"error","error_description","request_id"}`. Unknown paths answer 404 and a wrong method 405,
//! in the same shape. The authorization endpoint answers `text/html; charset=utf-8` pages and
//! `303` redirects, with `Cache-Control: no-store`.
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
//! use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockReply, MockScope, MockUser};
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
//! assert_eq!(info["aud"], tower_amazon_auth_mock::MOCK_CLIENT_ID);
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

// Layout:
// - `reply`: what a test registers (`MockUser`, `MockScope`, `MockReply`);
// - `state`: what a `MockAmazon` shares with its connections, and the `MockCalls` counters;
// - `plan`: what to answer (a body, an error, a transport failure) and rendering it;
// - `endpoints`: routing, and the plans tokeninfo and profile answer;
// - `token_endpoint`: the token endpoint's client authentication and grants (PKCE included);
// - `authorize`: the authorization endpoint (`/ap/oa`): validation, Allow and Cancel;
// - `consent_page`: the authorization endpoint's HTML pages, and escaping;
// - `form`: reading form-encoded bodies and queries;
// - `pkce`: RFC 7636's challenge methods, grammar and verification;
// - `issue`: minting codes, access tokens and refresh tokens into the state;
// - `transport`: the response body and the TCP stream, which can be cut short or reset;
// - `server`: `MockAmazon` itself and the accept loop.
// Imports among them form no cycle (the workspace's layout test checks it): `server` uses
// `endpoints`, `state`, `transport` and `reply`; `endpoints` uses `authorize`,
// `token_endpoint`, `plan`, `reply` and `state`; `authorize` uses `consent_page`, `form`,
// `issue`, `pkce`, `plan`, `reply` and `state`; `token_endpoint` uses `form`, `issue`, `pkce`,
// `plan` and `state`; `issue` uses `reply` and `state`; `plan` uses `reply`, `state` and
// `transport`; `consent_page` and `state` use `reply` (`state` also `pkce`); `reply`, `pkce`,
// `form` and `transport` use none of them. Any of them may use the items below.
mod authorize;
mod consent_page;
mod endpoints;
mod form;
mod issue;
mod pkce;
mod plan;
mod reply;
mod server;
mod state;
mod token_endpoint;
mod transport;

pub use reply::{MockReply, MockScope, MockUser};
pub use server::MockAmazon;
pub use state::MockCalls;

/// Client id of the mock's application: the default `aud` of a [`MockUser`] and the default
/// client accepted by the mock's token endpoint (see [`MockAmazon::set_client`]).
pub const MOCK_CLIENT_ID: &str = "amzn1.application-oa2-client.mock";

/// Client secret the mock's token endpoint accepts by default (see [`MockAmazon::set_client`]).
pub const MOCK_CLIENT_SECRET: &str = "mock-secret";

/// User id of [`MockUser::demo`], the user the consent page of [`MockAmazon::authorize_url`]
/// offers when the test added no sign-in user.
pub const MOCK_DEMO_USER_ID: &str = "amzn1.account.MOCKDEMOUSER";

/// Application id of the mock's application: the default `app_id` of a [`MockUser`].
pub const MOCK_APP_ID: &str = "amzn1.application.mock";

/// The `iss` of every tokeninfo answer, as Amazon's.
const ISSUER: &str = "https://www.amazon.com";

/// Makes a realistic Login with Amazon access token from `seed`.
///
/// The token is `Atza|IwEBI` followed by 400 characters of `[A-Za-z0-9_-]` (410 bytes in all,
/// inside Amazon's 350–2048 range). The same seed always gives the same token and different
/// seeds give different tokens, so tests can name their users:
///
/// ```
/// use tower_amazon_auth_mock::mock_access_token;
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
