//! A second cache level behind the local one, shared by every instance of a service: the one
//! boundary where [`IdentityCache`](crate::IdentityCache) meets another store (Redis, in the
//! `tower-amazon-auth-redis` crate). A level is given to
//! [`IdentityCacheBuilder::second_level`](crate::IdentityCacheBuilder::second_level) as settings
//! ([`IntoSecondLevel`]), which `build()` attaches to the cache's verification settings once.
//!
//! # The coherence rule, and who keeps it
//!
//! A verdict is the answer Amazon gave at one moment. Every level that keeps one (the per-thread
//! memo, the local store, a verification in flight, and a second level) obeys one rule: **a
//! verdict computed under an older generation of its token is never stored and never served,
//! and a revocation wins over every verdict.** The cache keeps that rule; a level only has to
//! keep its side of this contract:
//!
//! - **Generations stay in the cache.** `invalidate` and `revoke` bump the token's local
//!   generation first, then clear the local levels, then call [`SecondLevel::forget`]. A remote
//!   event ([`RemoteEvents`]) goes through the same bump. A verdict the level returns after
//!   the cache last forgot the token, but verified before that (a copy written back by
//!   someone), is refused by the cache, not by the level.
//! - **The payload is the cache's.** The level stores and returns opaque bytes; the cache
//!   encodes them and, on the way back, checks them as it checks Amazon's answer (the
//!   audience: the confused-deputy check, the token's expiry, the verification's age against
//!   its own `max_ttl` and `negative_ttl`). A level never decides that a token is valid.
//! - **A level keeps its own generation per token**, bumped by every [`forget`](SecondLevel::forget)
//!   anywhere in the fleet, and refuses a [`Claim::fill`] when it moved since the
//!   [`lookup`](SecondLevel::lookup) that made the claim: a verification that was under way
//!   anywhere during an invalidation never writes its older verdict back.
//! - **Revocations win.** [`forget`](SecondLevel::forget) with `revoked_for` leaves a tombstone
//!   that a lookup reports ([`Lookup::Revoked`]) before any verdict, and that a fill never
//!   overwrites; the cache installs it locally too, so it keeps refusing the token if the level
//!   goes away afterwards.
//! - **Missed events mean forgetting everything.** A level that may have missed remote events
//!   (a reconnect) calls [`RemoteEvents::forget_all`] before it reports anything else.
//! - **Trouble is a miss, never a verdict.** A slow, absent or unreadable level answers
//!   [`Lookup::Miss`]; the cache then asks Amazon. Only `forget` reports failure, since its
//!   fleet-wide effect did not happen.
//!
//! The hit path never reaches the level: only a miss of the local levels does, from the one
//! request verifying the token, so the dynamic dispatch costs a hit nothing.
//!
//! # Writing a level
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use futures_util::future::BoxFuture;
//! use tower_amazon_auth::second_level::{
//!     CacheSettings, Claim, IntoSecondLevel, Lookup, RemoteEvents, SecondLevel, SecondLevelError, TokenKey,
//! };
//! use tower_amazon_auth::{AccessToken, IdentityCache};
//!
//! /// A level that never has anything (a real one would ask its store).
//! struct Nothing;
//! struct NoClaim;
//!
//! impl Claim for NoClaim {
//!     fn fill(self: Box<Self>, _payload: Vec<u8>, _life: Duration) -> BoxFuture<'static, ()> {
//!         Box::pin(async {})
//!     }
//! }
//!
//! impl SecondLevel for Nothing {
//!     fn lookup<'a>(&'a self, _key: TokenKey, _token: &'a AccessToken) -> BoxFuture<'a, Lookup> {
//!         Box::pin(async { Lookup::Miss(Box::new(NoClaim)) })
//!     }
//!     fn forget<'a>(
//!         &'a self,
//!         _key: TokenKey,
//!         _token: Option<&'a AccessToken>,
//!         _revoked_for: Option<Duration>,
//!     ) -> BoxFuture<'a, Result<(), SecondLevelError>> {
//!         Box::pin(async { Ok(()) })
//!     }
//!     fn subscribe(&self, _events: RemoteEvents) {}
//!     fn as_any(&self) -> &dyn std::any::Any {
//!         self
//!     }
//! }
//!
//! impl IntoSecondLevel for Nothing {
//!     fn attach(self, _cache: &CacheSettings<'_>) -> Result<Arc<dyn SecondLevel>, SecondLevelError> {
//!         Ok(Arc::new(self))
//!     }
//! }
//!
//! # fn main() -> Result<(), tower_amazon_auth::BuildError> {
//! let cache = IdentityCache::builder()
//!     .client_id("amzn1.application-oa2-client.0123456789abcdef")
//!     .second_level(Nothing)
//!     .build()?;
//! # let _ = cache; Ok(()) }
//! ```
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | [`SecondLevel`], [`IntoSecondLevel`], [`Lookup`], [`Claim`]: the contract |
//! | `settings` | [`CacheSettings`]: what a level sees of the cache when it is attached |
//! | `events` | [`RemoteEvents`]: how a level tells the cache what other instances did |
//! | `session_store` | [`SessionStore`]: website sign-in's sessions, shared by the fleet, and [`SessionEvents`] |
//!
//! The building blocks a level needs and the cache has too are here rather than copied: the
//! token's key ([`TokenKey`], [`KeyedDigest`]), a [`Breaker`] in front of an unreliable store,
//! and [`LogLimit`] for warnings that must not flood the logs.

