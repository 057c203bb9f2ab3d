//! What the command line asks for, checked before anything listens: the identity cache (client
//! ids, endpoint, the fleet level), and, with `--demo` only, the built-in stand-in for Amazon.

use std::net::SocketAddr;

use tower_amazon_auth::sign_in::SignIn;
use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
use tower_amazon_auth_mock::{
    mock_access_token, MockAmazon, MockScope, MockUser, MOCK_CLIENT_ID, MOCK_CLIENT_SECRET,
};
use tower_amazon_auth_redis::{Fleet, FLEET_MIN_SECRET_LEN};

use crate::cli::Cli;

/// The configuration could not be used: one line saying which setting and why.
pub(crate) type Refusal = String;

/// The stand-in for Amazon `--demo` starts, and a token it knows.
pub(crate) struct Demo {
    /// Kept for as long as the server runs: dropping it closes its port.
    pub(crate) mock: MockAmazon,
    pub(crate) token: String,
}

/// What the server serves: the layer, browser sign-in when it is on, and the demo.
pub(crate) struct Served {
    pub(crate) layer: AmazonAuthLayer,
    pub(crate) sign_in: Option<SignIn>,
    pub(crate) demo: Option<Demo>,
}

/// What the command line describes, for a server listening on `addr`.
pub(crate) async fn served(cli: &Cli, addr: SocketAddr) -> Result<Served, Refusal> {
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
        (true, true) if cli.endpoint.is_some() => {
            return Err("--demo verifies tokens with its built-in stand-in for Amazon: it cannot be combined with --endpoint".to_owned())
        }
        (true, true) => {
            let mock = MockAmazon::start()
                .await
                .map_err(|error| format!("--demo: cannot start the stand-in for Amazon: {error}"))?;
            let token = mock_access_token("amazon-auth-proxy demo");
            let user = MockUser::new("amzn1.account.DEMO7ZQK4XUSER")
                .email("demo@example.com")
                .name("Demo User")
                .scope(MockScope::Profile)
                .exp(24 * 3600);
            mock.register(&token, user.clone());
            mock.add_sign_in_user(user);
            tracing::warn!("--demo: tokens are verified by a built-in stand-in for Amazon, not by Amazon");
            let builder = IdentityCache::builder().client_id(MOCK_CLIENT_ID).base_url(mock.base_url());
            (builder, Some(Demo { mock, token }))
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
    let builder = match fleet(cli)? {
        Some(fleet) => builder.second_level(fleet),
        None => builder,
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
    let sign_in = sign_in(cli, addr, &cache, demo.as_ref())?;
    let mut layer = AmazonAuthLayer::builder(cache);
    if let Some(sign_in) = &sign_in {
        layer = layer.sign_in(sign_in);
    }
    let layer = layer
        .build()
        .map_err(|error| format!("invalid configuration: {error}"))?;
    Ok(Served { layer, sign_in, demo })
}

/// Browser sign-in on oauth2-proxy's routes, when a client secret (or `--demo`) turns it on.
fn sign_in(
    cli: &Cli,
    addr: SocketAddr,
    cache: &IdentityCache,
    demo: Option<&Demo>,
) -> Result<Option<SignIn>, Refusal> {
    let secret = match (&cli.client_secret, demo) {
        (Some(secret), _) => secret.clone(),
        (None, Some(_)) => MOCK_CLIENT_SECRET.to_owned(),
        (None, None) => return Ok(None),
    };
    let public_url = match &cli.public_url {
        Some(url) => url.clone(),
        None if addr.ip().is_loopback() => format!("http://{addr}"),
        None => {
            return Err(
                "--public-url (or PUBLIC_URL) is required with sign-in when listening beyond loopback"
                    .to_owned(),
            )
        }
    };
    let mut builder = SignIn::builder(cache.clone())
        .client_secret(secret)
        .public_origin(public_url)
        .login_path("/oauth2/start")
        .callback_path("/oauth2/callback")
        .logout_path("/oauth2/sign_out")
        .return_param("rd");
    match (&cli.authorize_url, demo) {
        (Some(url), _) => builder = builder.authorize_url(url),
        // The stand-in's consent page on `localhost`, the site on `127.0.0.1`: two sites, as
        // with amazon.com.
        (None, Some(demo)) => {
            builder = builder.authorize_url(format!("http://localhost:{}/ap/oa", demo.mock.addr().port()));
        }
        (None, None) => {}
    }
    if let Some(secure) = cli.secure_cookies {
        builder = builder.secure_cookies(secure);
    }
    let sign_in = builder
        .build()
        .map_err(|error| format!("invalid sign-in configuration: {error}"))?;
    if let Some(demo) = demo {
        demo.mock.allow_redirect_uri(sign_in.redirect_uri());
    }
    tracing::info!(redirect_uri = sign_in.redirect_uri(), "browser sign-in on");
    Ok(Some(sign_in))
}

/// The fleet level the command line asks for, if any: one Redis, or a cluster's seeds.
fn fleet(cli: &Cli) -> Result<Option<Fleet>, Refusal> {
    let urls: Vec<&str> = cli
        .redis_urls
        .iter()
        .map(|url| url.trim())
        .filter(|url| !url.is_empty())
        .collect();
    let secret = match (urls.is_empty(), &cli.cache_secret) {
        (true, _) if cli.redis_cluster => {
            return Err("--redis-cluster needs the seed nodes in --redis-url".to_owned())
        }
        (true, _) => return Ok(None),
        (false, None) => {
            return Err("--redis-url needs --cache-secret (or AMAZON_AUTH_CACHE_SECRET)".to_owned())
        }
        (false, Some(secret)) if secret.len() < FLEET_MIN_SECRET_LEN => {
            return Err(format!(
                "--cache-secret must be at least {FLEET_MIN_SECRET_LEN} bytes"
            ))
        }
        (false, Some(secret)) => secret,
    };
    match (cli.redis_cluster, urls.as_slice()) {
        (true, seeds) => Ok(Some(Fleet::cluster(seeds.iter().copied(), secret))),
        (false, [url]) => Ok(Some(Fleet::new(*url, secret))),
        (false, _) => Err("several --redis-url are a cluster's seeds: add --redis-cluster".to_owned()),
    }
}
