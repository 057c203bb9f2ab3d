//! The fleet level on a real local Redis Cluster (three primaries with one replica each,
//! started by the tests): one verification per token across four instances, a logout on one
//! refused by all, and a failover of the primary that owns a token's slot during traffic, by
//! `CLUSTER FAILOVER` and by `kill -9`: no wrong answer, and a logout made after it holds
//! everywhere; a subscription that dies silently is noticed and moves to another seed; and a
//! cluster speaking TLS only.
//! Settings refused at build need no cluster.
//!
//! Where something must propagate, the tests poll for it (up to 10 s); no assertion is about
//! time.

mod common;

use common::{one_verification_per_fleet, Instance, SECRET};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_amazon_auth::{AccessToken, BuildError};
use tower_amazon_auth_mock::{MockAmazon, MockUser};
use tower_amazon_auth_redis::{Fleet, FleetError};

use tower_amazon_auth_test_support::cluster::{redis_cluster, redis_cluster_tls, Cluster};
use tower_amazon_auth_test_support::external::RedisTls;
use tower_amazon_auth_test_support::fixtures::{builder, token, within_patience};
use tower_amazon_auth_test_support::relay::Relay;

/// The settings of an instance on `cluster`: every node a seed. The command timeout is
/// generous, as in the single-endpoint tests (two cores shared with the whole suite).
fn settings(cluster: &Cluster, timeout: Duration) -> Fleet {
    Fleet::cluster(cluster.urls(), SECRET)
        .backoff(Duration::from_secs(1))
        .command_timeout(timeout)
}

async fn instances(n: usize, mock: &MockAmazon, cluster: &Cluster, timeout: Duration) -> Vec<Instance> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.push(Instance::new(builder(mock).second_level(settings(cluster, timeout))).await);
    }
    all
}

/// A cluster, started off the runtime's worker (it blocks while the cluster forms).
fn cluster(test: &str) -> Option<Cluster> {
    tokio::task::block_in_place(|| redis_cluster(test))
}

