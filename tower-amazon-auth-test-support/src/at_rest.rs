//! What tests of data at rest (a Redis dump) look for: every reversible encoding of a secret.

use base64::Engine as _;

/// Every way `secret` could be written in a dump: in clear, hex, base64 (three alignments).
pub fn encodings(secret: &str) -> Vec<Vec<u8>> {
    let bytes = secret.as_bytes();
    let mut out = vec![bytes.to_vec()];
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    out.push(hex.clone().into_bytes());
    out.push(hex.to_uppercase().into_bytes());
    for skip in 0..3 {
        for engine in [
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let encoded = engine.encode(&bytes[skip..]);
            // The middle of the encoding does not depend on what came before.
            let middle = encoded
                .get(2..encoded.len().saturating_sub(2))
                .unwrap_or_default();
            // Too short to tell from chance in sealed bytes.
            if middle.len() >= 4 {
                out.push(middle.as_bytes().to_vec());
            }
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}
