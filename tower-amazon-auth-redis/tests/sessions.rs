//! Website sign-in's sessions on the fleet level, against a real `redis-server` the tests
//! start: a login started on one instance finishes on another, a session signed in on one is
//! served by all, a logout on one ends it on all (with the session hot in their copies), one
//! refresh serves the whole fleet, and Redis holds nothing of a session in clear.
//!
//! Each instance is a site of its own (its own caches, served on its own 127.0.0.1 port), all
//! with one public origin, as behind a load balancer: a test sends each request to the instance
//! it chooses. Where something must propagate, the tests poll for it; no assertion is about
//! time.

mod common;

use common::{connection, scripts_run, SECRET};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use futures_util::future::join_all;
use tower_amazon_auth::sign_in::{SignIn, SignInBuilder};
use tower_amazon_auth::{AmazonAuthLayer, AmazonUser, IdentityCache};
use tower_amazon_auth_mock::{MockAmazon, MockReply, MockUser, MOCK_CLIENT_ID, MOCK_CLIENT_SECRET};
use tower_amazon_auth_redis::Fleet;
use tower_amazon_auth_test_support::at_rest::{contains, encodings};
use tower_amazon_auth_test_support::cluster::redis_cluster;
use tower_amazon_auth_test_support::cookies::{location, param, Browser};
use tower_amazon_auth_test_support::external::{redis, redis_url, External};
use tower_amazon_auth_test_support::fixtures::client;

/// One instance of the site.
struct Instance {
    base: String,
    sign_in: SignIn,
}

/// How the instances' caches are set up.
#[derive(Clone, Copy)]
enum Tokens {
    /// Amazon's hour.
    Normal,
    /// One second of usable life (a clock skew of 3 599 s), so a test sees them expire.
    ShortLived,
    /// Amazon's hour, and copies of sessions (and verdicts) kept one second.
    BriefCopies,
}

/// `n` instances on `redis` and `mock`, the first one's address being the public origin.
async fn fleet(n: usize, mock: &MockAmazon, redis: &External, tokens: Tokens) -> Vec<Instance> {
    fleet_with(n, mock, redis, tokens, |sign_in| sign_in).await
}

/// [`fleet`], with sign-in's settings adjusted by `configure`.
async fn fleet_with(
    n: usize,
    mock: &MockAmazon,
    redis: &External,
    tokens: Tokens,
    configure: fn(SignInBuilder) -> SignInBuilder,
) -> Vec<Instance> {
    fleet_on(n, mock, tokens, configure, || {
        Fleet::new(redis_url(redis), SECRET)
    })
    .await
}

/// [`fleet_with`], each instance's fleet level from `level` (one Redis, or a cluster).
async fn fleet_on(
    n: usize,
    mock: &MockAmazon,
    tokens: Tokens,
    configure: fn(SignInBuilder) -> SignInBuilder,
    level: impl Fn() -> Fleet,
) -> Vec<Instance> {
    let mut origin = None;
    let mut instances = Vec::new();
    for _ in 0..n {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let origin = origin.get_or_insert_with(|| base.clone()).clone();
        let mut cache = IdentityCache::builder()
            .client_id(MOCK_CLIENT_ID)
            .base_url(mock.base_url())
            .second_level(level());
        cache = match tokens {
            Tokens::Normal => cache,
            Tokens::ShortLived => cache
                .max_ttl(Duration::from_secs(3600))
                .clock_skew(Duration::from_secs(3599)),
            Tokens::BriefCopies => cache
                .max_ttl(Duration::from_secs(1))
                .clock_skew(Duration::from_millis(100)),
        };
        let cache = cache.build().unwrap();
        let sign_in = configure(
            SignIn::builder(cache.clone())
                .client_secret(MOCK_CLIENT_SECRET)
                .public_origin(&origin),
        )
        .build()
        .unwrap();
        mock.allow_redirect_uri(sign_in.redirect_uri());
        let layer = AmazonAuthLayer::builder(cache).sign_in(&sign_in).build().unwrap();
        let app = Router::new()
            .route(
                "/me",
                get(|user: AmazonUser| async move { user.user_id().to_owned() }),
            )
            .layer(layer.clone())
            .merge(sign_in.router())
            // The session's current access token, as a proxy's upstream would get it.
            .fallback_service(layer.forward_auth().pass_access_token(true));
        tokio::spawn(async move { axum::serve(listener, app).await });
        instances.push(Instance { base, sign_in });
    }
    instances
}

