//! [`Record`]: the payload a second level keeps for a verdict (opaque to it): a verified
//! identity, or a definite rejection, with when it was verified (wall clock). Encoded as a
//! version byte and JSON; a payload of another version, or one that does not decode, is a miss.
//! The cache writes it and checks it on the way back as it checks Amazon's answer, so the
//! audience and expiry checks never depend on a level.
//!
//! The verification time lets a reader hold a verdict to its own `max_ttl` and `negative_ttl`
//! counted from the verification, whatever life the writer gave the level's key (another
//! configuration, or a write that a stalled store applied late), and however often it reads it
//! again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{AuthError, Rejection};
use crate::identity::{Identity, IdentityRecord};

/// The format version of a payload; shown to a second level for its fingerprint (see
/// [`CacheSettings::payload_version`](crate::second_level::CacheSettings::payload_version)), so
/// a deploy that changes the format reads nothing written in the old one.
pub(crate) const FORMAT_VERSION: u8 = 2;

/// A verdict as a second level keeps it.
#[derive(Serialize, Deserialize)]
pub(crate) enum Record {
    /// Verified.
    Valid(IdentityRecord),
    /// A definite rejection, by its code (see [`rejection_code`]).
    Rejected(u8),
}

/// The code of a definite rejection, `None` for anything else (never written).
pub(crate) fn rejection_code(error: &AuthError) -> Option<u8> {
    Some(match error {
        AuthError::InvalidToken(Rejection::Invalid) => 1,
        AuthError::InvalidToken(Rejection::Expired) => 2,
        AuthError::InvalidToken(Rejection::WrongAudience) => 3,
        AuthError::InvalidToken(Rejection::Inconsistent) => 4,
        AuthError::InsufficientScope => 5,
        _ => return None,
    })
}

/// The rejection a code stands for.
fn rejection(code: u8) -> Option<AuthError> {
    Some(match code {
        1 => AuthError::InvalidToken(Rejection::Invalid),
        2 => AuthError::InvalidToken(Rejection::Expired),
        3 => AuthError::InvalidToken(Rejection::WrongAudience),
        4 => AuthError::InvalidToken(Rejection::Inconsistent),
        5 => AuthError::InsufficientScope,
        _ => return None,
    })
}

/// What a record means to a service with these accepted client ids.
pub(crate) enum Decoded {
    /// The identity (its token not yet expired, its `aud` one of ours).
    Valid(Identity),
    /// A definite rejection.
    Rejected(AuthError),
}

impl Record {
    /// The bytes to seal, for a verdict verified at `verified`.
    pub(crate) fn encode(&self, verified: SystemTime) -> Option<Vec<u8>> {
        let mut out = vec![FORMAT_VERSION];
        serde_json::to_writer(&mut out, &(unix_ms(verified), self)).ok()?;
        Some(out)
    }

    /// What `bytes` (opened) mean here, checked as a fresh verdict would be, and how long ago
    /// the verdict was verified: `None` (a miss) for another version, bytes that do not decode,
    /// an identity whose `aud` is not one of `client_ids` (with the audience check on; empty
    /// with it off), or an expired token.
    pub(crate) fn decode(
        bytes: &[u8],
        client_ids: &[Arc<str>],
        check_audience: bool,
    ) -> Option<(Decoded, Duration)> {
        let (&version, json) = bytes.split_first()?;
        if version != FORMAT_VERSION {
            return None;
        }
        let (verified_ms, record): (u64, Self) = serde_json::from_slice(json).ok()?;
        // A verification time ahead of this clock (skew between hosts) counts as just now.
        let age = Duration::from_millis(unix_ms(SystemTime::now()).saturating_sub(verified_ms));
        let decoded = match record {
            Self::Rejected(code) => rejection(code).map(Decoded::Rejected),
            Self::Valid(record) => {
                let aud = if check_audience {
                    client_ids.iter().find(|id| ***id == *record.aud)?.clone()
                } else if record.aud.is_empty() {
                    Arc::from("")
                } else {
                    return None;
                };
                Identity::from_record(record, aud).map(Decoded::Valid)
            }
        }?;
        Some((decoded, age))
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms(at: SystemTime) -> u64 {
    let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}
