//! Redis Cluster: the seed URLs checked when the cache is built, the cluster client made from
//! them (with the TLS settings), the hash tag every key of one token shares, and the `WAIT`
//! that holds a tombstone until a replica has it.
//!
//! **The tag.** A script may only touch keys of one slot, and Redis hashes only the part of a
//! name between the first `{` and the next `}` when there is one. Every key of one token
//! (verdicts, tombstones, the lock, the generation), under the current secret and the previous
//! one alike, carries `{t}` where `t` is three hex digits (12 bits) of an *unkeyed* SHA-256 of
//! the token: the same under every secret, so a script of a rotating instance, which passes
//! the token's keys under both secrets, still touches one slot. Twelve bits spread tokens over
//! 4096 tags (enough for any number of shards) and say nothing a name did not already allow:
//! anyone who holds a token can compute its tag, but the tag of a name in a dump points at
//! millions of possible tokens per candidate. The tag is known only with the token: it is
//! remembered by the token's key (see `aliases`) for the calls that come without it.
//!
//! **Messages.** Redis Cluster broadcasts a classic `PUBLISH`, from any node, to every node over
//! its bus, so the subscriber listens on one node: a plain pub/sub connection to one of the
//! seeds, the next seed after each disconnection or failed attempt. The client's own cluster
//! pub/sub is not used: it resubscribes silently after a reconnection, and a gap the subscriber
//! cannot see is a logout it cannot make up for (it flushes its local cache when it subscribes
//! again). A sharded `SPUBLISH` could not be sent from the scripts, whose keys are in another
//! slot than the channel.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use sha2::{Digest, Sha256};

use crate::error::FleetError;
use crate::tls::Tls;

/// Domain separation of the tag's hash.
const TAG_DOMAIN: &[u8] = b"tower-amazon-auth cluster tag v1\0";

/// The hash tag of every key of one token on a cluster: 12 bits of an unkeyed hash of the
/// token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SlotTag(u16);

impl SlotTag {
    /// The tag of `token`.
    pub(crate) fn of(token: &str) -> Self {
        let hash = Sha256::new()
            .chain_update(TAG_DOMAIN)
            .chain_update(token.as_bytes())
            .finalize();
        Self(u16::from_be_bytes([hash[0], hash[1]]) & 0x0fff)
    }

    /// Appends `{xyz}` to `name`.
    pub(crate) fn write(self, name: &mut Vec<u8>) {
        name.extend_from_slice(format!("{{{}}}", self.hex()).as_bytes());
    }

    fn hex(self) -> String {
        format!("{:03x}", self.0)
    }

    /// The cluster slot of every name with this tag: CRC16 (XMODEM) of the tag, modulo 16384,
    /// as Redis computes it.
    pub(crate) fn slot(self) -> u16 {
        slot(self.hex().as_bytes())
    }
}

/// Redis Cluster's slot of a hash tag (or of a whole key without one).
pub(crate) fn slot(tag: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in tag {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// Checks the seeds of a cluster: at least one, none on a Unix socket, all agreeing on TLS,
/// user, password and database 0 (the client's own checks, which open no connection). The
/// URLs are never repeated: they may hold a password.
pub(crate) fn check(seeds: &[&str]) -> Result<(), FleetError> {
    if seeds.is_empty() {
        return Err(FleetError::ClusterSeeds);
    }
    for seed in seeds {
        let info = redis::IntoConnectionInfo::into_connection_info(*seed).map_err(|_| FleetError::Url)?;
        if info.redis_settings().db() != 0 {
            return Err(FleetError::ClusterSeeds);
        }
    }
    ClusterClientBuilder::new(seeds.iter().copied())
        .build()
        .map(drop)
        .map_err(|_| FleetError::ClusterSeeds)
}

/// The cluster client for `seeds` (checked already), with `tls` and the command timeout.
pub(crate) fn client(seeds: &[&str], tls: &Tls, timeout: Duration) -> Result<ClusterClient, FleetError> {
    let mut builder = ClusterClientBuilder::new(seeds.iter().copied())
        .connection_timeout(timeout.max(Duration::from_secs(1)))
        .response_timeout(timeout)
        // Redirections (`MOVED`, `ASK`) and reconnections, within the level's own timeout.
        .retries(2)
        .min_retry_wait(10)
        .max_retry_wait(200);
    if let Some(certificates) = tls.certificates() {
        builder = builder.certs(certificates);
    }
    builder.build().map_err(|_| FleetError::ClusterSeeds)
}

/// `WAIT 1 <timeout>` on the primary of `slot`, on the connection that just wrote to it:
/// whether a replica acknowledged every write before it within `timeout`.
pub(crate) async fn replicated(connection: &mut ClusterConnection, slot: u16, timeout: Duration) -> bool {
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
        slot,
        SlotAddr::Master,
    )));
    let mut wait = redis::cmd("WAIT");
    wait.arg(1).arg(timeout.as_millis().max(1) as u64);
    let answer = tokio::time::timeout(timeout * 2, connection.route_command(wait, routing)).await;
    matches!(answer, Ok(Ok(redis::Value::Int(n))) if n >= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_three_hex_digits_and_depends_on_the_token_only() {
        let mut name = b"p:".to_vec();
        SlotTag::of("Atza|one").write(&mut name);
        assert_eq!(name.len(), 2 + 5);
        assert!(name.starts_with(b"p:{") && name.ends_with(b"}"));
        assert_eq!(SlotTag::of("Atza|one"), SlotTag::of("Atza|one"));
        let tags: std::collections::HashSet<_> =
            (0..200).map(|n| SlotTag::of(&format!("Atza|{n}"))).collect();
        assert!(tags.len() > 150, "tags spread: {}", tags.len());
    }

    #[test]
    fn slots_are_redis_own() {
        // `CLUSTER KEYSLOT foo` and `CLUSTER KEYSLOT 123456789` on a real Redis.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"123456789"), 12739);
    }

    #[test]
    fn seeds_must_agree_and_exist() {
        assert_eq!(check(&[]), Err(FleetError::ClusterSeeds));
        assert_eq!(
            check(&["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]),
            Ok(())
        );
        assert_eq!(
            check(&["redis://127.0.0.1:7000/2"]),
            Err(FleetError::ClusterSeeds)
        );
        assert_eq!(
            check(&["redis://127.0.0.1:7000", "rediss://127.0.0.1:7001"]),
            Err(FleetError::ClusterSeeds)
        );
        assert_eq!(
            check(&["redis://:a@127.0.0.1:7000", "redis://:b@127.0.0.1:7001"]),
            Err(FleetError::ClusterSeeds)
        );
        assert_eq!(
            check(&["redis+unix:///run/redis.sock"]),
            Err(FleetError::ClusterSeeds)
        );
        assert_eq!(check(&["not a url"]), Err(FleetError::Url));
    }
}