/// `url` with its origin replaced by `instance`'s: where a load balancer sent it.
fn on(instance: &Instance, url: &str) -> String {
    let path = url.splitn(4, '/').nth(3).unwrap_or_default();
    format!("{}/{path}", instance.base)
}

/// The `name=value` of the cookie named `name` a response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

/// Signs `user` in: the login started on `start`, the callback landing on `finish`. Answers
/// the session cookie (`taa_session=…`).
async fn sign_in(mock: &MockAmazon, user: &str, start: &Instance, finish: &Instance) -> String {
    mock.add_sign_in_user(
        MockUser::new(user)
            .email("dana@example.com")
            .name("Dana Dumpling"),
    );
    let http = no_redirects();
    let login = http.get(format!("{}/login", start.base)).send().await.unwrap();
    assert_eq!(login.status(), 303);
    let authorize = location(&login);
    let state = param(&authorize, "state").unwrap();
    let pending = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|pair| pair.starts_with("taa_login_"))
        .expect("a pending-login cookie");
    let callback = Browser::new().consent(&authorize, user, "allow").await;
    assert_eq!(param(&callback, "state").as_deref(), Some(state.as_str()));
    let landed = http
        .get(on(finish, &callback))
        .header("cookie", &pending)
        .send()
        .await
        .unwrap();
    assert_eq!(landed.status(), 303, "the callback of a login started elsewhere");
    set_cookie(&landed, "taa_session").expect("a session cookie")
}

/// `POST /logout` on `site` with `cookie`, from the site's own page.
async fn log_out(site: &Instance, cookie: &str) -> reqwest::Response {
    no_redirects()
        .post(format!("{}/logout", site.base))
        .header("cookie", cookie)
        .header("origin", &site.base)
        .send()
        .await
        .unwrap()
}

