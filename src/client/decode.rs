//! Pure decoding of Amazon's answers: a status and a body in, a value or an [`AmazonError`]
//! out. No I/O, so the fuzz targets under `fuzz/` exercise exactly what production runs.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::AmazonError;

/// The name the client gives the token endpoint, whose 4xx errors are all OAuth.
pub(crate) const TOKEN_ENDPOINT: &str = "token";

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

/// (feature `fuzz`) Entry points for the fuzz targets under `fuzz/`: not part of the API.
#[cfg(feature = "fuzz")]
pub mod fuzz {
    use crate::error::AmazonError;
    use crate::identity::{Profile, TokenInfo};

    /// Decodes an answer of the tokeninfo endpoint as production does.
    pub fn decode_tokeninfo(status: u16, body: &[u8]) -> Result<TokenInfo, AmazonError> {
        crate::client::decode::decode_answer("tokeninfo", status, body, None, None)
    }

    /// Decodes an answer of the profile endpoint as production does.
    pub fn decode_profile(status: u16, body: &[u8]) -> Result<Profile, AmazonError> {
        crate::client::decode::decode_answer("profile", status, body, None, None)
    }
}
