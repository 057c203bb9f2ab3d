//! (feature `redis`) [`Fleet`]: the settings of the fleet level, a second cache level in Redis
//! shared by every instance of a service, and fleet-wide logout.
//!
//! moka stays the first level in every instance; a miss there asks Redis before Amazon, and a
//! verdict Amazon gave is written to Redis for the other instances. `revoke` writes a tombstone
//! to Redis and tells every instance over pub/sub; `invalidate` tells them too.
//!
//! # Coherence across the fleet
//!
//! The local rule (see `src/cache/mod.rs`) holds on every instance: a verdict computed under an
//! older generation of its token is never stored and never served. The fleet level extends it:
//!
//! - **Names.** With the fleet level on, an instance's local key for a token is keyed by a key
//!   derived from the fleet secret, so every instance names a token the same way; a message
//!   about a token carries that name (never the token), and a receiver applies it through the
//!   same generation bump as a local `invalidate` or `revoke`.
//! - **Revocations win.** `revoke` writes the tombstone locally, then in Redis (for the token's
//!   remaining life, never shortening one already there), deletes the token's verdicts there and
//!   publishes, in one script. A fill checks the tombstones in the same script before it
//!   writes, so a verification that was under way anywhere cannot bring the token back; a Redis
//!   read checks the tombstones before the verdict, so an instance that never got the message
//!   still refuses the token at its next miss. A receiver installs the tombstone locally too, so
//!   it keeps refusing the token if Redis goes away afterwards.
//! - **Generations in Redis too.** Each token has a fleet generation in Redis, bumped by
//!   every `invalidate` and `revoke` (and kept for longer than a verification can take). A
//!   miss's read returns it; the fill that follows the verification presents it, and the
//!   script refuses the fill if it moved. So a verification that was under way anywhere when
//!   the token was invalidated never writes its older verdict back, even on an instance that
//!   has not received the message yet.
//! - **Missed messages.** Pub/sub drops what is published while a subscriber is disconnected.
//!   When the subscriber connects again, the instance forgets every cached verdict (its
//!   revocations stay) and asks Redis, which holds the tombstones, at the next request. While it
//!   is disconnected, a logout published elsewhere reaches a token that is hot in this
//!   instance's local cache only when that local entry ends, after at most
//!   [`max_ttl`](crate::IdentityCacheBuilder::max_ttl) (5 min by default), or at the reconnect,
//!   whichever comes first: that is the worst-case delay of a logout. Tokens not cached locally
//!   are refused at once (the miss reads the tombstone), as long as Redis answers reads.
//! - **Redis trouble** is a miss, never a verdict: an unreadable, undecryptable or foreign value
//!   is ignored, a slow or absent Redis is skipped after [`command_timeout`](Fleet::command_timeout),
//!   and after repeated failures not asked at all for a while (a breaker); requests then go to
//!   Amazon directly. Only `revoke` and `invalidate` report it, since their fleet-wide effect
//!   did not happen ([`CacheError::Fleet`](crate::CacheError::Fleet)); a revocation is then
//!   kept and written as soon as Redis answers again (tried every second while the subscriber
//!   is connected), until the token expires.
//! - **Fleet single-flight.** A miss that finds nothing in Redis takes a short lock there (its
//!   name is a MAC like the verdict's) and verifies; the fill releases it. A miss that finds
//!   the lock taken looks again every 20 ms for up to [`lock_wait`](Fleet::lock_wait), then
//!   verifies itself: a lost or slow lock holder costs a duplicate verification, never an
//!   error.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | [`Fleet`]: the settings, validated at `build()` |
//! | `secret` | the keys derived from the fleet secret (HKDF), current and previous |
//! | `naming` | the names of the Redis keys (verdicts, locks, tombstones, generations) and of the channel: MACs, never the token |
//! | `seal` | the AEAD box around every value |
//! | `record` | what a Redis value holds: a verdict, encoded and decoded |
//! | `message` | the invalidation messages on the channel, authenticated |
//! | `scripts` | the Lua scripts that keep a fill from undoing a revocation |
//! | `level` | [`FleetLevel`](level::FleetLevel): reads, fills, locks, revocations, with timeouts and a breaker |
//! | `subscriber` | the task that applies other instances' messages, and flushes on reconnect |

