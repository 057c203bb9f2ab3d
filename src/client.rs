//! [`AmazonClient`]: the only code that speaks HTTP to Amazon (tokeninfo, profile, token
//! exchange), through one reused `reqwest` client with bounded answers.

use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, RETRY_AFTER};
use http::HeaderValue;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::endpoint::Endpoints;
use crate::identity::{Profile, TokenInfo};
use crate::layer::BuildError;
use crate::token::AccessToken;

/// The most bytes read from any answer of Amazon's; a longer one is unreadable.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Default time allowed to open a connection to Amazon.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time allowed for one call to Amazon, connection included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const REQUEST_ID: &str = "x-amzn-requestid";
/// The name [`AmazonClient::call`] gets for the token endpoint, whose 4xx errors are all OAuth.
pub(crate) const TOKEN_ENDPOINT: &str = "token";

/// What went wrong talking to Amazon. Never holds a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmazonError {
    /// Amazon says the token is invalid, expired or revoked (`invalid_token`, or
    /// `invalid_request` about the token).
    #[error("Amazon rejected the token (request id {request_id:?})")]
    InvalidToken {
        /// Amazon's `x-amzn-RequestId`, for support.
        request_id: Option<String>,
    },
    /// The profile endpoint says the token's scope is insufficient.
    #[error("the token's scope is insufficient (request id {request_id:?})")]
    InsufficientScope {
        /// Amazon's `x-amzn-RequestId`, for support.
        request_id: Option<String>,
    },
    /// An OAuth error from the token endpoint (`invalid_grant`, `invalid_client`, …).
    #[error("Amazon refused the grant: {code} (HTTP {status}, request id {request_id:?})")]
    OAuth {
        /// Amazon's `error` code.
        code: String,
        /// The HTTP status.
        status: u16,
        /// Amazon's `x-amzn-RequestId`, for support.
        request_id: Option<String>,
    },
    /// An HTTP status without a verdict on the token (5xx, 429, an unexpected 4xx).
    #[error("Amazon answered HTTP {status} (request id {request_id:?})")]
    Status {
        /// The HTTP status.
        status: u16,
        /// Amazon's `Retry-After` in seconds, when sent.
        retry_after: Option<u64>,
        /// Amazon's `x-amzn-RequestId`, for support.
        request_id: Option<String>,
    },
    /// No answer in time.
    #[error("Amazon did not answer in time")]
    Timeout,
    /// The connection failed or broke before a whole answer arrived.
    #[error("the connection to Amazon failed")]
    Connect,
    /// The answer was not the JSON expected, or longer than [`MAX_ANSWER_BYTES`].
    #[error("Amazon's answer could not be read (request id {request_id:?})")]
    Unreadable {
        /// Amazon's `x-amzn-RequestId`, for support.
        request_id: Option<String>,
    },
    /// This client has no `tokeninfo` endpoint (the Appstore API).
    #[error("this endpoint family offers no tokeninfo")]
    NoTokenInfo,
}

impl AmazonError {
    /// Whether the error is a definite verdict on the token rather than a failure to get one.
    pub fn is_definite(&self) -> bool {
        matches!(self, Self::InvalidToken { .. } | Self::InsufficientScope { .. })
    }

    /// Whether asking again may help: a broken connection or a 5xx. Never a verdict, never a
    /// 429 (asking again sooner is what Amazon asked us not to do).
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Connect) || matches!(self, Self::Status { status, .. } if *status >= 500)
    }
}

/// Default number of retries of an idempotent call after a connection failure or a 5xx.
pub const DEFAULT_RETRIES: u32 = 2;

/// The pause before retry `attempt` (1-based): 25 ms doubling each time, with full jitter in
/// its upper half so a fleet of servers does not retry in lockstep.
fn jittered_backoff(attempt: u32) -> Duration {
    let ceiling_ms = 25u64 << attempt.saturating_sub(1).min(6);
    let jitter = getrandom::u64().unwrap_or(0) % (ceiling_ms / 2 + 1);
    Duration::from_millis(ceiling_ms / 2 + jitter)
}

