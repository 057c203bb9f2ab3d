//! [`FleetSessions`]: website sign-in's sessions and logins under way in Redis, for every
//! instance: the core's [`SessionStore`], on the fleet level's connection, breaker and
//! timeouts. Each record is sealed (XChaCha20-Poly1305 under the fleet secret's key, its Redis
//! name as associated data, so a record copied under another name does not open) and named by
//! a MAC ([`SessionNaming`](crate::session_naming)); a session's end is a tombstone, the record
//! deleted and a message ([`Event::EndSession`]) in one script. A refresh lock is
//! `SET NX PX` with a random token of its holder, released only by it; a login under way is
//! written `SET NX` and taken with `GETDEL`.
//!
//! Redis out of reach (or the breaker open) is an error here, never a verdict: the core answers
//! `503` where it needed the store, and keeps serving the copies it holds.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use redis::Script;
use tower_amazon_auth::second_level::{
    Saved, SecondLevelError, SessionEvents, SessionStore, StoreLock, TokenKey,
};
use zeroize::Zeroizing;

use crate::cluster;
use crate::connection::Connection;
use crate::level::FleetLevel;
use crate::message::{Event, Message};
use crate::{scripts, session_scripts};

/// The fleet level's store of sign-in's sessions.
pub(crate) struct FleetSessions {
    level: Arc<FleetLevel>,
    load: Script,
    save: Script,
    touch: Script,
    end: Script,
}

/// Redis could not be reached (or answered something unreadable).
#[derive(Debug, thiserror::Error)]
#[error("Redis (the fleet session store) could not be reached")]
struct Unreachable;

