//! The signature of a webhook delivery.
//!
//! Owns the scheme, which receivers must reproduce: `X-Ringfwd-Timestamp` carries the Unix time of the attempt
//! in seconds (decimal); `X-Ringfwd-Signature` carries `sha256=` and the lowercase hex HMAC-SHA256, keyed with
//! the configured secret, of the timestamp's decimal digits, one `.`, and the exact body bytes. A receiver
//! recomputes it over the body it received, compares in constant time, and refuses stale timestamps (replays).
//! Pure: must never read the clock or the secret file.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header with the Unix time of the attempt, in seconds.
pub const TIMESTAMP_HEADER: &str = "X-Ringfwd-Timestamp";
/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "X-Ringfwd-Signature";

/// The lowercase hex HMAC-SHA256 of `message` keyed with `secret`.
pub fn hmac_sha256_hex(secret: &[u8], message: &[&[u8]]) -> String {
    // HMAC takes keys of any length (hashing long ones), so this never fails.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    for part in message {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The `X-Ringfwd-Signature` value of `body` sent at `timestamp_s`: `sha256=<hex>`.
pub fn signature(secret: &[u8], timestamp_s: u64, body: &[u8]) -> String {
    let timestamp = timestamp_s.to_string();
    format!("sha256={}", hmac_sha256_hex(secret, &[timestamp.as_bytes(), b".", body]))
}

/// Whether `header` is the signature of `body` sent at `timestamp_s` (for receivers and tests), compared in
/// constant time.
pub fn verify(secret: &[u8], timestamp_s: u64, body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_mac) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn the_signature_covers_timestamp_dot_body() {
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'whsec-test'
        let expected = "sha256=fed7a1a6c799a6367d73724d76bc70c16678908a32a879cd1ded6565ac05cece";
        assert_eq!(signature(b"whsec-test", 1_700_000_000, br#"{"a":1}"#), expected);
        assert!(verify(b"whsec-test", 1_700_000_000, br#"{"a":1}"#, expected));
        assert!(!verify(b"whsec-test", 1_700_000_001, br#"{"a":1}"#, expected), "another time");
        assert!(!verify(b"whsec-test", 1_700_000_000, br#"{"a":2}"#, expected), "another body");
        assert!(!verify(b"other", 1_700_000_000, br#"{"a":1}"#, expected), "another key");
        assert!(!verify(b"whsec-test", 1_700_000_000, br#"{"a":1}"#, "fed7a1a6"), "no scheme");
    }
}
