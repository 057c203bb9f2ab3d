//! The fleet level on a real `redis-server` the tests start themselves: one
//! verification per token across instances, fleet-wide logout (also through a subscriber that
//! missed the message), Redis down or frozen, two services on one Redis, and nothing readable
//! at rest. Each "instance" is a layer with its own local cache, served on 127.0.0.1.
//!
//! Where something must propagate, the tests poll for it (up to 10 s) and print what they saw;
//! no assertion is about time.

mod common;

use common::{calls, connection, one_verification_per_fleet, scripts_run, Instance, SECRET};
use std::collections::HashSet;
use std::io::Write as _;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use tower_amazon_auth::{
    AccessToken, AmazonAuthLayer, AmazonUser, BuildError, CacheError, IdentityCacheBuilder,
};
use tower_amazon_auth_mock::{MockAmazon, MockReply, MockUser, MOCK_CLIENT_ID};
use tower_amazon_auth_redis::{Fleet, FleetError, FleetStats};

use tower_amazon_auth_test_support::at_rest::{contains, encodings};
use tower_amazon_auth_test_support::external::{
    free_port, redis, redis_url as url, require, start_redis, External,
};
use tower_amazon_auth_test_support::fixtures::{
    build_layer, builder, client, serve_base_url, token, within_patience, PATIENCE,
};
use tower_amazon_auth_test_support::relay::Relay;

/// Another fleet's secret.
const OTHER_SECRET: &str = "fedcba9876543210fedcba9876543210";

/// The fleet level's counters of `layer`'s cache.
fn fleet_stats(layer: &AmazonAuthLayer) -> FleetStats {
    FleetStats::of(layer.cache()).expect("a cache with the fleet level")
}

/// The fleet level's error inside a refused build, if that is why it was refused.
fn refusal<T: std::fmt::Debug>(built: Result<T, BuildError>) -> Option<FleetError> {
    match built {
        Err(BuildError::SecondLevel(error)) => error.downcast_ref::<FleetError>().cloned(),
        other => panic!("not refused by the fleet level: {other:?}"),
    }
}

/// An instance's settings. The command timeout is generous: these tests share two cores with
/// the whole suite, and a Redis read that timed out would (correctly) send a request to Amazon
/// and spoil a count of upstream calls. The fallback test sets the default timeout.
fn fleet_builder(mock: &MockAmazon, redis: &External) -> IdentityCacheBuilder {
    builder(mock).second_level(settings(redis))
}

fn settings(redis: &External) -> Fleet {
    Fleet::new(url(redis), SECRET)
        .backoff(Duration::from_secs(1))
        .command_timeout(Duration::from_secs(2))
}

async fn instances(n: usize, mock: &MockAmazon, redis: &External) -> Vec<Instance> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(Instance::new(fleet_builder(mock, redis)).await);
    }
    all
}

/// Case 1: a token used on four instances in turn costs one tokeninfo and one profile call;
/// so do 200 simultaneous first requests spread over the four.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_instances_verify_a_token_once() {
    let Some(redis) = redis("fleet::four_instances_verify_a_token_once") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let fleet = instances(4, &mock, &redis).await;

    let calls = one_verification_per_fleet(&mock, &fleet, "fleet").await;
    let waits: u64 = fleet.iter().map(|i| fleet_stats(&i.layer).lock_waits).sum();
    let _ = writeln!(
        std::io::stderr(),
        "fleet: burst of 200 over 4: {calls:?}, {waits} lock waits"
    );
}

/// Case 2: `revoke` on A (Amazon still calls the token valid): B–D, with the token hot in
/// their local caches and memos, refuse it; a verification in flight on B cannot bring it
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_on_one_instance_is_refused_by_every_other() {
    let Some(redis) = redis("fleet::a_logout_on_one_instance_is_refused_by_every_other") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let fleet = instances(4, &mock, &redis).await;

    let hot = token("fleet-hot");
    mock.register(&hot, MockUser::new("amzn1.account.HOT"));
    for instance in &fleet {
        // Twice: the second is a memo hit.
        assert_eq!(instance.status(&hot).await, 200);
        assert_eq!(instance.status(&hot).await, 200);
    }
    assert_eq!(fleet[0].logout(&hot).await, 204);
    assert_eq!(fleet[0].status(&hot).await, 401);
    let hot = &hot;
    for instance in &fleet[1..] {
        within_patience("a hot token refused on another instance", move || async move {
            instance.status(hot).await == 401
        })
        .await;
    }
    assert_eq!(mock.calls_for(hot).tokeninfo, 1, "Amazon was asked again");

    // B is verifying the token when A revokes it.
    let flying = token("fleet-flying");
    mock.register(
        &flying,
        MockReply::user(MockUser::new("amzn1.account.FLYING")).delayed(Duration::from_millis(500)),
    );
    let b = fleet[1]
        .http
        .get(format!("{}/me", fleet[1].base))
        .bearer_auth(&flying);
    let under_way = tokio::spawn(async move { b.send().await.unwrap().status().as_u16() });
    let (m, f) = (&mock, &flying);
    within_patience("B's verification under way", move || async move {
        m.calls_for(f).tokeninfo == 1
    })
    .await;
    fleet[0]
        .layer
        .cache()
        .revoke(&AccessToken::new(flying.clone()))
        .await
        .unwrap();
    let first = under_way.await.unwrap();
    let _ = writeln!(std::io::stderr(), "fleet: the request under way got {first}");
    for instance in &fleet {
        assert_eq!(
            instance.status(&flying).await,
            401,
            "a verification in flight brought a revoked token back"
        );
    }
    assert_eq!(mock.calls_for(&flying).tokeninfo, 1);
}

