//! [`Aliases`]: what the fleet level remembers of a token by its key, for the calls that come
//! without the token (a fill, a lock released, `AmazonUser::revoke`, a message received): its
//! key under the previous secret while one is being rotated out, and on a Redis Cluster its
//! hash tag ([`SlotTag`]). Both are computed from the token when it is at hand (every miss
//! has it) and kept, least recently used first out, for as many tokens as the local cache
//! holds.

use tower_amazon_auth::second_level::{KeyedDigest, TokenKey};

use crate::cluster::SlotTag;

/// A token's cluster tag is not known (its key came without the token and was not seen
/// recently): its keys cannot be named on a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnknownTag;

/// The remembered aliases of tokens.
pub(crate) struct Aliases {
    /// With a previous secret: the token's key under it, by its current key, and back.
    previous_of: Option<moka::sync::Cache<TokenKey, TokenKey>>,
    current_of: Option<moka::sync::Cache<TokenKey, TokenKey>>,
    /// On a cluster: the token's tag, by its current key.
    tags: Option<moka::sync::Cache<TokenKey, SlotTag>>,
}

impl Aliases {
    /// For up to `capacity` tokens; keys under a previous secret when `rotating`, tags when
    /// on a `cluster`.
    pub(crate) fn new(capacity: u64, rotating: bool, cluster: bool) -> Self {
        // Least recently used, without TinyLFU's admission filter, which would turn away a new,
        // rarely read mapping (and with it a revocation's copy under the previous secret).
        fn map<V: Clone + Send + Sync + 'static>(capacity: u64) -> moka::sync::Cache<TokenKey, V> {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build()
        }
        Self {
            previous_of: rotating.then(|| map(capacity)),
            current_of: rotating.then(|| map(capacity)),
            tags: cluster.then(|| map(capacity)),
        }
    }

    /// The key under the previous secret (`previous`, its digest) of the token known by
    /// `key`: computed from `token` when given (and remembered), or remembered.
    pub(crate) fn previous(
        &self,
        key: TokenKey,
        token: Option<&str>,
        previous: &KeyedDigest,
    ) -> Option<TokenKey> {
        let (previous_of, current_of) = (self.previous_of.as_ref()?, self.current_of.as_ref()?);
        match token {
            Some(token) => {
                let old = previous.key(token.as_bytes());
                previous_of.insert(key, old);
                current_of.insert(old, key);
                Some(old)
            }
            None => previous_of.get(&key),
        }
    }

    /// The current key of a token named `old` under the previous secret, if known.
    pub(crate) fn current_of(&self, old: TokenKey) -> Option<TokenKey> {
        self.current_of.as_ref()?.get(&old)
    }

    /// The cluster tag of the token known by `key`: `Ok(None)` on one Redis (no tag), computed
    /// from `token` when given (and remembered), or remembered.
    pub(crate) fn tag(&self, key: TokenKey, token: Option<&str>) -> Result<Option<SlotTag>, UnknownTag> {
        let Some(tags) = &self.tags else {
            return Ok(None);
        };
        match token {
            Some(token) => {
                let tag = SlotTag::of(token);
                tags.insert(key, tag);
                Ok(Some(tag))
            }
            None => tags.get(&key).map(Some).ok_or(UnknownTag),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_remembered_from_the_token_and_none_on_one_redis() {
        let key = TokenKey::from_be_bytes([3; 16]);
        let single = Aliases::new(10, false, false);
        assert_eq!(single.tag(key, None), Ok(None));
        let cluster = Aliases::new(10, false, true);
        assert_eq!(cluster.tag(key, None), Err(UnknownTag));
        let tag = cluster.tag(key, Some("Atza|token")).unwrap();
        assert_eq!(tag, Some(SlotTag::of("Atza|token")));
        assert_eq!(cluster.tag(key, None), Ok(tag));
    }
}
