//! The integration tests, linked into one binary (one link of axum, reqwest, hyper and the
//! crate instead of one per file), a module per area. Two files stay binaries of their own
//! because they install process-wide state that would reach every test here:
//! `tests/hit_path_allocations.rs` (a counting `#[global_allocator]`) and
//! `tests/no_token_in_logs.rs` (the global TRACE `tracing` subscriber; it shares `common`
//! through `#[path]`).

#[cfg(feature = "mock")]
mod common;

#[cfg(all(feature = "axum", feature = "mock"))]
mod axum;
#[cfg(feature = "mock")]
mod coalescing_1000;
#[cfg(all(feature = "mock", feature = "axum"))]
mod coherence;
#[cfg(all(feature = "mock", feature = "axum"))]
mod configuration;
#[cfg(all(feature = "mock", feature = "axum"))]
mod core;
#[cfg(feature = "mock")]
mod ecosystem;
#[cfg(all(feature = "mock", feature = "axum"))]
mod examples;
#[cfg(feature = "mock")]
mod exchange;
mod external;
#[cfg(all(feature = "mock", feature = "axum"))]
mod faults;
#[cfg(all(feature = "mock", feature = "axum", feature = "redis"))]
mod fleet;
#[cfg(all(feature = "mock", feature = "axum"))]
mod forward_auth;
#[cfg(all(feature = "mock", feature = "axum"))]
mod hardening;
#[cfg(all(feature = "mock", feature = "axum"))]
mod isolation;
mod layout;
#[cfg(feature = "mock")]
mod memo;
#[cfg(all(feature = "mock", feature = "axum", feature = "metrics"))]
mod metrics;
#[cfg(feature = "mock")]
mod mock;
mod properties;
#[cfg(all(feature = "mock", feature = "axum"))]
mod soak;
#[cfg(all(feature = "mock", feature = "axum"))]
mod verdicts;
