//! The fleet level of [`tower-amazon-auth`](tower_amazon_auth): a second cache level in Redis
//! shared by every instance of a service, and fleet-wide logout. [`Fleet`] holds its settings;
//! give it to
//! [`IdentityCacheBuilder::second_level`](tower_amazon_auth::IdentityCacheBuilder::second_level).
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), tower_amazon_auth::BuildError> {
//! use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
//! use tower_amazon_auth_redis::{Fleet, FleetStats};
//!
//! let secret = std::env::var("AMAZON_AUTH_CACHE_SECRET").expect("at least 32 bytes");
//! let cache = IdentityCache::builder()
//!     .client_id("amzn1.application-oa2-client.0123456789abcdef")
//!     .second_level(Fleet::new("redis://127.0.0.1:6379", secret))
//!     .build()?;
//! let layer = AmazonAuthLayer::builder(cache.clone()).build()?;
//! // Later, for a dashboard:
//! let stats = FleetStats::of(&cache).expect("a cache with the fleet level");
//! println!("answered from Redis: {}", stats.hits);
//! # let _ = layer; Ok(()) }
//! ```
//!
//! moka stays the first level in every instance; a miss there asks Redis before Amazon, and a
//! verdict Amazon gave is written to Redis for the other instances. `revoke` writes a tombstone
//! to Redis and tells every instance over pub/sub; `invalidate` tells them too.
//!
//! # TLS
//!
//! A `rediss://` URL speaks TLS through the `redis` crate's rustls (never OpenSSL), for the
//! level's connection and the subscriber's alike. By default it trusts the system's root
//! certificates; [`Fleet::root_certificates`] trusts a private CA instead, and
//! [`Fleet::client_identity`] presents a client certificate to a Redis run with
//! `tls-auth-clients yes`. The server's certificate must name the URL's host. Both are checked
//! when the cache is built: unusable PEM, or TLS settings with a URL that is not `rediss://`
//! (they would go unused), are refused with a [`FleetError`]. A handshake that fails at run
//! time (an unknown CA, a wrong name, a refused client) is Redis trouble like any other:
//! requests go to Amazon, and the fleet's `errors` count it.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tower_amazon_auth::IdentityCache;
//! use tower_amazon_auth_redis::Fleet;
//!
//! let secret = std::env::var("AMAZON_AUTH_CACHE_SECRET")?;
//! let fleet = Fleet::new("rediss://:password@redis.internal:6380", secret)
//!     .root_certificates(std::fs::read("/etc/redis-tls/ca.pem")?)
//!     .client_identity(
//!         std::fs::read("/etc/redis-tls/client.pem")?,
//!         std::fs::read("/etc/redis-tls/client.key")?,
//!     );
//! let cache = IdentityCache::builder()
//!     .client_id("amzn1.application-oa2-client.0123456789abcdef")
//!     .second_level(fleet)
//!     .build()?;
//! # let _ = cache; Ok(()) }
//! ```
//!
//! # Redis Cluster
//!
//! [`Fleet::cluster`] takes the URLs of a few nodes of a Redis Cluster (seeds) instead of one
//! URL; the `redis` crate's cluster client learns the others, follows `MOVED` and `ASK`, and
//! finds a failover's new primaries by itself. The TLS settings apply to every node.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), tower_amazon_auth::BuildError> {
//! use tower_amazon_auth::IdentityCache;
//! use tower_amazon_auth_redis::Fleet;
//!
//! let secret = std::env::var("AMAZON_AUTH_CACHE_SECRET").expect("at least 32 bytes");
//! let seeds = ["redis://10.0.0.11:6379", "redis://10.0.0.12:6379", "redis://10.0.0.13:6379"];
//! let cache = IdentityCache::builder()
//!     .client_id("amzn1.application-oa2-client.0123456789abcdef")
//!     .second_level(Fleet::cluster(seeds, secret))
//!     .build()?;
//! # let _ = cache; Ok(()) }
//! ```
//!
//! - **One slot per token.** Every key of one token (verdicts, tombstones, lock, generation),
//!   under the current and the previous secret alike, carries the hash tag `{xyz}`: 12 bits of
//!   an unkeyed SHA-256 of the token, so each script touches one slot, during a secret
//!   rotation too. The key prefix holds no brace (checked at build). On one Redis the names
//!   carry no tag. The tag is computed from the token and remembered by its key (for as many
//!   tokens as the local cache holds), for the calls that come without the token: a revocation
//!   by key alone of a token not looked up since is told to every instance but leaves no
//!   tombstone, and is reported as an error.
//! - **Messages.** A classic `PUBLISH` (from the scripts, as on one Redis: a sharded
//!   `SPUBLISH` would be cross-slot there) reaches every node of a cluster, so the subscriber
//!   listens on one node through a plain pub/sub connection to a seed, and moves to the next
//!   seed after each disconnection (flushing the local cache, as on any reconnection). The
//!   client's cluster pub/sub is not used: it resubscribes silently, hiding a gap in the
//!   messages. Liveness pings go on that connection, as on one Redis.
//! - **Failover.** During a failover, commands fail or time out like any Redis trouble:
//!   requests go to Amazon, a `revoke` that cannot be written reports it and is written again
//!   in the background. A tombstone written is held until a replica acknowledges it
//!   (`WAIT 1`, within [`command_timeout`](Fleet::command_timeout); warned about when none
//!   does). What a failover can lose: such a tombstone that reached no replica in time, and the
//!   verdicts, locks and generation bumps of its last moments (replication is asynchronous). A
//!   lost tombstone stays in every instance's local cache (the message went out) but an
//!   instance without it (started since, or whose copy ended) would accept the token again.
//!
//! # Coherence across the fleet
//!
//! The rule the core keeps on every instance (written at its `second_level` module): a verdict
//! computed under an older generation of its token is never stored and never served, and
//! revocations win. This level keeps its side of it:
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
//!   revocations stay) and asks Redis, which holds the tombstones, at the next request. A
//!   subscription that dies without a word (a NAT or firewall dropping the connection without
//!   a reset) is noticed too: the subscriber pings Redis on its own connection every quarter of
//!   [`liveness`](Fleet::liveness) (5 s by default), and after three quarters of it without a
//!   reply or a message it counts the subscription as lost (`liveness_failures`): it flushes
//!   the local cache at once, replaces the command connection (a timeout does not make the
//!   client reconnect, and the same path likely dropped it), and subscribes again, flushing
//!   once more. So a logout published elsewhere reaches a token hot in this instance's local
//!   cache within [`liveness`](Fleet::liveness) (plus a reconnection, normally one round trip,
//!   at most 2 s), as long as this instance can reach Redis: that is the worst-case delay of a
//!   logout. While Redis cannot be reached at all, such a token stays accepted until its local
//!   entry ends ([`max_ttl`](tower_amazon_auth::IdentityCacheBuilder::max_ttl), 5 min by
//!   default), and tokens not cached locally go to Amazon (below). Tokens not cached locally
//!   are refused at once as long as Redis answers reads (the miss reads the tombstone).
//! - **Fresh messages.** Every message carries when it was sent and `(sender, boot, sequence)`
//!   (random per process, random per level, counting up), under its MAC. A *revoke* always
//!   applies: it is idempotent, and dropping one from a host whose clock is behind would lose a
//!   logout. A *forget* sent more than 5 minutes from the receiver's clock (well above the 60 s
//!   of clock skew the core allows), or already seen (each level remembers, per sender's boot,
//!   the sequences of the last 5 minutes), is dropped, counted (`messages_dropped`) and warned
//!   about: a captured forget published again costs nothing. Messages of earlier builds (no
//!   stamp) are not read: deploy the change to every instance at once, or expect logouts
//!   between old and new instances to take the tombstone path (their misses) meanwhile.
//! - **Redis trouble** is a miss, never a verdict: an unreadable, undecryptable or foreign value
//!   is ignored, a slow or absent Redis is skipped after [`command_timeout`](Fleet::command_timeout),
//!   and after repeated failures not asked at all for a while (a breaker); requests then go to
//!   Amazon directly. Only `revoke` and `invalidate` report it, since their fleet-wide effect
//!   did not happen ([`CacheError::SecondLevel`](tower_amazon_auth::CacheError::SecondLevel)); a revocation is then
//!   kept and written as soon as Redis answers again (tried every second while the subscriber
//!   is connected), until the token expires.
//! - **Fleet single-flight.** A miss that finds nothing in Redis takes a short lock there (its
//!   name is a MAC like the verdict's) and verifies; the fill releases it. A miss that finds
//!   the lock taken looks again every 20 ms for up to [`lock_wait`](Fleet::lock_wait), then
//!   verifies itself: a lost or slow lock holder costs a duplicate verification, never an
//!   error.
//! - **Website sign-in's sessions** ([`SessionStore`](tower_amazon_auth::second_level::SessionStore)):
//!   a `SignIn` built on the cache keeps its sessions and logins under way here, sealed and
//!   named by MACs like verdicts; a session's end is a tombstone, the record deleted and a
//!   message, in one script, and a refreshed or extended record is written only where no
//!   tombstone is; a refresh takes a lock so that one serves the fleet. Sessions are named under
//!   the current secret only (a rotation signs every browser out). The README's "Website
//!   sign-in's sessions on the fleet" has the rest.
//!
//! | file | owns |
//! | --- | --- |
//! | `lib.rs` | the fleet level's rules |
//! | `settings` | [`Fleet`]: the settings (the TLS and cluster ones too), checked when the cache is built |
//! | `tls` | TLS to Redis: the root certificates and client identity checked, and the client made with them |
//! | `cluster` | Redis Cluster: the seeds checked, the cluster client, a token's hash tag, `WAIT` after a tombstone |
//! | `error` | [`FleetError`]: the settings refused |
//! | `counters` | what the fleet level counts, live |
//! | `stats` | [`FleetStats`]: a copy of the counters, and their metrics |
//! | `secret` | the keys derived from the fleet secret (HKDF), current and previous |
//! | `naming` | the names of the Redis keys (verdicts, locks, tombstones, generations) and of the channel: MACs, never the token, and a token's hash tag on a cluster |
//! | `aliases` | what is remembered of a token by its key: its key under the previous secret, its hash tag |
//! | `seal` | the AEAD box around every value |
//! | `freshness` | the stamps of messages, and which are fresh: no stale or replayed forget |
//! | `message` | the invalidation messages on the channel, stamped and authenticated |
//! | `scripts` | the Lua scripts that keep a fill from undoing a revocation |
//! | `connection` | the command connection (one Redis or a cluster, one type), replaced when it goes silent |
//! | `pending` | the revocations waiting for Redis, retried by the subscriber |
//! | `level` | `FleetLevel`: reads, fills, locks, revocations, with timeouts and a breaker |
//! | `level_state` | what the subscriber, the session store and the statistics read of its state |
//! | `claim` | a verification's claim: its fill, or the lock given up |
//! | `attached` | [`Fleet`] attached to a cache: the [`SecondLevel`](tower_amazon_auth::second_level::SecondLevel) the core sees |
//! | `liveness` | when a subscription that hears nothing counts as lost |
//! | `subscriber` | the task that applies other instances' messages (on a cluster, through one seed at a time), pings its subscription, and flushes on reconnect |
//! | `session_store` | sign-in's sessions and logins under way in Redis: the core's `SessionStore` |
//! | `session_naming` | their Redis names (one cluster slot per session) |
//! | `session_scripts` | the Lua scripts that keep a session's write from undoing its end |
//! | `session_watchers` | the sign-ins told when a session ends elsewhere |

mod aliases;
mod attached;
mod claim;
mod cluster;
mod connection;
mod counters;
mod error;
mod freshness;
mod level;
mod level_state;
mod liveness;
mod message;
mod naming;
mod pending;
mod scripts;
mod seal;
mod secret;
mod session_naming;
mod session_scripts;
mod session_store;
mod session_watchers;
mod settings;
mod stats;
mod subscriber;
mod tls;

pub use error::FleetError;
pub use settings::{defaults, Fleet, FLEET_MIN_SECRET_LEN};
pub use stats::FleetStats;