/// Four instances: a token used on each in turn costs one verification, and so do 200
/// simultaneous first requests spread over the four; then a logout on one is refused by all,
/// with the token hot in their local caches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_four_instances_verify_once_and_a_logout_holds_everywhere() {
    let started = Instant::now();
    let Some(cluster) = cluster("cluster::four_instances_verify_once_and_a_logout_holds_everywhere") else {
        return;
    };
    let formed = started.elapsed();
    let mock = MockAmazon::start().await.unwrap();
    let fleet = instances(4, &mock, &cluster, Duration::from_secs(2)).await;

    one_verification_per_fleet(&mock, &fleet, "cluster").await;
    // The two tokens it used (named after its prefix).
    let (one, burst) = (token("cluster-turns"), token("cluster-burst"));

    // Every key of one token in one slot: the verdicts of the two tokens are where their
    // tags say, and each script ran (no CROSSSLOT error counted).
    let errors: u64 = fleet.iter().map(|i| i.stats().errors).sum();
    assert_eq!(errors, 0, "a Redis command failed on the cluster");

    // An `invalidate` on one reaches each other once (a replica does not publish it again).
    let received: Vec<u64> = fleet.iter().map(|i| i.stats().invalidations_received).collect();
    fleet[0]
        .layer
        .cache()
        .invalidate(&AccessToken::new(burst.clone()))
        .await
        .unwrap();
    for (instance, before) in fleet[1..].iter().zip(&received[1..]) {
        within_patience("an invalidation received", move || async move {
            instance.stats().invalidations_received > *before
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (instance, before) in fleet[1..].iter().zip(&received[1..]) {
        let stats = instance.stats();
        assert_eq!(
            (stats.invalidations_received, stats.messages_dropped),
            (before + 1, 0),
            "one message, no copy"
        );
    }

    for instance in &fleet {
        assert_eq!(instance.status(&one).await, 200, "hot everywhere");
    }
    assert_eq!(fleet[0].logout(&one).await, 204);
    let one = &one;
    for instance in &fleet {
        within_patience(
            "a logout on one instance refused by every other",
            move || async move { instance.status(one).await == 401 },
        )
        .await;
    }
    // A fresh instance (nothing local) reads the tombstone in the cluster.
    let fresh = Instance::new(builder(&mock).second_level(settings(&cluster, Duration::from_secs(2)))).await;
    assert_eq!(fresh.status(one).await, 401);
    assert_eq!(mock.calls_for(one).tokeninfo, 1, "Amazon was asked again");
    let _ = writeln!(
        std::io::stderr(),
        "cluster: formed in {formed:?}, test took {:?}",
        started.elapsed()
    );
}

/// Liveness on a cluster: A subscribes through its first seed, a relay the test then makes
/// swallow everything (a NAT that lost its state); A notices within its `liveness` bound,
/// flushes, and subscribes through the next seed; a logout made on B meanwhile is refused by A
/// with the token hot in its local cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_a_subscription_that_dies_silently_moves_to_another_seed() {
    let Some(cluster) = cluster("cluster::a_subscription_that_dies_silently_moves_to_another_seed") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let urls = cluster.urls();
    let first: std::net::SocketAddr = urls[0].trim_start_matches("redis://").parse().unwrap();
    let relay = Relay::start(first).await.unwrap();
    let mut seeds = vec![format!("redis://{}", relay.addr())];
    seeds.extend(urls[1..].iter().cloned());
    let through_relay = Fleet::cluster(seeds, SECRET)
        .backoff(Duration::from_secs(1))
        .command_timeout(Duration::from_secs(2))
        .liveness(Duration::from_secs(2));
    let a = Instance::new(builder(&mock).second_level(through_relay)).await;
    let b = Instance::new(builder(&mock).second_level(settings(&cluster, Duration::from_secs(2)))).await;
    assert!(relay.accepted() > 0, "A's subscriber went through its first seed");

    let hot = token("cluster-silent");
    mock.register(&hot, MockUser::new("amzn1.account.SILENT"));
    assert_eq!(a.status(&hot).await, 200);
    assert_eq!(a.status(&hot).await, 200, "hot in A's local cache");
    assert_eq!(b.status(&hot).await, 200);
    let before = a.stats();

    relay.swallow();
    assert_eq!(b.logout(&hot).await, 204);
    let (a, hot) = (&a, &hot);
    let took = within_patience("A refuses the token logged out on B", move || async move {
        a.status(hot).await == 401
    })
    .await;
    let after = a.stats();
    let _ = writeln!(
        std::io::stderr(),
        "cluster: silent subscription: refused after {took:?}; {after:?}"
    );
    assert!(after.liveness_failures > before.liveness_failures);
    assert_eq!(
        mock.calls_for(hot).tokeninfo,
        1,
        "A asked Amazon instead of reading the tombstone"
    );
    within_patience("A subscribed again, through another seed", move || async move {
        a.stats().subscribed
    })
    .await;
}

/// TLS on a cluster: every node speaks TLS only (the bus and replication too) with a
/// certificate from a private CA naming 127.0.0.1, the address the nodes announce. Two
/// instances given `rediss://` seeds and the CA share a verdict and a logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_over_tls_instances_share_verdicts_and_logouts() {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tower-amazon-auth cluster test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (ca_pem, cert_pem, key_pem) = (ca.pem(), server.pem(), key.serialize_pem());
    let tls = RedisTls {
        ca_pem: &ca_pem,
        cert_pem: &cert_pem,
        key_pem: &key_pem,
        auth_clients: false,
    };
    let Some(cluster) = tokio::task::block_in_place(|| {
        redis_cluster_tls(
            "cluster::on_a_cluster_over_tls_instances_share_verdicts_and_logouts",
            &tls,
        )
    }) else {
        return;
    };
    assert!(cluster.urls()[0].starts_with("rediss://"));
    let mock = MockAmazon::start().await.unwrap();
    let mut fleet = Vec::new();
    for _ in 0..2 {
        let settings = settings(&cluster, Duration::from_secs(2)).root_certificates(&ca_pem);
        fleet.push(Instance::new(builder(&mock).second_level(settings)).await);
    }
    let one = token("cluster-tls");
    mock.register(&one, MockUser::new("amzn1.account.TLS"));
    assert_eq!(fleet[0].status(&one).await, 200);
    assert_eq!(fleet[1].status(&one).await, 200);
    assert_eq!(mock.calls_for(&one).tokeninfo, 1, "one verification over TLS");
    assert_eq!(fleet[1].stats().hits, 1, "answered from the cluster");
    assert_eq!(fleet[0].logout(&one).await, 204);
    let (b, one) = (&fleet[1], &one);
    within_patience(
        "a logout over TLS refused on the other instance",
        move || async move { b.status(one).await == 401 },
    )
    .await;
    assert_eq!(fleet.iter().map(|i| i.stats().errors).sum::<u64>(), 0);
}

