//! [`Fleet`]: the settings of the fleet level, their defaults, and their check when the cache
//! is built.

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::FleetError;
use crate::tls::Tls;

/// The default of every setting of [`Fleet`].
pub mod defaults {
    use std::time::Duration;

    /// The prefix of every Redis key and of the pub/sub channel: `"taa:"`.
    pub const KEY_PREFIX: &str = "taa:";
    /// The most one Redis command may take before it counts as failed and the
    /// request goes on without Redis: 50 ms.
    pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(50);
    /// How long Redis is left alone after a run of failed commands: 5 s.
    pub const BACKOFF: Duration = Duration::from_secs(5);
    /// How long an instance may hear nothing on its subscription before it counts it as lost:
    /// 5 s (see [`Fleet::liveness`](crate::Fleet::liveness)).
    pub const LIVENESS: Duration = Duration::from_secs(5);
}

/// The shortest fleet secret accepted, in bytes.
pub const FLEET_MIN_SECRET_LEN: usize = 32;

/// The settings of the fleet level: where Redis is, the fleet secret, and how long to wait for
/// Redis. Give it to
/// [`IdentityCacheBuilder::second_level`](tower_amazon_auth::IdentityCacheBuilder::second_level);
/// everything is checked at [`build`](tower_amazon_auth::IdentityCacheBuilder::build), which
/// answers [`BuildError::SecondLevel`](tower_amazon_auth::BuildError::SecondLevel) with a
/// [`FleetError`] inside.
///
/// Connecting is lazy: `build()` opens no connection, and a Redis that is down at startup (or
/// later) only means that requests are verified with Amazon directly until it answers; the
/// subscriber keeps trying to connect in the background. `build()` must run inside a Tokio
/// runtime (the subscriber is a task).
///
/// The secret and the URL (which may hold a password) never appear in `Debug` output, logs or
/// errors.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), tower_amazon_auth::BuildError> {
/// use std::time::Duration;
/// use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
/// use tower_amazon_auth_redis::Fleet;
///
/// let secret = std::env::var("AMAZON_AUTH_CACHE_SECRET").expect("at least 32 bytes");
/// let cache = IdentityCache::builder()
///     .client_id("amzn1.application-oa2-client.0123456789abcdef")
///     .second_level(
///         Fleet::new("redis://127.0.0.1:6379", secret)
///             .key_prefix("shop:auth:")
///             .command_timeout(Duration::from_millis(50)),
///     )
///     .build()?;
/// let layer = AmazonAuthLayer::builder(cache).build()?;
/// # let _ = layer; Ok(()) }
/// ```
#[must_use]
pub struct Fleet {
    /// The URL of the one Redis, or the seeds of a cluster. Wiped on drop, as they may hold a
    /// password (the `redis` client's own copies are not).
    pub(crate) urls: Vec<Zeroizing<String>>,
    /// Whether `urls` are the seeds of a Redis Cluster ([`Fleet::cluster`]).
    pub(crate) cluster: bool,
    /// Wiped on drop, like the previous secret.
    pub(crate) secret: Zeroizing<Vec<u8>>,
    pub(crate) previous: Option<Zeroizing<Vec<u8>>>,
    pub(crate) prefix: String,
    pub(crate) command_timeout: Duration,
    pub(crate) lock_wait: Option<Duration>,
    pub(crate) backoff: Duration,
    pub(crate) liveness: Duration,
    /// Root certificates and client identity (`tls.rs`).
    pub(crate) tls: Tls,
}

impl Fleet {
    /// The fleet level on the Redis at `url` (`redis://host:port/db`, `rediss://…` for TLS —
    /// see [`root_certificates`](Fleet::root_certificates) and
    /// [`client_identity`](Fleet::client_identity) —,
    /// `redis://:password@host` or `redis://user:password@host` with authentication; for a
    /// Redis Cluster see [`Fleet::cluster`]), with `secret`: at least [`FLEET_MIN_SECRET_LEN`] bytes, the same on every instance, kept like a
    /// password. Every key, MAC and encryption key comes from it.
    ///
    /// This crate's copies of the secret, of every key derived from it and of the URL are wiped
    /// from memory when they are dropped (the caller's own `secret` is the caller's: pass a
    /// [`zeroize::Zeroizing`] string to have it wiped too). See the README's security section
    /// for what is not wiped.
    pub fn new(url: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        Self {
            urls: vec![Zeroizing::new(url.into())],
            cluster: false,
            secret: Zeroizing::new(secret.as_ref().to_vec()),
            previous: None,
            prefix: defaults::KEY_PREFIX.to_owned(),
            command_timeout: defaults::COMMAND_TIMEOUT,
            lock_wait: None,
            backoff: defaults::BACKOFF,
            liveness: defaults::LIVENESS,
            tls: Tls::default(),
        }
    }

