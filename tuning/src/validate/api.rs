//! Rules of the control API's sections: `[api]`, `[auth]` and `[admission]`.
//!
//! Owns the checks of the advertised addresses against `media.addresses`, of the token keys
//! (ids of at most [`MAX_ID_BYTES`], uniqueness, secrets) and of the development-key rule (a
//! generated key may only serve loopback). An error about a secret names the key id, never the
//! secret nor any part of it; this module must never put `secret_base64` or its decoded bytes
//! into an error.

use std::net::SocketAddr;

use super::{in_range, ADMISSION_RANGE, DEV_TOKEN_TTL_S_RANGE};
use crate::api::{Admission, Api, Auth, AuthKey};
use crate::error::ConfigError;
use crate::schema::Media;

/// Longest accepted id, in bytes: of an `auth.keys` entry here, and of every session, endpoint,
/// stream and subscription the control plane's registry takes (one length for every id a client
/// names).
pub const MAX_ID_BYTES: usize = 64;

/// Fewest bytes a decoded `auth.keys[].secret_base64` may have (the HMAC-SHA256 block of
/// security: 256 bits).
pub const MIN_AUTH_SECRET_BYTES: usize = 32;

fn family(address: &SocketAddr) -> &'static str {
    if address.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Accepted `api.max_connections`.
pub const API_MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<u32> = 1..=65_536;
/// Accepted `api.handshake_timeout_ms`.
pub const API_HANDSHAKE_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u32> = 100..=600_000;

/// `api.advertise_addresses`: usable by a peer, one per family, each family served by media; the
/// connection bounds in range.
pub(super) fn validate_api(api: &Api, media: &Media) -> Result<(), ConfigError> {
    in_range("api.max_connections", api.max_connections, API_MAX_CONNECTIONS_RANGE)?;
    in_range("api.handshake_timeout_ms", api.handshake_timeout_ms, API_HANDSHAKE_TIMEOUT_MS_RANGE)?;
    let advertised = &api.advertise_addresses;
    for (i, address) in advertised.iter().enumerate() {
        let key = format!("api.advertise_addresses[{i}]");
        if address.port() == 0 {
            return Err(ConfigError::invalid(key, address, "port 0 cannot receive media"));
        }
        if address.ip().is_unspecified() {
            return Err(ConfigError::invalid(key, address, "an unspecified IP cannot be told to peers"));
        }
        if let Some(first) = advertised[..i].iter().position(|a| a.is_ipv4() == address.is_ipv4()) {
            return Err(ConfigError::invalid(
                key,
                address,
                format!("at most one {} address; api.advertise_addresses[{first}] is one", family(address)),
            ));
        }
        if !media.serves_family_of(address) {
            return Err(ConfigError::invalid(
                key,
                address,
                format!("no {} media address to receive on (see media.addresses)", family(address)),
            ));
        }
    }
    Ok(())
}

impl Auth {
    /// Checks `auth.keys` alone: ids (`[A-Za-z0-9._-]`, 1..=64 bytes, unique) and secrets
    /// (base64 of at least [`MIN_AUTH_SECRET_BYTES`]). Errors name the key id, never the secret.
    /// [`crate::Config::validate`] runs this; token code that builds keys from an `Auth` may
    /// run it again.
    pub fn validate_keys(&self) -> Result<(), ConfigError> {
        for (k, auth_key) in self.keys.iter().enumerate() {
            let earlier = self.keys[..k].iter().map(|x| x.id.as_str());
            check_unique_id("auth.keys", k, &auth_key.id, earlier)?;
            auth_key.secret_bytes(k)?;
        }
        Ok(())
    }
}

