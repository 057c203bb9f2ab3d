//! [`FleetLevel`]: the second cache level in Redis. What a miss reads (tombstones, then the
//! verdict, then the fleet lock), what a verification writes back, and what `revoke` and
//! `invalidate` write and publish; every command within the command timeout and behind a
//! [`Breaker`], so a slow or absent Redis only ever means "ask Amazon".

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManagerConfig;
use redis::{Script, Value};
use tokio::sync::watch;

use tower_amazon_auth::second_level::{Breaker, CacheSettings, KeyedDigest, LogLimit, Outcome, TokenKey};

use crate::aliases::{Aliases, UnknownTag};
use crate::cluster::{self, SlotTag};
use crate::connection::{Commands, Connection, Target};
use crate::counters::{Count, Counters};
use crate::error::FleetError;
use crate::freshness::Freshness;
use crate::message::{Event, Message};
use crate::naming::{channel, fingerprint, Naming};
use crate::pending::Pending;
use crate::scripts;
use crate::seal::{sealed_for, Seal};
use crate::secret::Keys;
use crate::session_naming::SessionNaming;
use crate::session_watchers::SessionWatchers;
use crate::settings::Fleet;

/// How often a request waiting for another instance's verification looks again.
const POLL: Duration = Duration::from_millis(20);
/// How much longer the fleet lock lives than the wait for it (so it outlives a verification
/// that takes the whole deadline).
const LOCK_MARGIN: Duration = Duration::from_secs(1);
/// The longest a request verifying a token waits for another instance's verification by default (or the
/// verification deadline, when shorter): an Amazon round trip normally takes well under it.
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(2);
/// How long a bumped fleet generation is kept. Every value is sealed for the generation it was
/// written under, so a copy written back after an `invalidate` or `revoke` does not open; the
/// generation must outlive every value that could be written back: a reader refuses one
/// verified more than its `max_ttl` ago (at most 24 h), and an hour covers clocks that differ.
/// Also longer than any verification under way at the bump can take to write back.
const GENERATION_LIFE: Duration = Duration::from_secs(25 * 3600);

/// One secret's keys, names and seal.
pub(crate) struct Secret {
    pub(crate) keys: Keys,
    naming: Naming,
    /// Sign-in's names (used under the current secret only).
    pub(crate) sessions: SessionNaming,
    pub(crate) seal: Seal,
    /// The local digest under this secret (for the previous one: to name a token as the
    /// instances still on it do).
    digest: KeyedDigest,
}

/// What a miss found in Redis.
pub(crate) enum Lookup {
    /// The token is revoked, for this much longer.
    Revoked(Duration),
    /// A verdict (the core's payload, opened), good for this much longer by its Redis key,
    /// and the generation the read saw (for a fill that replaces it).
    Found(Vec<u8>, Duration, Seen),
    /// Nothing usable (this instance may hold the fleet lock): verify, then
    /// [`FleetLevel::fill`] with what was seen (or [`FleetLevel::release`]).
    Miss(Seen),
}

/// The token's fleet generation a read saw, which a fill must present unchanged; `None` when
/// Redis could not be read (nothing is then written back).
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen(Option<Vec<u8>>);

/// The fleet level of one cache.
pub(crate) struct FleetLevel {
    /// The command connection, replaced when it goes silent.
    pub(crate) commands: Commands,
    /// For the subscriber's own connection: the one Redis, or each seed of a cluster (the
    /// subscriber listens on one of them at a time).
    pub(crate) clients: Vec<redis::Client>,
    /// The current secret first, then the previous one.
    pub(crate) secrets: Vec<Secret>,
    pub(crate) channel: String,
    pub(crate) timeout: Duration,
    lock_wait: Duration,
    /// See [`Fleet::liveness`].
    pub(crate) liveness: Duration,
    /// Our messages' stamps, and the others' seen.
    pub(crate) freshness: Freshness,
    /// Ours in the fleet lock (random per level).
    lock_token: String,
    pub(crate) breaker: Breaker,
    warn: LogLimit,
    /// With a previous secret: the token's key under it, by its current key, and back (filled
    /// on misses, where the token is known), so a revocation made by key reaches instances
    /// still on the previous secret, and their messages reach this one. On a cluster: the
    /// token's hash tag.
    aliases: Aliases,
    read: Script,
    fill: Script,
    release: Script,
    forget: Script,
    /// Whether the subscriber is connected now.
    pub(crate) subscribed: AtomicBool,
    pub(crate) counters: Counters,
    /// Revocations that could not be written to Redis, retried by the subscriber.
    pending: Pending,
    /// Dropped with the level: tells the subscriber to stop.
    pub(crate) stop: watch::Sender<()>,
    /// The sign-ins whose sessions are kept here (see `session_store`).
    pub(crate) session_watchers: SessionWatchers,
}