    /// The fleet level on a **Redis Cluster**, found through `seeds`: the URLs of one or more of
    /// its nodes (`redis://host:port`, `rediss://…` for TLS, with the same user and password
    /// in each: `redis://:password@host:port`), the others learnt from them. Give a few (a
    /// node of each shard, say): the subscriber listens on one seed at a time and moves on to
    /// the next one when it loses it, so a seed list whose every node is gone leaves the level
    /// without messages (logouts then reach this instance through its misses only) until a
    /// seed answers again. `secret` as in [`Fleet::new`]; every other setting applies as on one
    /// Redis, the TLS ones to every node (whose certificate must name the address the cluster
    /// announces for it: its IP address unless the cluster announces host names).
    ///
    /// Checked when the cache is built: no seed, a Unix socket, a database other than 0, or
    /// seeds that disagree on TLS, user or password are refused with
    /// [`FleetError::ClusterSeeds`]. See the crate's documentation (Redis Cluster) for what a
    /// failover can lose.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), tower_amazon_auth::BuildError> {
    /// use tower_amazon_auth::IdentityCache;
    /// use tower_amazon_auth_redis::Fleet;
    ///
    /// let secret = std::env::var("AMAZON_AUTH_CACHE_SECRET").expect("at least 32 bytes");
    /// let cache = IdentityCache::builder()
    ///     .client_id("amzn1.application-oa2-client.0123456789abcdef")
    ///     .second_level(Fleet::cluster(
    ///         [
    ///             "redis://:password@10.0.0.11:6379",
    ///             "redis://:password@10.0.0.12:6379",
    ///             "redis://:password@10.0.0.13:6379",
    ///         ],
    ///         secret,
    ///     ))
    ///     .build()?;
    /// # let _ = cache; Ok(()) }
    /// ```
    pub fn cluster<S: Into<String>>(seeds: impl IntoIterator<Item = S>, secret: impl AsRef<[u8]>) -> Self {
        let mut fleet = Self::new(String::new(), secret);
        fleet.urls = seeds
            .into_iter()
            .map(|seed| Zeroizing::new(seed.into()))
            .collect();
        fleet.cluster = true;
        fleet
    }

    /// The secret being rotated out: what was written under it (verdicts, and revocations
    /// above all) stays in force until it expires, and revocations made now are written under
    /// it too, so instances not yet given the new secret see them. Drop it once every instance
    /// runs with the new one and `max_ttl` and an hour (a token's life) have passed. At least
    /// [`FLEET_MIN_SECRET_LEN`] bytes. Default: none.
    pub fn previous_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.previous = Some(Zeroizing::new(secret.as_ref().to_vec()));
        self
    }

    /// The prefix of every Redis key and of the pub/sub channel: 1 to 64 printable ASCII
    /// characters without spaces, `{` or `}` (a brace would change the hash tag of the keys on a
    /// Redis Cluster). Services sharing one Redis need not differ in prefix (their
    /// verdict keys differ by their client ids and endpoints), but a distinct prefix per
    /// service makes the keys easy to tell apart. Default: [`defaults::KEY_PREFIX`]
    /// (`"taa:"`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The most one Redis command may take; past it the command counts as failed and the
    /// request goes on to Amazon. 1 ms to 5 s. Default: [`defaults::COMMAND_TIMEOUT`]
    /// (50 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Fleet single-flight: how long an instance waits for another instance that is verifying
    /// the same token (it holds a short lock in Redis, for this long plus 1 s) before it
    /// verifies the token itself. A first request can so take this long plus the verification
    /// [`deadline`](tower_amazon_auth::IdentityCacheBuilder::deadline) at worst (when the instance holding the
    /// lock died or Amazon is slow). At most 5 min. Default: 2 s, or the deadline when shorter;
    /// zero turns fleet single-flight off.
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = Some(wait);
        self
    }

    /// How long Redis is left alone after a run of failed commands (5 in a row): requests go
    /// straight to Amazon, then one command probes Redis again. At most 5 min; below 1 s counts
    /// as 1 s. Default:
    /// [`defaults::BACKOFF`] (5 s).
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The longest a logout made on another instance can take to reach a token hot in this
    /// instance's local cache when its subscription died silently (a NAT or firewall that
    /// dropped the connection without a reset). The subscriber pings Redis on its own
    /// connection every quarter of this; after three quarters of it without a word (a reply or
    /// a message), it counts the subscription as lost: it flushes the local cache (revocations
    /// stay), replaces the command connection too (same path, likely dead as well), and
    /// subscribes again, flushing once more. 1 s to 5 min. Default: [`defaults::LIVENESS`]
    /// (5 s).
    pub fn liveness(mut self, liveness: Duration) -> Self {
        self.liveness = liveness;
        self
    }
}