/// Waits (up to a second) until none of `sites` holds a copy of a session.
async fn copies_dropped(sites: &[&Instance]) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while sites.iter().map(|site| site.sign_in.session_count()).sum::<u64>() > 0 {
        assert!(Instant::now() < deadline, "copies still held after a second");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET /me` on `instance` with `cookie`: the status and the body.
async fn me(instance: &Instance, cookie: &str) -> (u16, String) {
    let response = client()
        .get(format!("{}/me", instance.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_is_the_fleets_and_a_logout_on_one_instance_ends_it_on_all() {
    let Some(redis) = redis("sessions::a_session_is_the_fleets_and_a_logout_on_one_instance_ends_it_on_all")
    else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let sites = fleet(3, &mock, &redis, Tokens::Normal).await;
    let (a, b, c) = (&sites[0], &sites[1], &sites[2]);
    let session = sign_in(&mock, "amzn1.account.DANA", a, b).await;
    // Served by every instance, twice each (the second from its own copy).
    for site in [b, c, a, b, c, a] {
        assert_eq!(me(site, &session).await, (200, "amzn1.account.DANA".to_owned()));
    }
    assert_eq!(
        mock.calls().tokeninfo,
        1,
        "the token verified once for the fleet (at the callback, on B)"
    );
    assert_eq!(
        (b.sign_in.session_count(), c.sign_in.session_count()),
        (1, 1),
        "B and C hold copies"
    );

    // Logout on A, with B's and C's copies hot: both refuse it within a second.
    assert_eq!(log_out(a, &session).await.status(), 303);
    // The session's end reaches B's and C's copies as a message (its token's revocation
    // would refuse it too, but only at their next request).
    copies_dropped(&[b, c]).await;
    for site in [b, c] {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let (status, _) = me(site, &session).await;
            if status == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still {status} on {} after a second",
                site.base
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(me(a, &session).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_requests_at_expiry_over_four_instances_cost_one_refresh() {
    let Some(redis) = redis("sessions::two_hundred_requests_at_expiry_over_four_instances_cost_one_refresh")
    else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let sites = fleet(4, &mock, &redis, Tokens::ShortLived).await;
    let session = sign_in(&mock, "amzn1.account.ERIN", &sites[0], &sites[1]).await;
    for site in &sites {
        assert_eq!(me(site, &session).await.0, 200, "a copy on {}", site.base);
    }
    assert_eq!(mock.calls().token, 1, "the code exchange");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The refresh takes a while at Amazon, so the whole burst arrives while it is under way.
    mock.set_token_endpoint_reply(Some(
        MockReply::user(MockUser::new("unused")).delayed(Duration::from_millis(300)),
    ));
    let started = Instant::now();
    let statuses = join_all((0..200).map(|n| me(&sites[n % sites.len()], &session))).await;
    let took = started.elapsed();
    let refused: Vec<_> = statuses.iter().filter(|(status, _)| *status != 200).collect();
    assert!(
        refused.is_empty(),
        "{} refused: {:?}",
        refused.len(),
        refused.first()
    );
    // One refresh for the fleet. The refreshed token is usable for a second too: on a machine
    // so loaded that the burst outlives it, each further second may take one more.
    let refreshes = mock.calls().token - 1;
    let seconds = took.saturating_sub(Duration::from_millis(300)).as_secs();
    let allowed = 1 + usize::try_from(seconds).unwrap_or(usize::MAX);
    assert!(
        (1..=allowed).contains(&refreshes),
        "{refreshes} refreshes for a burst of {took:?} over four instances"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_dump_holds_nothing_of_a_session_in_clear() {
    let Some(redis) = redis("sessions::a_redis_dump_holds_nothing_of_a_session_in_clear") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let sites = fleet(2, &mock, &redis, Tokens::Normal).await;
    let session = sign_in(&mock, "amzn1.account.DANA", &sites[0], &sites[1]).await;
    assert_eq!(me(&sites[0], &session).await.0, 200);
    // The session's access token, as the auth server passes it on.
    let verify = client()
        .get(format!("{}/verify", sites[0].base))
        .header("cookie", &session)
        .header("x-original-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    let access = verify.headers()["x-auth-request-access-token"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(access.starts_with("Atza|"), "{access}");
    // A login under way too.
    let pending = no_redirects()
        .get(format!("{}/login", sites[1].base))
        .send()
        .await
        .unwrap();
    let state = param(&location(&pending), "state").unwrap();

    let mut conn = connection(&redis).await;
    // The dump itself, uncompressed, as `SAVE` writes it.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("rdbcompression")
        .arg("no")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SAVE").query_async(&mut conn).await.unwrap();
    let dump = std::fs::read(redis.dir().join("dump.rdb")).unwrap();
    let id = session.strip_prefix("taa_session=").unwrap();
    let secrets = [
        id,
        &access,
        "Atza|",
        "Atzr|",
        &state,
        "amzn1.account.DANA",
        "dana@example.com",
        "Dana Dumpling",
        SECRET,
    ];
    assert!(
        dump.len() > 200,
        "a dump with the session in it: {} bytes",
        dump.len()
    );
    for secret in secrets {
        for encoding in encodings(secret) {
            assert!(
                !contains(&dump, &encoding),
                "the Redis dump reveals {secret:?} (as {:?})",
                String::from_utf8_lossy(&encoding)
            );
        }
    }
}

/// The milliseconds left to the one session record in Redis.
async fn record_life(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let records: Vec<String> = redis::cmd("KEYS")
        .arg("taa:s{*}r:*")
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    redis::cmd("PTTL")
        .arg(&records[0])
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_idle_life_is_extended_at_most_once_per_tenth_of_it() {
    let Some(redis) = redis("sessions::the_idle_life_is_extended_at_most_once_per_tenth_of_it") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let sites = fleet_with(1, &mock, &redis, Tokens::Normal, |sign_in| {
        sign_in.idle_timeout(Duration::from_secs(3))
    })
    .await;
    let site = &sites[0];
    let session = sign_in(&mock, "amzn1.account.FRED", site, site).await;
    assert_eq!(me(site, &session).await.0, 200);
    let mut conn = connection(&redis).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..50 {
        assert_eq!(me(site, &session).await.0, 200);
    }
    assert_eq!(scripts_run(&mut conn).await, 0, "no write per request");
    // A tenth of the idle life later, one request writes the session's use once.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = record_life(&mut conn).await;
    for _ in 0..20 {
        assert_eq!(me(site, &session).await.0, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while scripts_run(&mut conn).await == 0 {
        assert!(Instant::now() < deadline, "the idle life was never extended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(scripts_run(&mut conn).await, 1, "one write for twenty requests");
    let after = record_life(&mut conn).await;
    assert!(
        after > before,
        "the record's life was extended: {before} ms, then {after} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_during_a_refresh_is_a_503_and_the_session_survives_it() {
    let Some(redis) = redis("sessions::redis_down_during_a_refresh_is_a_503_and_the_session_survives_it")
    else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let sites = fleet(2, &mock, &redis, Tokens::ShortLived).await;
    let session = sign_in(&mock, "amzn1.account.GINA", &sites[0], &sites[1]).await;
    assert_eq!(me(&sites[1], &session).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Frozen: every command times out.
    redis.signal("STOP").unwrap();
    assert_eq!(
        me(&sites[1], &session).await.0,
        503,
        "no refresh without the fleet's lock"
    );
    assert_eq!(mock.calls().token, 1, "Amazon was not asked to refresh");
    redis.signal("CONT").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = me(&sites[1], &session).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            Instant::now() < deadline,
            "still 503 ten seconds after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mock.calls().token, 2, "one refresh, once Redis answered");
}

// Found by review: each failed on the first version of fleet sessions.

/// A burst for a session on an instance that holds no copy of it: every request served (the
/// copies the concurrent reads keep are one, and keeping one ends nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_on_an_instance_without_a_copy_is_served() {
    let Some(redis) = redis("sessions::a_burst_on_an_instance_without_a_copy_is_served") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let sites = fleet(2, &mock, &redis, Tokens::Normal).await;
    let session = sign_in(&mock, "amzn1.account.HANK", &sites[0], &sites[0]).await;
    assert_eq!(me(&sites[0], &session).await.0, 200);
    let statuses = join_all((0..200).map(|_| me(&sites[1], &session))).await;
    let refused = statuses.iter().filter(|(status, _)| *status != 200).count();
    assert_eq!(
        refused,
        0,
        "{refused} of 200 refused: {:?}",
        statuses.iter().find(|(s, _)| *s != 200)
    );
    assert_eq!(sites[1].sign_in.session_count(), 1, "one copy");
}

/// A copy that has not heard of a refresh elsewhere extends the session's idle life without
/// writing its older tokens back: with refresh tokens rotating, the fleet refreshes once and
/// the session lives on every instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_life_extension_never_undoes_a_refresh_elsewhere() {
    let Some(redis) = redis("sessions::an_idle_life_extension_never_undoes_a_refresh_elsewhere") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    mock.set_rotate_refresh_tokens(true);
    let sites = fleet_with(3, &mock, &redis, Tokens::ShortLived, |sign_in| {
        sign_in.idle_timeout(Duration::from_secs(3))
    })
    .await;
    let (a, b, c) = (&sites[0], &sites[1], &sites[2]);
    let session = sign_in(&mock, "amzn1.account.JUDE", a, a).await;
    assert_eq!(me(b, &session).await.0, 200);
    assert_eq!(me(a, &session).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(me(b, &session).await.0, 200, "B refreshes");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        me(a, &session).await.0,
        200,
        "A, with the older copy, takes B's tokens"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(me(c, &session).await.0, 200, "C reads the refreshed record");
    assert_eq!(mock.calls().token - 1, 1, "one refresh for the fleet");
}

/// The copy a refresh writes into dropped while Amazon answers (a reconnect forgets every
/// copy): the refresh still lands, in the store too, and the session lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_dropped_during_its_refresh_loses_nothing() {
    let Some(redis) = redis("sessions::a_copy_dropped_during_its_refresh_loses_nothing") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    mock.set_rotate_refresh_tokens(true);
    let sites = fleet(2, &mock, &redis, Tokens::ShortLived).await;
    let (a, b) = (&sites[0], &sites[1]);
    let session = sign_in(&mock, "amzn1.account.IVY", a, a).await;
    assert_eq!(me(b, &session).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Slow enough for the reconnect to land while Amazon answers, and no slower: the new
    // token, minted when Amazon got the request, must still have more than the 3 599 s of
    // clock skew left once verified (a margin of half a second for a loaded machine).
    mock.set_token_endpoint_reply(Some(
        MockReply::user(MockUser::new("unused")).delayed(Duration::from_millis(500)),
    ));
    let refreshing = tokio::spawn({
        let (base, cookie) = (b.base.clone(), session.clone());
        async move {
            let response = client()
                .get(format!("{base}/me"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            let answer = (
                response.status().as_u16(),
                response.headers().contains_key("set-cookie"),
            );
            answer
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Every subscriber reconnects: every instance forgets its copies.
    let mut conn = connection(&redis).await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(killed >= 2, "{killed} subscribers");
    assert_eq!(refreshing.await.unwrap(), (200, false), "served, the cookie kept");
    mock.set_token_endpoint_reply(None);
    assert_eq!(me(a, &session).await.0, 200, "A reads the refreshed record");
    assert_eq!(mock.calls().token - 1, 1, "one refresh");
}

/// The instance that created a session serves its copy no longer than the others: the
/// cache's `max_ttl`, then it reads the store again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_creating_instances_copy_lives_max_ttl_too() {
    let Some(redis) = redis("sessions::the_creating_instances_copy_lives_max_ttl_too") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let sites = fleet(2, &mock, &redis, Tokens::BriefCopies).await;
    let (a, b) = (&sites[0], &sites[1]);
    let session = sign_in(&mock, "amzn1.account.MAY", a, a).await;
    assert_eq!((me(a, &session).await.0, me(b, &session).await.0), (200, 200));
    // The record goes without a message reaching anyone (a message lost).
    let mut conn = connection(&redis).await;
    let records: Vec<String> = redis::cmd("KEYS")
        .arg("taa:s{*}r:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&records)
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!((me(a, &session).await.0, me(b, &session).await.0), (401, 401));
}

/// Redis frozen at a logout: `503`, the cookie kept (the session lives on elsewhere, so the
/// browser must be able to sign out again); once it answers, the logout ends it everywhere.
/// Redis frozen at a callback: `503`, and no session cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_at_a_logout_or_a_callback_is_a_503() {
    let Some(redis) = redis("sessions::redis_down_at_a_logout_or_a_callback_is_a_503") else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let sites = fleet(2, &mock, &redis, Tokens::Normal).await;
    let (a, b) = (&sites[0], &sites[1]);
    let session = sign_in(&mock, "amzn1.account.KIM", a, a).await;
    assert_eq!(me(b, &session).await.0, 200);
    redis.signal("STOP").unwrap();
    let out = log_out(a, &session).await;
    assert_eq!(out.status(), 503);
    assert!(set_cookie(&out, "taa_session").is_none(), "the cookie kept");
    redis.signal("CONT").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while log_out(a, &session).await.status() != 303 {
        assert!(Instant::now() < deadline, "the logout never went through");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while me(b, &session).await.0 != 401 {
        assert!(Instant::now() < deadline, "B still serves the session");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A login started while Redis answered, its callback while it does not.
    mock.add_sign_in_user(MockUser::new("amzn1.account.LEO"));
    let login = no_redirects()
        .get(format!("{}/login", a.base))
        .send()
        .await
        .unwrap();
    let pending = set_cookie(&login, &format!("taa_login_{}", "")).or_else(|| {
        login
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|pair| pair.starts_with("taa_login_"))
    });
    let callback = Browser::new()
        .consent(&location(&login), "amzn1.account.LEO", "allow")
        .await;
    redis.signal("STOP").unwrap();
    let landed = no_redirects()
        .get(on(b, &callback))
        .header("cookie", pending.unwrap())
        .send()
        .await
        .unwrap();
    redis.signal("CONT").unwrap();
    assert_eq!(landed.status(), 503);
    assert!(set_cookie(&landed, "taa_session").is_none(), "no session cookie");
}

/// On a Redis Cluster (three primaries, a replica each): every script of a session touches one
/// slot (its keys share a hash tag), so sign-in, serving, refresh and logout work as on one
/// Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_a_session_is_the_fleets_and_a_logout_ends_it_everywhere() {
    let Some(cluster) =
        redis_cluster("sessions::on_a_cluster_a_session_is_the_fleets_and_a_logout_ends_it_everywhere")
    else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let sites = fleet_on(
        3,
        &mock,
        Tokens::ShortLived,
        |sign_in| sign_in,
        || Fleet::cluster(cluster.urls(), SECRET),
    )
    .await;
    let (a, b, c) = (&sites[0], &sites[1], &sites[2]);
    let session = sign_in(&mock, "amzn1.account.OLGA", a, b).await;
    for site in [b, c, a] {
        assert_eq!(me(site, &session).await, (200, "amzn1.account.OLGA".to_owned()));
    }
    // Expired everywhere: one refresh for the fleet.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let started = Instant::now();
    let statuses = join_all((0..30).map(|n| me(&sites[n % 3], &session))).await;
    assert!(statuses.iter().all(|(status, _)| *status == 200), "{statuses:?}");
    // The refreshed token is usable for a second: on a machine so loaded that the burst
    // outlives it, each further second may take one more.
    let refreshes = mock.calls().token - 1;
    let allowed = 1 + usize::try_from(started.elapsed().as_secs()).unwrap_or(usize::MAX);
    assert!((1..=allowed).contains(&refreshes), "{refreshes} refreshes");
    assert_eq!(log_out(a, &session).await.status(), 303);
    copies_dropped(&[b, c]).await;
    for site in [a, b, c] {
        assert_eq!(me(site, &session).await.0, 401);
    }
}
