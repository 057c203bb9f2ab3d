//! [`Naming`]: the names of everything the fleet level keeps in Redis, for one secret. Never the
//! token: a token is known by its local key (a keyed digest under a key derived from the
//! secret), and Redis names are MACs of that.
//!
//! | what | name | depends on |
//! | --- | --- | --- |
//! | verdict | `prefix [tag] v:hex(MAC(verdict key, fingerprint ‖ token key))` | token, secret, config fingerprint |
//! | fleet lock | `prefix [tag] l:hex(MAC(lock key, fingerprint ‖ token key))` | as the verdict, under a key of its own (so a writer who sees a verdict's name cannot name its lock) |
//! | tombstone | `prefix [tag] t:hex(MAC(tombstone key, token key))` | token and secret only |
//! | generation | `prefix [tag] g:hex(MAC(tombstone key, "generation" ‖ token key))` | token and secret only |
//! | channel | `prefix events` | prefix |
//!
//! On one Redis there is no tag (`taa:v:…`); on a Redis Cluster the tag is the token's hash
//! tag, `{xyz}` (see [`cluster`](crate::cluster)), the same for every key of one token under
//! every secret (`taa:{3f0}v:…`), so each script touches one slot. The prefix holds no brace
//! (checked at build), so the tag is the first `{…}` of the name.
//!
//! The config fingerprint covers the accepted client ids, the endpoints, the audience and
//! profile settings and the format version of a value, so two services on one Redis never
//! read each other's verdicts, and a deploy that changes any of them starts afresh. A tombstone
//! does not depend on it, so a rolling deploy that changes client ids or the format cannot lose
//! a logout.

use sha2::{Digest, Sha256};

use tower_amazon_auth::second_level::{CacheSettings, TokenKey};

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::cluster::SlotTag;
use crate::secret::{mac, Keys};

/// Bytes of a MAC kept in a name (128 bits).
const NAME_BYTES: usize = 16;

/// The config fingerprint of a cache: what makes a verdict valid for this service only.
pub(crate) fn fingerprint(cache: &CacheSettings<'_>) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so no two lists of fields hash alike.
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    field(&[cache.payload_version]);
    field(&[u8::from(cache.check_audience), u8::from(cache.fetch_profile)]);
    let endpoints = cache.endpoints;
    field(endpoints.tokeninfo_url().unwrap_or("").as_bytes());
    field(endpoints.profile_url().as_bytes());
    let mut ids: Vec<&str> = cache.client_ids.iter().map(|id| &**id).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        field(id.as_bytes());
    }
    hash.finalize().into()
}

/// Names under one secret.
pub(crate) struct Naming {
    prefix: String,
    verdict_key: [u8; 32],
    lock_key: [u8; 32],
    tombstone_key: [u8; 32],
    fingerprint: [u8; 32],
}

impl Drop for Naming {
    fn drop(&mut self) {
        // Its copies of the secret's keys (the fingerprint and prefix are not secret).
        self.verdict_key.zeroize();
        self.lock_key.zeroize();
        self.tombstone_key.zeroize();
    }
}

impl ZeroizeOnDrop for Naming {}

impl Naming {
    pub(crate) fn new(prefix: &str, keys: &Keys, fingerprint: [u8; 32]) -> Self {
        Self {
            prefix: prefix.to_owned(),
            verdict_key: keys.verdict,
            lock_key: keys.lock,
            tombstone_key: keys.tombstone,
            fingerprint,
        }
    }

    fn name(&self, kind: &str, tag: Option<SlotTag>, mac: &[u8; 32]) -> Vec<u8> {
        let mut name = Vec::with_capacity(self.prefix.len() + 5 + kind.len() + 2 * NAME_BYTES);
        name.extend_from_slice(self.prefix.as_bytes());
        if let Some(tag) = tag {
            tag.write(&mut name);
        }
        name.extend_from_slice(kind.as_bytes());
        for byte in &mac[..NAME_BYTES] {
            name.extend_from_slice(format!("{byte:02x}").as_bytes());
        }
        name
    }

