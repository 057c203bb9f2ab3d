//! The records sign-in keeps in a [`SessionStore`](crate::second_level::SessionStore): a
//! session (its user, tokens and lives) and a login under way (its verifier, where it goes, the
//! browser it belongs to), as bytes the store seals. Times travel as Unix milliseconds, since
//! an `Instant` means nothing on another machine; a record is read back against this
//! machine's clock, so instances whose clocks disagree by `d` see a session's lives shifted by
//! `d` (keep them synchronised, as the tokens' expiry already asks).
//!
//! Layout, all integers big-endian: a version byte, then fixed fields, then length-prefixed
//! (`u32`) byte strings. Anything that does not decode is no record (the store's trouble, or
//! another version's): the session is then unknown here.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::access_token::AccessToken;
use crate::client::RefreshToken;
use crate::token_key::TokenKey;

const SESSION_V1: u8 = 1;
const LOGIN_V1: u8 = 1;

/// A session as the store keeps it.
pub(crate) struct SessionRecord {
    pub(crate) user_id: Box<str>,
    pub(crate) created: Instant,
    pub(crate) last_used: Instant,
    pub(crate) access: AccessToken,
    pub(crate) refresh: Option<RefreshToken>,
    /// When `access` has no usable life left.
    pub(crate) usable_until: Instant,
}

/// A login under way as the store keeps it.
pub(crate) struct LoginRecord {
    pub(crate) verifier: String,
    pub(crate) return_to: String,
    /// The digest of the nonce in the browser's pending-login cookie.
    pub(crate) browser: TokenKey,
}

/// This machine's clock at one moment, both ways: to turn instants into Unix milliseconds and
/// back.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    unix_ms: u64,
}

impl Clock {
    pub(crate) fn now() -> Self {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            instant: Instant::now(),
            unix_ms: u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn to_unix_ms(self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(ahead) => self.unix_ms.saturating_add(millis(ahead)),
            None => self.unix_ms.saturating_sub(millis(self.instant - at)),
        }
    }

    fn to_instant(self, unix_ms: u64) -> Instant {
        if unix_ms >= self.unix_ms {
            let ahead = Duration::from_millis(unix_ms - self.unix_ms);
            self.instant
                .checked_add(ahead)
                .unwrap_or(self.instant + Duration::from_secs(400 * 24 * 3600))
        } else {
            let behind = Duration::from_millis(self.unix_ms - unix_ms);
            // Before this machine's `Instant`s begin: as old as they go.
            self.instant.checked_sub(behind).unwrap_or(self.instant)
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl SessionRecord {
    pub(crate) fn encode(&self, clock: Clock) -> Vec<u8> {
        let refresh = self.refresh.as_ref().map_or("", RefreshToken::expose);
        let mut out =
            Vec::with_capacity(1 + 24 + 12 + self.user_id.len() + self.access.expose().len() + refresh.len());
        out.push(SESSION_V1);
        for at in [self.created, self.last_used, self.usable_until] {
            out.extend_from_slice(&clock.to_unix_ms(at).to_be_bytes());
        }
        for text in [&*self.user_id, self.access.expose(), refresh] {
            put_text(&mut out, text);
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8], clock: Clock) -> Option<Self> {
        let mut reader = Reader(bytes);
        if reader.byte()? != SESSION_V1 {
            return None;
        }
        let created = clock.to_instant(reader.u64()?);
        let last_used = clock.to_instant(reader.u64()?);
        let usable_until = clock.to_instant(reader.u64()?);
        let user_id = reader.text()?;
        let access = reader.text()?;
        let refresh = reader.text()?;
        if !reader.0.is_empty() || user_id.is_empty() || access.is_empty() {
            return None;
        }
        Some(Self {
            user_id: user_id.into(),
            created,
            last_used,
            access: AccessToken::new(access),
            refresh: (!refresh.is_empty()).then(|| RefreshToken::new(refresh)),
            usable_until,
        })
    }
}

impl LoginRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 16 + 8 + self.verifier.len() + self.return_to.len());
        out.push(LOGIN_V1);
        out.extend_from_slice(&self.browser.to_be_bytes());
        put_text(&mut out, &self.verifier);
        put_text(&mut out, &self.return_to);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader(bytes);
        if reader.byte()? != LOGIN_V1 {
            return None;
        }
        let browser = TokenKey::from_be_bytes(reader.take(16)?.try_into().ok()?);
        let verifier = reader.text()?;
        let return_to = reader.text()?;
        reader.0.is_empty().then_some(Self {
            verifier,
            return_to,
            browser,
        })
    }
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&text.as_bytes()[..len as usize]);
}

/// Reads a record front to back; `None` at the first thing that does not fit.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn text(&mut self) -> Option<String> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
        let bytes = self.take(usize::try_from(len).ok()?)?;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_record_reads_back_and_junk_is_no_record() {
        let clock = Clock::now();
        let now = clock.instant;
        let record = SessionRecord {
            user_id: "amzn1.account.X".into(),
            created: now - Duration::from_secs(60),
            last_used: now,
            access: AccessToken::new("Atza|access"),
            refresh: Some(RefreshToken::new("Atzr|refresh")),
            usable_until: now + Duration::from_secs(3000),
        };
        let bytes = record.encode(clock);
        let back = SessionRecord::decode(&bytes, clock).unwrap();
        assert_eq!(&*back.user_id, "amzn1.account.X");
        assert_eq!(back.access.expose(), "Atza|access");
        assert_eq!(
            back.refresh.as_ref().map(RefreshToken::expose),
            Some("Atzr|refresh")
        );
        // Milliseconds survive the trip.
        for (a, b) in [
            (back.created, record.created),
            (back.last_used, record.last_used),
            (back.usable_until, record.usable_until),
        ] {
            let gap = a.max(b) - a.min(b);
            assert!(gap < Duration::from_millis(2), "{gap:?}");
        }
        for cut in 0..bytes.len() {
            assert!(SessionRecord::decode(&bytes[..cut], clock).is_none(), "{cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SessionRecord::decode(&longer, clock).is_none());
        let none = SessionRecord {
            refresh: None,
            ..record
        };
        assert!(SessionRecord::decode(&none.encode(clock), clock)
            .unwrap()
            .refresh
            .is_none());
    }

    #[test]
    fn a_login_record_reads_back() {
        let record = LoginRecord {
            verifier: "v".repeat(43),
            return_to: "/orders?x=1".into(),
            browser: TokenKey::from_be_bytes([7; 16]),
        };
        let back = LoginRecord::decode(&record.encode()).unwrap();
        assert_eq!(back.verifier, record.verifier);
        assert_eq!(back.return_to, record.return_to);
        assert_eq!(back.browser, record.browser);
        assert!(LoginRecord::decode(&[LOGIN_V1, 1, 2]).is_none());
    }
}
