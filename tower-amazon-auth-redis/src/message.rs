//! [`Message`]: what instances tell each other on the channel. "Forget token key K" (an
//! `invalidate`), "K is revoked for T more milliseconds" (a `revoke`) or "session K has ended"
//! (a sign-in's logout), under the secret whose
//! id it carries, authenticated with that secret's message key: a message from a fleet with
//! another secret on the same Redis, or a forged one, is dropped.
//!
//! Each message names the instance that sent it, which ignores its own, and the secret of its
//! sender's first copy: during a rotation an instance publishes each message once under every
//! secret it holds, and a receiver that holds the first copy's secret as its own current one
//! ignores the other copies (it cannot always map their keys, and would have to flush).
//!
//! Each carries its [`Stamp`] too (when it was sent, and `sender`, `boot`, `sequence`), under
//! the MAC, so that a receiver can tell a captured forget published again, or a stale one
//! ([`freshness`](crate::freshness)). Each copy of a rotating sender's message has a sequence
//! of its own, so a receiver that applies two copies does not take the second for a replay.
//!
//! Layout (89 bytes, integers big-endian): `kind (1) ‖ secret id (8) ‖ first copy's secret id
//! (8) ‖ sender (8) ‖ boot (8) ‖ sequence (8) ‖ sent at, ms since the Unix epoch (8) ‖ token key
//! (16) ‖ revoked for, ms (8) ‖ MAC (16)`; the MAC (HMAC-SHA256 under the secret's message key,
//! truncated) covers everything before it. `kind` is 3 (forget), 4 (revoke) or 5 (a sign-in
//! session ended; the key is the session's digest): the 65-byte messages of earlier builds
//! (kinds 1 and 2, no stamp) are not read.

use tower_amazon_auth::second_level::TokenKey;

use crate::freshness::Stamp;
use crate::secret::{mac, Keys};

const LEN: usize = 1 + 8 + 8 + 8 + 8 + 8 + 8 + 16 + 8;
const MAC_LEN: usize = 16;
/// The kinds (1 and 2 were those of the unstamped layout).
const FORGET: u8 = 3;
const REVOKE: u8 = 4;
const END_SESSION: u8 = 5;

/// What a message asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Forget what is cached about the token.
    Forget,
    /// Refuse the token for this many more milliseconds.
    Revoke(u64),
    /// (website sign-in) The session whose digest is the key has ended: drop its copy.
    EndSession,
}

/// One message about one token, under one secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message {
    /// The token's key under that secret.
    pub(crate) key: TokenKey,
    pub(crate) event: Event,
    /// Who sent it, and when.
    pub(crate) stamp: Stamp,
    /// The id of the secret the sender's first copy of this message is under (its current
    /// secret); the message's own when it is that copy.
    pub(crate) first: [u8; 8],
}

impl Message {
    /// The message, made and authenticated under `keys`.
    pub(crate) fn encode(&self, keys: &Keys) -> Vec<u8> {
        let (kind, ms) = match self.event {
            Event::Forget => (FORGET, 0),
            Event::Revoke(ms) => (REVOKE, ms),
            Event::EndSession => (END_SESSION, 0),
        };
        let mut out = Vec::with_capacity(LEN + MAC_LEN);
        out.push(kind);
        out.extend_from_slice(&keys.id);
        out.extend_from_slice(&self.first);
        out.extend_from_slice(&self.stamp.sender);
        out.extend_from_slice(&self.stamp.boot);
        out.extend_from_slice(&self.stamp.sequence.to_be_bytes());
        out.extend_from_slice(&self.stamp.sent_ms.to_be_bytes());
        out.extend_from_slice(&self.key.to_be_bytes());
        out.extend_from_slice(&ms.to_be_bytes());
        let tag = mac(&keys.message, &[&out]);
        out.extend_from_slice(&tag[..MAC_LEN]);
        out
    }

    /// The secret id `bytes` claim to be made under, if they look like a message.
    pub(crate) fn secret_id(bytes: &[u8]) -> Option<[u8; 8]> {
        if bytes.len() != LEN + MAC_LEN {
            return None;
        }
        bytes[1..9].try_into().ok()
    }

    /// The message `bytes` hold, if they were made under `keys` and are unaltered.
    pub(crate) fn decode(bytes: &[u8], keys: &Keys) -> Option<Self> {
        if Self::secret_id(bytes)? != keys.id {
            return None;
        }
        let (body, tag) = bytes.split_at(LEN);
        let expected = mac(&keys.message, &[body]);
        // Constant time does not matter much here (the MAC guards availability, not secrets),
        // but costs nothing.
        let differs = expected[..MAC_LEN]
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 {
            return None;
        }
        let first = body[9..17].try_into().ok()?;
        let u64_at = |at: usize| body[at..at + 8].try_into().ok().map(u64::from_be_bytes);
        let stamp = Stamp {
            sender: body[17..25].try_into().ok()?,
            boot: body[25..33].try_into().ok()?,
            sequence: u64_at(33)?,
            sent_ms: u64_at(41)?,
        };
        let key = TokenKey::from_be_bytes(body[49..65].try_into().ok()?);
        let ms = u64_at(65)?;
        let event = match body[0] {
            FORGET => Event::Forget,
            REVOKE => Event::Revoke(ms),
            END_SESSION => Event::EndSession,
            _ => return None,
        };
        Some(Self {
            key,
            event,
            stamp,
            first,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_opens_under_its_secret_only_and_unaltered() {
        let keys = Keys::derive(&[9; 32]);
        let message = Message {
            key: TokenKey::from_be_bytes(0x0123_4567_89ab_cdef_0011_2233_4455_6677u128.to_be_bytes()),
            event: Event::Revoke(1234),
            stamp: Stamp {
                sender: [5; 8],
                boot: [6; 8],
                sequence: 7,
                sent_ms: 1_700_000_000_000,
            },
            first: keys.id,
        };
        let bytes = message.encode(&keys);
        assert_eq!(bytes.len(), 89);
        assert_eq!(Message::decode(&bytes, &keys), Some(message));
        assert_eq!(Message::decode(&bytes, &Keys::derive(&[8; 32])), None);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Message::decode(&flipped, &keys), None, "bit {bit}");
        }
    }
}