/// Case 3: B's subscriber connection is killed and a logout happens while it is away: once B
/// has subscribed again, it refuses the token, although it never got the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_missed_while_disconnected_is_applied_after_reconnect() {
    let Some(redis) = redis("fleet::a_logout_missed_while_disconnected_is_applied_after_reconnect") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let fleet = instances(2, &mock, &redis).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let mut admin = connection(&redis).await;
    let mut missed = 0;
    for attempt in 0..5 {
        let hot = token(&format!("fleet-gap-{attempt}"));
        mock.register(&hot, MockUser::new("amzn1.account.GAP"));
        assert_eq!(a.status(&hot).await, 200);
        assert_eq!(b.status(&hot).await, 200);
        assert_eq!(b.status(&hot).await, 200);
        let before = fleet_stats(&b.layer);
        let _: redis::Value = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut admin)
            .await
            .unwrap();
        a.layer
            .cache()
            .revoke(&AccessToken::new(hot.clone()))
            .await
            .unwrap();
        within_patience("B subscribed again", move || async move {
            fleet_stats(&b.layer).subscriptions > before.subscriptions && fleet_stats(&b.layer).subscribed
        })
        .await;
        let got_message = fleet_stats(&b.layer).invalidations_received > before.invalidations_received;
        if !got_message {
            missed += 1;
        }
        let hot = &hot;
        within_patience("B refuses the token after reconnecting", move || async move {
            b.status(hot).await == 401
        })
        .await;
        if missed > 0 {
            break;
        }
    }
    assert!(missed > 0, "the logout never fell in the subscriber's gap");
}

/// Case 4: Redis frozen (SIGSTOP), then stopped: requests are answered via Amazon, a logout
/// says it could not be made fleet-wide (503); once Redis is back, the second level is used
/// again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_frozen_or_down_falls_back_to_amazon_and_recovers() {
    let Some(binary) = require("redis-server", "redis-server", "fleet::redis_frozen_or_down") else {
        return;
    };
    let port = free_port();
    let redis = start_redis(&binary, port);
    let mock = MockAmazon::start().await.unwrap();
    let mut fleet = Vec::new();
    for _ in 0..2 {
        let fast = Fleet::new(url(&redis), SECRET).backoff(Duration::from_secs(1));
        fleet.push(Instance::new(builder(&mock).second_level(fast)).await);
    }
    let (a, b) = (&fleet[0], &fleet[1]);

    redis.signal("STOP").unwrap();
    for n in 0..10 {
        let frozen = token(&format!("fleet-frozen-{n}"));
        mock.register(&frozen, MockUser::new("amzn1.account.FROZEN"));
        let started = Instant::now();
        assert_eq!(
            a.status(&frozen).await,
            200,
            "Redis frozen: not answered via Amazon"
        );
        let _ = writeln!(
            std::io::stderr(),
            "fleet: Redis frozen, request {n} took {:?}",
            started.elapsed()
        );
    }
    let unknown = token("fleet-frozen-unknown");
    mock.register(&unknown, MockReply::invalid_token());
    assert_eq!(
        a.status(&unknown).await,
        401,
        "Redis trouble accepted a token Amazon refuses"
    );
    let out = token("fleet-frozen-logout");
    mock.register(&out, MockUser::new("amzn1.account.OUT"));
    assert_eq!(a.status(&out).await, 200);
    assert_eq!(
        a.logout(&out).await,
        503,
        "a logout that did not reach the fleet said 204"
    );
    assert_eq!(
        a.status(&out).await,
        401,
        "the failed fleet logout still holds here"
    );
    assert!(fleet_stats(&a.layer).errors > 0);
    redis.signal("CONT").unwrap();

    drop(redis);
    for n in 0..5 {
        let down = token(&format!("fleet-down-{n}"));
        mock.register(&down, MockUser::new("amzn1.account.DOWN"));
        let started = Instant::now();
        assert_eq!(a.status(&down).await, 200, "Redis down: not answered via Amazon");
        let _ = writeln!(
            std::io::stderr(),
            "fleet: Redis down, request {n} took {:?}",
            started.elapsed()
        );
    }

    let _redis = start_redis(&binary, port);
    let mock = &mock;
    let mut n = 0;
    within_patience("the second level used again after Redis came back", || {
        n += 1;
        let back = token(&format!("fleet-back-{n}"));
        mock.register(&back, MockUser::new("amzn1.account.BACK"));
        async move {
            a.status(&back).await == 200
                && b.status(&back).await == 200
                && mock.calls_for(&back).tokeninfo == 1
        }
    })
    .await;
    // The logout that failed while Redis was frozen is written once it is back.
    let out = &out;
    within_patience(
        "a logout made while Redis was away reaches the fleet once it is back",
        move || async move { b.status(out).await == 401 },
    )
    .await;
}

/// Case 5: two services with different client ids on one Redis never read each other's
/// verdicts; a value copied under another token's key, or tampered with, is a miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_services_share_nothing_and_moved_or_altered_values_are_misses() {
    let Some(redis) = redis("fleet::two_services_share_nothing") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let api = Instance::new(fleet_builder(&mock, &redis)).await;
    // Another service: it accepts the mock's client id too, and one more.
    let admin =
        Instance::new(fleet_builder(&mock, &redis).client_id("amzn1.application-oa2-client.ADMINONLY")).await;
    let shared = token("fleet-two-services");
    mock.register(&shared, MockUser::new("amzn1.account.SHARED"));
    assert_eq!(api.status(&shared).await, 200);
    assert_eq!(admin.status(&shared).await, 200);
    assert_eq!(mock.calls_for(&shared).tokeninfo, 2, "a verdict crossed services");
    assert_eq!(fleet_stats(&admin.layer).hits, 0);

    let mut redis_conn = connection(&redis).await;
    let verdicts = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        async move {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("taa:v:*")
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.into_iter().collect::<HashSet<_>>()
        }
    };
    // Learn which verdict key is whose, once the two services' fills have landed.
    let before = within_key(&mut redis_conn, &HashSet::new(), 2, &verdicts).await;
    let first = token("fleet-moved-from");
    mock.register(&first, MockUser::new("amzn1.account.FROM"));
    assert_eq!(api.status(&first).await, 200);
    let from_key = one(within_key(&mut redis_conn, &before, 1, &verdicts).await);
    let before = verdicts(&mut redis_conn).await;
    let second = token("fleet-moved-to");
    mock.register(&second, MockUser::new("amzn1.account.TO"));
    assert_eq!(api.status(&second).await, 200);
    let to_key = one(within_key(&mut redis_conn, &before, 1, &verdicts).await);

    // First's identity copied under second's key.
    let value: Vec<u8> = redis::cmd("GET")
        .arg(&from_key)
        .query_async(&mut redis_conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&to_key)
        .arg(&value)
        .query_async(&mut redis_conn)
        .await
        .unwrap();
    let fresh = Instance::new(fleet_builder(&mock, &redis)).await;
    assert_eq!(
        fresh.me(&second).await,
        (200, "amzn1.account.TO".to_owned()),
        "a value moved under another key was served"
    );
    assert_eq!(
        mock.calls_for(&second).tokeninfo,
        2,
        "the moved value was not a miss"
    );

    // First's own value, one bit flipped.
    let mut tampered = value.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let _: () = redis::cmd("SET")
        .arg(&from_key)
        .arg(&tampered)
        .query_async(&mut redis_conn)
        .await
        .unwrap();
    assert_eq!(fresh.me(&first).await, (200, "amzn1.account.FROM".to_owned()));
    assert_eq!(
        mock.calls_for(&first).tokeninfo,
        2,
        "a tampered value was not a miss"
    );
    assert_eq!(fleet_stats(&fresh.layer).hits, 0);
}

