//! Where the hit path's time goes, piece by piece, and prototypes of cheaper pieces: the
//! evidence behind the recommendations in BENCHMARKS.md.
//!
//! `cargo bench --features axum --bench components -- --warm-up-time 1 --measurement-time 3`
//!
//! * `component/*`: the public pieces of the hit path (token check, extraction), a replica of
//!   the identity cache's moka store (same key, value, hasher and per-entry expiry as
//!   `src/cache/`) read at 1, 10 000 and 100 000 entries in random order, against
//!   `quick_cache` (a candidate replacement, expiry checked by the reader) and a sharded
//!   `RwLock<HashMap>` (a floor: one hash lookup); the extension insert; `Instant::now`.
//! * `query/*`: extracting `access_token` from a query string with the crate's public
//!   `extract_token` (which also copies the token, ~10 ns) against a prototype that compares
//!   names raw and decodes only the token's value, with a hand-written `%XX` decoder, only when
//!   it holds `%` or `+`; then removing the parameter the way `src/service.rs` does (re-parsing
//!   every pair, a new `Uri`; a replica) against a prototype that cuts the byte range found
//!   during extraction.

mod common;

use std::borrow::Cow;
use std::hint::black_box;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::stores::{keys, quick, quick_get, shuffled, store, Identity, Sharded};
use common::{Source, Template};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::Uri;
use tower_amazon_auth::response::{default_response, ErrorContext};
use tower_amazon_auth::token::{extract_token, TokenRules, ACCESS_TOKEN_PARAM};
use tower_amazon_auth::{AccessToken, AuthError, Malformed};
use tower_amazon_auth_mock::mock_access_token;

// --- query extraction: the current way and a prototype ----------------------------------------

/// Decodes `%XX` escapes and `+`; `None` for a bad escape or non-UTF-8 result (a token is
/// ASCII, so either is a bad character).
fn decode_value(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(at) = bytes[i..].iter().position(|b| matches!(b, b'%' | b'+')) {
        out.extend_from_slice(&bytes[i..i + at]);
        i += at;
        if bytes[i] == b'+' {
            out.push(b' ');
            i += 1;
            continue;
        }
        let hex = |b: u8| (b as char).to_digit(16);
        let hi = bytes.get(i + 1).copied().and_then(hex)?;
        let lo = bytes.get(i + 2).copied().and_then(hex)?;
        out.push((hi * 16 + lo) as u8);
        i += 3;
    }
    out.extend_from_slice(&bytes[i..]);
    String::from_utf8(out).ok()
}

/// A token found by the prototype, and the byte range of its pair in the query.
type Found<'a> = (Cow<'a, str>, Range<usize>);

/// The prototype: split on `&`, compare each name raw (decoding a name only if it holds `%` or
/// `+`), decode only the token's value and only if it needs it; also returns the byte range of
/// the `access_token` pair in the query, for stripping without a second parse.
#[inline(never)]
fn query_proposed(uri: &Uri) -> Result<Option<Found<'_>>, ()> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let needs_decoding = |s: &str| s.bytes().any(|b| matches!(b, b'%' | b'+'));
    let mut found = None;
    let mut start = 0;
    for pair in query.split('&') {
        let range = start..start + pair.len();
        start = range.end + 1;
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let is_token = if needs_decoding(name) {
            decode_value(name).as_deref() == Some(ACCESS_TOKEN_PARAM)
        } else {
            name == ACCESS_TOKEN_PARAM
        };
        if !is_token {
            continue;
        }
        if found.is_some() {
            return Err(());
        }
        let value = if needs_decoding(value) {
            Cow::Owned(decode_value(value).ok_or(())?)
        } else {
            Cow::Borrowed(value)
        };
        found = Some((value, range));
    }
    Ok(found)
}

/// Wall time for `iters` lookups split over `threads` threads (started on a barrier), each
/// thread walking `order` from its own offset.
fn threaded<F>(iters: u64, threads: usize, keys: &[u128], order: &[usize], get: F) -> Duration
where
    F: Fn(&u128) -> bool + Sync,
{
    let barrier = std::sync::Barrier::new(threads + 1);
    let each = iters.div_ceil(threads as u64);
    let start = std::thread::scope(|scope| {
        for t in 0..threads {
            let (barrier, get) = (&barrier, &get);
            scope.spawn(move || {
                let n = order.len();
                let mut i = t * n / threads;
                barrier.wait();
                for _ in 0..each {
                    i = if i + 1 >= n { 0 } else { i + 1 };
                    black_box(get(black_box(&keys[order[i]])));
                }
            });
        }
        barrier.wait();
        Instant::now()
    });
    start.elapsed()
}

