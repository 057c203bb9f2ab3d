//! [`SessionNaming`]: the names of website sign-in's keys in Redis, under the current secret.
//! Never a session id or a login's `state`: the core names each by a keyed digest under
//! [`Keys::session_digest`], and Redis names are MACs of that under [`Keys::session`].
//!
//! | what | name |
//! | --- | --- |
//! | session record | `{prefix}s{tag}r:{hex(MAC(session key, "record" ‖ digest))}` |
//! | session tombstone | `{prefix}s{tag}t:{hex(MAC(session key, "tombstone" ‖ digest))}` |
//! | refresh lock | `{prefix}s{tag}l:{hex(MAC(session key, "lock" ‖ digest))}` |
//! | login under way | `{prefix}p:{hex(MAC(session key, "login" ‖ digest))}` |
//!
//! `{tag}` is a Redis Cluster hash tag, `{` four hex digits `}` of MAC(session key, "slot" ‖
//! digest): the three keys of one session hash to one slot (each script touches one), and the
//! tag tells nothing about the session. A login is one key, read and written alone.
//!
//! Sessions are named under the current secret only: rotating the fleet secret signs every
//! browser out (their next request finds no session and is sent to sign in again).

use tower_amazon_auth::second_level::TokenKey;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::secret::{mac, Keys};

/// Bytes of a MAC kept in a name (128 bits).
const NAME_BYTES: usize = 16;

/// The names of sign-in's keys.
pub(crate) struct SessionNaming {
    prefix: String,
    key: [u8; 32],
}

impl Drop for SessionNaming {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl ZeroizeOnDrop for SessionNaming {}

/// The names of one session's keys.
pub(crate) struct SessionNames {
    /// The hash tag (between the braces): its slot is the session's.
    pub(crate) tag: Vec<u8>,
    pub(crate) record: Vec<u8>,
    pub(crate) tombstone: Vec<u8>,
    pub(crate) lock: Vec<u8>,
}

impl SessionNaming {
    pub(crate) fn new(prefix: &str, keys: &Keys) -> Self {
        Self {
            prefix: prefix.to_owned(),
            key: keys.session,
        }
    }

    fn name(&self, kind: &str, purpose: &[u8], digest: TokenKey) -> Vec<u8> {
        let mac = mac(&self.key, &[purpose, &digest.to_be_bytes()]);
        let mut name = self.prefix.as_bytes().to_vec();
        name.extend_from_slice(kind.as_bytes());
        for byte in &mac[..NAME_BYTES] {
            name.extend_from_slice(format!("{byte:02x}").as_bytes());
        }
        name
    }

    /// The names of session `digest`'s keys, all in one cluster slot.
    pub(crate) fn session(&self, digest: TokenKey) -> SessionNames {
        let slot = mac(&self.key, &[b"slot", &digest.to_be_bytes()]);
        let hex = format!("{:02x}{:02x}", slot[0], slot[1]);
        let tag = format!("s{{{hex}}}");
        SessionNames {
            tag: hex.into_bytes(),
            record: self.name(&format!("{tag}r:"), b"record", digest),
            tombstone: self.name(&format!("{tag}t:"), b"tombstone", digest),
            lock: self.name(&format!("{tag}l:"), b"lock", digest),
        }
    }

    /// The name of login `digest` under way.
    pub(crate) fn login(&self, digest: TokenKey) -> Vec<u8> {
        self.name("p:", b"login", digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag of a Redis key: what is between its first `{` and the next `}`.
    fn hash_tag(name: &[u8]) -> &[u8] {
        let open = name.iter().position(|&b| b == b'{').unwrap();
        let close = name[open..].iter().position(|&b| b == b'}').unwrap() + open;
        &name[open + 1..close]
    }

    #[test]
    fn one_sessions_keys_share_a_slot_and_differ_from_anothers() {
        let naming = SessionNaming::new("taa:", &Keys::derive(&[3; 32]));
        let a = naming.session(TokenKey::from_be_bytes([1; 16]));
        let b = naming.session(TokenKey::from_be_bytes([2; 16]));
        assert_eq!(hash_tag(&a.record), hash_tag(&a.tombstone));
        assert_eq!(hash_tag(&a.record), hash_tag(&a.lock));
        assert_eq!(hash_tag(&a.record).len(), 4);
        assert_eq!(hash_tag(&a.record), &a.tag[..]);
        assert_ne!(a.record, b.record);
        assert_ne!(a.record[..], a.tombstone[..]);
        assert!(a.record.starts_with(b"taa:s{"));
        let login = naming.login(TokenKey::from_be_bytes([1; 16]));
        assert!(login.starts_with(b"taa:p:"));
        assert_ne!(login[6..], a.record[12..], "a login's name is not its session's");
        let other = SessionNaming::new("taa:", &Keys::derive(&[4; 32]));
        assert_ne!(other.session(TokenKey::from_be_bytes([1; 16])).record, a.record);
    }

    #[test]
    fn its_copy_of_the_key_is_wiped_on_drop() {
        fn wiped_on_drop<T: ZeroizeOnDrop>() {}
        wiped_on_drop::<SessionNaming>();
    }
}
