//! Getting tokens server-side: the authorization-code grant ([`AmazonClient::exchange_code`],
//! for Amazon Appstore Quick Subscribe and web sign-in) and the refresh-token grant
//! ([`AmazonClient::refresh`]), with [`ClientCredentials`], [`TokenResponse`] and
//! [`RefreshToken`].
//!
//! Both grants `POST` a form to the endpoints' [`token_url`](crate::endpoint::Endpoints::token_url)
//! through [`AmazonClient`]'s one bounded HTTP path. They are never retried: a code is
//! single-use, and a retry after a lost answer would turn success into `invalid_grant`. The
//! client secret, the code and the tokens never appear in a log line, a `Debug` string or an
//! error.

use std::fmt;

use http::header::{ACCEPT, CONTENT_TYPE};
use http::HeaderValue;
use serde::Deserialize;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::decode::TOKEN_ENDPOINT;
use super::AmazonClient;
use crate::access_token::AccessToken;
use crate::error::AmazonError;

/// An application's client id and client secret, for the token endpoint.
///
/// `Debug` shows the client id and never the secret; the secret is wiped from memory when the
/// credentials are dropped ([`ZeroizeOnDrop`]; every clone wipes its own copy).
///
/// ```
/// use tower_amazon_auth::client::ClientCredentials;
/// let credentials = ClientCredentials::new("amzn1.application-oa2-client.abc", "s3cr3t");
/// let shown = format!("{credentials:?}");
/// assert!(shown.contains("amzn1.application-oa2-client.abc"));
/// assert!(!shown.contains("s3cr3t"));
/// assert_eq!(credentials.expose_secret(), "s3cr3t");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    client_id: Box<str>,
    client_secret: Box<str>,
}

impl ClientCredentials {
    /// Credentials from the client id (`amzn1.application-oa2-client.…`) and the client secret
    /// shown in the Amazon developer console.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into().into_boxed_str(),
            client_secret: client_secret.into().into_boxed_str(),
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client secret, for sending to Amazon. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.client_secret
    }
}

impl Drop for ClientCredentials {
    fn drop(&mut self) {
        self.client_secret.zeroize();
    }
}

impl ZeroizeOnDrop for ClientCredentials {}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &format_args!("<redacted>"))
            .finish()
    }
}

/// A refresh token (`Atzr|…`): long-lived, it renews access tokens with
/// [`AmazonClient::refresh`]. `Debug` and `Display` never show it, and its buffer is wiped when
/// it is dropped ([`ZeroizeOnDrop`]; every clone wipes its own).
///
/// ```
/// use tower_amazon_auth::client::RefreshToken;
/// let token = RefreshToken::new("Atzr|secret");
/// assert_eq!(format!("{token:?} {token}"), "RefreshToken(<redacted>) <redacted>");
/// assert_eq!(token.expose(), "Atzr|secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(Box<str>);

impl RefreshToken {
    /// Wraps a refresh token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into().into_boxed_str())
    }

    /// The raw token, for storing or sending to Amazon. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for RefreshToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for RefreshToken {}

impl From<String> for RefreshToken {
    fn from(token: String) -> Self {
        Self::new(token)
    }
}

impl From<&str> for RefreshToken {
    fn from(token: &str) -> Self {
        Self::new(token)
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

impl fmt::Display for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The token endpoint's answer to a successful grant. `Debug` shows neither token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The new access token (`Atza|…`), valid for [`expires_in`](Self::expires_in) seconds.
    pub access_token: AccessToken,
    /// The token type, `bearer`.
    pub token_type: String,
    /// Seconds the access token is valid for, counted from the answer (Amazon gives 3600).
    pub expires_in: u64,
    /// The refresh token (`Atzr|…`), when Amazon sent one. Store it (encrypted) to renew the
    /// access token without the user; when a refresh answer carries none, keep the one you have.
    pub refresh_token: Option<RefreshToken>,
}

/// The wire shape of [`TokenResponse`]. No `Debug`: it holds the raw tokens.
#[derive(Deserialize)]
struct TokenJson {
    access_token: String,
    token_type: String,
    expires_in: u64,
    #[serde(default)]
    refresh_token: Option<String>,
}

impl AmazonClient {
    /// Exchanges an authorization `code` (from Login with Amazon's authorization-code grant, or
    /// the Appstore's Quick Subscribe) for an access token and a refresh token:
    /// `POST {base}/auth/o2/token` with `grant_type=authorization_code`.
    ///
    /// # Errors
    ///
    /// - [`AmazonError::OAuth`] when Amazon refuses the request: `invalid_grant` (unknown,
    ///   expired or already used code), `invalid_client` (wrong client id or secret, HTTP 401),
    ///   `unauthorized_client`, `invalid_request`, `unsupported_grant_type`. An empty `code` is
    ///   refused as `invalid_request` (status 400, no request id) without calling Amazon.
    /// - [`AmazonError::Status`] for a 5xx (Amazon's `ServerError`) or 429;
    ///   [`AmazonError::Timeout`], [`AmazonError::Connect`], [`AmazonError::Unreadable`] when no
    ///   usable answer came.
    ///
    /// The call is not retried (a code is single-use). The client secret, the code and the
    /// tokens never appear in a log line, a `Debug` string or an error.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_amazon_auth::client::{AmazonClient, ClientCredentials};
    /// use tower_amazon_auth::endpoint::Endpoints;
    ///
    /// let client = AmazonClient::new(Endpoints::appstore())?;
    /// let credentials = ClientCredentials::new(
    ///     "amzn1.application-oa2-client.0123456789abcdef",
    ///     std::env::var("AMAZON_CLIENT_SECRET")?,
    /// );
    /// // The code the app received from Amazon and posted to your server.
    /// let tokens = client.exchange_code("ANdNAVhyhqirUelHGEHA", &credentials).await?;
    /// let profile = client.profile(&tokens.access_token).await?;
    /// println!("{} signed in; token valid for {} s", profile.user_id, tokens.expires_in);
    ///
    /// // An hour later:
    /// if let Some(refresh_token) = &tokens.refresh_token {
    ///     let renewed = client.refresh(refresh_token, &credentials).await?;
    ///     # let _ = renewed;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn exchange_code(
        &self,
        code: &str,
        credentials: &ClientCredentials,
    ) -> Result<TokenResponse, AmazonError> {
        self.exchange_code_with_redirect_uri(code, None, credentials)
            .await
    }