fn components(c: &mut Criterion) {
    let token = mock_access_token("component");

    // --- public pieces of the hit path ----------------------------------------------------------
    {
        let mut group = c.benchmark_group("component");
        group.bench_function("check_410B", |b| {
            b.iter(|| AccessToken::check(black_box(&token), TokenRules::default()))
        });
        group.bench_function("copy_token_410B (AccessToken::new)", |b| {
            b.iter(|| AccessToken::new(black_box(token.as_str())))
        });
        for source in Source::ALL {
            let request = Template::new(&token, source).request();
            group.bench_with_input(
                BenchmarkId::new("extract_token (copies the token)", source.name()),
                &request,
                |b, r| {
                    b.iter(|| {
                        extract_token(black_box(r.uri()), black_box(r.headers()), TokenRules::default())
                    })
                },
            );
        }

        for n in [1usize, 10_000, 100_000] {
            let keys = keys(n);
            let order = shuffled(n);
            let store = store(&keys);
            assert_eq!(store.entry_count(), n as u64);
            let mut i = 0;
            group.bench_with_input(BenchmarkId::new("moka_get", n), &n, |b, &n| {
                b.iter(|| {
                    i = if i + 1 == n { 0 } else { i + 1 };
                    store.get(black_box(&keys[order[i]]))
                })
            });
            drop(store);
            let cache = quick(&keys);
            assert!(keys.iter().all(|k| quick_get(&cache, k).is_some()));
            group.bench_with_input(BenchmarkId::new("quick_cache_get", n), &n, |b, &n| {
                b.iter(|| {
                    i = if i + 1 == n { 0 } else { i + 1 };
                    quick_get(&cache, black_box(&keys[order[i]]))
                })
            });
            drop(cache);
            let sharded = Sharded::new(&keys);
            group.bench_with_input(BenchmarkId::new("sharded_rwlock_hashmap_get", n), &n, |b, &n| {
                b.iter(|| {
                    i = if i + 1 == n { 0 } else { i + 1 };
                    sharded.get(black_box(&keys[order[i]]))
                })
            });
        }

        #[derive(Clone)]
        #[allow(dead_code)]
        struct User(Arc<Identity>, u8);
        let user = User(Arc::new(Identity([0; 16])), 1);
        group.bench_function("extensions_new_insert_drop", |b| {
            b.iter(|| {
                let mut extensions = http::Extensions::new();
                extensions.insert(black_box(user.clone()));
                extensions
            })
        });
        group.bench_function("instant_now", |b| b.iter(Instant::now));

        // The refusal path's response: the challenge header alone, and the whole default
        // response (status, headers, JSON body) a refusal gets.
        let error = AuthError::InvalidRequest(Malformed::BadPrefix);
        group.bench_function("refusal_challenge_header", |b| {
            b.iter(|| black_box(&error).challenge(black_box("api")))
        });
        group.bench_function("refusal_default_response", |b| {
            let cx = ErrorContext::new("api", None);
            b.iter(|| default_response(black_box(&error), cx))
        });
        group.finish();
    }

    // --- the stores from two threads: does the read path scale? --------------------------------
    {
        let mut group = c.benchmark_group("component_threads");
        for n in [1usize, 10_000] {
            let keys = keys(n);
            let order = shuffled(n);
            let store = store(&keys);
            let cache = quick(&keys);
            for threads in [1usize, 2] {
                let id = format!("{n}_keys/{threads}_threads");
                group.bench_function(BenchmarkId::new("moka_get", &id), |b| {
                    b.iter_custom(|iters| threaded(iters, threads, &keys, &order, |k| store.get(k).is_some()))
                });
                group.bench_function(BenchmarkId::new("quick_cache_get", &id), |b| {
                    b.iter_custom(|iters| {
                        threaded(iters, threads, &keys, &order, |k| quick_get(&cache, k).is_some())
                    })
                });
            }
        }
        group.finish();
    }

    // --- query strings ------------------------------------------------------------------------------
    {
        let mut group = c.benchmark_group("query");
        for source in [Source::QueryRaw, Source::QueryEncoded] {
            let request = Template::new(&token, source).request();
            let uri = request.uri();
            let (current, _) = extract_token(uri, request.headers(), TokenRules::default())
                .expect("ok")
                .expect("found");
            let (proposed, _) = query_proposed(uri).expect("ok").expect("found");
            assert_eq!(current.expose(), proposed);
            assert_eq!(proposed, token.as_str());
            group.bench_with_input(
                BenchmarkId::new("extract_current (extract_token, copies)", source.name()),
                &request,
                |b, r| {
                    b.iter(|| {
                        extract_token(black_box(r.uri()), black_box(r.headers()), TokenRules::default())
                    })
                },
            );
            group.bench_with_input(
                BenchmarkId::new("extract_proposed", source.name()),
                uri,
                |b, u| b.iter(|| query_proposed(black_box(u))),
            );
        }
        group.finish();
    }
}

criterion_group!(benches, components);
criterion_main!(benches);