/// How a failover is made.
#[derive(Clone, Copy, Debug)]
enum Failover {
    /// `CLUSTER FAILOVER` on the replica.
    Manual,
    /// `kill -9` of the primary.
    Kill,
}

/// `CLUSTER FAILOVER` of the primary that owns a token's slot during traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manual_failover_during_traffic_gives_no_wrong_answer() {
    failover_during_traffic("cluster::a_manual_failover_during_traffic", Failover::Manual).await;
}

/// `kill -9` of the primary that owns a token's slot during traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_primary_during_traffic_gives_no_wrong_answer() {
    failover_during_traffic("cluster::a_killed_primary_during_traffic", Failover::Kill).await;
}

/// A token is revoked before the failover and another is in use: during the failover of the
/// primary that owns the revoked token's slot, the revoked one is never accepted and the other
/// never refused nor answered with an error (a request may go to Amazon); after it, the
/// tombstone is still in the cluster (`WAIT` held it until the replica had it), and a logout
/// made then holds everywhere.
async fn failover_during_traffic(test: &str, how: Failover) {
    let started = Instant::now();
    let Some(mut cluster) = cluster(test) else {
        return;
    };
    let mock = Arc::new(MockAmazon::start().await.unwrap());
    let timeout = Duration::from_millis(500);
    let fleet = Arc::new(instances(3, &mock, &cluster, timeout).await);

    let revoked = token("cluster-failover-revoked");
    mock.register(&revoked, MockUser::new("amzn1.account.REVOKED"));
    assert_eq!(fleet[0].status(&revoked).await, 200);
    let primary = cluster
        .primary_holding("taa:{*}v:*")
        .expect("the verdict is on a primary");
    let replica = cluster.replica_of(primary).expect("the primary has a replica");
    assert_eq!(fleet[0].logout(&revoked).await, 204);
    for instance in fleet.iter() {
        let revoked = &revoked;
        within_patience("the logout refused everywhere", move || async move {
            instance.status(revoked).await == 401
        })
        .await;
    }
    // Tokens whose keys are on the same primary, found by a probe instance (their verdicts
    // land there), so that the traffic's reads go to the primary that fails.
    let probe = Instance::new(builder(&mock).second_level(settings(&cluster, timeout))).await;
    let verdicts_on = |port| {
        cluster
            .cli(port, &["--scan", "--pattern", "taa:{*}v:*"])
            .lines()
            .count()
    };
    let mut live = Vec::new();
    for n in 0..60 {
        let candidate = token(&format!("cluster-failover-live-{n}"));
        mock.register(&candidate, MockUser::new("amzn1.account.LIVE"));
        let before = verdicts_on(primary);
        assert_eq!(probe.status(&candidate).await, 200);
        if verdicts_on(primary) > before {
            live.push(candidate);
        }
        if live.len() == 4 {
            break;
        }
    }
    assert!(!live.is_empty(), "no token of 60 on the primary");
    drop(probe);

    // Each round, on each instance: the revoked token (refused: its local tombstone), a token
    // of the failing primary after the local verdicts were dropped (so Redis is read there),
    // and a token never seen (a read, the fleet lock and a fill, in any slot).
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (fleet, stop, revoked, mock) = (fleet.clone(), stop.clone(), revoked.clone(), mock.clone());
        tokio::spawn(async move {
            let (mut answers, mut wrong) = (0, Vec::new());
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                for (n, instance) in fleet.iter().enumerate() {
                    instance.layer.cache().invalidate_all();
                    let fresh = token(&format!("cluster-traffic-{round}-{n}"));
                    mock.register(&fresh, MockUser::new("amzn1.account.FRESH"));
                    let statuses = [
                        (instance.status(&revoked).await, 401, "revoked"),
                        (instance.status(&live[round % live.len()]).await, 200, "live"),
                        (instance.status(&fresh).await, 200, "new"),
                    ];
                    for (got, want, which) in statuses {
                        answers += 1;
                        if got != want {
                            wrong.push(format!(
                                "round {round}, instance {n}: the {which} token got {got}"
                            ));
                        }
                    }
                }
            }
            (answers, wrong)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let failing = Instant::now();
    tokio::task::block_in_place(|| match how {
        Failover::Manual => cluster.failover(replica),
        Failover::Kill => cluster.kill(primary, Some(replica)),
    });
    let failed_over = failing.elapsed();
    // Traffic goes on a little on the settled cluster.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (answers, wrong) = traffic.await.unwrap();
    assert!(wrong.is_empty(), "{how:?}: wrong answers: {wrong:#?}");

    // The tombstone survived: an instance with nothing local refuses the token.
    let fresh = Instance::new(builder(&mock).second_level(settings(&cluster, timeout))).await;
    let (revoked, fresh) = (&revoked, &fresh);
    within_patience("the tombstone read after the failover", move || async move {
        fresh.status(revoked).await == 401
    })
    .await;
    assert_eq!(
        mock.calls_for(revoked).tokeninfo,
        1,
        "{how:?}: the tombstone was lost"
    );

    // A logout made after the failover holds everywhere, the token hot in every local cache.
    let after = token("cluster-after-failover");
    mock.register(&after, MockUser::new("amzn1.account.AFTER"));
    for instance in fleet.iter() {
        assert_eq!(instance.status(&after).await, 200);
    }
    // 503 would say Redis could not be written (then retried in the background).
    let logout = fleet[1].logout(&after).await;
    let after = &after;
    for instance in fleet.iter().chain([fresh]) {
        within_patience(
            "a logout after the failover refused everywhere",
            move || async move { instance.status(after).await == 401 },
        )
        .await;
    }
    let errors: Vec<u64> = fleet.iter().map(|i| i.stats().errors).collect();
    let _ = writeln!(
        std::io::stderr(),
        "cluster {how:?}: failover settled in {failed_over:?}, {answers} answers during it, none \
         wrong; Redis errors per instance {errors:?}; logout after it answered {logout}; test took {:?}",
        started.elapsed()
    );
}

/// The fleet level's error inside a refused build.
fn refusal(fleet: Fleet) -> FleetError {
    let built = tokio_runtime().block_on(async {
        tower_amazon_auth::IdentityCache::builder()
            .client_id("amzn1.application-oa2-client.0123456789abcdef")
            .second_level(fleet)
            .build()
    });
    match built {
        Err(BuildError::SecondLevel(error)) => error.downcast_ref::<FleetError>().cloned().unwrap(),
        other => panic!("not refused by the fleet level: {other:?}"),
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Cluster settings are checked at build, without a cluster: seeds, a prefix with a brace
/// (it would change the hash tag), TLS settings with seeds that are not `rediss://`.
#[test]
fn cluster_settings_are_checked_at_build() {
    let seeds = ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"];
    assert_eq!(
        refusal(Fleet::cluster(Vec::<String>::new(), SECRET)),
        FleetError::ClusterSeeds
    );
    assert_eq!(
        refusal(Fleet::cluster(
            ["redis://127.0.0.1:7000", "rediss://127.0.0.1:7001"],
            SECRET
        )),
        FleetError::ClusterSeeds
    );
    assert_eq!(
        refusal(Fleet::cluster(["redis://127.0.0.1:7000/3"], SECRET)),
        FleetError::ClusterSeeds
    );
    for prefix in ["app{1}:", "app{", "}"] {
        assert_eq!(
            refusal(Fleet::cluster(seeds, SECRET).key_prefix(prefix)),
            FleetError::KeyPrefix
        );
        assert_eq!(
            refusal(Fleet::new(seeds[0], SECRET).key_prefix(prefix)),
            FleetError::KeyPrefix
        );
    }
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    assert_eq!(
        refusal(Fleet::cluster(seeds, SECRET).root_certificates(ca.cert.pem())),
        FleetError::TlsWithoutRediss
    );
    // With rediss:// seeds, the TLS settings are taken (no connection is opened at build).
    let built = tokio_runtime().block_on(async {
        tower_amazon_auth::IdentityCache::builder()
            .client_id("amzn1.application-oa2-client.0123456789abcdef")
            .second_level(
                Fleet::cluster(["rediss://127.0.0.1:7000", "rediss://127.0.0.1:7001"], SECRET)
                    .root_certificates(ca.cert.pem()),
            )
            .build()
            .map(drop)
    });
    assert!(built.is_ok(), "{built:?}");
}
