//! [`TokenKey`]: what every level of the cache (and a second level) knows a token by, a keyed
//! 128-bit digest of it, and the [`KeyedDigest`] that computes it. At the bottom of the crate:
//! it imports nothing of it, so the identity, the cache and the second level all import it
//! without circles.
//!
//! The raw token is never stored. The digest key is secret (random per process, or with a
//! second level, the key it derives from its secret so that every instance names a token the
//! same way), so nobody can aim for a collision, and 128 bits make an accidental one (another
//! user's identity) practically impossible.

use siphasher::sip128::SipHasher13;

/// What every cache level keys a token by: a keyed 128-bit SipHash-1-3 of it. Tells nothing
/// of the token without the digest key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TokenKey(u128);

impl TokenKey {
    /// A key of these bits (for tests: real keys come from a [`KeyedDigest`]).
    #[cfg(test)]
    pub(crate) const fn from_bits(bits: u128) -> Self {
        Self(bits)
    }

    /// The key as 16 big-endian bytes (how a second level names or sends it).
    pub fn to_be_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The key written as [`to_be_bytes`](Self::to_be_bytes) wrote it.
    pub fn from_be_bytes(bytes: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(bytes))
    }

    /// The low bits, to pick a slot or shard (uniform: the key is a keyed digest).
    #[inline]
    pub(crate) fn low_bits(self) -> usize {
        self.0 as usize
    }

    /// The high bits, to pick a stripe independently of [`low_bits`](Self::low_bits).
    #[inline]
    pub(crate) fn high_bits(self) -> usize {
        (self.0 >> 64) as usize
    }
}

/// Turns tokens into [`TokenKey`]s under one secret key.
///
/// ```
/// use tower_amazon_auth::second_level::KeyedDigest;
///
/// let digest = KeyedDigest::with_key([7; 16]);
/// assert_eq!(digest.key(b"Atza|one"), KeyedDigest::with_key([7; 16]).key(b"Atza|one"));
/// assert_ne!(digest.key(b"Atza|one"), KeyedDigest::with_key([8; 16]).key(b"Atza|one"));
/// ```
pub struct KeyedDigest(SipHasher13);

impl std::fmt::Debug for KeyedDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is secret.
        f.write_str("KeyedDigest")
    }
}

impl KeyedDigest {
    /// A digest under a key from the operating system's random number generator.
    pub(crate) fn random() -> Result<Self, getrandom::Error> {
        Ok(Self(SipHasher13::new_with_keys(
            getrandom::u64()?,
            getrandom::u64()?,
        )))
    }

    /// A digest under a given 128-bit key (a second level derives it from its secret).
    pub fn with_key(key: [u8; 16]) -> Self {
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
    pub fn key(&self, token: &[u8]) -> TokenKey {
        let h = self.0.hash(token);
        TokenKey((u128::from(h.h1) << 64) | u128::from(h.h2))
    }
}
