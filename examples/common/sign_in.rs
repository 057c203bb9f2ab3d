//! Website sign-in for the example servers, from the environment: `AMAZON_CLIENT_SECRET`,
//! `PUBLIC_URL`, `AMAZON_AUTHORIZE_URL`, `SECURE_COOKIES`. With the embedded mock, its client,
//! its consent page and the demo user. A client id without a secret leaves sign-in off, with the
//! reason.

use std::error::Error;
use std::net::SocketAddr;

use tower_amazon_auth::sign_in::SignIn;
use tower_amazon_auth::IdentityCache;
use tower_amazon_auth_mock::MOCK_CLIENT_SECRET;

use super::{env, Demo};

/// Sign-in as the environment asks: `Ok(Ok(sign_in))`, or `Ok(Err(why it is off))`.
pub(crate) fn sign_in_from_env(
    cache: &IdentityCache,
    addr: SocketAddr,
    demo: Option<&Demo>,
) -> Result<Result<SignIn, String>, Box<dyn Error>> {
    let secret = match (demo, env("AMAZON_CLIENT_SECRET")) {
        (_, Some(secret)) => secret,
        (Some(_), None) => MOCK_CLIENT_SECRET.to_owned(),
        (None, None) => return Ok(Err(
            "sign-in is off: set AMAZON_CLIENT_SECRET (the security profile's client secret) to turn it on"
                .to_owned(),
        )),
    };
    let public_url = match env("PUBLIC_URL") {
        Some(url) => url,
        None if addr.ip().is_loopback() => format!("http://{addr}"),
        None => return Err("PUBLIC_URL is required when LISTEN_ADDR is not a loopback address (the origin browsers use, e.g. https://shop.example)".into()),
    };
    let mut builder = SignIn::builder(cache.clone())
        .client_secret(secret)
        .public_origin(public_url);
    match env("SECURE_COOKIES").as_deref() {
        None => {}
        Some("1") => builder = builder.secure_cookies(true),
        Some("0") => builder = builder.secure_cookies(false),
        Some(other) => return Err(format!("SECURE_COOKIES must be 1 or 0, not {other:?}").into()),
    }
    match (env("AMAZON_AUTHORIZE_URL"), demo) {
        (Some(url), _) => builder = builder.authorize_url(url),
        // The embedded mock's consent page on `localhost`, the site on `127.0.0.1`: two sites,
        // so coming back from the consent page is a cross-site navigation, as from amazon.com.
        (None, Some(demo)) => {
            let port = demo.mock.addr().port();
            builder = builder.authorize_url(format!("http://localhost:{port}/ap/oa"));
        }
        (None, None) => {}
    }
    let sign_in = builder
        .build()
        .map_err(|error| format!("AMAZON_CLIENT_SECRET / PUBLIC_URL / AMAZON_AUTHORIZE_URL: {error}"))?;
    if let Some(demo) = demo {
        demo.mock.allow_redirect_uri(sign_in.redirect_uri());
    }
    tracing::info!(redirect_uri = sign_in.redirect_uri(), "sign-in on");
    Ok(Ok(sign_in))
}
