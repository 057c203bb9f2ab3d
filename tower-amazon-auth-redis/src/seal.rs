//! [`Seal`]: the AEAD box around every value the fleet level writes to Redis.
//! XChaCha20-Poly1305 with a random 192-bit nonce per value (random nonces of that size never
//! repeat in practice, unlike a 96-bit GCM nonce), the Redis key the value is written under
//! bound as associated data with the token's fleet generation ([`sealed_for`]), so a value
//! copied under another key, or written back after an invalidation, does not open.
//!
//! Layout: `nonce (24 bytes) ‖ ciphertext ‖ tag (16 bytes)`. Anything that does not open is
//! `None`: a miss, never an error.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::ZeroizeOnDrop;

/// Bytes of a nonce.
const NONCE: usize = 24;

/// Seals and opens values under one secret's key. The cipher wipes its key on drop
/// (`chacha20poly1305` does: [`ZeroizeOnDrop`]).
pub(crate) struct Seal(XChaCha20Poly1305);

impl ZeroizeOnDrop for Seal {}

impl Seal {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self(XChaCha20Poly1305::new(key.into()))
    }

    /// `plaintext` sealed for the Redis key `name`; `None` only if the system has no
    /// randomness for a nonce (the value is then not written).
    pub(crate) fn seal(&self, name: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0; NONCE];
        getrandom::fill(&mut nonce).ok()?;
        let sealed = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: name,
                },
            )
            .ok()?;
        let mut out = Vec::with_capacity(NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    /// What `value` holds, if it was sealed under this key for the Redis key `name`.
    pub(crate) fn open(&self, name: &[u8], value: &[u8]) -> Option<Vec<u8>> {
        if value.len() < NONCE {
            return None;
        }
        let (nonce, sealed) = value.split_at(NONCE);
        self.0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: name,
                },
            )
            .ok()
    }
}

/// What a value is sealed for: its name and the token's fleet generation when it was written
/// (length-prefixed, so no two pairs read alike). A value written back after the generation
/// moved (an `invalidate` or `revoke` since) does not open.
pub(crate) fn sealed_for(name: &[u8], generation: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(8 + name.len() + generation.len());
    aad.extend_from_slice(&(name.len() as u64).to_be_bytes());
    aad.extend_from_slice(name);
    aad.extend_from_slice(generation);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles only if the cipher (and so `Seal`) wipes its key on drop.
    #[test]
    fn the_cipher_wipes_its_key_on_drop() {
        fn wiped_on_drop<T: ZeroizeOnDrop>() {}
        wiped_on_drop::<XChaCha20Poly1305>();
        wiped_on_drop::<Seal>();
    }

    #[test]
    fn opens_only_under_its_key_and_name_and_unaltered() {
        let seal = Seal::new(&[3; 32]);
        let value = seal.seal(b"k1", b"hello").unwrap();
        assert_eq!(seal.open(b"k1", &value).as_deref(), Some(&b"hello"[..]));
        assert_eq!(seal.open(b"k2", &value), None, "moved to another key");
        assert_eq!(Seal::new(&[4; 32]).open(b"k1", &value), None, "another secret");
        for bit in 0..value.len() * 8 {
            let mut flipped = value.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(seal.open(b"k1", &flipped), None, "bit {bit} flipped");
        }
        assert_eq!(seal.open(b"k1", &value[..10]), None);
        assert_ne!(
            seal.seal(b"k1", b"hello").unwrap(),
            value,
            "a fresh nonce each time"
        );
    }
}