/// The `count` verdict keys that appeared since `before` (fills are written in the
/// background), once there are that many.
async fn within_key<F, Fut>(
    conn: &mut redis::aio::MultiplexedConnection,
    before: &HashSet<String>,
    count: usize,
    verdicts: &F,
) -> HashSet<String>
where
    F: Fn(&mut redis::aio::MultiplexedConnection) -> Fut,
    Fut: std::future::Future<Output = HashSet<String>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = verdicts(conn).await;
        let new: HashSet<_> = now.difference(before).cloned().collect();
        if new.len() == count {
            return new;
        }
        assert!(
            Instant::now() < deadline,
            "not {count} new verdict keys in Redis: {new:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn one(keys: HashSet<String>) -> String {
    keys.into_iter().next().expect("one key")
}

/// Case 6: a dump of every key and value in Redis holds no token, user id, e-mail or name in
/// any reversible encoding; a value written under another secret, or with a bit flipped, is a
/// miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_in_redis_reveals_a_token_or_a_user() {
    let Some(redis) = redis("fleet::nothing_in_redis_reveals_a_token_or_a_user") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let fleet = instances(2, &mock, &redis).await;
    let mut secrets = Vec::new();
    for n in 0..3 {
        let t = token(&format!("fleet-dump-{n}"));
        let user_id = format!("amzn1.account.DUMPUSER{n}");
        let email = format!("dump.user{n}@example.com");
        let name = format!("Dumpy McDumpface {n}");
        mock.register(&t, MockUser::new(&user_id).email(&email).name(&name));
        assert_eq!(fleet[0].status(&t).await, 200);
        assert_eq!(fleet[1].status(&t).await, 200);
        secrets.extend([t, user_id, email, name]);
    }
    // A rejection and a revocation too.
    let rejected = token("fleet-dump-rejected");
    mock.register(&rejected, MockReply::invalid_token());
    assert_eq!(fleet[0].status(&rejected).await, 401);
    assert_eq!(fleet[0].logout(&secrets[0]).await, 204);
    secrets.push(rejected);
    secrets.push(SECRET.to_owned());

    let mut conn = connection(&redis).await;
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
    assert!(
        keys.len() >= 4,
        "expected verdicts and a tombstone, found {} keys",
        keys.len()
    );
    let mut dump = Vec::new();
    for key in &keys {
        let value: Vec<u8> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        dump.extend_from_slice(key);
        dump.push(b'\n');
        dump.extend_from_slice(&value);
        dump.push(b'\n');
    }
    for secret in &secrets {
        for encoding in encodings(secret) {
            assert!(
                !contains(&dump, &encoding),
                "the Redis dump reveals {secret:?} (as {:?})",
                String::from_utf8_lossy(&encoding)
            );
        }
    }

    // Another fleet's instance (another secret) names the token otherwise and cannot open
    // this fleet's value even when it is put under its own name.
    let t = &secrets[4];
    let other = Instance::new(builder(&mock).second_level(Fleet::new(url(&redis), OTHER_SECRET))).await;
    let before: HashSet<Vec<u8>> = keys.iter().cloned().collect();
    assert_eq!(other.status(t).await, 200);
    assert_eq!(
        mock.calls_for(t).tokeninfo,
        2,
        "another secret read this fleet's verdict"
    );
    let deadline = Instant::now() + PATIENCE;
    let other_key = loop {
        let now: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg("taa:v:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        if let Some(key) = now.into_iter().find(|k| !before.contains(k)) {
            break key;
        }
        assert!(Instant::now() < deadline, "the other fleet wrote no verdict");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let ours = keys
        .iter()
        .find(|k| k.starts_with(b"taa:v:"))
        .expect("a verdict of ours");
    let value: Vec<u8> = redis::cmd("GET").arg(ours).query_async(&mut conn).await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(&other_key)
        .arg(&value)
        .query_async(&mut conn)
        .await
        .unwrap();
    let other_fresh = Instance::new(builder(&mock).second_level(Fleet::new(url(&redis), OTHER_SECRET))).await;
    assert_eq!(other_fresh.status(t).await, 200);
    assert_eq!(
        mock.calls_for(t).tokeninfo,
        3,
        "a value sealed under another secret was not a miss"
    );
    assert_eq!(fleet_stats(&other_fresh.layer).hits, 0);
}

