//! What the Redis level's test binaries share: the fleet secret, an instance (a layer with its
//! own local cache, `/me` and `POST /logout` behind it, served on 127.0.0.1), and the count of
//! scripts Redis ran. Each test binary uses a part.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use tower_amazon_auth::{AccessToken, AmazonAuthLayer, AmazonUser, CacheError, IdentityCacheBuilder};
use tower_amazon_auth_mock::{MockAmazon, MockCalls, MockReply, MockUser};
use tower_amazon_auth_redis::FleetStats;
use tower_amazon_auth_test_support::external::{redis_url, External};
use tower_amazon_auth_test_support::fixtures::{build_layer, client, serve_base_url, token, PATIENCE};

/// The fleet secret of these tests (32 bytes).
pub(crate) const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// One instance: a layer with its own local cache, `/me` and `POST /logout` behind it.
pub(crate) struct Instance {
    pub(crate) layer: AmazonAuthLayer,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

impl Instance {
    /// An instance whose subscriber is connected (its first subscription flushes the local
    /// cache, which would make a test's count of upstream calls depend on timing).
    pub(crate) async fn new(builder: IdentityCacheBuilder) -> Self {
        let instance = Self::unsubscribed(builder).await;
        instance.wait_subscribed().await;
        instance
    }

    /// An instance, served at once (for one that may never reach Redis).
    pub(crate) async fn unsubscribed(builder: IdentityCacheBuilder) -> Self {
        let layer = build_layer(builder).unwrap();
        let app = Router::new()
            .route(
                "/me",
                get(|user: AmazonUser| async move { user.user_id().to_owned() }),
            )
            .route(
                "/logout",
                post(|user: AmazonUser| async move {
                    match user.revoke().await {
                        Ok(()) => StatusCode::NO_CONTENT,
                        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                    }
                }),
            )
            .layer(layer.clone());
        let base = serve_base_url(app).await.unwrap();
        Self {
            layer,
            base,
            http: client(),
        }
    }

    /// Waits until the subscriber is connected.
    pub(crate) async fn wait_subscribed(&self) {
        let deadline = Instant::now() + PATIENCE;
        while !self.stats().subscribed {
            assert!(Instant::now() < deadline, "the subscriber never connected");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The fleet level's counters.
    pub(crate) fn stats(&self) -> FleetStats {
        FleetStats::of(self.layer.cache()).expect("a cache with the fleet level")
    }

    /// `GET /me` with `token`: the status and the body (`0` when the request failed).
    pub(crate) async fn me(&self, token: &str) -> (u16, String) {
        match self
            .http
            .get(format!("{}/me", self.base))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(_) => (0, String::new()),
        }
    }

    pub(crate) async fn status(&self, token: &str) -> u16 {
        self.me(token).await.0
    }

    /// `POST /logout` with `token` (the handler's `AmazonUser::revoke`).
    pub(crate) async fn logout(&self, token: &str) -> u16 {
        self.http
            .post(format!("{}/logout", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The cache's own `revoke` of `token`.
    pub(crate) async fn revoke(&self, token: &str) -> Result<(), CacheError> {
        self.layer
            .cache()
            .revoke(&AccessToken::new(token.to_owned()))
            .await
    }
}

/// A connection of the test's own, to look at and tamper with what is in Redis.
pub(crate) async fn connection(redis: &External) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url(redis))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The scripts Redis ran since its statistics were last reset (an `EVALSHA` refused with
/// `NOSCRIPT`, before the client sends the script, is not one). The commands a script runs
/// are counted by Redis too, under their own names: the scripts are the round trips.
pub(crate) async fn scripts_run(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
        .map(|line| calls(line, "calls") - calls(line, "failed_calls"))
        .sum()
}

/// A count out of a line of `INFO commandstats` (`cmdstat_get:calls=3,...,failed_calls=0`).
pub(crate) fn calls(line: &str, name: &str) -> u64 {
    line.split(&format!("{name}="))
        .nth(1)
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// A token used on each of `fleet` in turn costs one verification (the others are answered by
/// Redis), and so do 200 simultaneous first requests spread over them (each request's first
/// verification waits for another instance's, or takes the fleet lock). Tokens are named after
/// `prefix`. Answers what the burst cost at Amazon.
pub(crate) async fn one_verification_per_fleet(
    mock: &MockAmazon,
    fleet: &[Instance],
    prefix: &str,
) -> MockCalls {
    let one = token(&format!("{prefix}-turns"));
    mock.register(&one, MockUser::new("amzn1.account.TURNS"));
    for instance in fleet {
        assert_eq!(instance.me(&one).await, (200, "amzn1.account.TURNS".to_owned()));
    }
    let calls = mock.calls_for(&one);
    assert_eq!(
        (calls.tokeninfo, calls.profile),
        (1, 1),
        "one verification per fleet"
    );
    let hits: u64 = fleet.iter().map(|i| i.stats().hits).sum();
    assert_eq!(hits, fleet.len() as u64 - 1, "the others were answered by Redis");

    let burst = token(&format!("{prefix}-burst"));
    mock.register(
        &burst,
        MockReply::user(MockUser::new("amzn1.account.BURST")).delayed(Duration::from_millis(200)),
    );
    let requests: Vec<_> = (0..200)
        .map(|n| {
            let instance = &fleet[n % fleet.len()];
            let request = instance
                .http
                .get(format!("{}/me", instance.base))
                .bearer_auth(&burst);
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    let calls = mock.calls_for(&burst);
    assert!(
        calls.tokeninfo <= 1 && calls.profile <= 1,
        "200 simultaneous first requests over {} instances cost {calls:?}",
        fleet.len()
    );
    calls
}