    /// Where the verdict about `key` is kept.
    pub(crate) fn verdict(&self, key: TokenKey, tag: Option<SlotTag>) -> Vec<u8> {
        self.name(
            "v:",
            tag,
            &mac(&self.verdict_key, &[&self.fingerprint, &key.to_be_bytes()]),
        )
    }

    /// The fleet lock of `key`'s verification.
    pub(crate) fn lock(&self, key: TokenKey, tag: Option<SlotTag>) -> Vec<u8> {
        self.name(
            "l:",
            tag,
            &mac(&self.lock_key, &[&self.fingerprint, &key.to_be_bytes()]),
        )
    }

    /// Where `key`'s revocation is kept.
    pub(crate) fn tombstone(&self, key: TokenKey, tag: Option<SlotTag>) -> Vec<u8> {
        self.name("t:", tag, &mac(&self.tombstone_key, &[&key.to_be_bytes()]))
    }
}

impl Naming {
    /// Where `key`'s fleet generation is counted: bumped by every `invalidate` and `revoke`, so
    /// a fill computed before one of them is refused (the local generation rule, in Redis).
    pub(crate) fn generation(&self, key: TokenKey, tag: Option<SlotTag>) -> Vec<u8> {
        self.name(
            "g:",
            tag,
            &mac(&self.tombstone_key, &[b"generation", &key.to_be_bytes()]),
        )
    }
}

/// The pub/sub channel of a prefix.
pub(crate) fn channel(prefix: &str) -> String {
    format!("{prefix}events")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_copies_of_the_keys_are_wiped_on_drop() {
        fn wiped_on_drop<T: ZeroizeOnDrop>() {}
        wiped_on_drop::<Naming>();
    }

    #[test]
    fn on_a_cluster_every_name_of_a_token_carries_its_tag_under_every_secret() {
        let tag = Some(SlotTag::of("Atza|token"));
        let (current, previous) = (Keys::derive(&[7; 32]), Keys::derive(&[8; 32]));
        let key = TokenKey::from_be_bytes([5; 16]);
        for naming in [
            Naming::new("p:", &current, [1; 32]),
            Naming::new("p:", &previous, [1; 32]),
        ] {
            for name in [
                naming.verdict(key, tag),
                naming.lock(key, tag),
                naming.tombstone(key, tag),
                naming.generation(key, tag),
            ] {
                assert_eq!(name[..7], naming.verdict(key, tag)[..7], "one hash tag");
                assert_eq!(name[2], b'{');
            }
            assert!(
                naming.verdict(key, None).starts_with(b"p:v:"),
                "none on one Redis"
            );
        }
    }

    #[test]
    fn verdicts_depend_on_the_fingerprint_and_tombstones_do_not() {
        let keys = Keys::derive(&[7; 32]);
        let a = Naming::new("p:", &keys, [1; 32]);
        let b = Naming::new("p:", &keys, [2; 32]);
        assert_ne!(
            a.verdict(TokenKey::from_be_bytes(42u128.to_be_bytes()), None),
            b.verdict(TokenKey::from_be_bytes(42u128.to_be_bytes()), None)
        );
        assert_eq!(
            a.tombstone(TokenKey::from_be_bytes(42u128.to_be_bytes()), None),
            b.tombstone(TokenKey::from_be_bytes(42u128.to_be_bytes()), None)
        );
        assert_ne!(
            a.verdict(TokenKey::from_be_bytes(42u128.to_be_bytes()), None),
            a.verdict(TokenKey::from_be_bytes(43u128.to_be_bytes()), None)
        );
        assert!(a
            .verdict(TokenKey::from_be_bytes(42u128.to_be_bytes()), None)
            .starts_with(b"p:v:"));
        // The lock's MAC is not the verdict's: one cannot be made from the other.
        assert_ne!(
            a.lock(TokenKey::from_be_bytes(42u128.to_be_bytes()), None)[4..],
            a.verdict(TokenKey::from_be_bytes(42u128.to_be_bytes()), None)[4..]
        );
        assert_eq!(
            a.verdict(TokenKey::from_be_bytes(42u128.to_be_bytes()), None)
                .len(),
            4 + 32
        );
    }
}