pub(crate) mod level;
pub(crate) mod message;
pub(crate) mod naming;
pub(crate) mod record;
pub(crate) mod scripts;
pub(crate) mod seal;
pub(crate) mod secret;
pub(crate) mod subscriber;

use std::fmt;
use std::time::Duration;

use crate::defaults;

/// The shortest fleet secret accepted, in bytes.
pub const FLEET_MIN_SECRET_LEN: usize = 32;

/// The settings of the fleet level: where Redis is, the fleet secret, and how long to wait for
/// Redis. Give it to [`IdentityCacheBuilder::fleet`](crate::IdentityCacheBuilder::fleet); everything
/// is checked at [`build`](crate::IdentityCacheBuilder::build).
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
/// use tower_amazon_auth::{AmazonAuthLayer, Fleet, IdentityCache};
///
/// let secret = std::env::var("AMAZON_AUTH_CACHE_SECRET").expect("at least 32 bytes");
/// let cache = IdentityCache::builder()
///     .client_id("amzn1.application-oa2-client.0123456789abcdef")
///     .fleet(
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
    pub(crate) url: String,
    pub(crate) secret: Vec<u8>,
    pub(crate) previous: Option<Vec<u8>>,
    pub(crate) prefix: String,
    pub(crate) command_timeout: Duration,
    pub(crate) lock_wait: Option<Duration>,
    pub(crate) backoff: Duration,
}

impl Fleet {
    /// The fleet level on the Redis at `url` (`redis://host:port/db`, `rediss://…` for TLS,
    /// `redis://:password@host` or `redis://user:password@host` with authentication), with
    /// `secret`: at least [`FLEET_MIN_SECRET_LEN`] bytes, the same on every instance, kept like a
    /// password. Every key, MAC and encryption key comes from it.
    pub fn new(url: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        Self {
            url: url.into(),
            secret: secret.as_ref().to_vec(),
            previous: None,
            prefix: defaults::FLEET_KEY_PREFIX.to_owned(),
            command_timeout: defaults::FLEET_COMMAND_TIMEOUT,
            lock_wait: None,
            backoff: defaults::FLEET_BACKOFF,
        }
    }

    /// The secret being rotated out: what was written under it (verdicts, and revocations
    /// above all) stays in force until it expires, and revocations made now are written under
    /// it too, so instances not yet given the new secret see them. Drop it once every instance
    /// runs with the new one and `max_ttl` and an hour (a token's life) have passed. At least
    /// [`FLEET_MIN_SECRET_LEN`] bytes. Default: none.
    pub fn previous_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.previous = Some(secret.as_ref().to_vec());
        self
    }

    /// The prefix of every Redis key and of the pub/sub channel: 1 to 64 printable ASCII
    /// characters without spaces. Services sharing one Redis need not differ in prefix (their
    /// verdict keys differ by their client ids and endpoints), but a distinct prefix per
    /// service makes the keys easy to tell apart. Default: [`defaults::FLEET_KEY_PREFIX`]
    /// (`"taa:"`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The most one Redis command may take; past it the command counts as failed and the
    /// request goes on to Amazon. 1 ms to 5 s. Default: [`defaults::FLEET_COMMAND_TIMEOUT`]
    /// (50 ms).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Fleet single-flight: how long an instance waits for another instance that is verifying
    /// the same token (it holds a short lock in Redis, for this long plus 1 s) before it
    /// verifies the token itself. A first request can so take this long plus the verification
    /// [`deadline`](crate::IdentityCacheBuilder::deadline) at worst (when the instance holding the
    /// lock died or Amazon is slow). At most 5 min. Default: 2 s, or the deadline when shorter;
    /// zero turns fleet single-flight off.
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = Some(wait);
        self
    }

    /// How long Redis is left alone after a run of failed commands (5 in a row): requests go
    /// straight to Amazon, then one command probes Redis again. At most 5 min; below 1 s counts
    /// as 1 s. Default:
    /// [`defaults::FLEET_BACKOFF`] (5 s).
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
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
            .field("previous_secret", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}
