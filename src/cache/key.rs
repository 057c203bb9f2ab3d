//! The cache key: [`TokenKey`], a keyed 128-bit digest of the token, and the
//! [`KeyedDigest`] that computes it.
//!
//! The raw token is never stored. The digest key is secret (random per process, or with the
//! fleet level on, derived from the fleet secret so that every instance names a token the same
//! way), so nobody can aim for a collision, and 128 bits make an accidental one (another user's
//! identity) practically impossible.

use siphasher::sip128::SipHasher13;

/// What every cache level keys a token by: a keyed 128-bit SipHash-1-3 of it.
pub(crate) type TokenKey = u128;

/// Turns tokens into [`TokenKey`]s under one secret key.
pub(crate) struct KeyedDigest(SipHasher13);

impl KeyedDigest {
    /// A digest under a key from the operating system's random number generator.
    pub(crate) fn random() -> Result<Self, getrandom::Error> {
        Ok(Self(SipHasher13::new_with_keys(
            getrandom::u64()?,
            getrandom::u64()?,
        )))
    }

    /// A digest under a given 128-bit key (the fleet level derives it from the fleet secret).
    #[cfg(feature = "redis")]
    pub(crate) fn with_key(key: [u8; 16]) -> Self {
        let (k0, k1) = key.split_at(8);
        let word = |bytes: &[u8]| {
            let mut word = [0; 8];
            word.copy_from_slice(bytes);
            u64::from_le_bytes(word)
        };
        Self(SipHasher13::new_with_keys(word(k0), word(k1)))
    }

    /// The key of `token`.
    #[inline]
    pub(crate) fn key(&self, token: &[u8]) -> TokenKey {
        let h = self.0.hash(token);
        (u128::from(h.h1) << 64) | u128::from(h.h2)
    }
}
