//! The fleet level over TLS, against a real `redis-server` started with `--port 0 --tls-port N`
//! (TLS only) and certificates the tests make themselves (`rcgen`): a private CA, mutual TLS,
//! a wrong CA and a wrong name refused, and a `rediss://` URL that meets a cleartext listener
//! sending nothing but a TLS ClientHello.
//!
//! Refusals are checked by their effect: the instance answers through Amazon (the mock counts
//! the calls), its fleet `errors` grow, and `revoke` reports it did not reach the fleet.
//! Nothing is asserted about time; propagation is polled.

mod common;

use common::{Instance, SECRET};
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_amazon_auth::CacheError;
use tower_amazon_auth_mock::{MockAmazon, MockUser};
use tower_amazon_auth_redis::Fleet;
use tower_amazon_auth_test_support::external::{redis, redis_tls, External, RedisTls};
use tower_amazon_auth_test_support::fixtures::{builder, token, within_patience};

/// A CA and what it signed, in PEM.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

/// A fresh CA, a server certificate for `localhost` only (no IP address), and a client
/// certificate, both signed by it.
fn new_pki() -> Pki {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tower-amazon-auth test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let signed = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = signed("localhost");
    let (client_cert, client_key) = signed("fleet-instance");
    Pki {
        ca: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

/// A TLS-only Redis serving `pki`'s server certificate.
fn tls_redis(test: &str, pki: &Pki, auth_clients: bool) -> Option<External> {
    redis_tls(
        test,
        &RedisTls {
            ca_pem: &pki.ca,
            cert_pem: &pki.server_cert,
            key_pem: &pki.server_key,
            auth_clients,
        },
    )
}

/// `rediss://` to `redis` under the name it has in its certificate.
fn url(redis: &External) -> String {
    format!("rediss://localhost:{}", redis.port)
}

/// Settings with a generous command timeout (two shared cores, TLS handshakes).
fn fleet(url: String) -> Fleet {
    Fleet::new(url, SECRET)
        .backoff(Duration::from_secs(1))
        .command_timeout(Duration::from_secs(2))
}

impl Instance {
    /// This instance cannot use its Redis: it answers `token` (which the fleet already
    /// verified) by asking Amazon again, counts fleet errors, and `revoke` says the logout did
    /// not reach the fleet.
    async fn assert_cut_off(&self, mock: &MockAmazon, token: &str, what: &str) {
        let before = mock.calls_for(token).tokeninfo;
        assert_eq!(
            self.status(token).await,
            200,
            "{what}: Redis trouble is never an outage"
        );
        assert_eq!(
            mock.calls_for(token).tokeninfo,
            before + 1,
            "{what}: not verified with Amazon"
        );
        let stats = self.stats();
        assert_eq!(stats.hits, 0, "{what}: read Redis after all");
        assert!(stats.errors > 0, "{what}: no fleet error counted: {stats:?}");
        assert!(!stats.subscribed, "{what}: the subscriber got through");
        assert_eq!(self.revoke(token).await, Err(CacheError::SecondLevel), "{what}");
    }
}

/// Over `rediss://` with a private CA, two instances share one verification, and a logout on
/// one is refused by the other (the subscriber connects over TLS too: the server has no
/// cleartext port).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_works_over_rediss_with_a_private_ca() {
    let pki = new_pki();
    let Some(redis) = tls_redis("tls::the_fleet_works_over_rediss_with_a_private_ca", &pki, false) else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let with_ca = || builder(&mock).second_level(fleet(url(&redis)).root_certificates(&pki.ca));
    let a = Instance::new(with_ca()).await;
    let b = Instance::new(with_ca()).await;

    let t = token("tls-fleet");
    mock.register(&t, MockUser::new("amzn1.account.TLS"));
    assert_eq!(a.status(&t).await, 200);
    assert_eq!(b.status(&t).await, 200);
    assert_eq!(mock.calls_for(&t).tokeninfo, 1, "one verification for the fleet");
    assert_eq!(b.stats().hits, 1, "B was answered by Redis over TLS");

    a.revoke(&t).await.unwrap();
    let (b, t) = (&b, &t);
    within_patience("a logout on A refused by B over TLS", move || async move {
        b.status(t).await == 401
    })
    .await;
    assert_eq!(mock.calls_for(t).tokeninfo, 1);
}

/// With `tls-auth-clients yes`: instances presenting the client identity share verdicts;
/// one without it is refused by the server, and serves through Amazon.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_tls_needs_the_client_identity() {
    let pki = new_pki();
    let Some(redis) = tls_redis("tls::mutual_tls_needs_the_client_identity", &pki, true) else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let with_identity = || {
        builder(&mock).second_level(
            fleet(url(&redis))
                .root_certificates(&pki.ca)
                .client_identity(&pki.client_cert, &pki.client_key),
        )
    };
    let a = Instance::new(with_identity()).await;
    let b = Instance::new(with_identity()).await;
    let t = token("tls-mutual");
    mock.register(&t, MockUser::new("amzn1.account.MUTUAL"));
    assert_eq!(a.status(&t).await, 200);
    assert_eq!(b.status(&t).await, 200);
    assert_eq!(mock.calls_for(&t).tokeninfo, 1, "one verification for the fleet");
    assert_eq!(b.stats().hits, 1);

    let anonymous =
        Instance::unsubscribed(builder(&mock).second_level(fleet(url(&redis)).root_certificates(&pki.ca)))
            .await;
    anonymous.assert_cut_off(&mock, &t, "no client certificate").await;
    // The instances with the identity still reach Redis.
    a.revoke(&t).await.unwrap();
}

