//! [`CacheSettings`]: what a second level sees of the cache it is attached to.

use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::Endpoints;

/// The cache's settings, shown to [`IntoSecondLevel::attach`](super::IntoSecondLevel::attach):
/// everything that decides whether a stored verdict means the same to this service (for a
/// fingerprint that keeps two services, or two configurations, from sharing verdicts), and the
/// figures a level sizes itself by.
#[derive(Debug)]
#[non_exhaustive]
pub struct CacheSettings<'a> {
    /// The client ids whose tokens are accepted.
    pub client_ids: &'a [Arc<str>],
    /// Where tokens are verified.
    pub endpoints: &'a Endpoints,
    /// Whether `aud` is checked against `client_ids`.
    pub check_audience: bool,
    /// Whether the profile is fetched (`email`, `name`, `postal_code` known).
    pub fetch_profile: bool,
    /// The version of the payload the cache writes: a level should make it part of its
    /// fingerprint, so a deploy that changes it reads nothing written in the old one.
    pub payload_version: u8,
    /// The time allowed to verify one token.
    pub deadline: Duration,
    /// The most verdicts the local store keeps.
    pub capacity: u64,
}