/// Secret rotation: an instance given a new secret and the previous one reads what the
/// instances still on the previous secret wrote, and a logout on either side holds on the
/// other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_secret_keeps_verdicts_and_logouts_of_the_previous_one() {
    let Some(redis) = redis("fleet::a_rotated_secret") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let old = Instance::new(fleet_builder(&mock, &redis)).await;
    let new = Instance::new(
        builder(&mock).second_level(
            Fleet::new(url(&redis), OTHER_SECRET)
                .previous_secret(SECRET)
                .command_timeout(Duration::from_secs(2)),
        ),
    )
    .await;
    let t = token("fleet-rotation");
    mock.register(&t, MockUser::new("amzn1.account.ROTATION"));
    assert_eq!(old.status(&t).await, 200);
    assert_eq!(new.status(&t).await, 200);
    assert_eq!(
        mock.calls_for(&t).tokeninfo,
        1,
        "the verdict under the previous secret was not read"
    );
    assert_eq!(new.logout(&t).await, 204);
    let (old, new, t) = (&old, &new, &t);
    within_patience(
        "the old-secret instance refuses a logout made under the new one",
        move || async move { old.status(t).await == 401 },
    )
    .await;

    let u = token("fleet-rotation-2");
    mock.register(&u, MockUser::new("amzn1.account.ROTATION2"));
    assert_eq!(new.status(&u).await, 200);
    assert_eq!(old.status(&u).await, 200);
    assert_eq!(old.logout(&u).await, 204);
    let u = &u;
    within_patience(
        "the new-secret instance refuses a logout made under the previous one",
        move || async move { new.status(u).await == 401 },
    )
    .await;
}

/// During a rotation, between two instances that both hold the new and the previous secret: a
/// logout on one reaches the other through its copy under the current secret, and the copy
/// under the previous secret, whose key the receiver cannot map (it never saw the token), does
/// not make it flush its whole cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_between_rotating_instances_does_not_flush_their_caches() {
    let Some(redis) = redis("fleet::a_logout_between_rotating_instances") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let rotating = || {
        builder(&mock).second_level(
            Fleet::new(url(&redis), OTHER_SECRET)
                .previous_secret(SECRET)
                .command_timeout(Duration::from_secs(2)),
        )
    };
    let a = Instance::new(rotating()).await;
    let b = Instance::new(rotating()).await;
    let hot = token("fleet-rotating-hot");
    mock.register(&hot, MockUser::new("amzn1.account.HOT"));
    assert_eq!(b.status(&hot).await, 200);
    let misses = b.layer.stats().misses;

    let out = token("fleet-rotating-out");
    mock.register(&out, MockUser::new("amzn1.account.OUT"));
    assert_eq!(a.status(&out).await, 200);
    assert_eq!(a.logout(&out).await, 204);
    // Messages arrive in the order they were published: once `b` has received the one after,
    // it has handled both copies of the logout.
    let after = token("fleet-rotating-after");
    a.layer
        .cache()
        .invalidate(&tower_amazon_auth::AccessToken::new(after))
        .await
        .unwrap();
    let b = &b;
    within_patience("b receives the logout and the invalidation", move || async move {
        fleet_stats(&b.layer).invalidations_received >= 2
    })
    .await;
    assert_eq!(b.status(&hot).await, 200);
    assert_eq!(
        b.layer.stats().misses,
        misses,
        "the copy under the previous secret flushed b's cache"
    );
    assert_eq!(b.status(&out).await, 401, "b accepts a token logged out on a");
}

/// A verdict in Redis is held to the reader's own `max_ttl`, counted from the verification:
/// an instance configured with a shorter one asks Amazon again once its `max_ttl` has passed,
/// although the writer gave the Redis key a longer life.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verdict_in_redis_lives_no_longer_than_the_readers_max_ttl() {
    let Some(redis) = redis("fleet::a_verdict_in_redis_lives_no_longer") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let writer = Instance::new(fleet_builder(&mock, &redis).max_ttl(Duration::from_secs(3600))).await;
    let reader = Instance::new(
        fleet_builder(&mock, &redis)
            .max_ttl(Duration::from_secs(1))
            .clock_skew(Duration::from_millis(100)),
    )
    .await;
    let t = token("fleet-reader-max-ttl");
    mock.register(&t, MockUser::new("amzn1.account.MAXTTL"));
    assert_eq!(writer.status(&t).await, 200);
    assert_eq!(reader.status(&t).await, 200);
    assert_eq!(
        mock.calls_for(&t).tokeninfo,
        1,
        "the reader read the writer's verdict"
    );
    // Past the reader's max_ttl since the verification (its local entry is gone too).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(reader.status(&t).await, 200);
    assert_eq!(
        mock.calls_for(&t).tokeninfo,
        2,
        "the reader served a verdict older than its max_ttl from Redis"
    );
}

/// A rejection read from Redis stands no longer than the writer gave it, although the reader
/// keeps rejections longer (its store holds entries for its own `negative_ttl`, and must not
/// serve one past the `until` it was given).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejection_from_redis_stands_no_longer_than_its_writer_gave_it() {
    let Some(redis) = redis("fleet::a_rejection_from_redis_stands_no_longer") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let writer = Instance::new(fleet_builder(&mock, &redis).negative_ttl(Duration::from_secs(1))).await;
    let reader = Instance::new(fleet_builder(&mock, &redis).negative_ttl(Duration::from_secs(3600))).await;
    let t = token("fleet-short-rejection");
    mock.register(&t, MockReply::invalid_token());
    assert_eq!(writer.status(&t).await, 401);
    let hits = fleet_stats(&reader.layer).hits;
    assert_eq!(reader.status(&t).await, 401);
    assert_eq!(
        fleet_stats(&reader.layer).hits,
        hits + 1,
        "the reader read the writer's rejection"
    );
    // Amazon changes its mind; past the writer's negative_ttl the reader asks again.
    mock.register(&t, MockUser::new("amzn1.account.SHORTREJECTION"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        reader.status(&t).await,
        200,
        "the reader served a rejection past the life its writer gave it"
    );
    assert_eq!(mock.calls_for(&t).tokeninfo, 2);
}

