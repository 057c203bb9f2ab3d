//! [`FleetError`]: why the fleet level's settings were refused when the cache was built.

/// Why the fleet level's settings were refused. `build()` answers
/// [`BuildError::SecondLevel`](tower_amazon_auth::BuildError::SecondLevel) with it inside; no
/// variant repeats the URL or a secret.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_amazon_auth::{BuildError, IdentityCache};
/// use tower_amazon_auth_redis::{Fleet, FleetError};
///
/// let refused = IdentityCache::builder()
///     .client_id("amzn1.application-oa2-client.0123456789abcdef")
///     .second_level(Fleet::new("redis://127.0.0.1", "too short"))
///     .build()
///     .unwrap_err();
/// let BuildError::SecondLevel(error) = refused else { panic!("{refused}") };
/// assert_eq!(error.downcast_ref::<FleetError>(), Some(&FleetError::SecretTooShort));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// A fleet secret (current or previous) is shorter than
    /// [`FLEET_MIN_SECRET_LEN`](crate::FLEET_MIN_SECRET_LEN) bytes.
    #[error("the fleet secret must be at least 32 bytes")]
    SecretTooShort,
    /// The Redis URL is not one the client understands (`redis://`, `rediss://`,
    /// `redis+unix://`). The URL itself is not repeated, as it may hold a password.
    #[error("the Redis URL of the fleet level is invalid")]
    Url,
    /// The key prefix is empty, longer than 64 bytes, or holds characters other than printable
    /// ASCII without spaces, `{` and `}`.
    #[error("the fleet key prefix must be 1 to 64 printable ASCII characters without spaces or braces")]
    KeyPrefix,
    /// The cache was built outside a Tokio runtime: the fleet level's subscriber is a task.
    #[error("a cache with the fleet level must be built inside a Tokio runtime")]
    OutsideRuntime,
    /// A duration outside its documented range (each setter says its own): `setting` must be
    /// `rule` (`"greater than zero"`, `"at most 5 s"`, …).
    #[error("{setting} must be {rule}")]
    Setting {
        /// The setter.
        setting: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// The PEM given to [`Fleet::root_certificates`](crate::Fleet::root_certificates) holds no
    /// certificate, or one that does not parse or cannot be a trust anchor.
    #[error("the fleet level's root certificates are not usable PEM certificates")]
    RootCertificates,
    /// The client identity given to [`Fleet::client_identity`](crate::Fleet::client_identity)
    /// is refused: no certificate in the chain, a private key that does not parse (or of a
    /// kind rustls cannot use), or a key that does not match the certificate. The key is never
    /// repeated.
    #[error(
        "the fleet level's client identity is not a PEM certificate chain with its matching private key"
    )]
    ClientIdentity,
    /// Root certificates or a client identity were given with a URL that is not `rediss://`:
    /// they would go unused, and the connection would be in clear.
    #[error("the fleet level's TLS settings need a rediss:// URL")]
    TlsWithoutRediss,
    /// The seeds given to [`Fleet::cluster`](crate::Fleet::cluster) are refused: none, a Unix
    /// socket, a database other than 0 (a cluster has only one), or seeds that disagree on
    /// TLS, user or password. No URL is repeated.
    #[error(
        "the Redis Cluster seeds of the fleet level must be one or more redis:// or rediss:// URLs \
         agreeing on TLS, user and password, on database 0"
    )]
    ClusterSeeds,
    /// The operating system's random number generator failed (for this instance's id).
    #[error("no system randomness for the fleet level: {0}")]
    Randomness(String),
}