mod events;
mod session_store;
mod settings;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

pub(crate) use self::events::LocalLevels;
pub use self::events::RemoteEvents;
pub(crate) use self::session_store::LocalSessions;
pub use self::session_store::{Saved, SessionEvents, SessionStore, StoreLock};
pub use self::settings::CacheSettings;
use crate::access_token::AccessToken;
pub use crate::breaker::{Admission, Breaker, Outcome};
pub use crate::error::SecondLevelError;
pub use crate::log_limit::LogLimit;
pub use crate::token_key::{KeyedDigest, TokenKey};

/// Settings of a second level, as [`IdentityCacheBuilder::second_level`](crate::IdentityCacheBuilder::second_level)
/// takes them: they become a running [`SecondLevel`] once `build()` shows them the cache's
/// verification settings (for a fingerprint of the configuration, a default wait, …).
pub trait IntoSecondLevel: Send + 'static {
    /// Sets the level up for a cache with `cache`'s settings. Called once, by `build()`; an
    /// error is returned from it as [`BuildError::SecondLevel`](crate::BuildError::SecondLevel).
    /// Should open no connection: a store that is down at start-up only means requests go to
    /// Amazon until it answers.
    ///
    /// # Errors
    ///
    /// The level's own settings are invalid (or it cannot start here).
    fn attach(self, cache: &CacheSettings<'_>) -> Result<Arc<dyn SecondLevel>, SecondLevelError>;
}

