//! TLS to Redis: the root certificates to trust and the client identity to present (set by
//! [`Fleet::root_certificates`](crate::Fleet::root_certificates) and
//! [`Fleet::client_identity`](crate::Fleet::client_identity)), checked when the cache is built,
//! and the Redis client made with them through the `redis` crate's own rustls support (never
//! OpenSSL). The level's connection and the subscriber's both come from these settings (on a
//! cluster, the cluster client and every node's connection too), so they use the same TLS.

use std::fmt;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::error::FleetError;

/// The TLS settings of the fleet level: none by default (a `rediss://` URL then trusts the
/// system's root certificates and presents no client certificate).
#[derive(Default)]
pub(crate) struct Tls {
    /// PEM certificates trusted instead of the system's roots.
    pub(crate) roots: Option<Vec<u8>>,
    /// The client certificate chain (PEM) and its private key (PEM), wiped on drop.
    pub(crate) identity: Option<(Vec<u8>, Zeroizing<Vec<u8>>)>,
}

impl Tls {
    /// Checks the PEM as the client will when it connects (the same parsers, the same rustls
    /// checks), and that a URL with TLS settings is a `rediss://` one.
    pub(crate) fn check(&self, url: &str) -> Result<(), FleetError> {
        if self.roots.is_none() && self.identity.is_none() {
            return Ok(());
        }
        if let Some(pem) = &self.roots {
            let roots = certificates(pem).ok_or(FleetError::RootCertificates)?;
            let mut store = rustls::RootCertStore::empty();
            for root in roots {
                store.add(root).map_err(|_| FleetError::RootCertificates)?;
            }
        }
        if let Some((chain, key)) = &self.identity {
            let chain = certificates(chain).ok_or(FleetError::ClientIdentity)?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| FleetError::ClientIdentity)?;
            let provider = rustls::crypto::ring::default_provider();
            rustls::sign::CertifiedKey::from_der(chain, key, &provider)
                .map_err(|_| FleetError::ClientIdentity)?;
        }
        // The parse error may quote the URL, password included: say nothing of it.
        let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(|_| FleetError::Url)?;
        match info.addr() {
            redis::ConnectionAddr::TcpTls { .. } => Ok(()),
            _ => Err(FleetError::TlsWithoutRediss),
        }
    }

    /// The Redis client for `url` with these settings (checked already).
    pub(crate) fn client(&self, url: &str) -> Result<redis::Client, FleetError> {
        let Some(certificates) = self.certificates() else {
            return redis::Client::open(url).map_err(|_| FleetError::Url);
        };
        // Both errors name neither the URL nor the key: `check` ran first.
        redis::Client::build_with_tls(url, certificates).map_err(|_| FleetError::Url)
    }

    /// These settings as the client takes them (for a cluster client too); `None` without any.
    pub(crate) fn certificates(&self) -> Option<redis::TlsCertificates> {
        if self.roots.is_none() && self.identity.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self.identity.as_ref().map(|(chain, key)| redis::ClientTlsConfig {
                client_cert: chain.clone(),
                client_key: key.to_vec(),
            }),
            root_cert: self.roots.clone(),
        })
    }
}

/// The certificates in `pem`, or `None` when it holds none or a malformed one.
fn certificates(pem: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    (!certificates.is_empty()).then_some(certificates)
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whether each is set, never its content.
        f.debug_struct("Tls")
            .field("root_certificates", &self.roots.is_some())
            .field("client_identity", &self.identity.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fleet;

    /// A CA, and a certificate with its key signed by it, in PEM.
    fn pki() -> (String, String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (ca.pem(), cert.pem(), key.serialize_pem())
    }

    fn checked(fleet: &Fleet) -> Result<(), FleetError> {
        fleet.tls.check(&fleet.urls[0])
    }

    const TLS_URL: &str = "rediss://:pw@localhost:6380";

    #[test]
    fn good_pem_with_a_rediss_url_passes_and_no_tls_settings_need_none() {
        let (ca, cert, key) = pki();
        let fleet = Fleet::new(TLS_URL, [0; 32])
            .root_certificates(&ca)
            .client_identity(&cert, &key);
        assert_eq!(checked(&fleet), Ok(()));
        assert!(fleet.tls.client(&fleet.urls[0]).is_ok());
        assert_eq!(checked(&Fleet::new("redis://localhost", [0; 32])), Ok(()));
    }

    #[test]
    fn root_certificates_without_a_certificate_are_refused() {
        let (_, cert, key) = pki();
        for pem in [
            "",
            "not a certificate",
            &key,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        ] {
            let fleet = Fleet::new(TLS_URL, [0; 32]).root_certificates(pem);
            assert_eq!(checked(&fleet), Err(FleetError::RootCertificates), "{pem:?}");
        }
        let fleet = Fleet::new(TLS_URL, [0; 32]).root_certificates(&cert);
        assert_eq!(checked(&fleet), Ok(()), "any certificate may be a trust anchor");
    }

    #[test]
    fn an_identity_without_a_certificate_or_its_matching_key_is_refused() {
        let (_, cert, key) = pki();
        let (_, _, other_key) = pki();
        for (chain, key) in [
            ("", key.as_str()),
            (&cert, ""),
            (&cert, "junk"),
            (&cert, &cert),
            (&cert, &other_key),
        ] {
            let fleet = Fleet::new(TLS_URL, [0; 32]).client_identity(chain, key);
            assert_eq!(checked(&fleet), Err(FleetError::ClientIdentity));
        }
    }

    #[test]
    fn tls_settings_without_a_rediss_url_are_refused_as_they_would_go_unused() {
        let (ca, cert, key) = pki();
        for url in ["redis://localhost:6379", "redis+unix:///run/redis.sock"] {
            let roots = Fleet::new(url, [0; 32]).root_certificates(&ca);
            assert_eq!(checked(&roots), Err(FleetError::TlsWithoutRediss), "{url}");
            let identity = Fleet::new(url, [0; 32]).client_identity(&cert, &key);
            assert_eq!(checked(&identity), Err(FleetError::TlsWithoutRediss), "{url}");
        }
        let fleet = Fleet::new("not a url", [0; 32]).root_certificates(&ca);
        assert_eq!(checked(&fleet), Err(FleetError::Url));
    }

    #[test]
    fn the_private_key_is_held_wiped_on_drop() {
        fn wiped<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let (_, cert, key) = pki();
        let fleet = Fleet::new(TLS_URL, [0; 32]).client_identity(&cert, &key);
        wiped(&fleet.tls.identity.as_ref().unwrap().1);
    }

    #[test]
    fn debug_shows_whether_tls_is_set_never_the_key() {
        let (ca, cert, key) = pki();
        let fleet = Fleet::new(TLS_URL, [0; 32])
            .root_certificates(&ca)
            .client_identity(&cert, &key);
        let shown = format!("{fleet:?}");
        assert!(shown.contains("client_identity: true"), "{shown}");
        assert!(
            !shown.contains("PRIVATE KEY") && !shown.contains("CERTIFICATE"),
            "{shown}"
        );
    }
}
