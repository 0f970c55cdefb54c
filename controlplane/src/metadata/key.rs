//! Metadata keys: the documented syntax and the reserved prefix.
//!
//! A key is two or more segments separated by `.`, each one or more of `[a-z0-9_-]` (`sip.call_id`,
//! `app.user`, `provider.trunk-id`), at most `metadata.max_key_bytes` bytes. The prefix `ringfwd.` is written
//! only by ringfwd itself. This module only judges a key; it must never change one (no lowercasing, no
//! trimming): a key is stored exactly as written or refused.

use super::error::MetadataError;

/// The prefix only ringfwd itself writes.
pub const RESERVED_PREFIX: &str = "ringfwd.";

/// Who writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A controller, over the API: `ringfwd.` keys are refused.
    Controller,
    /// ringfwd itself: may write `ringfwd.` keys.
    Node,
}

/// Checks `key`'s syntax, its length against `max_key_bytes` and the reserved prefix for `origin`.
pub fn check_key(key: &str, max_key_bytes: usize, origin: Origin) -> Result<(), MetadataError> {
    let invalid = |reason: String| MetadataError::InvalidKey { key: key.to_owned(), reason };
    if key.len() > max_key_bytes {
        return Err(invalid(format!("{} bytes, more than metadata.max_key_bytes = {max_key_bytes}", key.len())));
    }
    let mut segments = 0;
    for segment in key.split('.') {
        segments += 1;
        if segment.is_empty() {
            return Err(invalid("an empty segment (keys are segments joined by single dots)".to_owned()));
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        if let Some(c) = segment.chars().find(|&c| !allowed(c)) {
            return Err(invalid(format!("{c:?} is not one of [a-z0-9_-]")));
        }
    }
    if segments < 2 {
        return Err(invalid("needs a namespace: 2 or more dot-separated segments, e.g. app.user".to_owned()));
    }
    if origin == Origin::Controller && key.starts_with(RESERVED_PREFIX) {
        return Err(invalid(format!("the prefix {RESERVED_PREFIX:?} is written only by ringfwd itself")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(key: &str) -> String {
        check_key(key, 32, Origin::Controller).unwrap_err().to_string()
    }

    #[test]
    fn namespaced_lowercase_keys_pass() {
        for key in ["sip.call_id", "app.user", "provider.trunk-id", "a.b.c.d", "x1.2"] {
            check_key(key, 32, Origin::Controller).unwrap();
        }
    }

    #[test]
    fn bad_keys_are_refused_with_the_key_and_the_reason() {
        assert!(reason("user").contains("namespace"), "{}", reason("user"));
        assert!(reason("App.user").contains("'A'"));
        assert!(reason("app..user").contains("empty segment"));
        assert!(reason(".app").contains("empty segment"));
        assert!(reason("app.user ").contains("' '"));
        assert!(reason("app.ü").contains("'ü'"));
        assert!(reason("").contains("namespace") || reason("").contains("empty"));
        let long = format!("app.{}", "x".repeat(29));
        assert!(reason(&long).contains("metadata.max_key_bytes = 32"), "{}", reason(&long));
        assert!(reason(&long).contains(&long));
        check_key(&long[..32], 32, Origin::Controller).unwrap();
    }

    #[test]
    fn only_ringfwd_writes_its_prefix() {
        assert!(reason("ringfwd.worker").contains("only by ringfwd"));
        check_key("ringfwd.worker", 32, Origin::Node).unwrap();
        check_key("ringfwdx.worker", 32, Origin::Controller).unwrap();
    }
}
