//! The subscriber: a task per cache that listens on the fleet's channel and applies the other
//! instances' messages to the local levels through [`Local`] (the same generation bump as a
//! local `invalidate` or `revoke`). Each time it (re)subscribes it flushes the local verdicts
//! (revocations stay), since messages published while it was away are lost. It reconnects with
//! a capped back-off and ends when its cache is dropped. While connected, it also retries every
//! second the revocations that could not be written to Redis (see
//! [`FleetLevel::retry_pending`]).
//!
//! At its first subscription it checks Redis's `maxmemory-policy` and warns when Redis may
//! evict keys under memory pressure: a tombstone evicted is a logout lost.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;

use super::level::FleetLevel;
use super::message::{Event, Message};
use crate::token_key::TokenKey;

/// The first reconnection delay; doubled after each failure.
const FIRST_DELAY: Duration = Duration::from_millis(50);
/// The longest reconnection delay.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// Time allowed to connect and subscribe.
const CONNECT: Duration = Duration::from_secs(2);
/// How often revocations that could not be written to Redis are tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The local levels of a cache, as the subscriber reaches them.
pub(crate) trait Local: Send + Sync {
    /// Forgets `key` on every local level.
    fn forget(&self, key: TokenKey);
    /// Refuses `key` locally for `revoked_for`, and forgets it.
    fn revoke(&self, key: TokenKey, revoked_for: Duration);
    /// Forgets every cached verdict (revocations stay).
    fn flush(&self);
}

/// Starts the subscriber of `fleet`, applying messages to `local` (inside a Tokio runtime). It
/// ends when either is dropped.
pub(crate) fn spawn(fleet: &Arc<FleetLevel>, local: Weak<dyn Local>) {
    let stop = fleet.stopped();
    tokio::spawn(run(Arc::downgrade(fleet), local, stop));
}

async fn run(fleet: Weak<FleetLevel>, local: Weak<dyn Local>, mut stop: tokio::sync::watch::Receiver<()>) {
    let mut delay = FIRST_DELAY;
    let mut checked_policy = false;
    let subscribe_warn = crate::log_limit::LogLimit::default();
    let both = || Some((fleet.upgrade()?, local.upgrade()?));
    loop {
        let Some((client, channel)) = fleet.upgrade().map(|f| (f.client.clone(), f.channel.clone())) else {
            return;
        };
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            redis::RedisResult::Ok(pubsub)
        };
        let connected = tokio::select! {
            _ = stop.changed() => return,
            connected = tokio::time::timeout(CONNECT, connect) => connected,
        };
        match connected {
            Ok(Ok(pubsub)) => {
                delay = FIRST_DELAY;
                let Some((f, l)) = both() else { return };
                // Whatever was published while we were away is lost: start afresh locally.
                l.flush();
                f.subscribed.store(true, Relaxed);
                f.counters.resubscriptions.incr();
                tracing::debug!("fleet cache level: subscribed");
                if !checked_policy {
                    checked_policy = true;
                    tokio::spawn(check_policy(f.manager()));
                }
                drop((f, l));
                let mut messages = pubsub.into_on_message();
                let mut retry = tokio::time::interval(RETRY);
                loop {
                    let message = tokio::select! {
                        _ = stop.changed() => return,
                        message = messages.next() => message,
                        _ = retry.tick() => {
                            let Some(f) = fleet.upgrade() else { return };
                            if f.has_pending() {
                                f.retry_pending().await;
                            }
                            continue;
                        }
                    };
                    let Some(message) = message else { break };
                    let Some((f, l)) = both() else { return };
                    apply(&f, &*l, message.get_payload_bytes());
                }
                if let Some(f) = fleet.upgrade() {
                    f.subscribed.store(false, Relaxed);
                }
                tracing::warn!("fleet cache level: subscriber disconnected, reconnecting (the local cache is flushed on reconnect)");
            }
            // Warned about (at most every few seconds): a Redis user without the channel, or a
            // proxy without pub/sub, would otherwise go unnoticed, and logouts would reach this
            // instance only through its misses.
            Ok(Err(error)) => {
                if let Some(suppressed) = subscribe_warn.admit() {
                    tracing::warn!(
                        failure = ?error.kind(),
                        suppressed,
                        "fleet cache level: cannot subscribe to the channel; retrying"
                    );
                }
            }
            Err(_) => {
                if let Some(suppressed) = subscribe_warn.admit() {
                    tracing::warn!(suppressed, "fleet cache level: subscribing timed out; retrying");
                }
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// Applies one message from the channel.
fn apply(fleet: &FleetLevel, local: &dyn Local, bytes: &[u8]) {
    let Some(id) = Message::secret_id(bytes) else {
        return;
    };
    let Some(index) = fleet.secrets.iter().position(|s| s.keys.id == id) else {
        // Another fleet on this Redis and channel (another secret): not ours.
        return;
    };
    let Some(message) = Message::decode(bytes, &fleet.secrets[index].keys) else {
        return;
    };
    if message.sender == fleet.instance {
        return;
    }
    if index > 0 && message.first == fleet.secrets[0].keys.id {
        // A rotating sender's copy under our previous secret: its first copy, under our
        // current secret, says the same.
        return;
    }
    fleet.counters.received.incr();
    let key = match index {
        0 => Some(message.key),
        _ => fleet.current_of(message.key),
    };
    match (key, message.event) {
        (Some(key), Event::Forget) => local.forget(key),
        (Some(key), Event::Revoke(ms)) => local.revoke(key, Duration::from_millis(ms)),
        // Named under the previous secret, and we cannot tell which local token it is: forget
        // everything rather than serve it (the tombstone is in Redis for the next miss).
        (None, _) => local.flush(),
    }
}

/// Whether Redis, with this `maxmemory-policy` and `maxmemory`, may evict keys (tombstones
/// included) under memory pressure.
fn may_evict(policy: &str, maxmemory: Option<&str>) -> bool {
    policy != "noeviction" && maxmemory.is_some_and(|max| max != "0")
}

/// Warns when Redis may evict keys (tombstones included) under memory pressure.
async fn check_policy(mut manager: redis::aio::ConnectionManager) {
    let asked = tokio::time::timeout(
        CONNECT,
        redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory*")
            .query_async::<Vec<String>>(&mut manager),
    )
    .await;
    let Ok(Ok(pairs)) = asked else {
        // Managed Redis often refuses CONFIG: nothing to say.
        tracing::debug!("fleet cache level: cannot read maxmemory-policy");
        return;
    };
    let get = |name: &str| {
        pairs
            .chunks(2)
            .find(|pair| pair.first().map(String::as_str) == Some(name))
            .and_then(|pair| pair.get(1).cloned())
    };
    let policy = get("maxmemory-policy").unwrap_or_default();
    if may_evict(&policy, get("maxmemory").as_deref()) {
        tracing::warn!(
            policy,
            "fleet cache level: Redis may evict keys under memory pressure, tombstones (logouts) \
             included; run it with maxmemory-policy noeviction"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_evicting_policy_with_a_memory_limit_is_unsafe() {
        assert!(!may_evict("noeviction", Some("100mb")));
        assert!(
            !may_evict("allkeys-lru", Some("0")),
            "no limit: nothing is evicted"
        );
        assert!(may_evict("allkeys-lru", Some("104857600")));
        assert!(may_evict("volatile-ttl", Some("104857600")));
        assert!(!may_evict("allkeys-lru", None));
    }
}
