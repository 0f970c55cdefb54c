//! The error type of minting and verifying tokens.
//!
//! Owns [`AuthError`]. Every message may be shown to a client or logged as it is, so none
//! carries a secret, a token or a piece of one; a key id a client sent is shown escaped and
//! shortened. This module must never decide what is valid.

use std::path::PathBuf;

use ringfwd_tuning::ConfigError;

/// Why a token could not be minted or was rejected.
///
/// [`crate::auth::Verifier::verify`] returns only [`AuthError::Missing`],
/// [`AuthError::Malformed`], [`AuthError::UnknownKey`], [`AuthError::BadSignature`] and
/// [`AuthError::Expired`] and [`AuthError::TooLongLived`] (see [`AuthError::is_unauthenticated`]).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request carries no `authorization` header.
    #[error("missing token: send the header \"authorization: Bearer <token>\"")]
    Missing,
    /// The header or the token is not in the expected form; the text says what is wrong.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// No key has the id the token's `kid` header (or the caller) names.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// The signature does not match the token's header and claims under the named key.
    #[error("bad token signature")]
    BadSignature,
    /// The token's `exp` (plus the leeway) has passed.
    #[error("token expired at {exp} (unix seconds); it is now {now}")]
    Expired {
        /// The token's expiry, in unix seconds.
        exp: u64,
        /// The verifier's clock, in unix seconds.
        now: u64,
    },
    /// The token's `exp` is further ahead than any token ringfwd mints may live: a token meant never to
    /// expire (or a forged clock) is refused.
    #[error(
        "token expires at {exp} (unix seconds), more than {max_s} s after now ({now}): tokens may live at most \
         {max_s} s; mint a shorter-lived one"
    )]
    TooLongLived {
        /// The token's expiry, in unix seconds.
        exp: u64,
        /// The verifier's clock, in unix seconds.
        now: u64,
        /// The longest accepted lifetime, in seconds.
        max_s: u64,
    },
    /// The `[auth]` config section is invalid (the message names the key, never the secret).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A token lifetime outside the accepted range.
    #[error("token lifetime of {ttl_s} s is outside 1..={max_s} s")]
    BadTtl {
        /// The requested lifetime, in whole seconds.
        ttl_s: u64,
        /// The longest accepted lifetime, in seconds.
        max_s: u64,
    },
    /// A token subject that is empty, too long or has control characters.
    #[error("invalid token subject {subject:?}: {reason}")]
    BadSubject {
        /// The subject as given.
        subject: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `ringfwd token` found no keys to sign with.
    #[error(
        "no [[auth.keys]] in the config, so there is no key to sign with: add [[auth.keys]] (see [auth] in \
         tuning/examples/dev-2core.toml), or use the development token that a daemon without keys writes at \
         start; for this user and environment it is in {}",
        dev_token_file.display()
    )]
    NoKeys {
        /// Where the development token is for this config, user and environment.
        dev_token_file: PathBuf,
    },
    /// The JWT library failed to sign (not expected with an HMAC key).
    #[error("cannot sign token: {0}")]
    Sign(String),
}

impl AuthError {
    /// Whether this error rejects a caller's token (gRPC `UNAUTHENTICATED`), as opposed to a
    /// configuration or minting problem on this side.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            AuthError::Missing
                | AuthError::Malformed(_)
                | AuthError::UnknownKey(_)
                | AuthError::BadSignature
                | AuthError::Expired { .. }
                | AuthError::TooLongLived { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_keys_names_the_dev_token_file() {
        let err = AuthError::NoKeys { dev_token_file: PathBuf::from("/run/user/1000/ringfwd/dev-token") };
        let text = err.to_string();
        assert!(text.starts_with("no [[auth.keys]] in the config"), "{text}");
        assert!(text.contains("tuning/examples/dev-2core.toml"), "{text}");
        assert!(text.ends_with("it is in /run/user/1000/ringfwd/dev-token"), "{text}");
        assert!(!err.is_unauthenticated());
    }

    #[test]
    fn verification_errors_are_unauthenticated() {
        assert!(AuthError::Missing.is_unauthenticated());
        assert!(AuthError::Expired { exp: 1, now: 9 }.is_unauthenticated());
        assert!(!AuthError::BadTtl { ttl_s: 0, max_s: 1 }.is_unauthenticated());
    }
}
