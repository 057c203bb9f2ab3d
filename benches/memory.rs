//! Memory per cached entry at 100 000 entries with a realistic profile (email, name, postal
//! code), measured with a counting global allocator (live bytes requested from the allocator).
//!
//! `cargo bench --features axum --bench memory`
//!
//! Method: every token is registered with the mock and sent once through a *first* layer, so
//! the mock's own per-token bookkeeping is fully grown before anything is measured; that layer
//! is dropped. A second layer (capacity 100 000, the default) is built and warmed with 1 000
//! tokens, which brings its HTTP connection pool to steady state; live bytes are read; the
//! other 99 000 tokens go through it; `run_pending_tasks`; live bytes again. The difference
//! divided by 99 000 is the marginal cost of an entry. The total since before the second
//! layer was built, divided by 100 000, is also printed (it includes the connection pool and
//! moka's fixed structures). Not a criterion bench: it prints its figures.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::stores::{keys, quick, store};
use common::{inner, tokens, warm, Source, Template, Upstream};
use tower::Layer;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Live allocations, and their size as glibc's malloc rounds it (8-byte header, 16-byte
/// granularity, 32-byte minimum): what the heap really spends.
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);
static LIVE_CHUNKS: AtomicIsize = AtomicIsize::new(0);

fn chunk(size: usize) -> isize {
    ((size + 8 + 15) & !15).max(32) as isize
}

fn on_alloc(size: usize) {
    LIVE.fetch_add(size as isize, Relaxed);
    LIVE_BLOCKS.fetch_add(1, Relaxed);
    LIVE_CHUNKS.fetch_add(chunk(size), Relaxed);
    ALLOCATIONS.fetch_add(1, Relaxed);
}

fn on_dealloc(size: usize) {
    LIVE.fetch_sub(size as isize, Relaxed);
    LIVE_BLOCKS.fetch_sub(1, Relaxed);
    LIVE_CHUNKS.fetch_sub(chunk(size), Relaxed);
}

// SAFETY: every method forwards to `System` unchanged; the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        on_dealloc(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            on_dealloc(layout.size());
            on_alloc(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ENTRIES: usize = 100_000;
const PRIMING: usize = 1_000;
const CONCURRENCY: usize = 64;

#[derive(Clone, Copy)]
struct Snapshot {
    bytes: isize,
    blocks: isize,
    chunks: isize,
}

fn live() -> Snapshot {
    Snapshot {
        bytes: LIVE.load(Relaxed),
        blocks: LIVE_BLOCKS.load(Relaxed),
        chunks: LIVE_CHUNKS.load(Relaxed),
    }
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn settle(upstream: &Upstream) {
    // Let connection tasks that are closing finish.
    upstream
        .rt
        .block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
}

fn main() {
    // `cargo bench` passes `--bench`; criterion-style filters are ignored here.
    let upstream = Upstream::start();
    let all = tokens("mem", ENTRIES);
    for (i, token) in all.iter().enumerate() {
        upstream.register_user(token, i);
    }
    let templates: Vec<Template> = all.iter().map(|t| Template::new(t, Source::Bearer)).collect();
    let builder = || {
        upstream
            .builder()
            .capacity(ENTRIES as u64)
            .max_in_flight(4 * CONCURRENCY)
    };

    // Pass 1: grow the mock's per-token bookkeeping to its final size.
    let started = Instant::now();
    {
        let first = common::layer(builder());
        let svc = first.layer(inner());
        assert_eq!(warm(&upstream.rt, &svc, &templates, CONCURRENCY), ENTRIES);
        first.cache().entry_count(); // applies moka's pending maintenance
    }
    settle(&upstream);
    println!(
        "pass 1 (priming the mock): {ENTRIES} tokens in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Pass 2: measure.
    let base = live();
    let base_rss = rss_bytes();
    let layer = common::layer(builder());
    let svc = layer.layer(inner());
    assert_eq!(
        warm(&upstream.rt, &svc, &templates[..PRIMING], CONCURRENCY),
        PRIMING
    );
    layer.cache().entry_count(); // applies moka's pending maintenance
    settle(&upstream);
    let before = live();
    let started = Instant::now();
    assert_eq!(
        warm(&upstream.rt, &svc, &templates[PRIMING..], CONCURRENCY),
        ENTRIES - PRIMING
    );
    layer.cache().entry_count(); // applies moka's pending maintenance
    settle(&upstream);
    layer.cache().entry_count(); // applies moka's pending maintenance
    let after = live();
    let after_rss = rss_bytes();
    let entries = layer.cache().entry_count();
    let stats = layer.stats();

    let per = |a: isize, b: isize, n: usize| (a - b) as f64 / n as f64;
    let grown = ENTRIES - PRIMING;
    println!(
        "pass 2: {grown} tokens in {:.1} s; entry_count {entries}; upstream calls {}; misses {}",
        started.elapsed().as_secs_f64(),
        stats.upstream_calls,
        stats.misses
    );
    println!(
        "live bytes: before layer {}, after priming {}, after {}; allocations so far {}",
        base.bytes,
        before.bytes,
        after.bytes,
        ALLOCATIONS.load(Relaxed)
    );
    println!(
        "memory/marginal_bytes_per_entry: {:.0} requested, {:.0} as malloc chunks, in {:.1} live allocations (over {grown} entries)",
        per(after.bytes, before.bytes, grown),
        per(after.chunks, before.chunks, grown),
        per(after.blocks, before.blocks, grown),
    );
    println!(
        "memory/total_bytes_per_entry: {:.0} requested, {:.0} as malloc chunks (layer total / {ENTRIES})",
        per(after.bytes, base.bytes, ENTRIES),
        per(after.chunks, base.chunks, ENTRIES),
    );
    if let (Some(a), Some(b)) = (after_rss, base_rss) {
        println!(
            "memory/rss_growth_per_entry: {:.0} (RSS, includes allocator overhead and fragmentation)",
            (a as f64 - b as f64) / ENTRIES as f64
        );
    }
    assert_eq!(entries, ENTRIES as u64, "every token cached, none evicted");
    drop(svc);
    drop(layer);
    drop(upstream);

    // The store alone: the identity cache's moka configuration against quick_cache, 100 000 entries
    // whose value is an `Arc` of a 128-byte stand-in identity (144 bytes, counted in both).
    let keys = keys(ENTRIES);
    let base = live();
    let moka = store(&keys);
    let with_moka = live();
    drop(moka);
    let base_quick = live();
    let quick = quick(&keys);
    let with_quick = live();
    drop(quick);
    println!(
        "memory/store_only moka: {:.0} requested, {:.0} as malloc chunks, {:.1} allocations per entry",
        per(with_moka.bytes, base.bytes, ENTRIES),
        per(with_moka.chunks, base.chunks, ENTRIES),
        per(with_moka.blocks, base.blocks, ENTRIES),
    );
    // The stand-in identity is one allocation of 144 B (an `Arc` of 128 bytes).
    println!(
        "memory/store_only moka, less the stand-in identity: {:.0} requested, {:.1} allocations per entry",
        per(with_moka.bytes, base.bytes, ENTRIES) - 144.0,
        per(with_moka.blocks, base.blocks, ENTRIES) - 1.0,
    );
    println!(
        "memory/store_only quick_cache: {:.0} requested, {:.0} as malloc chunks, {:.1} allocations per entry",
        per(with_quick.bytes, base_quick.bytes, ENTRIES),
        per(with_quick.chunks, base_quick.chunks, ENTRIES),
        per(with_quick.blocks, base_quick.blocks, ENTRIES),
    );
}
