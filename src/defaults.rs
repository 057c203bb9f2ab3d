//! Every default of the crate in one place: what a setter of
//! [`AmazonAuthBuilder`](crate::AmazonAuthBuilder) or [`AmazonClient`](crate::client::AmazonClient)
//! uses when it is not called. Each setter's documentation names its default here.

use std::time::Duration;

/// Realm of the `WWW-Authenticate` challenge: `"api"`.
pub const REALM: &str = "api";
/// Safety margin subtracted from a token's remaining life before caching it: 30 s.
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);
/// Longest time a verified identity is cached (bounds how late a revocation at Amazon is
/// seen): 5 min.
pub const MAX_TTL: Duration = Duration::from_secs(5 * 60);
/// Time a definite rejection is remembered: 30 s.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Most cached verdicts: 100 000.
pub const CAPACITY: u64 = 100_000;
/// Most remembered rejections, kept apart from the identities: 10 000.
pub const NEGATIVE_CAPACITY: u64 = 10_000;
/// Most revocations (logouts) in force at once: 100 000.
pub const MAX_REVOCATIONS: u64 = 100_000;
/// The most revocations of one user's tokens in force at once: 100.
pub const MAX_REVOCATIONS_PER_USER: u64 = 100;
/// Most distinct tokens verified with Amazon at once: 256.
pub const MAX_IN_FLIGHT: usize = 256;
/// `Retry-After` on a 503: 5 s.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long no verification is started after a run of failures at Amazon, when Amazon gave
/// no `Retry-After` of its own: 5 s.
pub const BACKOFF: Duration = Duration::from_secs(5);
/// Time allowed to open a connection to Amazon: 2 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline for verifying one token (both calls, retries included), and the per-call timeout
/// of [`AmazonClient::new`](crate::client::AmazonClient::new): 5 s.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Retries of an idempotent call to Amazon after a connection failure or a 5xx: 2.
pub const RETRIES: u32 = 2;
