//! The hit path stays lean: a cached token makes no upstream call and allocates only what
//! `http::Extensions` needs to hold the `AmazonUser` (counted on this thread by a counting
//! allocator, so the mock's and the runtime's threads don't interfere). The one exception is
//! a thread's first hit of a token, which copies the identity into the thread's memo.
//!
//! A binary of its own rather than a module of `tests/it`: the counting `#[global_allocator]`
//! would be the allocator of every test in that binary.
// A counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};
use tower_amazon_auth::{AmazonAuthLayer, AmazonUser, IdentityCache};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockUser, MOCK_CLIENT_ID};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (out, ALLOCATIONS.with(Cell::get))
}

async fn inner(request: Request<()>) -> Result<Response<Full<Bytes>>, Infallible> {
    assert!(request.extensions().get::<AmazonUser>().is_some());
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// Allocations of the identity copy a thread's first hit of a token makes: the `Arc` and the
/// identity's text (all its fields in one allocation).
const IDENTITY_COPY: usize = 2;

/// Warms a layer's cache with one token, then sends four cache hits (the request built with
/// an extension map already in place when `existing_extensions`), checking each completes on
/// its first poll without an upstream call. Returns the allocations of each hit.
async fn allocations_of_four_hits(existing_extensions: bool) -> Vec<usize> {
    let mock = MockAmazon::start().await.unwrap();
    let token = mock_access_token("alloc");
    mock.register(
        &token,
        MockUser::new("amzn1.account.alloc").email("a@example.com"),
    );
    let layer = AmazonAuthLayer::builder(
        IdentityCache::builder()
            .client_id(MOCK_CLIENT_ID)
            .base_url(mock.base_url())
            .build()
            .unwrap(),
    )
    .build()
    .unwrap();
    let mut service = layer.layer(tower::service_fn(inner));
    let request = || {
        let mut request = Request::get("/me")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        if existing_extensions {
            // As behind a router or hyper, which put their own extensions in first.
            request.extensions_mut().insert(7u32);
        }
        request
    };
    // Warm the cache (a miss: boxed future, upstream calls).
    let response = service.ready().await.unwrap().call(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    let calls = mock.calls();

    let mut counts = Vec::new();
    for _ in 0..4 {
        let request = request();
        let mut cx = Context::from_waker(Waker::noop());
        let (poll, allocations) = allocations_during(|| {
            pin!(service.call(request))
                .poll(&mut cx)
                .map(|r| r.unwrap().status())
        });
        // The hit path completes on its first poll: it never waits on anything.
        assert_eq!(poll, Poll::Ready(http::StatusCode::OK));
        counts.push(allocations);
    }
    assert_eq!(mock.calls(), calls, "no upstream call on a hit");
    counts
}

#[tokio::test]
async fn a_cache_hit_allocates_only_for_the_extension() {
    // http::Extensions boxes its map, allocates the map's table and boxes the value: three
    // allocations on a request that had no extensions yet, and none of the crate's own.
    let counts = allocations_of_four_hits(false).await;
    assert_eq!(
        counts[0],
        3 + IDENTITY_COPY,
        "{counts:?}: the first hit copies the identity"
    );
    assert!(
        counts[1..].iter().all(|&n| n <= 3),
        "{counts:?} allocations on the hit path"
    );
}

#[tokio::test]
async fn with_an_existing_extension_map_a_hit_allocates_once() {
    let counts = allocations_of_four_hits(true).await;
    assert_eq!(
        counts[0],
        1 + IDENTITY_COPY,
        "{counts:?}: the first hit copies the identity"
    );
    assert!(
        counts[1..].iter().all(|&n| n <= 1),
        "{counts:?} allocations on the hit path"
    );
}
