//! The table of token-signing keys: key id → HMAC secret.
//!
//! Owns [`Keys`], built from `[[auth.keys]]` (checked by the config crate's rules, so the
//! errors name the key, never the secret) or generated for development. Its `Debug` shows
//! the key ids only. This module must never log, print or return a secret outside the crate.

use std::fmt;

use rand::RngCore;
use ringfwd_tuning::Auth;

use super::error::AuthError;

/// Id of the generated development key.
pub const DEV_KEY_ID: &str = "dev";

/// Length of the generated development secret, in bytes (256 bits, the HMAC-SHA256 output).
pub const DEV_SECRET_BYTES: usize = 32;

/// One key: its id (the token's `kid`) and its secret.
#[derive(Clone)]
struct Key {
    id: String,
    secret: Vec<u8>,
}

/// The token-signing keys, in config order (the first one is the default for minting).
#[derive(Clone)]
pub struct Keys {
    keys: Vec<Key>,
}

impl Keys {
    /// The keys of `[[auth.keys]]`, checked with the config's own rules (ids `[A-Za-z0-9._-]`,
    /// unique; secrets base64 of at least 32 bytes). An empty list gives empty [`Keys`].
    pub fn from_config(auth: &Auth) -> Result<Keys, AuthError> {
        auth.validate_keys()?;
        let keys = auth
            .keys
            .iter()
            .enumerate()
            .map(|(index, key)| Ok(Key { id: key.id.clone(), secret: key.secret_bytes(index)? }))
            .collect::<Result<Vec<Key>, AuthError>>()?;
        Ok(Keys { keys })
    }

    /// A fresh development key of [`DEV_SECRET_BYTES`] random bytes from the thread-local
    /// CSPRNG (seeded by the OS), and its id ([`DEV_KEY_ID`]). It lives only in this process.
    pub fn generate_dev() -> (Keys, String) {
        let mut secret = vec![0u8; DEV_SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let key = Key { id: DEV_KEY_ID.to_owned(), secret };
        (Keys { keys: vec![key] }, DEV_KEY_ID.to_owned())
    }

    /// Whether there are no keys (the daemon then generates a development key).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, in config order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// The secret of the key `id`, for signing and verifying in this module only.
    pub(super) fn secret(&self, id: &str) -> Option<&[u8]> {
        self.keys.iter().find(|k| k.id == id).map(|k| k.secret.as_slice())
    }

    /// Every (id, secret) pair, for building a verifier.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.keys.iter().map(|k| (k.id.as_str(), k.secret.as_slice()))
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys").field("ids", &self.ids().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfwd_tuning::AuthKey;

    /// base64 of the 32 bytes `0123456789abcdef0123456789abcdef`.
    const SECRET_32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn auth(keys: &[(&str, &str)]) -> Auth {
        Auth {
            keys: keys
                .iter()
                .map(|(id, secret)| AuthKey { id: (*id).to_owned(), secret_base64: (*secret).to_owned() })
                .collect(),
            ..Auth::default()
        }
    }

    #[test]
    fn from_config_keeps_order_and_decodes_secrets() {
        let keys = Keys::from_config(&auth(&[("b", SECRET_32), ("a", SECRET_32)])).unwrap();
        assert_eq!(keys.ids().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(keys.secret("a").unwrap(), b"0123456789abcdef0123456789abcdef");
        assert_eq!(keys.secret("c"), None);
        assert!(!keys.is_empty());
    }

    #[test]
    fn empty_config_gives_empty_keys() {
        let keys = Keys::from_config(&Auth::default()).unwrap();
        assert!(keys.is_empty());
        assert_eq!(keys.ids().count(), 0);
    }

    #[test]
    fn bad_secret_is_named_by_key_never_shown() {
        let err = Keys::from_config(&auth(&[("ok", SECRET_32), ("short", "c2hvcnQ=")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("auth.keys[1].secret_base64"), "{text}");
        assert!(text.contains("\"short\""), "{text}");
        assert!(!text.contains("c2hvcnQ"), "{text}");
    }

    #[test]
    fn duplicate_id_is_rejected() {
        let err = Keys::from_config(&auth(&[("k", SECRET_32), ("k", SECRET_32)])).unwrap_err();
        assert!(err.to_string().contains("auth.keys[1].id"), "{err}");
    }

    #[test]
    fn generated_dev_keys_are_random_and_named_dev() {
        let (a, id) = Keys::generate_dev();
        let (b, _) = Keys::generate_dev();
        assert_eq!(id, DEV_KEY_ID);
        assert_eq!(a.ids().collect::<Vec<_>>(), [DEV_KEY_ID]);
        let secret = a.secret(DEV_KEY_ID).unwrap();
        assert_eq!(secret.len(), DEV_SECRET_BYTES);
        assert_ne!(secret, b.secret(DEV_KEY_ID).unwrap());
    }

    #[test]
    fn debug_shows_ids_not_secrets() {
        let keys = Keys::from_config(&auth(&[("ops", SECRET_32)])).unwrap();
        let text = format!("{keys:?}");
        assert!(text.contains("ops"), "{text}");
        assert!(!text.contains("48, 49"), "{text}");
        assert!(!text.contains("0123"), "{text}");
    }
}
