//! [`AmazonClient`]: the only code that speaks HTTP to Amazon (tokeninfo, profile, and the
//! code and refresh-token grants, [`AmazonClient::exchange_code`] and friends), through one
//! reused `reqwest` client with bounded answers and retries of idempotent calls. What an
//! answer means is decided by a pure decoder, apart from the transport.

pub(crate) mod decode;
mod exchange;

use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, RETRY_AFTER};
use http::HeaderValue;
use serde::de::DeserializeOwned;

use crate::access_token::AccessToken;
use crate::defaults;
use crate::endpoint::Endpoints;
use crate::error::{AmazonError, BuildError};

use self::decode::decode_answer;
pub use self::exchange::{ClientCredentials, RefreshToken, TokenResponse};
pub use crate::identity::{Profile, TokenInfo};

/// The most bytes read from any answer of Amazon's; a longer one is unreadable.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

const REQUEST_ID: &str = "x-amzn-requestid";

/// The pause before retry `attempt` (1-based): 25 ms doubling each time, with full jitter in
/// its upper half so a fleet of servers does not retry in lockstep.
fn jittered_backoff(attempt: u32) -> Duration {
    let ceiling_ms = 25u64 << attempt.saturating_sub(1).min(6);
    let jitter = getrandom::u64().unwrap_or(0) % (ceiling_ms / 2 + 1);
    Duration::from_millis(ceiling_ms / 2 + jitter)
}

/// A `tokeninfo` answer with the moment it arrived (`exp` counts from then).
#[derive(Debug, Clone)]
pub(crate) struct TokenInfoReply {
    /// Amazon's answer.
    pub(crate) info: TokenInfo,
    /// When the answer arrived, on the monotonic clock.
    pub(crate) received: Instant,
    /// When the answer arrived, on the wall clock.
    pub(crate) received_wall: SystemTime,
}

/// A client for Login with Amazon's endpoints. Cheap to clone; clones share connections.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_amazon_auth::AccessToken;
/// use tower_amazon_auth::client::AmazonClient;
/// use tower_amazon_auth::endpoint::Region;
/// let client = AmazonClient::new(Region::NorthAmerica.into())?;
/// let token = AccessToken::new("Atza|…");
/// let profile = client.profile(&token).await?;
/// println!("{}", profile.user_id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AmazonClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    retries: u32,
}

impl AmazonClient {
    /// A client for `endpoints` with the default timeouts
    /// ([`defaults::CONNECT_TIMEOUT`], [`defaults::DEADLINE`] per call).
    pub fn new(endpoints: Endpoints) -> Result<Self, BuildError> {
        Self::with_timeouts(endpoints, defaults::CONNECT_TIMEOUT, defaults::DEADLINE)
    }

    /// A client for `endpoints` with the given connect and per-call timeouts.
    pub fn with_timeouts(
        endpoints: Endpoints,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, BuildError> {
        if let Some(url) = endpoints.refused_cleartext() {
            return Err(BuildError::CleartextBaseUrl(url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tower-amazon-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError::HttpClient(e.without_url().to_string()))?;
        Ok(Self {
            http,
            endpoints,
            retries: defaults::RETRIES,
        })
    }

    /// Retries idempotent calls (`tokeninfo`, `profile`) up to `retries` times after a
    /// connection failure or a 5xx, with jittered backoff. Default: [`defaults::RETRIES`] (2).
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The endpoints this client calls.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Asks `tokeninfo` about `token`: who it belongs to, which client it was issued to, and
    /// how many seconds it has left (`exp`, counted from when Amazon answered).
    pub async fn tokeninfo(&self, token: &AccessToken) -> Result<TokenInfo, AmazonError> {
        Ok(self.tokeninfo_received(token).await?.info)
    }

    /// [`tokeninfo`](Self::tokeninfo) with the moment the answer arrived, from which `exp`
    /// counts.
    pub(crate) async fn tokeninfo_received(
        &self,
        token: &AccessToken,
    ) -> Result<TokenInfoReply, AmazonError> {
        let url = self.endpoints.tokeninfo_url().ok_or(AmazonError::NoTokenInfo)?;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("access_token", token.expose())
            .finish();
        let request = self.http.get(format!("{url}?{query}"));
        let (info, received) = self.get("tokeninfo", request).await?;
        Ok(TokenInfoReply {
            info,
            received,
            received_wall: SystemTime::now(),
        })
    }

    /// Fetches the profile of the user `token` belongs to.
    pub async fn profile(&self, token: &AccessToken) -> Result<Profile, AmazonError> {
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", token.expose()))
            .map_err(|_| AmazonError::InvalidToken { request_id: None })?;
        bearer.set_sensitive(true);
        let request = self
            .http
            .get(self.endpoints.profile_url())
            .header(AUTHORIZATION, bearer);
        Ok(self.get("profile", request).await?.0)
    }

    /// [`call`](Self::call) for an idempotent GET: a connection failure or a 5xx is retried up
    /// to [`retries`](Self::with_retries) times after a jittered exponential backoff. The
    /// caller's deadline bounds the whole (the verifier wraps this in a timeout).
    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(T, Instant), AmazonError> {
        let mut attempt = 0;
        loop {
            let Some(this_try) = request.try_clone() else {
                return self.call(endpoint, request).await;
            };
            match self.call(endpoint, this_try).await {
                Err(error) if attempt < self.retries && error.is_retryable() => {
                    attempt += 1;
                    let backoff = jittered_backoff(attempt);
                    tracing::debug!(endpoint, attempt, backoff_ms = backoff.as_millis() as u64, %error, "retrying");
                    tokio::time::sleep(backoff).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// Sends `request`, reads at most [`MAX_ANSWER_BYTES`] and decodes the JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(T, Instant), AmazonError> {
        let started = Instant::now();
        let sent = request.send().await;
        #[cfg(feature = "metrics")]
        if sent.is_err() {
            crate::metrics::amazon_call(endpoint, "error", started.elapsed());
        }
        let response = sent.map_err(transport_error)?;
        let received = Instant::now();
        let status = response.status();
        let request_id = response
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = read_bounded(response).await;
        #[cfg(feature = "metrics")]
        crate::metrics::amazon_call(endpoint, status.as_str(), started.elapsed());
        tracing::debug!(
            endpoint,
            status = status.as_u16(),
            request_id = request_id.as_deref(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "amazon answered"
        );
        let body = body.map_err(|e| match e {
            AmazonError::Unreadable { .. } => AmazonError::Unreadable {
                request_id: request_id.clone(),
            },
            other => other,
        })?;
        decode_answer(endpoint, status.as_u16(), &body, request_id, retry_after)
            .map(|value| (value, received))
    }
}

fn transport_error(error: reqwest::Error) -> AmazonError {
    let outcome = if error.is_timeout() {
        AmazonError::Timeout
    } else {
        AmazonError::Connect
    };
    // The URL of a tokeninfo call holds the token: never log it.
    tracing::debug!(error = %error.without_url(), "call to amazon failed");
    outcome
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Bytes, AmazonError> {
    let too_long = || AmazonError::Unreadable { request_id: None };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_long());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