fn unreachable() -> SecondLevelError {
    SecondLevelError::new(Unreachable)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl FleetSessions {
    pub(crate) fn new(level: Arc<FleetLevel>) -> Self {
        Self {
            level,
            load: session_scripts::load(),
            save: session_scripts::save(),
            touch: session_scripts::touch(),
            end: session_scripts::end(),
        }
    }
}

impl SessionStore for FleetSessions {
    fn digest_key(&self) -> [u8; 16] {
        self.level.secrets[0].keys.session_digest
    }

    fn load(&self, key: TokenKey) -> BoxFuture<'_, Result<Option<Vec<u8>>, SecondLevelError>> {
        Box::pin(async move {
            let secret = &self.level.secrets[0];
            let names = secret.sessions.session(key);
            let mut invocation = self.load.prepare_invoke();
            invocation.key(&names.record).key(&names.tombstone);
            let mut manager = self.level.manager();
            let value = self
                .level
                .run(
                    "session load",
                    invocation.invoke_async::<Option<Vec<u8>>>(&mut manager),
                )
                .await
                .ok_or_else(unreachable)?;
            // What does not open (another secret, altered, copied under another name) is no
            // record.
            Ok(value.and_then(|value| secret.seal.open(&names.record, &value)))
        })
    }

    fn save(
        &self,
        key: TokenKey,
        record: Vec<u8>,
        life: Duration,
    ) -> BoxFuture<'_, Result<Saved, SecondLevelError>> {
        // The record holds the session's tokens: wiped once sealed.
        let record = Zeroizing::new(record);
        Box::pin(async move {
            let secret = &self.level.secrets[0];
            let names = secret.sessions.session(key);
            let value = secret.seal.seal(&names.record, &record).ok_or_else(unreachable)?;
            let mut invocation = self.save.prepare_invoke();
            invocation
                .key(&names.record)
                .key(&names.tombstone)
                .arg(value)
                .arg(millis(life));
            let mut manager = self.level.manager();
            let written = self
                .level
                .run("session save", invocation.invoke_async::<i64>(&mut manager))
                .await
                .ok_or_else(unreachable)?;
            Ok(if written == 1 {
                Saved::Written
            } else {
                Saved::Ended
            })
        })
    }

    fn touch(&self, key: TokenKey, life: Duration) -> BoxFuture<'_, Result<Saved, SecondLevelError>> {
        Box::pin(async move {
            let names = self.level.secrets[0].sessions.session(key);
            let mut invocation = self.touch.prepare_invoke();
            invocation
                .key(&names.record)
                .key(&names.tombstone)
                .arg(millis(life));
            let mut manager = self.level.manager();
            let extended = self
                .level
                .run("session touch", invocation.invoke_async::<i64>(&mut manager))
                .await
                .ok_or_else(unreachable)?;
            Ok(if extended == 1 {
                Saved::Written
            } else {
                Saved::Ended
            })
        })
    }

    fn end(&self, key: TokenKey, tombstone_for: Duration) -> BoxFuture<'_, Result<(), SecondLevelError>> {
        Box::pin(async move {
            let secret = &self.level.secrets[0];
            let names = secret.sessions.session(key);
            let message = Message {
                key,
                event: Event::EndSession,
                stamp: self.level.freshness.stamp(SystemTime::now()),
                first: secret.keys.id,
            };
            let mut invocation = self.end.prepare_invoke();
            invocation
                .key(&names.record)
                .key(&names.tombstone)
                .arg(millis(tombstone_for))
                .arg(&self.level.channel)
                .arg(message.encode(&secret.keys));
            let mut manager = self.level.manager();
            self.level
                .run("session end", invocation.invoke_async::<i64>(&mut manager))
                .await
                .ok_or_else(unreachable)?;
            // On a cluster, held until a replica has the tombstone and the delete, so that a
            // failover right after loses them less often.
            if let Connection::Cluster(connection) = &mut manager {
                let timeout = self.level.command_timeout();
                if !cluster::replicated(connection, cluster::slot(&names.tag), timeout).await {
                    tracing::warn!(
                        "fleet session store: a session's end reached no replica within the command \
                         timeout; a failover of its primary now would lose it"
                    );
                }
            }
            Ok(())
        })
    }

    fn lock(
        &self,
        key: TokenKey,
        hold: Duration,
    ) -> BoxFuture<'_, Result<Option<Box<dyn StoreLock>>, SecondLevelError>> {
        Box::pin(async move {
            let name = self.level.secrets[0].sessions.session(key).lock;
            let mut token = [0u8; 16];
            getrandom::fill(&mut token).map_err(|_| unreachable())?;
            let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
            let mut command = redis::cmd("SET");
            command
                .arg(&name)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                // Past the refresh's own bound by what the store's commands may take (the read
                // once it is taken, the write-back), so it cannot lapse before the write-back.
                .arg(millis(hold + self.level.command_timeout() * 3));
            let mut manager = self.level.manager();
            let taken = self
                .level
                .run(
                    "session lock",
                    command.query_async::<Option<String>>(&mut manager),
                )
                .await;
            let lock = FleetLock {
                level: Arc::clone(&self.level),
                name,
                token,
            };
            match taken {
                Some(taken) => Ok(taken.map(|_| Box::new(lock) as Box<dyn StoreLock>)),
                None => {
                    // The `SET` may still run once Redis answers (a stalled server runs what
                    // it was sent): a release sent after it on the same connection, which
                    // runs after it, keeps it from holding the session's refresh for nobody.
                    let wait = hold + self.level.command_timeout() * 3;
                    tokio::spawn(lock.release_within(wait, manager));
                    Err(unreachable())
                }
            }
        })
    }

    fn put_login(
        &self,
        key: TokenKey,
        record: Vec<u8>,
        life: Duration,
    ) -> BoxFuture<'_, Result<(), SecondLevelError>> {
        // The record holds the login's PKCE verifier: wiped once sealed.
        let record = Zeroizing::new(record);
        Box::pin(async move {
            let secret = &self.level.secrets[0];
            let name = secret.sessions.login(key);
            let value = secret.seal.seal(&name, &record).ok_or_else(unreachable)?;
            let mut command = redis::cmd("SET");
            command
                .arg(&name)
                .arg(value)
                .arg("NX")
                .arg("PX")
                .arg(millis(life));
            let mut manager = self.level.manager();
            // Taken already (a `state` is 256 random bits: not expected): the login then fails
            // at its callback, as any unknown state does.
            self.level
                .run("login put", command.query_async::<Option<String>>(&mut manager))
                .await
                .map(drop)
                .ok_or_else(unreachable)
        })
    }

    fn take_login(&self, key: TokenKey) -> BoxFuture<'_, Result<Option<Vec<u8>>, SecondLevelError>> {
        Box::pin(async move {
            let secret = &self.level.secrets[0];
            let name = secret.sessions.login(key);
            let mut command = redis::cmd("GETDEL");
            command.arg(&name);
            let mut manager = self.level.manager();
            let value = self
                .level
                .run("login take", command.query_async::<Option<Vec<u8>>>(&mut manager))
                .await
                .ok_or_else(unreachable)?;
            Ok(value.and_then(|value| secret.seal.open(&name, &value)))
        })
    }

    fn watch(&self, events: SessionEvents) {
        self.level.session_watchers.add(events);
    }
}

/// A session's refresh lock in Redis, released only by its holder (compare and delete).
struct FleetLock {
    level: Arc<FleetLevel>,
    name: Vec<u8>,
    token: String,
}

impl FleetLock {
    /// Releases it on `manager` (the connection that took it), waiting up to `wait` for Redis
    /// to answer, whatever the breaker says.
    async fn release_within(self, wait: Duration, mut manager: Connection) {
        let release = scripts::release();
        let mut invocation = release.prepare_invoke();
        invocation.key(&self.name).arg(&self.token);
        let _ = tokio::time::timeout(wait, invocation.invoke_async::<i64>(&mut manager)).await;
    }
}

impl StoreLock for FleetLock {
    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let release = scripts::release();
            let mut invocation = release.prepare_invoke();
            invocation.key(&self.name).arg(&self.token);
            let mut manager = self.level.manager();
            // Not released (Redis away): it ends with its life.
            let _ = self
                .level
                .run("session unlock", invocation.invoke_async::<i64>(&mut manager))
                .await;
        })
    }
}
