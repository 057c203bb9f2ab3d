//! The integration tests, linked into one binary (one link of axum, reqwest, hyper and the
//! crate instead of one per file), a module per area. Two files stay binaries of their own
//! because they install process-wide state that would reach every test here:
//! `tests/hit_path_allocations.rs` (a counting `#[global_allocator]`) and
//! `tests/no_token_in_logs.rs` (the global TRACE `tracing` subscriber; it shares `common`
//! through `#[path]`).

use tower_amazon_auth_test_support::{external, fixtures as common};

#[cfg(feature = "axum")]
mod axum;
mod coalescing_1000;
#[cfg(feature = "axum")]
mod coherence;
#[cfg(feature = "axum")]
mod configuration;
#[cfg(feature = "axum")]
mod core;
mod ecosystem;
#[cfg(feature = "axum")]
mod examples;
mod exchange;
#[cfg(feature = "axum")]
mod faults;
#[cfg(feature = "axum")]
mod fleet_examples;
#[cfg(feature = "axum")]
mod forward_auth;
#[cfg(feature = "axum")]
mod hardening;
#[cfg(feature = "axum")]
mod isolation;
mod layout;
mod memo;
#[cfg(all(feature = "axum", feature = "metrics"))]
mod metrics;
mod properties;
#[cfg(feature = "axum")]
mod sign_in;
#[cfg(feature = "axum")]
mod soak;
#[cfg(feature = "axum")]
mod verdicts;
