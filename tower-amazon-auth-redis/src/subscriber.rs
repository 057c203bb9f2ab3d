//! The subscriber: a task per cache that listens on the fleet's channel and hands the other
//! instances' messages to the cache through its [`RemoteEvents`] (the same generation bump as a
//! local `invalidate` or `revoke`). Each time it (re)subscribes it flushes the local verdicts
//! (revocations stay), since messages published while it was away are lost. It reconnects with
//! a capped back-off and ends when its cache is dropped. While connected, it also retries every
//! second the revocations that could not be written to Redis (see
//! `FleetLevel::retry_pending`).
//!
//! A message applies only if it is fresh (see [`freshness`](crate::freshness)): a forget sent
//! too long ago or seen before is dropped, counted and warned about; revokes always apply.
//!
//! At its first subscription it checks Redis's `maxmemory-policy` and warns when Redis may
//! evict keys under memory pressure: a tombstone evicted is a logout lost (on a cluster, of
//! one node picked at random).
//!
//! On a Redis Cluster it subscribes through one seed at a time, the next one after each
//! disconnection or failed attempt: a classic `PUBLISH` reaches every node of a cluster (see
//! [`cluster`](crate::cluster)).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt as _, StreamExt as _};
use tower_amazon_auth::second_level::{LogLimit, RemoteEvents};

use crate::counters::{Count, Counters};
use crate::freshness::{Freshness, Judgement};
use crate::level::FleetLevel;
use crate::liveness::Liveness;
use crate::message::{Event, Message};

/// The first reconnection delay; doubled after each failure.
const FIRST_DELAY: Duration = Duration::from_millis(50);
/// The longest reconnection delay.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// Time allowed to connect and subscribe.
const CONNECT: Duration = Duration::from_secs(2);
/// How often revocations that could not be written to Redis are tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Starts the subscriber of `fleet`, handing messages to `events` (inside a Tokio runtime). It
/// ends when the level or the cache is dropped.
pub(crate) fn spawn(fleet: &Arc<FleetLevel>, events: RemoteEvents) {
    let stop = fleet.stopped();
    tokio::spawn(run(Arc::downgrade(fleet), events, stop));
}

