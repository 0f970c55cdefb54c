//! Minting and verifying bearer tokens: HS256 JWTs whose `kid` header names the key.
//!
//! Owns [`Grant`], [`Claims`], [`mint`] and [`Verifier`]. Sans-IO: the current time comes in
//! as `now_unix_s`; the JWT library's own clock checks are switched off and the expiry is
//! checked here against that time, with [`EXPIRY_LEEWAY_S`] of leeway. Only `exp` is checked:
//! an `iat` in the future is accepted. This module must never log, and never put a token, a
//! piece of one or a secret into an error.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::AuthError;
use super::keys::Keys;

/// How long after `exp` a token is still accepted, in seconds (clock skew between hosts).
pub const EXPIRY_LEEWAY_S: u64 = 5;

/// Longest accepted token lifetime, in seconds: 365 days, as for `auth.dev_token_ttl_s`.
pub const MAX_TTL_S: u64 = *ringfwd_tuning::validate::DEV_TOKEN_TTL_S_RANGE.end();

/// Longest accepted token, in bytes; a longer `authorization` value is refused unparsed.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Longest accepted subject, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 128;

/// Longest key id echoed back in [`AuthError::UnknownKey`], in characters.
const MAX_ECHOED_KID_CHARS: usize = ringfwd_tuning::MAX_ID_BYTES;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum Grant {
    /// Every call, reads and writes (`"admin"`).
    #[serde(rename = "admin")]
    #[value(name = "admin")]
    Admin,
    /// Reading calls only (`"read"`); a writing call is refused with `PERMISSION_DENIED`.
    #[serde(rename = "read")]
    #[value(name = "read")]
    ReadOnly,
}

impl Grant {
    /// Whether this grant may call a writing RPC (create, delete, update, drain).
    pub fn allows_write(self) -> bool {
        match self {
            Grant::Admin => true,
            Grant::ReadOnly => false,
        }
    }

    /// The grant as written in tokens and on the command line: `"admin"` or `"read"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Admin => "admin",
            Grant::ReadOnly => "read",
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of a ringfwd token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who the token was minted for (free text, shown in logs of the calls it makes).
    pub sub: String,
    /// What the token allows.
    pub grant: Grant,
    /// When it was minted, in unix seconds (informational; not checked).
    pub iat: u64,
    /// When it expires, in unix seconds.
    pub exp: u64,
}

/// Mints a token for `subject` with `grant`, signed by the key `key_id` of `keys`, valid from
/// `now_unix_s` for `ttl` (whole seconds, 1 s..=[`MAX_TTL_S`]).
pub fn mint(
    keys: &Keys,
    key_id: &str,
    grant: Grant,
    subject: &str,
    ttl: Duration,
    now_unix_s: u64,
) -> Result<String, AuthError> {
    check_subject(subject)?;
    let ttl_s = ttl.as_secs();
    let bad_ttl = AuthError::BadTtl { ttl_s, max_s: MAX_TTL_S };
    if !(1..=MAX_TTL_S).contains(&ttl_s) {
        return Err(bad_ttl);
    }
    let exp = now_unix_s.checked_add(ttl_s).ok_or(bad_ttl)?;
    let secret = keys.secret(key_id).ok_or_else(|| AuthError::UnknownKey(key_id.to_owned()))?;
    let header = Header { kid: Some(key_id.to_owned()), ..Header::new(Algorithm::HS256) };
    let claims = Claims { sub: subject.to_owned(), grant, iat: now_unix_s, exp };
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret))
        .map_err(|e| AuthError::Sign(e.to_string()))
}

fn check_subject(subject: &str) -> Result<(), AuthError> {
    let reason = if subject.is_empty() {
        "must not be empty"
    } else if subject.len() > MAX_SUBJECT_BYTES {
        "longer than 128 bytes"
    } else if subject.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(AuthError::BadSubject { subject: subject.to_owned(), reason })
}

/// Checks `authorization` headers against a fixed set of keys.
pub struct Verifier {
    /// (key id, verifying key), in config order.
    keys: Vec<(String, DecodingKey)>,
    /// HS256 only, `exp` required; the library's clock checks off (see the module doc).
    validation: Validation,
}

impl Verifier {
    /// A verifier accepting tokens signed by any of `keys`.
    pub fn new(keys: Keys) -> Self {
        let keys = keys.iter().map(|(id, secret)| (id.to_owned(), DecodingKey::from_secret(secret))).collect();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        Verifier { keys, validation }
    }

    /// Verifies an `authorization` header value of the form `Bearer <jwt>` (the scheme is
    /// case-insensitive) at `now_unix_s`, and returns the token's claims.
    pub fn verify(&self, authorization_header: Option<&str>, now_unix_s: u64) -> Result<Claims, AuthError> {
        let token = bearer_token(authorization_header)?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| malformed(e.kind()))?;
        if header.alg != Algorithm::HS256 {
            return Err(AuthError::Malformed(format!("algorithm {:?} is not accepted; tokens are HS256", header.alg)));
        }
        let Some(kid) = header.kid else {
            return Err(AuthError::Malformed("no \"kid\" header naming the signing key".to_owned()));
        };
        let Some((_, key)) = self.keys.iter().find(|(id, _)| *id == kid) else {
            let shown = kid.chars().take(MAX_ECHOED_KID_CHARS).collect();
            return Err(AuthError::UnknownKey(shown));
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                kind => malformed(kind),
            })?
            .claims;
        if now_unix_s > claims.exp.saturating_add(EXPIRY_LEEWAY_S) {
            return Err(AuthError::Expired { exp: claims.exp, now: now_unix_s });
        }
        if claims.exp > now_unix_s.saturating_add(MAX_TTL_S + EXPIRY_LEEWAY_S) {
            return Err(AuthError::TooLongLived { exp: claims.exp, now: now_unix_s, max_s: MAX_TTL_S });
        }
        Ok(claims)
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Verifier").field("key_ids", &ids).finish_non_exhaustive()
    }
}

/// The token of a `Bearer <token>` header value. Messages never echo the value: a client that
/// forgot the scheme sent its token as the whole value.
fn bearer_token(authorization_header: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization_header.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(AuthError::Missing);
    }
    let bad = |reason: &str| Err(AuthError::Malformed(reason.to_owned()));
    let Some((scheme, token)) = value.split_once(' ') else {
        return bad("expected \"Bearer <token>\"");
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return bad("expected the Bearer scheme: \"Bearer <token>\"");
    }
    let token = token.trim_start();
    if token.is_empty() {
        return bad("empty bearer token");
    }
    if token.len() > MAX_TOKEN_BYTES {
        return bad("token longer than 4096 bytes");
    }
    Ok(token)
}

/// A fixed description of why a token could not be parsed; never the library's text, which
/// may quote parts of the token.
fn malformed(kind: &ErrorKind) -> AuthError {
    let reason = match kind {
        ErrorKind::InvalidToken => "not a JWT (header.claims.signature)",
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) => "a part is not valid base64url",
        ErrorKind::Json(_) => "a part is not the expected JSON (claims: sub, grant, iat, exp)",
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            "the \"exp\" claim is missing or not a number"
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "algorithm not accepted; tokens are HS256",
        _ => "invalid token",
    };
    AuthError::Malformed(reason.to_owned())
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