/// A second cache level, as the cache uses it. See the [module documentation](self) for the
/// rule each method must keep.
pub trait SecondLevel: Send + Sync + 'static {
    /// The key the cache must digest tokens with, so that every instance names a token the same
    /// way (the level's names and messages are derived from the [`TokenKey`]). `None`: a random
    /// key of the cache's own. Asked once, when the cache is built. Default: `None`.
    fn digest_key(&self) -> Option<[u8; 16]> {
        None
    }

    /// How much longer than Amazon's deadline a [`lookup`](Self::lookup) and a
    /// [`Claim::fill`] may make the request verifying a token take (waiting for another
    /// instance's verification, the level's own commands): the requests waiting for that
    /// request wait this much longer. Default: zero.
    fn extra_wait(&self) -> Duration {
        Duration::ZERO
    }

    /// A miss of the local levels: what the level holds for the token `key` (the cache's key
    /// of `token`; `token` itself only to name keys the level derives otherwise, e.g. under a
    /// previous secret, never to store). Must not fail: trouble is a [`Lookup::Miss`].
    fn lookup<'a>(&'a self, key: TokenKey, token: &'a AccessToken) -> BoxFuture<'a, Lookup>;

    /// Forgets the token everywhere the level reaches (every instance): its verdicts, with a
    /// bump of its generation in the level; with `revoked_for`, also a tombstone for that long
    /// (never shortening one already there). `token` when the caller has it (it names keys
    /// under a previous secret); `None` when only the key is known (a handler's
    /// [`AmazonUser::revoke`](crate::AmazonUser::revoke)).
    ///
    /// # Errors
    ///
    /// The level could not be reached: the change is local only (the cache reports
    /// [`CacheError::SecondLevel`](crate::CacheError::SecondLevel)). A level should keep a
    /// revocation it could not write and retry it in the background.
    fn forget<'a>(
        &'a self,
        key: TokenKey,
        token: Option<&'a AccessToken>,
        revoked_for: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), SecondLevelError>>;

    /// Starts delivering what other instances do to `events` (called once, right after the
    /// cache is built). A level without other instances ignores it.
    fn subscribe(&self, events: RemoteEvents);

    /// Where website sign-in keeps its sessions and logins under way, for every instance (see
    /// [`SessionStore`]); a [`SignIn`](crate::sign_in::SignIn) built on the cache uses it.
    /// `None`: each instance keeps its own. Asked once, when the sign-in is built. Default:
    /// `None`.
    fn session_store(&self) -> Option<std::sync::Arc<dyn SessionStore>> {
        None
    }

    /// (feature `metrics`) Publishes the level's own counters through the `metrics` facade;
    /// [`IdentityCache::export_metrics`](crate::IdentityCache::export_metrics) calls it.
    /// Default: nothing.
    fn export_metrics(&self) {}

    /// The level itself, so its crate can reach its own type through
    /// [`IdentityCache::second_level`](crate::IdentityCache::second_level) (its statistics,
    /// say). Implement it as `self`.
    fn as_any(&self) -> &dyn Any;
}

/// What a [`SecondLevel::lookup`] found.
#[must_use]
pub enum Lookup {
    /// The token is revoked, for this much longer: the cache refuses it (`401 invalid_token`)
    /// and installs the revocation locally.
    Revoked(Duration),
    /// A verdict an instance wrote, good for `life` longer by the level's own expiry. The cache
    /// decodes and checks the payload as it checks Amazon's answers; if it refuses it (too old
    /// for its settings, verified before it last forgot the token, another audience), it asks
    /// Amazon and hands the new verdict to `claim`.
    Found {
        /// What the cache wrote with [`Claim::fill`].
        payload: Vec<u8>,
        /// How much longer the level keeps it.
        life: Duration,
        /// For a verdict that replaces it; dropped, it releases nothing it does not hold.
        claim: Box<dyn Claim>,
    },
    /// Nothing usable (or the level could not answer): the cache asks Amazon, then fills the
    /// claim with a definite verdict, or drops it.
    Miss(Box<dyn Claim>),
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The payload is personal data: never shown.
        match self {
            Self::Revoked(left) => f.debug_tuple("Revoked").field(left).finish(),
            Self::Found { life, .. } => f
                .debug_struct("Found")
                .field("life", life)
                .finish_non_exhaustive(),
            Self::Miss(_) => f.write_str("Miss"),
        }
    }
}

/// The right to write the verdict of one verification back to the level, given by a
/// [`SecondLevel::lookup`] (with the level's generation of the token it saw, and perhaps a lock
/// that keeps other instances from verifying the same token). Dropped without a fill (the
/// verification failed, or its request went away), it releases what it holds at once, so other
/// instances need not wait for a lock to expire.
pub trait Claim: Send + 'static {
    /// Writes `payload` (a definite verdict, encoded by the cache) for `life`, unless the
    /// token's generation in the level moved since the lookup or it is revoked there; releases
    /// the claim. The cache runs the future in the background; its failures are the level's to
    /// count, never the request's.
    fn fill(self: Box<Self>, payload: Vec<u8>, life: Duration) -> BoxFuture<'static, ()>;
}