async fn run(fleet: Weak<FleetLevel>, events: RemoteEvents, mut stop: tokio::sync::watch::Receiver<()>) {
    let mut delay = FIRST_DELAY;
    // Which of the clients (the seeds of a cluster) to subscribe through: the next one after
    // each disconnection or failed attempt.
    let mut node = 0;
    let mut checked_policy = false;
    let subscribe_warn = LogLimit::default();
    let liveness_warn = LogLimit::default();
    loop {
        let Some((client, channel)) = fleet
            .upgrade()
            .map(|f| (f.clients[node % f.clients.len()].clone(), f.channel.clone()))
        else {
            return;
        };
        node = node.wrapping_add(1);
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
                // Kept while it works.
                node = node.wrapping_sub(1);
                let Some(f) = fleet.upgrade() else { return };
                // Whatever was published while we were away is lost: start afresh locally
                // (sign-in's session copies too).
                if !events.forget_all() {
                    return;
                }
                f.session_watchers.forget_all();
                f.set_subscribed(true);
                f.counters.incr(Count::Subscriptions);
                tracing::debug!("fleet cache level: subscribed");
                if !checked_policy {
                    checked_policy = true;
                    tokio::spawn(check_policy(f.manager()));
                }
                let bound = f.liveness;
                drop(f);
                match listen(&fleet, &events, &mut stop, pubsub, bound, &liveness_warn).await {
                    Ended::Stop => return,
                    Ended::Disconnected => tracing::warn!(
                        "fleet cache level: subscriber disconnected, reconnecting (the local cache is flushed on reconnect)"
                    ),
                    Ended::Lost => {}
                }
                node = node.wrapping_add(1);
                if let Some(f) = fleet.upgrade() {
                    f.set_subscribed(false);
                }
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

/// How listening on one subscription ended.
enum Ended {
    /// The level or the cache is gone, or stopped.
    Stop,
    /// The connection closed.
    Disconnected,
    /// Nothing heard for too long: counted, warned about, flushed, command connection replaced.
    Lost,
}

/// Applies the messages of one subscription, pings it (see [`Liveness`]), and retries the
/// pending revocations, until the connection closes or goes silent too long.
async fn listen(
    fleet: &Weak<FleetLevel>,
    events: &RemoteEvents,
    stop: &mut tokio::sync::watch::Receiver<()>,
    pubsub: redis::aio::PubSub,
    bound: Duration,
    warn: &LogLimit,
) -> Ended {
    let (sink, mut messages) = pubsub.split();
    let mut liveness = Liveness::new(bound, Instant::now());
    let mut ping = tokio::time::interval(liveness.ping_every());
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pong: Option<BoxFuture<'static, bool>> = None;
    let mut retry = tokio::time::interval(RETRY);
    loop {
        tokio::select! {
            _ = stop.changed() => return Ended::Stop,
            message = messages.next() => {
                let Some(message) = message else { return Ended::Disconnected };
                liveness.heard(Instant::now());
                let Some(f) = fleet.upgrade() else { return Ended::Stop };
                if !apply(&f, events, message.get_payload_bytes()) {
                    return Ended::Stop;
                }
            }
            answered = async { pong.as_mut()?.await.then_some(()) }, if pong.is_some() => {
                pong = None;
                if answered.is_some() {
                    liveness.heard(Instant::now());
                }
            }
            _ = ping.tick() => {
                // A reply that came while this loop was busy (retrying revocations) counts.
                if let Some(answered) = pong.as_mut().and_then(|p| p.as_mut().now_or_never()) {
                    pong = None;
                    if answered {
                        liveness.heard(Instant::now());
                    }
                }
                if liveness.is_lost(Instant::now()) {
                    let Some(f) = fleet.upgrade() else { return Ended::Stop };
                    return lost(&f, events, warn, bound);
                }
                if pong.is_none() {
                    let mut sink = sink.clone();
                    pong = Some(Box::pin(async move { sink.ping::<redis::Value>().await.is_ok() }));
                }
            }
            _ = retry.tick() => {
                let Some(f) = fleet.upgrade() else { return Ended::Stop };
                if f.has_pending() {
                    f.retry_pending().await;
                }
            }
        }
    }
}

/// The subscription went silent: treated as a reconnection (the local cache is flushed now and
/// again once subscribed), and the command connection, which likely went the same way, is
/// replaced, so that misses read the tombstones in Redis again.
fn lost(fleet: &FleetLevel, events: &RemoteEvents, warn: &LogLimit, bound: Duration) -> Ended {
    fleet.counters.incr(Count::LivenessFailures);
    fleet.set_subscribed(false);
    fleet.commands.renew();
    if let Some(suppressed) = warn.admit() {
        tracing::warn!(
            silent_ms = (bound / 4 * 3).as_millis() as u64,
            suppressed,
            "fleet cache level: nothing heard on the subscription (a connection dropped without a \
             reset?); flushing the local cache and reconnecting"
        );
    }
    fleet.session_watchers.forget_all();
    if events.forget_all() {
        Ended::Lost
    } else {
        Ended::Stop
    }
}

/// Applies one message from the channel; `false` when the cache is gone.
fn apply(fleet: &FleetLevel, events: &RemoteEvents, bytes: &[u8]) -> bool {
    let Some(id) = Message::secret_id(bytes) else {
        return true;
    };
    let Some(index) = fleet.secrets.iter().position(|s| s.keys.id == id) else {
        // Another fleet on this Redis and channel (another secret): not ours.
        return true;
    };
    let Some(message) = Message::decode(bytes, &fleet.secrets[index].keys) else {
        return true;
    };
    if fleet.freshness.is_own(&message.stamp) {
        return true;
    }
    if index > 0 && message.first == fleet.secrets[0].keys.id {
        // A rotating sender's copy under our previous secret: its first copy, under our
        // current secret, says the same.
        return true;
    }
    if !is_fresh(&fleet.freshness, &fleet.counters, &message, SystemTime::now()) {
        return true;
    }
    fleet.counters.incr(Count::Received);
    let key = match index {
        0 => Some(message.key),
        _ => fleet.current_of(message.key),
    };
    match (key, message.event) {
        // Sessions are named under the current secret only: one named under our previous
        // secret is in a namespace this instance holds no copy of (nothing to drop).
        (_, Event::EndSession) if index == 0 => fleet.session_watchers.ended(message.key),
        (_, Event::EndSession) => true,
        (Some(key), Event::Forget) => events.forget(key),
        (Some(key), Event::Revoke(ms)) => events.revoke(key, Duration::from_millis(ms)),
        // Named under the previous secret, and we cannot tell which local token it is: forget
        // everything rather than serve it (the tombstone is in Redis for the next miss).
        (None, _) => events.forget_all(),
    }
}

/// Whether `message` (authenticated, from another instance) is to be applied at `now`: a
/// forget that is stale or replayed is not (counted, and warned about at most every few
/// seconds); a revoke always is.
fn is_fresh(freshness: &Freshness, counters: &Counters, message: &Message, now: SystemTime) -> bool {
    // A session's end is idempotent too, and must not be lost to a clock behind.
    let revoke = matches!(message.event, Event::Revoke(_) | Event::EndSession);
    let judged = freshness.judge(&message.stamp, revoke, now);
    if judged == Judgement::Apply {
        return true;
    }
    counters.incr(Count::Dropped);
    if let Some(suppressed) = freshness.warn.admit() {
        tracing::warn!(
            why = ?judged,
            suppressed,
            "fleet cache level: a message to forget a token dropped (stale: sent more than 5 min \
             from this instance's clock; replayed: seen before)"
        );
    }
    false
}

/// Whether Redis, with this `maxmemory-policy` and `maxmemory`, may evict keys (tombstones
/// included) under memory pressure.
fn may_evict(policy: &str, maxmemory: Option<&str>) -> bool {
    policy != "noeviction" && maxmemory.is_some_and(|max| max != "0")
}

/// Warns when Redis may evict keys (tombstones included) under memory pressure.
async fn check_policy(mut manager: crate::connection::Connection) {
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
    #[test]
    fn a_stale_or_replayed_forget_is_dropped_and_counted_and_a_revoke_never() {
        use tower_amazon_auth::second_level::TokenKey;

        let freshness = Freshness::new().unwrap();
        let counters = Counters::default();
        let now = SystemTime::now();
        let message = |event, sequence, sent: SystemTime| Message {
            key: TokenKey::from_be_bytes([7; 16]),
            event,
            stamp: crate::freshness::Stamp {
                sender: [1; 8],
                boot: [2; 8],
                sequence,
                sent_ms: sent.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64,
            },
            first: [0; 8],
        };
        let behind = now - crate::freshness::WINDOW - Duration::from_secs(60);
        assert!(!is_fresh(
            &freshness,
            &counters,
            &message(Event::Forget, 1, behind),
            now
        ));
        assert_eq!(counters.get(Count::Dropped), 1, "a stale forget counted");
        assert!(
            is_fresh(
                &freshness,
                &counters,
                &message(Event::Revoke(1000), 2, behind),
                now
            ),
            "a revoke from a clock behind applies"
        );
        assert!(is_fresh(
            &freshness,
            &counters,
            &message(Event::Forget, 3, now),
            now
        ));
        assert!(!is_fresh(
            &freshness,
            &counters,
            &message(Event::Forget, 3, now),
            now
        ));
        assert_eq!(counters.get(Count::Dropped), 2, "a replayed forget counted");
        assert!(is_fresh(
            &freshness,
            &counters,
            &message(Event::Revoke(1000), 2, behind),
            now
        ));
        assert_eq!(counters.get(Count::Dropped), 2);
    }
}
