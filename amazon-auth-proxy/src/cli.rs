//! The command line: every setting a flag, with an environment variable as its fallback
//! (`clap`), and `--help` documenting each.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// A Login with Amazon auth server for nginx `auth_request` and Caddy `forward_auth`: it
/// answers `/verify` subrequests with the verification of the request's Amazon access token,
/// and the identity in `X-Auth-Request-*` headers.
///
/// Without a client id it refuses to start, unless `--demo` asks for the built-in stand-in for
/// Amazon (never in production: anyone can then sign in as its demo user).
// No `Debug`: it holds the client secret and the fleet secret.
#[derive(Parser)]
#[command(name = "amazon-auth-proxy", version, about, long_about)]
pub(crate) struct Cli {
    /// Where to listen. Keep it on loopback (or a private network only the proxy reaches): the
    /// server tells whoever asks who a token belongs to.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:4180")]
    pub(crate) listen: SocketAddr,

    /// The client ids whose tokens are accepted (Amazon's `aud`), comma-separated.
    #[arg(long = "client-id", env = "AMAZON_CLIENT_ID", value_delimiter = ',')]
    pub(crate) client_ids: Vec<String>,

    /// The base URL of Amazon's API (`/auth/o2/tokeninfo`, `/user/profile`); North America's
    /// by default.
    #[arg(long, env = "AMAZON_ENDPOINT")]
    pub(crate) endpoint: Option<String>,

    /// Start a built-in stand-in for Amazon with one demo user, and print a token to try:
    /// for trying the server out, never for production. Refused together with a client id.
    #[arg(long)]
    pub(crate) demo: bool,

    /// A Redis shared by every instance (the fleet level): one verification per token for the
    /// fleet, a logout anywhere refused everywhere, and browser sessions shared. With
    /// `--redis-cluster`, the seed nodes of a Redis Cluster, comma-separated (one per shard is
    /// best). `rediss://` for TLS. Never logged (it may hold a password).
    #[arg(
        long = "redis-url",
        env = "REDIS_URL",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub(crate) redis_urls: Vec<String>,

    /// `--redis-url` names the seed nodes of a Redis Cluster.
    #[arg(long, env = "REDIS_CLUSTER")]
    pub(crate) redis_cluster: bool,

    /// The fleet secret, at least 32 bytes, the same on every instance; required with
    /// `--redis-url`. Never logged.
    #[arg(long, env = "AMAZON_AUTH_CACHE_SECRET", hide_env_values = true)]
    pub(crate) cache_secret: Option<String>,

    /// The client secret of the security profile: turns browser sign-in on (`/oauth2/start`,
    /// `/oauth2/callback`, `/oauth2/sign_out`). Never logged.
    #[arg(long, env = "AMAZON_CLIENT_SECRET", hide_env_values = true)]
    pub(crate) client_secret: Option<String>,

    /// The site's origin as browsers see it (`https://shop.example`): sign-in's redirect URI is
    /// `{public-url}/oauth2/callback`, and cookie-authenticated unsafe requests must come from
    /// it. Default: `http://` + the listen address when that is loopback (for trying it out).
    #[arg(long, env = "PUBLIC_URL")]
    pub(crate) public_url: Option<String>,

    /// Add the access token to an allow, in `X-Auth-Request-Access-Token` (as oauth2-proxy's
    /// `--pass-access-token`): a session's current token, which the browser never holds, for a
    /// site that calls Amazon itself. The proxy configuration must then pass that header on
    /// (the snippets in docs/proxy.md do, replacing a client's own). Off by default.
    #[arg(long, env = "PASS_ACCESS_TOKEN")]
    pub(crate) pass_access_token: bool,

    /// Where browsers sign in; Amazon's for North America by default (with `--demo`, the
    /// stand-in's).
    #[arg(long, env = "AMAZON_AUTHORIZE_URL")]
    pub(crate) authorize_url: Option<String>,

    /// Mark the cookies `Secure` with the `__Host-` prefix (default: when the public URL is
    /// https).
    #[arg(long, env = "SECURE_COOKIES")]
    pub(crate) secure_cookies: Option<bool>,

    /// The log format on stderr.
    #[arg(long, value_enum, env = "LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// How long a client may take to send a request's headers, and how long an idle
    /// kept-alive connection stays open (e.g. `10s`, `500ms`, `1m 30s`). A slow client must not hold a
    /// connection.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) header_read_timeout: Duration,

    /// The most bytes of request headers read (at least 8192).
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub(crate) max_header_bytes: usize,

    /// The most connections open at once; more are closed as they arrive.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024)]
    pub(crate) max_connections: usize,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
