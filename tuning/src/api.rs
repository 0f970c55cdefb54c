//! The control API's config sections: `[api]` (where the gRPC server listens, with or without
//! TLS (`[api.tls]`), what it tells peers), `[auth]` (token-signing keys, the development token) and `[admission]` (how many
//! resources the registry accepts).
//!
//! Owns the structs, their serde form and the base64 form of a secret (the one place a secret
//! is decoded; [`AuthKey::secret_bytes`] adds the checks). Like [`crate::schema`], every
//! struct denies unknown keys and takes missing keys from [`crate::defaults`]; the rules live
//! in [`crate::validate`]. This module must never check ranges, and never print a secret:
//! [`AuthKey`]'s `Debug` shows the key id only.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::defaults;

/// The gRPC control API's listening and advertised addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// TCP address the gRPC server binds; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Media addresses a create call tells the controller to give its peers, at most one per
    /// address family (for hosts behind NAT); empty means the bound `media.addresses`.
    pub advertise_addresses: Vec<SocketAddr>,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: u32,
    /// How long a new connection may take to send the HTTP/2 preface (after the TLS handshake,
    /// when there is one: the whole handshake counts) before it is closed, in milliseconds.
    pub handshake_timeout_ms: u32,
    /// Serve a non-loopback `listen` without `[api.tls]` (tokens and calls then cross the network
    /// in the clear); the daemon warns at start. Without it such a config is refused.
    pub allow_plaintext: bool,
    /// TLS on the API's listener (`[api.tls]`); `None` serves plaintext HTTP/2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ApiTls>,
}

/// TLS of the control API (`[api.tls]`): the server's certificate and key, and optionally the CA
/// that client certificates must be signed by (mutual TLS). PEM files, absolute paths, read and
/// parsed at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTls {
    /// The server's certificate chain (PEM), leaf first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// The server certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// CA certificates (PEM) a client's certificate must chain to; `None` asks for no client
    /// certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            listen: defaults::API_LISTEN,
            advertise_addresses: defaults::API_ADVERTISE_ADDRESSES.to_vec(),
            max_connections: defaults::API_MAX_CONNECTIONS,
            handshake_timeout_ms: defaults::API_HANDSHAKE_TIMEOUT_MS,
            allow_plaintext: defaults::API_ALLOW_PLAINTEXT,
            tls: defaults::API_TLS,
        }
    }
}

/// Bearer-token authentication of the control API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// HMAC keys that sign and verify tokens (`[[auth.keys]]`); empty means the daemon
    /// generates a development key at start, which may only serve a loopback `api.listen`.
    pub keys: Vec<AuthKey>,
    /// Where the daemon writes the development token (mode 0600) for `ringfwd ctl` to read; `None` (the
    /// default) means the private runtime directory [`crate::dev_token`] picks. Use
    /// [`Auth::dev_token_location`], never this field, to find the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_token_file: Option<PathBuf>,
    /// Lifetime of the development token, in seconds.
    pub dev_token_ttl_s: u64,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            keys: defaults::AUTH_KEYS.to_vec(),
            dev_token_file: defaults::AUTH_DEV_TOKEN_FILE.map(PathBuf::from),
            dev_token_ttl_s: defaults::AUTH_DEV_TOKEN_TTL_S,
        }
    }
}

/// One token-signing key: tokens name it in their `kid` header.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthKey {
    /// Key id: 1..=64 bytes of `[A-Za-z0-9._-]`, unique among `auth.keys`.
    pub id: String,
    /// The HMAC secret in base64 (standard alphabet, padding optional), at least 32 bytes
    /// once decoded.
    pub secret_base64: String,
}

/// Decodes the standard base64 alphabet with or without `=` padding.
const SECRET_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl AuthKey {
    /// `secret_base64` decoded, with no length check; `None` when it is not valid base64.
    /// [`AuthKey::secret_bytes`] is the checked form everyone else uses.
    pub(crate) fn decode_base64(&self) -> Option<Vec<u8>> {
        SECRET_ENGINE.decode(self.secret_base64.as_bytes()).ok()
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthKey").field("id", &self.id).field("secret_base64", &"<redacted>").finish()
    }
}

/// How many resources the registry admits; a create beyond a limit is refused, naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admission {
    /// Sessions in the registry.
    pub max_sessions: u32,
    /// Endpoints in the registry, all sessions together.
    pub max_endpoints: u32,
    /// Streams in the registry, all sessions together.
    pub max_streams: u32,
    /// Subscriptions in the registry, all sessions together.
    pub max_subscriptions: u32,
    /// Packets per second one stream's source may send; the data plane drops the excess and counts it
    /// (`drop_rate_limited`). 0 means unlimited.
    pub max_packets_per_second_per_source: u32,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            max_sessions: defaults::ADMISSION_MAX_SESSIONS,
            max_endpoints: defaults::ADMISSION_MAX_ENDPOINTS,
            max_streams: defaults::ADMISSION_MAX_STREAMS,
            max_subscriptions: defaults::ADMISSION_MAX_SUBSCRIPTIONS,
            max_packets_per_second_per_source: defaults::ADMISSION_MAX_PACKETS_PER_SECOND_PER_SOURCE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret_base64: &str) -> AuthKey {
        AuthKey { id: "ops".into(), secret_base64: secret_base64.into() }
    }

    #[test]
    fn secret_decodes_with_or_without_padding() {
        assert_eq!(key("YWI=").decode_base64().unwrap(), b"ab");
        assert_eq!(key("YWI").decode_base64().unwrap(), b"ab");
        assert_eq!(key("").decode_base64().unwrap(), b"");
    }

    #[test]
    fn secret_rejects_other_alphabets_and_junk() {
        // '-' and '_' belong to the URL-safe alphabet only.
        assert_eq!(key("a-b_").decode_base64(), None);
        assert_eq!(key("YW I=").decode_base64(), None);
        assert_eq!(key("not base64!").decode_base64(), None);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let text = format!("{:?}", key("c2VjcmV0LXNlY3JldC1zZWNyZXQ="));
        assert!(text.contains("ops"), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{text}");
    }

    #[test]
    fn sections_parse_from_toml() {
        let text = "[[keys]]\nid = \"a\"\nsecret_base64 = \"YWI\"\n";
        let auth: Auth = toml::from_str(text).unwrap();
        let expected = AuthKey { id: "a".into(), ..key("YWI") };
        assert_eq!(auth.keys, [expected]);
        assert_eq!(auth.dev_token_ttl_s, defaults::AUTH_DEV_TOKEN_TTL_S);
        let err = toml::from_str::<Auth>("[[keys]]\nid = \"a\"\n").unwrap_err();
        assert!(err.to_string().contains("secret_base64"), "{err}");
        let err = toml::from_str::<Api>("listen = \"127.0.0.1:1\"\nport = 2\n").unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
    }
}