impl AuthKey {
    /// The decoded secret of this key, which sits at `auth.keys[index]` (the index names the
    /// key in the error): valid base64 (standard alphabet, padding optional) of at least
    /// [`MIN_AUTH_SECRET_BYTES`]. The error shows the key id, never the secret.
    pub fn secret_bytes(&self, index: usize) -> Result<Vec<u8>, ConfigError> {
        let key = format!("auth.keys[{index}].secret_base64");
        // The value shown is a stand-in: the secret itself must never reach an error or a log.
        let shown = format!("<secret of key {:?}>", self.id);
        match self.decode_base64() {
            None => Err(ConfigError::invalid(
                key,
                shown,
                "not valid base64 (standard alphabet A-Z a-z 0-9 + /, padding optional)",
            )),
            Some(bytes) if bytes.len() < MIN_AUTH_SECRET_BYTES => Err(ConfigError::invalid(
                key,
                shown,
                format!("decodes to {} bytes; at least {MIN_AUTH_SECRET_BYTES} are needed", bytes.len()),
            )),
            Some(bytes) => Ok(bytes),
        }
    }
}

/// `[auth]`: the keys, the development-key rule against `api.listen`, the dev token settings.
pub(super) fn validate_auth(auth: &Auth, api: &Api) -> Result<(), ConfigError> {
    auth.validate_keys()?;
    if auth.keys.is_empty() && !api.listen.ip().is_loopback() {
        return Err(ConfigError::invalid(
            "auth.keys",
            "[]",
            format!(
                "a generated development key may only serve loopback, and api.listen = {} is \
                 not a loopback address: add [[auth.keys]] or listen on 127.0.0.1 or [::1]",
                api.listen
            ),
        ));
    }
    if let Some(path) = &auth.dev_token_file {
        let value = format!("{:?}", path.display().to_string());
        if !path.is_absolute() {
            return Err(ConfigError::invalid(
                "auth.dev_token_file",
                value,
                "must be an absolute path (the daemon and `ringfwd ctl` may run in other directories)",
            ));
        }
        if path.file_name().is_none() {
            return Err(ConfigError::invalid("auth.dev_token_file", value, "must name a file, not a directory"));
        }
    }
    in_range("auth.dev_token_ttl_s", auth.dev_token_ttl_s, DEV_TOKEN_TTL_S_RANGE)
}

/// Largest per-source packet rate limit, packets per second.
pub const MAX_PACKETS_PER_SECOND_PER_SOURCE: u32 = 10_000_000;

/// `[admission]`: every limit in [`ADMISSION_RANGE`], the rate limit at most [`MAX_PACKETS_PER_SECOND_PER_SOURCE`].
pub(super) fn validate_admission(admission: &Admission) -> Result<(), ConfigError> {
    let all = [
        ("admission.max_sessions", admission.max_sessions),
        ("admission.max_endpoints", admission.max_endpoints),
        ("admission.max_streams", admission.max_streams),
        ("admission.max_subscriptions", admission.max_subscriptions),
    ];
    for (key, value) in all {
        in_range(key, value, ADMISSION_RANGE)?;
    }
    let rate = admission.max_packets_per_second_per_source;
    if rate > MAX_PACKETS_PER_SECOND_PER_SOURCE {
        return Err(ConfigError::invalid(
            "admission.max_packets_per_second_per_source",
            rate,
            format!("must be 0 (unlimited) or at most {MAX_PACKETS_PER_SECOND_PER_SOURCE}"),
        ));
    }
    Ok(())
}

/// Non-empty, at most [`MAX_ID_BYTES`], only `[A-Za-z0-9._-]`.
fn check_id(key: &str, id: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| Err(ConfigError::invalid(key, format!("{id:?}"), reason));
    if id.is_empty() {
        return bad("must not be empty");
    }
    if id.len() > MAX_ID_BYTES {
        return bad("longer than 64 bytes");
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Checks the id of item `index` of the list at `list_key` (`auth.keys`):
/// the [`check_id`] rules, and that none of the `earlier` items has the same id.
fn check_unique_id<'a>(
    list_key: &str,
    index: usize,
    id: &str,
    mut earlier: impl Iterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    let key = format!("{list_key}[{index}].id");
    check_id(&key, id)?;
    match earlier.position(|other| other == id) {
        Some(first) => {
            Err(ConfigError::invalid(key, format!("{id:?}"), format!("duplicate of {list_key}[{first}].id")))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