    /// [`exchange_code`](Self::exchange_code), also sending `redirect_uri`, which Amazon
    /// requires when the authorization request that produced `code` carried one (web sign-in).
    pub async fn exchange_code_with_redirect_uri(
        &self,
        code: &str,
        redirect_uri: Option<&str>,
        credentials: &ClientCredentials,
    ) -> Result<TokenResponse, AmazonError> {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
        if let Some(redirect_uri) = redirect_uri {
            form.push(("redirect_uri", redirect_uri));
        }
        self.grant(code, &form, credentials).await
    }

    /// [`exchange_code`](Self::exchange_code) for a code from website sign-in with PKCE
    /// (RFC 7636): sends the `redirect_uri` the authorize request carried and the
    /// `code_verifier` whose S256 challenge it carried. Amazon refuses a wrong verifier
    /// (`invalid_grant`, or `unauthorized_client` per the Appstore documentation).
    ///
    /// # Errors
    ///
    /// As [`exchange_code`](Self::exchange_code).
    pub async fn exchange_code_with_verifier(
        &self,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
        credentials: &ClientCredentials,
    ) -> Result<TokenResponse, AmazonError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ];
        self.grant(code, &form, credentials).await
    }

    /// Gets a new access token for `refresh_token`: `POST {base}/auth/o2/token` with
    /// `grant_type=refresh_token`.
    ///
    /// # Errors
    ///
    /// As [`exchange_code`](Self::exchange_code); `invalid_grant` means the refresh token is
    /// unknown, revoked or was issued to another client.
    pub async fn refresh(
        &self,
        refresh_token: &RefreshToken,
        credentials: &ClientCredentials,
    ) -> Result<TokenResponse, AmazonError> {
        let token = refresh_token.expose();
        let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
        self.grant(token, &form, credentials).await
    }

    /// Posts one grant. `credential` is the code or refresh token, checked for emptiness.
    async fn grant(
        &self,
        credential: &str,
        form: &[(&str, &str)],
        credentials: &ClientCredentials,
    ) -> Result<TokenResponse, AmazonError> {
        if credential.is_empty() {
            return Err(AmazonError::OAuth {
                code: "invalid_request".to_owned(),
                status: 400,
                request_id: None,
            });
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .append_pair("client_id", credentials.client_id())
            .append_pair("client_secret", credentials.expose_secret())
            .finish();
        let request = self
            .http
            .post(self.endpoints().token_url())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded;charset=UTF-8"),
            )
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .body(body);
        let (answer, _received): (TokenJson, _) = self.call(TOKEN_ENDPOINT, request).await?;
        if answer.access_token.is_empty() {
            return Err(AmazonError::Unreadable { request_id: None });
        }
        Ok(TokenResponse {
            access_token: AccessToken::new(answer.access_token),
            token_type: answer.token_type,
            expires_in: answer.expires_in,
            refresh_token: answer
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(RefreshToken::new),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_and_refresh_tokens_are_wiped_on_drop_and_never_shown() {
        fn wiped_on_drop<T: ZeroizeOnDrop>() {}
        wiped_on_drop::<ClientCredentials>();
        wiped_on_drop::<RefreshToken>();
        // What drop runs, observed while the values are alive.
        let mut credentials = ClientCredentials::new("amzn1.application-oa2-client.x", "s3cr3t");
        credentials.client_secret.zeroize();
        assert!(credentials.expose_secret().bytes().all(|b| b == 0));
        assert_eq!(credentials.client_id(), "amzn1.application-oa2-client.x");
        let mut refresh = RefreshToken::new("Atzr|wipe-me");
        refresh.0.zeroize();
        assert!(refresh.expose().bytes().all(|b| b == 0));
        assert_eq!(format!("{refresh:?}"), "RefreshToken(<redacted>)");
    }
}
