//! [`Message`]: what instances tell each other on the channel. "Forget token key K" (an
//! `invalidate`) or "K is revoked for T more milliseconds" (a `revoke`), under the secret whose
//! id it carries, authenticated with that secret's message key: a message from a fleet with
//! another secret on the same Redis, or a forged one, is dropped.
//!
//! Each message names the instance that sent it, which ignores its own, and the secret of its
//! sender's first copy: during a rotation an instance publishes each message once under every
//! secret it holds, and a receiver that holds the first copy's secret as its own current one
//! ignores the other copies (it cannot always map their keys, and would have to flush).
//!
//! Layout (65 bytes): `kind (1) ‖ secret id (8) ‖ first copy's secret id (8) ‖ sender (8) ‖
//! token key (16, big-endian) ‖ revoked for, ms (8, big-endian) ‖ MAC (16)`.

use tower_amazon_auth::second_level::TokenKey;

use crate::secret::{mac, Keys};

const LEN: usize = 1 + 8 + 8 + 8 + 16 + 8;
const MAC_LEN: usize = 16;

/// What a message asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Forget what is cached about the token.
    Forget,
    /// Refuse the token for this many more milliseconds.
    Revoke(u64),
}

/// One message about one token, under one secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message {
    /// The token's key under that secret.
    pub(crate) key: TokenKey,
    pub(crate) event: Event,
    /// The instance that sent it (random per instance).
    pub(crate) sender: [u8; 8],
    /// The id of the secret the sender's first copy of this message is under (its current
    /// secret); the message's own when it is that copy.
    pub(crate) first: [u8; 8],
}

impl Message {
    /// The message, made and authenticated under `keys`.
    pub(crate) fn encode(&self, keys: &Keys) -> Vec<u8> {
        let (kind, ms) = match self.event {
            Event::Forget => (1u8, 0),
            Event::Revoke(ms) => (2, ms),
        };
        let mut out = Vec::with_capacity(LEN + MAC_LEN);
        out.push(kind);
        out.extend_from_slice(&keys.id);
        out.extend_from_slice(&self.first);
        out.extend_from_slice(&self.sender);
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
        let sender = body[17..25].try_into().ok()?;
        let key = TokenKey::from_be_bytes(body[25..41].try_into().ok()?);
        let ms = u64::from_be_bytes(body[41..49].try_into().ok()?);
        let event = match body[0] {
            1 => Event::Forget,
            2 => Event::Revoke(ms),
            _ => return None,
        };
        Some(Self {
            key,
            event,
            sender,
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
            sender: [5; 8],
            first: keys.id,
        };
        let bytes = message.encode(&keys);
        assert_eq!(Message::decode(&bytes, &keys), Some(message));
        assert_eq!(Message::decode(&bytes, &Keys::derive(&[8; 32])), None);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Message::decode(&flipped, &keys), None, "bit {bit}");
        }
    }
}