/// A server certificate from a CA the instance does not trust is refused: another private
/// CA, or the system's roots (the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let pki = new_pki();
    let Some(redis) = tls_redis(
        "tls::a_server_certificate_from_another_ca_is_refused",
        &pki,
        false,
    ) else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let trusted =
        Instance::new(builder(&mock).second_level(fleet(url(&redis)).root_certificates(&pki.ca))).await;
    let t = token("tls-wrong-ca");
    mock.register(&t, MockUser::new("amzn1.account.WRONGCA"));
    assert_eq!(trusted.status(&t).await, 200, "the verdict is in Redis");

    let other_ca = new_pki().ca;
    let wrong =
        Instance::unsubscribed(builder(&mock).second_level(fleet(url(&redis)).root_certificates(&other_ca)))
            .await;
    wrong.assert_cut_off(&mock, &t, "another CA").await;
    let system = Instance::unsubscribed(builder(&mock).second_level(fleet(url(&redis)))).await;
    system.assert_cut_off(&mock, &t, "the system's roots").await;
}

/// A server certificate that does not name the URL's host is refused, though its CA is
/// trusted: the certificate names `localhost` only, the URL says `127.0.0.1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_certificate_for_another_name_is_refused() {
    let pki = new_pki();
    let Some(redis) = tls_redis(
        "tls::a_server_certificate_for_another_name_is_refused",
        &pki,
        false,
    ) else {
        return;
    };
    let mock = MockAmazon::start().await.unwrap();
    let right =
        Instance::new(builder(&mock).second_level(fleet(url(&redis)).root_certificates(&pki.ca))).await;
    let t = token("tls-wrong-name");
    mock.register(&t, MockUser::new("amzn1.account.WRONGNAME"));
    assert_eq!(right.status(&t).await, 200, "the verdict is in Redis");

    let by_ip = format!("rediss://127.0.0.1:{}", redis.port);
    let wrong =
        Instance::unsubscribed(builder(&mock).second_level(fleet(by_ip).root_certificates(&pki.ca))).await;
    wrong.assert_cut_off(&mock, &t, "another name").await;
}

/// What a cleartext listener received on each connection.
type Received = Arc<Mutex<Vec<Vec<u8>>>>;

/// A plain TCP listener on 127.0.0.1 that records what each connection sends first — the
/// whole first TLS record when it starts like one, otherwise the first bytes — then hangs up.
async fn recorder() -> (u16, Received) {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let record = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut bytes = Vec::new();
                let mut buffer = [0; 4096];
                loop {
                    let whole_record = bytes.len() >= 5
                        && bytes[0] == 0x16
                        && bytes.len() >= 5 + usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
                    if whole_record || (!bytes.is_empty() && bytes[0] != 0x16) {
                        break;
                    }
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => bytes.extend_from_slice(&buffer[..n]),
                    }
                }
                record.lock().unwrap().push(bytes);
                // Dropped: the handshake fails for want of a ServerHello.
            });
        }
    });
    (port, received)
}

/// `bytes` holds `needle`, ignoring ASCII case.
fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// A `rediss://` URL (with a user, a password and a database, which a cleartext client would
/// send first) pointed at a cleartext port: nothing goes out but a TLS ClientHello, and the
/// level fails like any Redis trouble. Also against a real cleartext `redis-server`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rediss_url_to_a_cleartext_port_sends_nothing_in_clear() {
    const PASSWORD: &str = "sw0rdfish-never-in-clear";
    let mock = MockAmazon::start().await.unwrap();
    let t = token("tls-cleartext");
    mock.register(&t, MockUser::new("amzn1.account.CLEARTEXT"));
    let (port, received) = recorder().await;
    let url = format!("rediss://fleet-user:{PASSWORD}@localhost:{port}/3");
    let ca = new_pki().ca;
    for (what, settings) in [
        ("system roots", fleet(url.clone())),
        ("private CA", fleet(url.clone()).root_certificates(&ca)),
    ] {
        let instance = Instance::unsubscribed(builder(&mock).second_level(settings)).await;
        assert_eq!(instance.status(&t).await, 200, "{what}");
        assert_eq!(instance.revoke(&t).await, Err(CacheError::SecondLevel), "{what}");
        assert!(instance.stats().errors > 0, "{what}");
    }
    let received = &received;
    within_patience("connections recorded", move || async move {
        !received.lock().unwrap().is_empty()
    })
    .await;
    let received = received.lock().unwrap().clone();
    for bytes in &received {
        assert!(
            bytes.len() > 5 && bytes[0] == 0x16 && bytes[5] == 0x01,
            "not a TLS ClientHello: {:?}",
            String::from_utf8_lossy(bytes)
        );
        for clear in [
            "PING",
            "AUTH",
            "SELECT",
            "HELLO",
            "CLIENT",
            "fleet-user",
            PASSWORD,
        ] {
            assert!(!holds(bytes, clear), "{clear:?} went out in clear");
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "tls: {} connection(s), each a bare ClientHello",
        received.len()
    );

    let Some(plain) = redis("tls::a_rediss_url_to_a_cleartext_port_sends_nothing_in_clear") else {
        return;
    };
    let at_plain = fleet(format!("rediss://localhost:{}", plain.port)).root_certificates(&ca);
    let instance = Instance::unsubscribed(builder(&mock).second_level(at_plain)).await;
    assert_eq!(instance.status(&t).await, 200);
    assert_eq!(instance.revoke(&t).await, Err(CacheError::SecondLevel));
    assert!(instance.stats().errors > 0);
}