impl FleetLevel {
    /// Sets the level up for a cache with `cache`'s settings, from settings already checked (no
    /// connection is opened: the first command, or the subscriber, connects). Refuses only a
    /// URL the client cannot parse, and a call outside a Tokio runtime.
    pub(crate) fn new(fleet: Fleet, cache: &CacheSettings<'_>) -> Result<Self, FleetError> {
        let lock_wait = fleet.lock_wait.unwrap_or(cache.deadline.min(DEFAULT_LOCK_WAIT));
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(FleetError::OutsideRuntime);
        }
        // With the TLS settings (the subscriber's connection comes from these clients too). The
        // parse error may quote the URL, password included: it is never repeated.
        let clients = fleet
            .urls
            .iter()
            .map(|url| fleet.tls.client(url))
            .collect::<Result<Vec<_>, _>>()?;
        let target = if fleet.cluster {
            let seeds: Vec<&str> = fleet.urls.iter().map(|url| url.as_str()).collect();
            Target::Cluster(cluster::client(&seeds, &fleet.tls, fleet.command_timeout)?)
        } else {
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(fleet.command_timeout))
                .set_connection_timeout(Some(fleet.command_timeout.max(Duration::from_secs(1))))
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(20))
                .set_max_delay(Duration::from_secs(1));
            Target::Single(clients[0].clone(), config)
        };
        let commands = Commands::new(target).map_err(|_| FleetError::Url)?;
        let fingerprint = fingerprint(cache);
        let secret = |bytes: &[u8]| {
            let keys = Keys::derive(bytes);
            Secret {
                naming: Naming::new(&fleet.prefix, &keys, fingerprint),
                sessions: SessionNaming::new(&fleet.prefix, &keys),
                seal: Seal::new(&keys.seal),
                digest: KeyedDigest::with_key(keys.digest),
                keys,
            }
        };
        let mut secrets = vec![secret(&fleet.secret)];
        secrets.extend(fleet.previous.as_deref().map(|previous| secret(previous)));
        let aliases = Aliases::new(cache.capacity, secrets.len() > 1, fleet.cluster);
        let mut instance = [0; 8];
        getrandom::fill(&mut instance).map_err(|e| FleetError::Randomness(e.to_string()))?;
        Ok(Self {
            commands,
            clients,
            secrets,
            channel: channel(&fleet.prefix),
            timeout: fleet.command_timeout,
            lock_wait,
            liveness: fleet.liveness,
            lock_token: instance.iter().map(|b| format!("{b:02x}")).collect(),
            freshness: Freshness::new().map_err(|e| FleetError::Randomness(e.to_string()))?,
            breaker: Breaker::new(fleet.backoff, fleet.command_timeout),
            warn: LogLimit::default(),
            aliases,
            read: scripts::read(),
            fill: scripts::fill(),
            release: scripts::release(),
            forget: scripts::forget(),
            subscribed: AtomicBool::new(false),
            counters: Counters::default(),
            pending: Pending::default(),
            stop: watch::channel(()).0,
            session_watchers: SessionWatchers::default(),
        })
    }

    /// The key of the local digest every instance with this secret uses.
    pub(crate) fn digest_key(&self) -> [u8; 16] {
        self.secrets[0].keys.digest
    }

    /// The most a request verifying a token spends on the fleet level: the wait for another
    /// instance's verification, and its read before Amazon and its write after, each bounded
    /// by the command timeout.
    pub(crate) fn extra_wait(&self) -> Duration {
        self.lock_wait + self.timeout * 2
    }

    /// The current command connection, for the subscriber's one-off commands.
    pub(crate) fn manager(&self) -> Connection {
        self.commands.get()
    }

    /// The token's key under each secret known for it: the current one (`key`), and under the
    /// previous secret, computed from `token` when given (and remembered), or remembered.
    fn keys(&self, key: TokenKey, token: Option<&str>) -> Vec<(&Secret, TokenKey)> {
        let mut keys = vec![(&self.secrets[0], key)];
        if let Some(previous) = self.secrets.get(1) {
            let old = self.aliases.previous(key, token, &previous.digest);
            keys.extend(old.map(|old| (previous, old)));
        }
        keys
    }

    /// The name of the fleet lock of a token known by `keys`: under the oldest secret known
    /// for it, so that during a rotation the instances still on the previous secret and those
    /// already given the new one share it.
    fn lock_name(keys: &[(&Secret, TokenKey)], tag: Option<SlotTag>) -> Option<Vec<u8>> {
        keys.last().map(|(secret, key)| secret.naming.lock(*key, tag))
    }

    /// The current key of a token named `old` under the previous secret, if known.
    pub(crate) fn current_of(&self, old: TokenKey) -> Option<TokenKey> {
        self.aliases.current_of(old)
    }

    /// Runs one command within the timeout, behind the breaker. `None` when it was not run or
    /// failed (counted, and warned about at most every few seconds).
    pub(crate) async fn run<T>(
        &self,
        what: &'static str,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        // Not counted as an error: while the breaker is open, `fleet_breaker_open` says so.
        let Ok(admission) = self.breaker.admit() else {
            return None;
        };
        let started = Instant::now();
        let answered = tokio::time::timeout(self.timeout, command).await;
        #[cfg(feature = "metrics")]
        metrics::histogram!(
            "tower_amazon_auth_redis_seconds",
            "command" => what,
            "result" => match &answered {
                Ok(Ok(_)) => "ok",
                Ok(Err(_)) => "error",
                Err(_) => "timeout",
            }
        )
        .record(started.elapsed().as_secs_f64());
        let failure = match answered {
            Ok(Ok(value)) => {
                self.commands.answered();
                admission.record(Outcome::Answered);
                return Some(value);
            }
            Ok(Err(error)) => format!("{:?}", error.kind()),
            Err(_) if self.commands.timed_out() => "timed out; connection replaced".to_owned(),
            Err(_) => "timed out".to_owned(),
        };
        admission.record(Outcome::Failed);
        self.counters.incr(Count::Errors);
        if let Some(suppressed) = self.warn.admit() {
            tracing::warn!(
                command = what,
                failure,
                elapsed_us = started.elapsed().as_micros() as u64,
                suppressed,
                "Redis (fleet cache level) failed: going on without it"
            );
        }
        None
    }

    /// A miss's read: the tombstones, then the verdict, then the fleet lock. While another
    /// instance holds the lock, looks again every few milliseconds for up to `lock_wait`.
    pub(crate) async fn lookup(&self, key: TokenKey, token: &str) -> Lookup {
        let keys = self.keys(key, Some(token));
        // Always known here: computed from the token.
        let tag = self.aliases.tag(key, Some(token)).unwrap_or_default();
        let lock_ms = if self.lock_wait.is_zero() {
            0
        } else {
            (self.lock_wait + LOCK_MARGIN).as_millis() as u64
        };
        let give_up = Instant::now() + self.lock_wait;
        let generation = self.secrets[0].naming.generation(key, tag);
        let mut waited = false;
        loop {
            let mut invocation = self.read.prepare_invoke();
            for (secret, key) in &keys {
                invocation.key(secret.naming.tombstone(*key, tag));
            }
            for (secret, key) in &keys {
                invocation.key(secret.naming.verdict(*key, tag));
            }
            invocation
                .key(Self::lock_name(&keys, tag).unwrap_or_default())
                .key(&generation)
                .arg(keys.len())
                .arg(keys.len())
                .arg(&self.lock_token)
                .arg(lock_ms);
            let mut manager = self.manager();
            let Some(answer) = self
                .run("read", async {
                    invocation.invoke_async::<Value>(&mut manager).await
                })
                .await
            else {
                return Lookup::Miss(Seen(None));
            };
            match self.answer(answer, &keys, tag) {
                Some(Answer::Busy(_)) if Instant::now() + POLL < give_up => {
                    if !waited {
                        waited = true;
                        self.counters.incr(Count::LockWaits);
                    }
                    tokio::time::sleep(POLL).await;
                }
                Some(Answer::Busy(seen)) => {
                    self.counters.incr(Count::Misses);
                    return Lookup::Miss(seen);
                }
                None => {
                    self.counters.incr(Count::Misses);
                    return Lookup::Miss(Seen(None));
                }
                Some(Answer::Done(lookup)) => {
                    self.counters.incr(match lookup {
                        Lookup::Found(..) => Count::Hits,
                        Lookup::Revoked(_) | Lookup::Miss(_) => Count::Misses,
                    });
                    return lookup;
                }
            }
        }
    }

    /// What the read script answered.
    fn answer(&self, answer: Value, keys: &[(&Secret, TokenKey)], tag: Option<SlotTag>) -> Option<Answer> {
        let Value::Array(items) = answer else {
            return None;
        };
        let int = |value: Option<&Value>| match value {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        };
        let millis = |n: i64| Duration::from_millis(n.max(0).unsigned_abs());
        let seen = match items.get(1) {
            Some(Value::BulkString(generation)) => Seen(Some(generation.clone())),
            _ => return None,
        };
        Some(match int(items.first())? {
            // A tombstone without expiry (written by hand): refuse for the longest a token
            // lives.
            1 => Answer::Done(Lookup::Revoked(match int(items.get(2))? {
                -1 => Duration::from_secs(3600),
                n => millis(n),
            })),
            2 => {
                let life = millis(int(items.get(2))?);
                let Some(Value::BulkString(value)) = items.get(3) else {
                    return None;
                };
                let index = usize::try_from(int(items.get(4))?).ok()?.checked_sub(1)?;
                let (secret, key) = keys.get(index)?;
                let name = secret.naming.verdict(*key, tag);
                let Seen(Some(generation)) = &seen else {
                    return None;
                };
                // Anything that does not open is a miss, never an error: a value sealed under
                // another generation too (written back after an invalidation). What opens, the
                // core decodes and checks.
                match secret.seal.open(&sealed_for(&name, generation), value) {
                    Some(payload) => Answer::Done(Lookup::Found(payload, life, seen)),
                    None => Answer::Done(Lookup::Miss(seen)),
                }
            }
            4 => Answer::Busy(seen),
            _ => Answer::Done(Lookup::Miss(seen)),
        })
    }

    /// Writes a verdict for `life`, unless the token is revoked in Redis or its fleet
    /// generation moved since `seen` (an `invalidate` or `revoke` anywhere since the read that
    /// preceded this verification); releases the fleet lock. Failures are counted, never
    /// reported: the verdict stands locally.
    pub(crate) async fn fill(&self, key: TokenKey, payload: Vec<u8>, life: Duration, seen: Seen) {
        let Seen(Some(seen)) = seen else {
            return self.release(key).await;
        };
        // Remembered by the read that preceded; if forgotten since, the lock expires alone.
        let Ok(tag) = self.aliases.tag(key, None) else {
            return;
        };
        let secret = &self.secrets[0];
        let name = secret.naming.verdict(key, tag);
        let life_ms = life.as_millis() as u64;
        let Some(value) = secret.seal.seal(&sealed_for(&name, &seen), &payload) else {
            return self.release(key).await;
        };
        if life_ms == 0 {
            return self.release(key).await;
        }
        let keys = self.keys(key, None);
        let mut invocation = self.fill.prepare_invoke();
        for (secret, key) in &keys {
            invocation.key(secret.naming.tombstone(*key, tag));
        }
        invocation
            .key(name)
            .key(Self::lock_name(&keys, tag).unwrap_or_default())
            .key(secret.naming.generation(key, tag))
            .arg(keys.len())
            .arg(value)
            .arg(life_ms)
            .arg(&self.lock_token)
            .arg(seen);
        let mut manager = self.manager();
        self.run("fill", async {
            invocation.invoke_async::<Value>(&mut manager).await
        })
        .await;
    }

    /// Releases the fleet lock of `key`'s verification, if this instance holds it.
    pub(crate) async fn release(&self, key: TokenKey) {
        let Ok(tag) = self.aliases.tag(key, None) else {
            return;
        };
        let keys = self.keys(key, None);
        let mut invocation = self.release.prepare_invoke();
        invocation
            .key(Self::lock_name(&keys, tag).unwrap_or_default())
            .arg(&self.lock_token);
        let mut manager = self.manager();
        self.run("release", async {
            invocation.invoke_async::<Value>(&mut manager).await
        })
        .await;
    }

    /// `revoke` (with `revoked_for`) or `invalidate` (without), fleet-wide: writes the
    /// tombstones, deletes the verdicts and publishes, under every secret the token's key is
    /// known for. `Err` when Redis could not be reached: the change is then local only for
    /// now; a revocation is kept and retried in the background (see
    /// [`retry_pending`](Self::retry_pending)) until it is written or the token expires.
    pub(crate) async fn forget(
        &self,
        key: TokenKey,
        token: Option<&str>,
        revoked_for: Option<Duration>,
    ) -> Result<(), ()> {
        let tag = self.aliases.tag(key, token);
        let written = self.write_forget(key, token, tag, revoked_for).await;
        if let (Err(()), Some(life), Ok(tag)) = (written, revoked_for, tag) {
            self.pending.push((key, tag, Instant::now() + life));
        }
        written
    }

    /// Writes the revocations that could not be written before, while Redis answers.
    pub(crate) async fn retry_pending(&self) {
        let waiting = self.pending.take();
        let mut left = Vec::new();
        let mut reachable = true;
        for (key, tag, until) in waiting {
            let now = Instant::now();
            if until <= now {
                continue;
            }
            if reachable
                && self
                    .write_forget(key, None, Ok(tag), Some(until - now))
                    .await
                    .is_ok()
            {
                tracing::debug!("fleet cache level: a revocation written after Redis came back");
                continue;
            }
            reachable = false;
            left.push((key, tag, until));
        }
        self.pending.put_back(left);
    }

    /// Whether revocations wait for Redis.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes and publishes a `revoke` or `invalidate`. On a cluster, a token whose tag is not
    /// known (`AmazonUser::revoke` of a token not looked up in Redis since its tag was
    /// forgotten) cannot be named: the messages alone are published, and `Err` says that
    /// Redis holds no tombstone. A revocation written on a cluster is held until a replica has
    /// it (`WAIT`, within the command timeout), so that a failover right after loses it less
    /// often.
    async fn write_forget(
        &self,
        key: TokenKey,
        token: Option<&str>,
        tag: Result<Option<SlotTag>, UnknownTag>,
        revoked_for: Option<Duration>,
    ) -> Result<(), ()> {
        let mut keys = self.keys(key, token);
        let messages: Vec<_> = keys.iter().map(|(secret, key)| (*secret, *key)).collect();
        let tag = match tag {
            Ok(tag) => tag,
            Err(UnknownTag) => {
                keys.clear();
                None
            }
        };
        let life_ms = revoked_for.map_or(0, |life| (life.as_millis() as u64).max(1));
        let event = match revoked_for {
            Some(_) => Event::Revoke(life_ms),
            None => Event::Forget,
        };
        let mut invocation = self.forget.prepare_invoke();
        if revoked_for.is_some() {
            for (secret, key) in &keys {
                invocation.key(secret.naming.tombstone(*key, tag));
            }
        }
        for (secret, key) in &keys {
            invocation.key(secret.naming.generation(*key, tag));
        }
        for (secret, key) in &keys {
            invocation.key(secret.naming.verdict(*key, tag));
        }
        invocation
            .arg(if revoked_for.is_some() { keys.len() } else { 0 })
            .arg(keys.len())
            .arg(life_ms)
            .arg(GENERATION_LIFE.as_millis() as u64)
            .arg(&self.channel);
        for (secret, key) in &messages {
            let message = Message {
                key: *key,
                event,
                stamp: self.freshness.stamp(std::time::SystemTime::now()),
                first: self.secrets[0].keys.id,
            };
            invocation.arg(message.encode(&secret.keys));
        }
        let mut manager = self.manager();
        self.run("forget", async {
            invocation.invoke_async::<Value>(&mut manager).await
        })
        .await
        .ok_or(())?;
        if keys.is_empty() {
            tracing::warn!(
                "fleet cache level: a token revoked by its key alone, whose cluster hash tag is \
                 no longer known: the other instances were told, but Redis holds no tombstone"
            );
            return Err(());
        }
        if let (Connection::Cluster(connection), Some(_), Some(tag)) = (&mut manager, revoked_for, tag) {
            if !cluster::replicated(connection, tag.slot(), self.timeout).await {
                if let Some(suppressed) = self.warn.admit() {
                    tracing::warn!(
                        suppressed,
                        "fleet cache level: a tombstone reached no replica within the command \
                         timeout; a failover of its primary now would lose it"
                    );
                }
            }
        }
        Ok(())
    }
}

/// A read, as the lookup loop sees it.
enum Answer {
    Done(Lookup),
    /// Another instance is verifying the token.
    Busy(Seen),
}
