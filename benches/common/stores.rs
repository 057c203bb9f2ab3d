//! Replicas of the identity cache's store (same key, value shape, hasher and time to live as
//! `src/cache/`) and candidate replacements, for the `components` and `memory` benches.
#![allow(dead_code, unreachable_pub)]

use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use siphasher::sip128::SipHasher13;

/// Stands in for `Identity`: about its size.
pub struct Identity(pub [u64; 16]);

#[derive(Clone)]
pub enum Entry {
    Valid { identity: Arc<Identity>, until: Instant },
    Rejected { code: u8, until: Instant },
}

impl Entry {
    pub fn until(&self) -> Instant {
        match self {
            Self::Valid { until, .. } | Self::Rejected { until, .. } => *until,
        }
    }
}

pub type Store = moka::sync::Cache<u128, Entry, foldhash::fast::RandomState>;

pub fn store(keys: &[u128]) -> Store {
    let store: Store = moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(3600))
        .build_with_hasher(foldhash::fast::RandomState::default());
    let until = Instant::now() + Duration::from_secs(3600);
    for key in keys {
        store.insert(
            *key,
            Entry::Valid {
                identity: Arc::new(Identity([0; 16])),
                until,
            },
        );
    }
    store.run_pending_tasks();
    store
}

/// A floor: 64 shards of `RwLock<HashMap>`, no eviction, no expiry, no access bookkeeping.
pub type Shard = RwLock<std::collections::HashMap<u128, Entry, foldhash::fast::RandomState>>;

pub struct Sharded {
    shards: Vec<Shard>,
    hasher: foldhash::fast::RandomState,
}

impl Sharded {
    pub fn new(keys: &[u128]) -> Self {
        let hasher = foldhash::fast::RandomState::default();
        let shards: Vec<Shard> = (0..64).map(|_| RwLock::new(Default::default())).collect();
        let until = Instant::now() + Duration::from_secs(3600);
        for key in keys {
            let shard = &shards[(hasher.hash_one(key) >> 58) as usize];
            shard.write().expect("lock").insert(
                *key,
                Entry::Valid {
                    identity: Arc::new(Identity([0; 16])),
                    until,
                },
            );
        }
        Self { shards, hasher }
    }

    #[inline]
    pub fn get(&self, key: &u128) -> Option<Entry> {
        let shard = &self.shards[(self.hasher.hash_one(key) >> 58) as usize];
        let entry = shard.read().expect("lock").get(key).cloned()?;
        (entry.until() > Instant::now()).then_some(entry)
    }
}

/// The quick_cache candidate: same key, value and hasher; no built-in expiry, so the reader
/// checks `until` itself (one `Instant::now`, as moka does).
pub type Quick =
    quick_cache::sync::Cache<u128, Entry, quick_cache::UnitWeighter, foldhash::fast::RandomState>;

pub fn quick(keys: &[u128]) -> Quick {
    // quick_cache's capacity is approximate: room for all keys, so every lookup hits.
    let cache = Quick::with(
        keys.len().max(16),
        2 * keys.len().max(16) as u64,
        quick_cache::UnitWeighter,
        foldhash::fast::RandomState::default(),
        Default::default(),
    );
    let until = Instant::now() + Duration::from_secs(3600);
    for key in keys {
        cache.insert(
            *key,
            Entry::Valid {
                identity: Arc::new(Identity([0; 16])),
                until,
            },
        );
    }
    cache
}

#[inline]
pub fn quick_get(cache: &Quick, key: &u128) -> Option<Entry> {
    let entry = cache.get(key)?;
    (entry.until() > Instant::now()).then_some(entry)
}

/// A random permutation of `0..n` (xorshift Fisher-Yates), so lookups do not walk memory in
/// insertion order.
pub fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

pub fn keys(n: usize) -> Vec<u128> {
    let sip = SipHasher13::new_with_keys(1, 2);
    super::tokens("component", n)
        .iter()
        .map(|t| {
            let h = sip.hash(t.as_bytes());
            (u128::from(h.h1) << 64) | u128::from(h.h2)
        })
        .collect()
}