/// A `tokeninfo` answer with the moment it arrived (`exp` counts from then).
#[derive(Debug, Clone)]
pub struct Verified {
    /// Amazon's answer.
    pub info: TokenInfo,
    /// When the answer arrived, on the monotonic clock.
    pub received: Instant,
    /// When the answer arrived, on the wall clock.
    pub received_wall: SystemTime,
}

/// A client for Login with Amazon's endpoints. Cheap to clone; clones share connections.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_amazon_auth::{AccessToken, AmazonClient, Region};
/// let client = AmazonClient::new(Region::NorthAmerica.into())?;
/// let token = AccessToken::new("Atza|…");
/// let profile = client.profile(&token).await?;
/// println!("{}", profile.user_id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AmazonClient {
    pub(crate) http: reqwest::Client,
    endpoints: Endpoints,
    retries: u32,
}

impl AmazonClient {
    /// A client for `endpoints` with the default timeouts
    /// ([`DEFAULT_CONNECT_TIMEOUT`], [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn new(endpoints: Endpoints) -> Result<Self, BuildError> {
        Self::with_timeouts(endpoints, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT)
    }

    /// A client for `endpoints` with the given connect and per-call timeouts.
    pub fn with_timeouts(
        endpoints: Endpoints,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, BuildError> {
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
            retries: DEFAULT_RETRIES,
        })
    }

    /// Retries idempotent calls (`tokeninfo`, `profile`) up to `retries` times after a
    /// connection failure or a 5xx, with jittered backoff. Default: [`DEFAULT_RETRIES`].
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The endpoints this client calls.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Asks `tokeninfo` about `token`: who it belongs to, which client it was issued to, and
    /// how many seconds it has left.
    pub async fn tokeninfo(&self, token: &AccessToken) -> Result<Verified, AmazonError> {
        let url = self.endpoints.tokeninfo_url().ok_or(AmazonError::NoTokenInfo)?;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("access_token", token.expose())
            .finish();
        let request = self.http.get(format!("{url}?{query}"));
        let (info, received) = self.get("tokeninfo", request).await?;
        Ok(Verified {
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
    /// caller's deadline bounds the whole (the resolver wraps this in a timeout).
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
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(T, Instant), AmazonError> {
        let started = Instant::now();
        let response = request.send().await.map_err(transport_error)?;
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

/// Decodes a whole answer of Amazon's: the JSON `T` on a 2xx, a verdict or a transient error
/// otherwise. Pure, so the fuzz target exercises exactly what production runs.
pub(crate) fn decode_answer<T: DeserializeOwned>(
    endpoint: &str,
    status: u16,
    body: &[u8],
    request_id: Option<String>,
    retry_after: Option<u64>,
) -> Result<T, AmazonError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(|_| AmazonError::Unreadable { request_id });
    }
    Err(classify_failure(endpoint, status, body, request_id, retry_after))
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// Turns a non-2xx answer into a verdict (`invalid_token`, `insufficient_scope`, OAuth codes)
/// or a transient status error.
fn classify_failure(
    endpoint: &str,
    status: u16,
    body: &[u8],
    request_id: Option<String>,
    retry_after: Option<u64>,
) -> AmazonError {
    let code = serde_json::from_slice::<ErrorBody>(body).ok().map(|b| b.error);
    // RFC 6749 §5.2: at the token endpoint every error code is about the grant or the client
    // (`invalid_request` included), and a 401 is client authentication failing, code or not.
    if endpoint == TOKEN_ENDPOINT && (status == 401 || (status == 400 && code.is_some())) {
        return AmazonError::OAuth {
            code: code.unwrap_or_else(|| "invalid_client".to_owned()),
            status,
            request_id,
        };
    }
    match (status, code.as_deref()) {
        (400 | 401, Some("invalid_token" | "invalid_request")) => AmazonError::InvalidToken { request_id },
        (401 | 403, Some("insufficient_scope")) => AmazonError::InsufficientScope { request_id },
        (400 | 401, Some(_)) => AmazonError::OAuth {
            code: code.unwrap_or_default(),
            status,
            request_id,
        },
        _ => AmazonError::Status {
            status,
            retry_after,
            request_id,
        },
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