/// A pilot whose request goes away while it waits for Amazon (its client gave up) gives the
/// fleet lock up at once: the lock would otherwise stand for `lock_wait` + 1 s, here longer
/// than the test's patience, and hold every other instance's first request for the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pilot_dropped_mid_verification_gives_the_fleet_lock_up() {
    let Some(redis) = redis("fleet::a_pilot_dropped_mid_verification") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let long_lock = || builder(&mock).second_level(settings(&redis).lock_wait(Duration::from_secs(30)));
    let a = Instance::new(long_lock()).await;
    let b = Instance::new(long_lock()).await;
    let t = token("fleet-dropped-pilot");
    mock.register(
        &t,
        MockReply::user(MockUser::new("amzn1.account.DROPPED")).delayed(Duration::from_secs(2)),
    );
    let mut conn = connection(&redis).await;
    async fn locks(conn: &mut redis::aio::MultiplexedConnection) -> usize {
        let keys: Vec<String> = redis::cmd("KEYS").arg("taa:l:*").query_async(conn).await.unwrap();
        keys.len()
    }
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let gave_up = tokio::spawn(
        impatient
            .get(format!("{}/me", a.base))
            .bearer_auth(t.clone())
            .send(),
    );
    let deadline = Instant::now() + PATIENCE;
    while locks(&mut conn).await == 0 {
        assert!(Instant::now() < deadline, "the pilot never took the fleet lock");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(gave_up.await.unwrap().is_err(), "the client was meant to give up");
    let deadline = Instant::now() + PATIENCE;
    while locks(&mut conn).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the fleet lock outlived the request that took it"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.status(&t).await, 200);
    assert_eq!(
        fleet_stats(&b.layer).lock_waits,
        0,
        "b waited for a lock nobody held"
    );
}

/// `build()` checks the fleet settings; neither the secret nor the URL's password shows in
/// `Debug` or in an error.
#[tokio::test]
async fn fleet_settings_are_checked_at_build_and_never_shown() {
    let mock = MockAmazon::start().await.unwrap();
    let short = build_layer(builder(&mock).second_level(Fleet::new("redis://127.0.0.1:1", "too short")));
    assert_eq!(refusal(short), Some(FleetError::SecretTooShort));
    let prefix = build_layer(
        builder(&mock).second_level(Fleet::new("redis://127.0.0.1:1", SECRET).key_prefix("has space")),
    );
    assert_eq!(refusal(prefix), Some(FleetError::KeyPrefix));
    for (fleet, setting) in [
        (
            Fleet::new("redis://127.0.0.1:1", SECRET).command_timeout(Duration::MAX),
            "command_timeout",
        ),
        (
            Fleet::new("redis://127.0.0.1:1", SECRET).lock_wait(Duration::MAX),
            "lock_wait",
        ),
        (
            Fleet::new("redis://127.0.0.1:1", SECRET).backoff(Duration::MAX),
            "backoff",
        ),
    ] {
        match refusal(build_layer(builder(&mock).second_level(fleet))) {
            Some(FleetError::Setting { setting: s, rule }) => {
                assert_eq!(s, setting);
                assert!(rule.starts_with("at most"), "{rule}");
            }
            other => panic!("{setting}: {other:?}"),
        }
    }
    let zero = build_layer(
        builder(&mock)
            .second_level(Fleet::new("redis://127.0.0.1:1", SECRET).command_timeout(Duration::ZERO)),
    );
    assert_eq!(
        refusal(zero),
        Some(FleetError::Setting {
            setting: "command_timeout",
            rule: "at least 1 ms"
        })
    );
    let previous = build_layer(
        builder(&mock).second_level(Fleet::new("redis://127.0.0.1:1", SECRET).previous_secret("short")),
    );
    assert_eq!(refusal(previous), Some(FleetError::SecretTooShort));
    let bad_url = build_layer(builder(&mock).second_level(Fleet::new("http://:hunter2@x", SECRET)));
    let error = bad_url.expect_err("refused");
    assert!(!error.to_string().contains("hunter2"));
    assert!(!format!("{error:?}").contains("hunter2"));
    assert_eq!(refusal::<()>(Err(error)), Some(FleetError::Url));
    let fleet = Fleet::new("redis://:hunter2@127.0.0.1:1", SECRET);
    let shown = format!("{fleet:?}");
    assert!(!shown.contains("hunter2") && !shown.contains(SECRET), "{shown}");
    // Redis down at startup: the layer builds and serves via Amazon.
    let down = build_layer(
        builder(&mock).second_level(Fleet::new(format!("redis://127.0.0.1:{}", free_port()), SECRET)),
    )
    .unwrap();
    serves_via_amazon_but_cannot_revoke(&mock, &down, "fleet-down-at-startup").await;
}

/// With its Redis unreachable, `layer` answers a token via Amazon (200), and `revoke` reports
/// that the logout could not reach the fleet.
async fn serves_via_amazon_but_cannot_revoke(mock: &MockAmazon, layer: &AmazonAuthLayer, tag: &str) {
    let t = token(tag);
    mock.register(&t, MockUser::new("amzn1.account.UNREACHABLE"));
    let app = Router::new()
        .route(
            "/me",
            get(|user: AmazonUser| async move { user.user_id().to_owned() }),
        )
        .layer(layer.clone());
    let base = serve_base_url(app).await.unwrap();
    let response = client()
        .get(format!("{base}/me"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        layer.cache().revoke(&AccessToken::new(t)).await.err(),
        Some(CacheError::SecondLevel)
    );
}

/// `invalidate` on A reaches B (which verifies again, and learns Amazon changed its mind); a
/// definite rejection learned on A is remembered for B too, briefly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalidations_and_rejections_travel_across_the_fleet() {
    let Some(redis) = redis("fleet::invalidations_and_rejections_travel_across_the_fleet") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let fleet = instances(2, &mock, &redis).await;
    let (a, b) = (&fleet[0], &fleet[1]);

    let changed = token("fleet-changed");
    mock.register(&changed, MockUser::new("amzn1.account.CHANGED"));
    assert_eq!(a.status(&changed).await, 200);
    assert_eq!(b.status(&changed).await, 200);
    assert_eq!(b.status(&changed).await, 200);
    mock.register(&changed, MockReply::invalid_token());
    a.layer
        .cache()
        .invalidate(&AccessToken::new(changed.clone()))
        .await
        .unwrap();
    let changed = &changed;
    within_patience("B forgets a token invalidated on A", move || async move {
        b.status(changed).await == 401
    })
    .await;

    let bad = token("fleet-rejected");
    mock.register(&bad, MockReply::invalid_token());
    let hits = fleet_stats(&b.layer).hits;
    assert_eq!(a.status(&bad).await, 401);
    // A holds the fleet lock until its rejection is written, so B waits for it.
    assert_eq!(b.status(&bad).await, 401);
    assert_eq!(
        fleet_stats(&b.layer).hits,
        hits + 1,
        "B did not read A's rejection"
    );
    assert_eq!(mock.calls_for(&bad).tokeninfo, 1);
}