impl Fleet {
    /// Trusts the CA certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks),
    /// **instead of** the system's root certificates, to verify the Redis server's certificate:
    /// for a Redis whose certificate comes from a private CA. The server's certificate must
    /// still name the host of the URL (`rediss://redis.internal:6380` needs
    /// `redis.internal` among its names; an IP address in the URL needs that IP address).
    /// Needs a `rediss://` URL; checked when the cache is built (a PEM without a usable
    /// certificate is refused with [`FleetError::RootCertificates`], a URL that is not
    /// `rediss://` with [`FleetError::TlsWithoutRediss`]). Default: the system's roots.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_amazon_auth::IdentityCache;
    /// use tower_amazon_auth_redis::Fleet;
    ///
    /// let secret = std::env::var("AMAZON_AUTH_CACHE_SECRET")?;
    /// let cache = IdentityCache::builder()
    ///     .client_id("amzn1.application-oa2-client.0123456789abcdef")
    ///     .second_level(
    ///         Fleet::new("rediss://:password@redis.internal:6380", secret)
    ///             .root_certificates(std::fs::read("/etc/redis-tls/ca.pem")?)
    ///             // Only when Redis runs with `tls-auth-clients yes`:
    ///             .client_identity(
    ///                 std::fs::read("/etc/redis-tls/client.pem")?,
    ///                 std::fs::read("/etc/redis-tls/client.key")?,
    ///             ),
    ///     )
    ///     .build()?;
    /// # let _ = cache; Ok(()) }
    /// ```
    pub fn root_certificates(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.tls.roots = Some(pem.as_ref().to_vec());
        self
    }

    /// Presents a client certificate to Redis (mutual TLS, for a Redis run with
    /// `tls-auth-clients yes`): `certificate_chain_pem` holds the client's certificate first,
    /// then any intermediates; `private_key_pem` its private key (PKCS#8, PKCS#1 or SEC1 PEM;
    /// this crate's copy is wiped from memory when the settings or the cache are dropped).
    /// Needs a `rediss://` URL; checked when the cache is built: a chain without a certificate,
    /// a key that does not parse, or a key that does not match the certificate is refused with
    /// [`FleetError::ClientIdentity`], a URL that is not `rediss://` with
    /// [`FleetError::TlsWithoutRediss`]. See [`root_certificates`](Fleet::root_certificates) for
    /// an example. Default: no client certificate.
    pub fn client_identity(
        mut self,
        certificate_chain_pem: impl AsRef<[u8]>,
        private_key_pem: impl AsRef<[u8]>,
    ) -> Self {
        self.tls.identity = Some((
            certificate_chain_pem.as_ref().to_vec(),
            Zeroizing::new(private_key_pem.as_ref().to_vec()),
        ));
        self
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password; the secrets are secrets.
        f.debug_struct("Fleet")
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("lock_wait", &self.lock_wait)
            .field("backoff", &self.backoff)
            .field("liveness", &self.liveness)
            .field("previous_secret", &self.previous.is_some())
            .field("cluster", &self.cluster)
            .field("urls", &self.urls.len())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Checks the settings: the secrets' length, the key prefix, the durations' limits
    /// (documented on each setter), a cluster's seeds (`cluster.rs`), and the TLS settings
    /// with every URL (`tls.rs`).
    pub(crate) fn check(&self) -> Result<(), FleetError> {
        let short = |secret: &[u8]| secret.len() < FLEET_MIN_SECRET_LEN;
        if short(&self.secret) || self.previous.as_deref().is_some_and(|previous| short(previous)) {
            return Err(FleetError::SecretTooShort);
        }
        let prefix_ok = (1..=64).contains(&self.prefix.len())
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
        if !prefix_ok {
            return Err(FleetError::KeyPrefix);
        }
        let five_min = Duration::from_secs(300);
        for (setting, refused, rule) in [
            (
                "command_timeout",
                self.command_timeout < Duration::from_millis(1),
                "at least 1 ms",
            ),
            (
                "command_timeout",
                self.command_timeout > Duration::from_secs(5),
                "at most 5 s",
            ),
            (
                "lock_wait",
                self.lock_wait.is_some_and(|wait| wait > five_min),
                "at most 5 min",
            ),
            ("backoff", self.backoff > five_min, "at most 5 min"),
            ("liveness", self.liveness < Duration::from_secs(1), "at least 1 s"),
            ("liveness", self.liveness > five_min, "at most 5 min"),
        ] {
            if refused {
                return Err(FleetError::Setting { setting, rule });
            }
        }
        let urls: Vec<&str> = self.urls.iter().map(|url| url.as_str()).collect();
        if self.cluster {
            crate::cluster::check(&urls)?;
        }
        urls.iter().try_for_each(|url| self.tls.check(url))
    }
}
