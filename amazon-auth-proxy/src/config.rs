//! What the command line asks for, checked before anything listens: the identity cache (client
//! ids, endpoint, the fleet level), and, with `--demo` only, the built-in stand-in for Amazon.

use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockScope, MockUser, MOCK_CLIENT_ID};
use tower_amazon_auth_redis::{Fleet, FLEET_MIN_SECRET_LEN};

use crate::cli::Cli;

/// The configuration could not be used: one line saying which setting and why.
pub(crate) type Refusal = String;

/// The stand-in for Amazon `--demo` starts, and a token it knows.
pub(crate) struct Demo {
    /// Kept for as long as the server runs: dropping it closes its port.
    pub(crate) _mock: MockAmazon,
    pub(crate) token: String,
}

/// The layer the command line describes, and the demo when it asked for one.
pub(crate) async fn layer(cli: &Cli) -> Result<(AmazonAuthLayer, Option<Demo>), Refusal> {
    let client_ids: Vec<&str> = cli
        .client_ids
        .iter()
        .map(|id| id.trim())
        .filter(|id| !id.is_empty())
        .collect();
    let (builder, demo) = match (client_ids.is_empty(), cli.demo) {
        (true, false) => {
            return Err("no client id: set --client-id (or AMAZON_CLIENT_ID) to your security profile's, \
                 or pass --demo to try the server with a built-in stand-in for Amazon"
                .to_owned())
        }
        (false, true) => {
            return Err("--demo starts a stand-in for Amazon that signs anyone in: it cannot be combined with a client id".to_owned())
        }
        (true, true) => {
            let mock = MockAmazon::start()
                .await
                .map_err(|error| format!("--demo: cannot start the stand-in for Amazon: {error}"))?;
            let token = mock_access_token("amazon-auth-proxy demo");
            mock.register(
                &token,
                MockUser::new("amzn1.account.DEMO7ZQK4XUSER")
                    .email("demo@example.com")
                    .name("Demo User")
                    .scope(MockScope::Profile)
                    .exp(24 * 3600),
            );
            tracing::warn!("--demo: tokens are verified by a built-in stand-in for Amazon, not by Amazon");
            let builder = IdentityCache::builder().client_id(MOCK_CLIENT_ID).base_url(mock.base_url());
            (builder, Some(Demo { _mock: mock, token }))
        }
        (false, false) => {
            let builder = IdentityCache::builder().client_ids(client_ids);
            let builder = match &cli.endpoint {
                Some(endpoint) => builder.base_url(endpoint),
                None => builder,
            };
            (builder, None)
        }
    };
    let builder = match (&cli.redis_url, &cli.cache_secret) {
        (None, _) => builder,
        (Some(_), None) => {
            return Err("--redis-url needs --cache-secret (or AMAZON_AUTH_CACHE_SECRET)".to_owned())
        }
        (Some(_), Some(secret)) if secret.len() < FLEET_MIN_SECRET_LEN => {
            return Err(format!(
                "--cache-secret must be at least {FLEET_MIN_SECRET_LEN} bytes"
            ))
        }
        (Some(url), Some(secret)) => builder.second_level(Fleet::new(url, secret)),
    };
    if cli.max_header_bytes < 8192 {
        return Err("--max-header-bytes must be at least 8192".to_owned());
    }
    if cli.max_connections == 0 || cli.header_read_timeout.is_zero() {
        return Err("--max-connections and --header-read-timeout must be greater than zero".to_owned());
    }
    let cache = builder
        .build()
        .map_err(|error| format!("invalid configuration: {error}"))?;
    let layer = AmazonAuthLayer::builder(cache)
        .build()
        .map_err(|error| format!("invalid configuration: {error}"))?;
    Ok((layer, demo))
}