/// The fleet level's subscriber is a task: `build()` outside a Tokio runtime says so rather
/// than panicking.
#[test]
fn a_fleet_layer_built_outside_a_runtime_is_an_error() {
    let built = tower_amazon_auth::IdentityCache::builder()
        .client_id(MOCK_CLIENT_ID)
        .second_level(Fleet::new("redis://127.0.0.1:1", SECRET))
        .build();
    let BuildError::SecondLevel(error) = built.expect_err("refused") else {
        panic!("not the fleet level's error")
    };
    assert_eq!(error.downcast_ref(), Some(&FleetError::OutsideRuntime));
}

/// `rediss://` goes through rustls (no OpenSSL); a server that does not speak TLS (here the
/// mock's HTTP port) is Redis trouble like any other: requests are verified with Amazon and a
/// logout reports that it did not reach the fleet. (A real TLS Redis, with a private CA and
/// mutual TLS, is in `tls.rs`.)
#[tokio::test]
async fn a_rediss_url_uses_rustls_and_a_failed_handshake_is_redis_trouble() {
    let mock = MockAmazon::start().await.unwrap();
    let layer =
        build_layer(builder(&mock).second_level(Fleet::new(format!("rediss://{}", mock.addr()), SECRET)))
            .unwrap();
    serves_via_amazon_but_cannot_revoke(&mock, &layer, "fleet-rediss").await;
    assert!(fleet_stats(&layer).errors > 0);
}

/// The fleet generation: an instance that missed an `invalidate` (its Redis user may not
/// subscribe, so no message reaches it) and was verifying the token when it happened cannot
/// write its older verdict back to Redis, where every other instance would read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verification_older_than_an_invalidation_is_not_written_back() {
    let Some(redis) = redis("fleet::a_verification_older_than_an_invalidation_is_not_written_back") else {
        return;
    };
    let mut admin = connection(&redis).await;
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "deaf",
            "on",
            ">deafpass",
            "~*",
            "resetchannels",
            "+@all",
        ])
        .query_async(&mut admin)
        .await
        .unwrap();
    let mock = MockAmazon::start().await.unwrap();
    let deaf_url = format!("redis://deaf:deafpass@127.0.0.1:{}", redis.port);
    let deaf_layer = build_layer(
        builder(&mock).second_level(Fleet::new(deaf_url, SECRET).command_timeout(Duration::from_secs(2))),
    )
    .unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|user: AmazonUser| async move { user.user_id().to_owned() }),
        )
        .layer(deaf_layer.clone());
    let deaf_base = serve_base_url(app).await.unwrap();
    let others = instances(2, &mock, &redis).await;

    let t = token("fleet-generation");
    mock.register(
        &t,
        MockReply::user(MockUser::new("amzn1.account.OLD")).delayed(Duration::from_millis(500)),
    );
    let request = client().get(format!("{deaf_base}/me")).bearer_auth(&t);
    let under_way = tokio::spawn(async move { request.send().await.unwrap().status().as_u16() });
    let (m, tt) = (&mock, &t);
    within_patience("the deaf instance's verification under way", move || async move {
        m.calls_for(tt).tokeninfo == 1
    })
    .await;
    // Amazon changes its mind; another instance is told and invalidates fleet-wide.
    mock.register(&t, MockReply::invalid_token());
    others[0]
        .layer
        .cache()
        .invalidate(&AccessToken::new(t.clone()))
        .await
        .unwrap();
    assert_eq!(
        under_way.await.unwrap(),
        200,
        "the request under way keeps its verdict"
    );
    assert!(
        !fleet_stats(&deaf_layer).subscribed,
        "the deaf instance subscribed after all"
    );
    // Its fill is written in the background: give it time to land (or, rightly, not).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        others[1].status(&t).await,
        401,
        "a verdict older than the invalidation was written back to Redis and served"
    );
    assert_eq!(mock.calls_for(&t).tokeninfo, 2);
}

/// The verdict keys in Redis now.
/// The name of the one verdict in Redis, once it is there (written in the background).
async fn the_verdict_key(conn: &mut redis::aio::MultiplexedConnection) -> String {
    let verdicts = |c: &mut redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        async move { verdict_keys(&mut c).await }
    };
    one(within_key(conn, &HashSet::new(), 1, &verdicts).await)
}

async fn verdict_keys(conn: &mut redis::aio::MultiplexedConnection) -> HashSet<String> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("taa:v:*").query_async(conn).await.unwrap();
    keys.into_iter().collect()
}

