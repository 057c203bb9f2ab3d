//! Fuzzes the decoding of Amazon's answers: arbitrary (status, body) pairs go through
//! `tower_amazon_auth::fuzz::decode_tokeninfo` and `decode_profile`, the very code the client
//! runs on every tokeninfo and profile answer.
//!
//! Input layout: two bytes of status (big-endian, folded into 100..=599 unless the first byte
//! has its top bit set, which keeps any u16), then the body.
//!
//! Invariants: never panics; only a 2xx can decode to a value; a decode failure on a 2xx is
//! `Unreadable` (503, never a verdict); a definite verdict (`invalid_token`,
//! `insufficient_scope`) only ever comes from a 400/401/403, never from a 2xx, a 429 or a 5xx,
//! which would otherwise cache a rejection (or worse) from a transient failure.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_amazon_auth::fuzz::{decode_profile, decode_tokeninfo};
use tower_amazon_auth::AmazonError;

fn check<T: std::fmt::Debug>(status: u16, outcome: Result<T, AmazonError>) {
    let two_xx = (200..300).contains(&status);
    match outcome {
        Ok(value) => {
            assert!(two_xx, "status {status} decoded to a value");
            let _ = format!("{value:?}");
        }
        Err(error) => {
            if two_xx {
                assert!(
                    matches!(error, AmazonError::Unreadable { .. }),
                    "a bad 2xx body is unreadable, got {error:?}"
                );
            }
            if error.is_definite() {
                assert!(
                    matches!(status, 400 | 401 | 403),
                    "status {status} gave the verdict {error:?}"
                );
            }
            if let AmazonError::Status { status: s, .. } = error {
                assert_eq!(s, status);
            }
            let _ = error.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let raw = u16::from_be_bytes([data[0], data[1]]);
    let status = if data[0] & 0x80 != 0 { raw } else { 100 + raw % 500 };
    let body = &data[2..];
    check(status, decode_tokeninfo(status, body));
    check(status, decode_profile(status, body));
});
