//! [`Keys`]: everything derived from one fleet secret with HKDF-SHA256, each key for one
//! purpose (the local digest, verdict names, lock names, tombstone names, the AEAD, message MACs, a
//! short id that tells which secret a message was made under, and sign-in's session digest and
//! names). The secret itself is dropped
//! (and wiped: it is held in `Zeroizing`) with the settings once the keys are derived; the keys
//! are wiped when dropped ([`ZeroizeOnDrop`]); no key is ever shown by `Debug`.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// HMAC-SHA256.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Salt of the derivation: names this crate and the version of its layout.
const SALT: &[u8] = b"tower-amazon-auth fleet v1";

/// The keys of one fleet secret.
pub(crate) struct Keys {
    /// Keys the local 128-bit digest of a token (SipHash), so every instance names a token
    /// the same way.
    pub(crate) digest: [u8; 16],
    /// MACs a token's name and the config fingerprint into a verdict's key.
    pub(crate) verdict: [u8; 32],
    /// MACs a token's name and the config fingerprint into its fleet lock's key: a key of its
    /// own, so a lock's name cannot be made from its verdict's (which Redis shows).
    pub(crate) lock: [u8; 32],
    /// MACs a token's name into its tombstone's key.
    pub(crate) tombstone: [u8; 32],
    /// The XChaCha20-Poly1305 key of every value.
    pub(crate) seal: [u8; 32],
    /// MACs the messages on the channel.
    pub(crate) message: [u8; 32],
    /// Tells messages made under this secret from others (public: derived one-way).
    pub(crate) id: [u8; 8],
    /// Keys the digest of website sign-in's session ids and login states (the core's
    /// [`SessionStore::digest_key`](tower_amazon_auth::second_level::SessionStore::digest_key)).
    pub(crate) session_digest: [u8; 16],
    /// MACs a session's (or a login's) digest into the names of its keys.
    pub(crate) session: [u8; 32],
}

impl Keys {
    /// The keys of `secret`.
    pub(crate) fn derive(secret: &[u8]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(SALT), secret);
        fn expand<const N: usize>(hkdf: &Hkdf<Sha256>, info: &[u8]) -> [u8; N] {
            let mut out = [0; N];
            // Never fails: N is far below 255 × 32 bytes.
            let _ = hkdf.expand(info, &mut out);
            out
        }
        Self {
            digest: expand(&hkdf, b"local digest"),
            verdict: expand(&hkdf, b"verdict key"),
            lock: expand(&hkdf, b"lock key"),
            tombstone: expand(&hkdf, b"tombstone key"),
            seal: expand(&hkdf, b"value seal"),
            message: expand(&hkdf, b"message mac"),
            id: expand(&hkdf, b"secret id"),
            session_digest: expand(&hkdf, b"session digest"),
            session: expand(&hkdf, b"session names"),
        }
    }
}

impl Zeroize for Keys {
    fn zeroize(&mut self) {
        // Destructured, so a key added to `Keys` cannot be forgotten here.
        let Self {
            digest,
            verdict,
            lock,
            tombstone,
            seal,
            message,
            id,
            session_digest,
            session,
        } = self;
        digest.zeroize();
        session_digest.zeroize();
        for key in [verdict, lock, tombstone, seal, message, session] {
            key.zeroize();
        }
        id.zeroize();
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for Keys {}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub(crate) fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_has_its_own_key_and_each_secret_its_own_keys() {
        let a = Keys::derive(&[1; 32]);
        let b = Keys::derive(&[2; 32]);
        assert_ne!(a.verdict, a.tombstone);
        assert_ne!(a.verdict, a.lock);
        assert_ne!(a.seal, a.message);
        assert_ne!(a.session, a.tombstone);
        assert_ne!(a.session_digest, a.digest);
        assert_ne!(a.id, b.id);
        assert_ne!(a.digest, b.digest);
        assert_eq!(Keys::derive(&[1; 32]).seal, a.seal, "deterministic");
    }

    /// Compiles only for a type that wipes itself on drop.
    fn wiped_on_drop<T: ZeroizeOnDrop>() {}

    /// The settings hold the secrets (and the URL, which may carry a password) in buffers
    /// wiped on drop.
    #[test]
    fn the_settings_hold_the_secrets_wiped_on_drop() {
        fn wiped<T: ZeroizeOnDrop>(_: &T) {}
        let fleet = crate::Fleet::new("redis://:pw@localhost", [7; 32]).previous_secret([8; 32]);
        wiped(&fleet.secret);
        wiped(fleet.previous.as_ref().unwrap());
        wiped(&fleet.urls[0]);
    }

    #[test]
    fn the_keys_are_wiped_on_drop_every_one_of_them() {
        wiped_on_drop::<Keys>();
        // What drop runs: every key zero after it (read while the value is alive).
        let mut keys = Keys::derive(&[1; 32]);
        keys.zeroize();
        let Keys {
            digest,
            verdict,
            lock,
            tombstone,
            seal,
            message,
            id,
            session_digest,
            session,
        } = &keys;
        assert_eq!((digest, session_digest, id), (&[0; 16], &[0; 16], &[0; 8]));
        for key in [verdict, lock, tombstone, seal, message, session] {
            assert_eq!(key, &[0; 32]);
        }
    }
}