/// A probe's replay: a token's sealed verdict copied while it was valid and written back under
/// its own name after `invalidate` (Amazon now refusing the token) must not let the token in
/// on an instance that misses: the copy is from before the invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sealed_verdict_written_back_after_an_invalidation_is_a_miss() {
    let Some(redis) = redis("fleet::a_sealed_verdict_written_back_after_an_invalidation_is_a_miss") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let a = Instance::new(fleet_builder(&mock, &redis)).await;
    let mut conn = connection(&redis).await;
    let t = token("fleet-replayed");
    mock.register(&t, MockUser::new("amzn1.account.REPLAYED"));
    assert_eq!(a.status(&t).await, 200);
    let name = the_verdict_key(&mut conn).await;
    let copy: Vec<u8> = redis::cmd("GET").arg(&name).query_async(&mut conn).await.unwrap();

    mock.register(&t, MockReply::invalid_token());
    a.layer
        .cache()
        .invalidate(&AccessToken::new(t.clone()))
        .await
        .unwrap();
    assert!(
        verdict_keys(&mut conn).await.is_empty(),
        "invalidate left the verdict"
    );
    let _: () = redis::cmd("SET")
        .arg(&name)
        .arg(&copy)
        .query_async(&mut conn)
        .await
        .unwrap();

    let fresh = Instance::new(fleet_builder(&mock, &redis)).await;
    assert_eq!(
        fresh.status(&t).await,
        401,
        "a verdict from before the invalidation, written back, let the token in"
    );
    assert_eq!(mock.calls_for(&t).tokeninfo, 2, "Amazon was not asked");
    assert_eq!(fleet_stats(&fresh.layer).hits, 0);

    // A writer who also puts the generation back as it was (deletes the bumped one) makes the
    // copy open again in Redis; an instance that made (or heard) the invalidation still
    // refuses it, by when it was verified.
    let generations: Vec<String> = redis::cmd("KEYS")
        .arg("taa:g:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(generations.len(), 1, "{generations:?}");
    let _: () = redis::cmd("DEL")
        .arg(&generations)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&name)
        .arg(&copy)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        a.status(&t).await,
        401,
        "the invalidating instance took a copy from before its invalidation"
    );
    assert_eq!(mock.calls_for(&t).tokeninfo, 3);
}

/// A probe's squat: the fleet lock of a token's verification must not be nameable from what
/// Redis shows of its verdict, or a writer who sets it makes every miss of the token wait the
/// whole `lock_wait`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_named_after_the_verdict_holds_up_no_one() {
    let Some(redis) = redis("fleet::a_lock_named_after_the_verdict_holds_up_no_one") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let a = Instance::new(fleet_builder(&mock, &redis)).await;
    let mut conn = connection(&redis).await;
    let t = token("fleet-squatted");
    mock.register(&t, MockUser::new("amzn1.account.SQUATTED"));
    assert_eq!(a.status(&t).await, 200);
    let name = the_verdict_key(&mut conn).await;
    // Every name the writer can make of the verdict's: its kind letter swapped for another.
    let mac = name.strip_prefix("taa:v:").unwrap();
    for kind in ["l", "lock", "k"] {
        let _: () = redis::cmd("SET")
            .arg(format!("taa:{kind}:{mac}"))
            .arg("squatter")
            .arg("PX")
            .arg(60_000)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("DEL").arg(&name).query_async(&mut conn).await.unwrap();

    let fresh = Instance::new(fleet_builder(&mock, &redis)).await;
    assert_eq!(fresh.status(&t).await, 200);
    assert_eq!(
        fleet_stats(&fresh.layer).lock_waits,
        0,
        "a miss waited for a lock the writer squatted"
    );
    assert_eq!(mock.calls_for(&t).tokeninfo, 2);
}

/// Case: a subscription that dies silently. A reaches Redis through a relay; the relay starts
/// swallowing everything on the connections open at that moment (the subscriber's and the
/// command connection), without closing anything, as a NAT that lost its state would; new
/// connections pass, as through that NAT afterwards. A logout on B must then reach the token
/// hot in A's local cache: A hears nothing for its `liveness` bound, flushes, replaces its
/// command connection, subscribes again, and reads the tombstone. Without the liveness check A
/// would accept the token for `max_ttl` (5 min); without the new command connection its reads
/// would time out and the token would go to Amazon, which still calls it valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_that_dies_silently_is_noticed_and_a_logout_holds() {
    let Some(redis) = redis("fleet::a_subscription_that_dies_silently_is_noticed_and_a_logout_holds") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let relay = Relay::start(redis.addr()).await.unwrap();
    let through_relay = Fleet::new(format!("redis://{}", relay.addr()), SECRET)
        .backoff(Duration::from_secs(1))
        .command_timeout(Duration::from_secs(2))
        .liveness(Duration::from_secs(3));
    let a = Instance::new(builder(&mock).second_level(through_relay)).await;
    let b = Instance::new(fleet_builder(&mock, &redis)).await;

    let hot = token("fleet-silent");
    mock.register(&hot, MockUser::new("amzn1.account.SILENT"));
    assert_eq!(a.status(&hot).await, 200);
    assert_eq!(a.status(&hot).await, 200, "hot in A's local cache");
    assert_eq!(b.status(&hot).await, 200);
    let before = fleet_stats(&a.layer);
    let connections = relay.accepted();

    relay.swallow();
    assert_eq!(b.logout(&hot).await, 204);
    let (a, hot) = (&a, &hot);
    let took = within_patience("A refuses the token logged out on B", move || async move {
        a.status(hot).await == 401
    })
    .await;
    let after = fleet_stats(&a.layer);
    let _ = writeln!(
        std::io::stderr(),
        "fleet: silent subscription: refused after {took:?}; {after:?}"
    );
    assert_eq!(
        after.invalidations_received, before.invalidations_received,
        "the logout's message crossed a swallowing relay"
    );
    assert!(after.liveness_failures > before.liveness_failures);
    assert!(relay.accepted() > connections, "A never connected again");
    assert_eq!(
        mock.calls_for(hot).tokeninfo,
        1,
        "A asked Amazon instead of reading the tombstone"
    );
    within_patience("A subscribed again", move || async move {
        fleet_stats(&a.layer).subscribed
    })
    .await;
}

/// `Fleet::liveness` is checked at build (1 s to 5 min) and shown in `Debug`.
#[tokio::test]
async fn the_liveness_bound_is_checked_at_build() {
    let mock = MockAmazon::start().await.unwrap();
    for (liveness, rule) in [
        (Duration::from_millis(999), "at least 1 s"),
        (Duration::ZERO, "at least 1 s"),
        (Duration::from_secs(301), "at most 5 min"),
    ] {
        let built = build_layer(
            builder(&mock).second_level(Fleet::new("redis://127.0.0.1:1", SECRET).liveness(liveness)),
        );
        assert_eq!(
            refusal(built),
            Some(FleetError::Setting {
                setting: "liveness",
                rule
            }),
            "{liveness:?}"
        );
    }
    for liveness in [Duration::from_secs(1), Duration::from_secs(300)] {
        let fleet = Fleet::new("redis://127.0.0.1:1", SECRET).liveness(liveness);
        assert!(format!("{fleet:?}").contains(&format!("liveness: {liveness:?}")));
        build_layer(builder(&mock).second_level(fleet)).expect("accepted");
    }
}

