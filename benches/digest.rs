//! The token → cache-key step on a realistic 410-byte token: the crate's keyed
//! SipHash-1-3-128 against keyed SipHash-2-4-128, SHA-256, keyed BLAKE3 and foldhash (64-bit,
//! not collision-safe: for reference only).
//!
//! `cargo bench --features axum --bench digest -- --warm-up-time 1 --measurement-time 3`

use std::hash::BuildHasher;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sha2::{Digest, Sha256};
use siphasher::sip128::{SipHasher13, SipHasher24};
use tower_amazon_auth_mock::mock_access_token;

fn digest(c: &mut Criterion) {
    let token = mock_access_token("digest");
    let bytes = token.as_bytes();
    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Bytes(bytes.len() as u64));

    // Exactly the crate's key (src/cache/key.rs: KeyedDigest::key).
    let sip13 = SipHasher13::new_with_keys(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
    group.bench_function("siphash13_128_keyed (crate)", |b| {
        b.iter(|| {
            let h = sip13.hash(black_box(bytes));
            (u128::from(h.h1) << 64) | u128::from(h.h2)
        })
    });
    let sip24 = SipHasher24::new_with_keys(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
    group.bench_function("siphash24_128_keyed", |b| {
        b.iter(|| {
            let h = sip24.hash(black_box(bytes));
            (u128::from(h.h1) << 64) | u128::from(h.h2)
        })
    });
    group.bench_function("sha256", |b| b.iter(|| Sha256::digest(black_box(bytes))));
    let key = [7u8; 32];
    group.bench_function("blake3_keyed", |b| {
        b.iter(|| blake3::keyed_hash(&key, black_box(bytes)))
    });
    let fold = foldhash::fast::FixedState::with_seed(0x5eed);
    group.bench_function("foldhash_u64 (not collision-safe)", |b| {
        b.iter(|| fold.hash_one(black_box(bytes)))
    });
    // What moka then does with the crate's u128 key: one foldhash of 16 bytes.
    let key128 = {
        let h = sip13.hash(bytes);
        (u128::from(h.h1) << 64) | u128::from(h.h2)
    };
    let moka_hasher = foldhash::fast::RandomState::default();
    group.throughput(Throughput::Bytes(16));
    group.bench_function("foldhash_of_u128_key (moka lookup hash)", |b| {
        b.iter(|| moka_hasher.hash_one(black_box(key128)))
    });
    group.finish();
}

criterion_group!(benches, digest);
criterion_main!(benches);