/// The next message on the fleet's channel (`taa:events`), as raw bytes.
async fn next_raw(messages: &mut redis::aio::PubSubStream) -> Vec<u8> {
    use futures_util::StreamExt as _;
    let message = tokio::time::timeout(PATIENCE, messages.next())
        .await
        .expect("a message on the channel")
        .expect("the channel open");
    message.get_payload_bytes().to_vec()
}

/// Case: a forget captured on the channel and published again is dropped (counted) and has no
/// effect: A, having verified the token again, keeps it in its local cache and does not ask
/// Amazon (nor Redis, emptied meanwhile so that a local miss would reach Amazon). A revoke
/// published again still applies: a revocation is never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forget_published_again_is_dropped_and_a_revoke_still_applies() {
    let Some(redis) = redis("fleet::a_forget_published_again_is_dropped_and_a_revoke_still_applies") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let fleet = instances(2, &mock, &redis).await;
    let (a, b) = (&fleet[0], &fleet[1]);
    let mut listener = redis::Client::open(url(&redis))
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    listener.subscribe("taa:events").await.unwrap();
    let mut messages = listener.into_on_message();
    let mut admin = connection(&redis).await;

    let replayed = token("fleet-replayed");
    mock.register(&replayed, MockUser::new("amzn1.account.REPLAYED"));
    assert_eq!(a.status(&replayed).await, 200);
    let before = fleet_stats(&a.layer);
    b.layer
        .cache()
        .invalidate(&AccessToken::new(replayed.clone()))
        .await
        .unwrap();
    let forget = next_raw(&mut messages).await;
    within_patience("A hears B's forget", || async {
        fleet_stats(&a.layer).invalidations_received > before.invalidations_received
    })
    .await;
    assert_eq!(a.status(&replayed).await, 200, "verified again");
    assert_eq!(a.status(&replayed).await, 200, "hot in A's local cache");
    assert_eq!(mock.calls_for(&replayed).tokeninfo, 2);
    let _: () = redis::cmd("FLUSHDB").query_async(&mut admin).await.unwrap();

    let before = fleet_stats(&a.layer);
    let _: i64 = redis::cmd("PUBLISH")
        .arg("taa:events")
        .arg(&forget)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(next_raw(&mut messages).await, forget, "the test's own copy");
    within_patience("A drops the forget published again", || async {
        fleet_stats(&a.layer).messages_dropped > before.messages_dropped
    })
    .await;
    assert_eq!(a.status(&replayed).await, 200);
    assert_eq!(
        mock.calls_for(&replayed).tokeninfo,
        2,
        "a forget published again made A verify the token again"
    );
    let after = fleet_stats(&a.layer);
    assert_eq!(after.invalidations_received, before.invalidations_received);
    let _ = writeln!(std::io::stderr(), "fleet: replayed forget: {after:?}");

    // A revoke published again applies (it is idempotent): counted as received, not dropped.
    let revoked = token("fleet-revoked-again");
    mock.register(&revoked, MockUser::new("amzn1.account.REVOKED"));
    assert_eq!(a.status(&revoked).await, 200);
    assert_eq!(b.logout(&revoked).await, 204);
    let revoke = next_raw(&mut messages).await;
    let revoked = &revoked;
    within_patience("A refuses the token revoked on B", move || async move {
        a.status(revoked).await == 401
    })
    .await;
    let before = fleet_stats(&a.layer);
    let _: i64 = redis::cmd("PUBLISH")
        .arg("taa:events")
        .arg(&revoke)
        .query_async(&mut admin)
        .await
        .unwrap();
    within_patience("A applies the revoke published again", || async {
        fleet_stats(&a.layer).invalidations_received > before.invalidations_received
    })
    .await;
    assert_eq!(fleet_stats(&a.layer).messages_dropped, before.messages_dropped);
    assert_eq!(a.status(revoked).await, 401);
}

/// A second-level hit costs one Redis command (the read script), and no call to Amazon: what
/// the bench's `l2_hit` measures against a bare `GET` is that one round trip plus the layer's
/// own miss path, not extra commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_level_hit_is_one_redis_command() {
    let Some(redis) = redis("fleet::a_second_level_hit_is_one_redis_command") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let fleet = instances(2, &mock, &redis).await;
    let t = token("fleet-l2-hit");
    mock.register(&t, MockUser::new("amzn1.account.L2HIT"));
    assert_eq!(fleet[0].status(&t).await, 200);
    let mut conn = connection(&redis).await;
    // The first instance's write-back runs in the background: counted before the reset.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let verdicts: Vec<String> = redis::cmd("KEYS")
            .arg("taa:*v:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        if !verdicts.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the verdict never reached Redis");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..20 {
        fleet[1].layer.cache().invalidate_all();
        assert_eq!(fleet[1].status(&t).await, 200);
    }
    // Commands a script runs are counted too (its `GET`s and `PTTL`s): the round trips are the
    // scripts run, and the commands sent on their own.
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let scripts = scripts_run(&mut conn).await;
    assert_eq!(scripts, 20, "one script per second-level hit:\n{info}");
    for alone in [
        "cmdstat_set:",
        "cmdstat_del:",
        "cmdstat_publish:",
        "cmdstat_wait:",
    ] {
        let calls = info
            .lines()
            .find(|line| line.starts_with(alone))
            .map_or(0, |line| calls(line, "calls"));
        assert!(calls <= 1, "{alone} {calls} times for 20 hits:\n{info}");
    }
    assert_eq!(
        mock.calls_for(&t).tokeninfo,
        1,
        "Amazon asked once, by the first instance"
    );
}
