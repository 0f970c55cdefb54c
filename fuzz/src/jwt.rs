//! Target `jwt`: bearer tokens of the control API, as [`Verifier::verify`] reads an `authorization` header.
//!
//! Any header value is refused unless it carries a token signed by a configured key, and the refusal never
//! quotes the token's signature, a secret, or more than a bounded message. A token [`mint`] makes (any subject,
//! grant, lifetime and time) is accepted with exactly its claims, under any capitalisation of the scheme, until
//! its expiry plus the leeway and not after; with any one character changed it is refused.

use std::time::Duration;

use arbitrary::Arbitrary;
use ringfwd::auth::token::{EXPIRY_LEEWAY_S, MAX_SUBJECT_BYTES, MAX_TTL_S};
use ringfwd::auth::{mint, AuthError, Claims, Grant, Keys, Verifier};
use ringfwd_tuning::{Auth, AuthKey};

/// The keys of the target (and of the seed tokens): two, so a token of the other key is an unknown or bad one.
pub const KEYS: [(&str, &str); 2] = [
    ("fuzz-1", "ZnV6ei1zZWNyZXQtb25lLWZ1enotc2VjcmV0LW9uZS0xMjM0"),
    ("fuzz-2", "ZnV6ei1zZWNyZXQtdHdvLWZ1enotc2VjcmV0LXR3by0xMjM0NTY="),
];

/// One input; the `authorization` header value, as any client may send it, is the rest of the input.
#[derive(Arbitrary, Debug)]
struct Params {
    now_unix_s: u64,
    mint: Option<Mint>,
}

#[derive(Arbitrary, Debug)]
struct Mint {
    second_key: bool,
    admin: bool,
    subject: String,
    ttl_s: u64,
    now_unix_s: u64,
    /// Which character to change, and to what.
    tamper: (u16, u8),
    /// The scheme as the client writes it.
    scheme: Scheme,
}

#[derive(Arbitrary, Debug)]
enum Scheme {
    Bearer,
    Lower,
    Upper,
    Spaced,
}

/// The target's keys.
pub fn keys() -> Keys {
    let keys = KEYS.iter().map(|(id, secret)| AuthKey { id: (*id).to_owned(), secret_base64: (*secret).to_owned() });
    Keys::from_config(&Auth { keys: keys.collect(), ..Auth::default() }).expect("valid fuzz keys")
}

/// When the seed tokens were minted, in Unix seconds.
const SEED_NOW_S: u64 = 1_700_000_000;

/// Seeds: headers with tokens of either key (valid, of the other key, expired at the seed's time, tampered),
/// and headers that are not tokens, each behind the prefix that decodes to the seed's time and no minting.
pub fn seeds() -> Vec<crate::seeds::Seed> {
    let keys = keys();
    let token = |key: &str, ttl_s: u64, now: u64| {
        mint(&keys, key, Grant::Admin, "fuzz seed", Duration::from_secs(ttl_s), now).expect("a seed token")
    };
    let valid = token(KEYS[0].0, 3600, SEED_NOW_S);
    let mut tampered = valid.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let headers = [
        ("valid", format!("Bearer {valid}")),
        ("second-key", format!("bearer {}", token(KEYS[1].0, 60, SEED_NOW_S))),
        ("expired", format!("Bearer {}", token(KEYS[0].0, 60, SEED_NOW_S - 3600))),
        ("tampered", format!("Bearer {}", String::from_utf8(tampered).expect("ASCII"))),
        ("no-scheme", valid.clone()),
        ("basic", "Basic dXNlcjpwYXNz".to_owned()),
        ("not-a-jwt", "Bearer a.b".to_owned()),
        ("none-alg", "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4IiwiZXhwIjoxfQ.".to_owned()),
    ];
    let prefixes = [SEED_NOW_S.to_le_bytes(), SEED_NOW_S.to_be_bytes()];
    headers
        .into_iter()
        .filter_map(|(name, header)| {
            prefixes.iter().find_map(|prefix| {
                let mut data = prefix.to_vec();
                data.push(0); // no minting
                data.extend_from_slice(header.as_bytes());
                let (params, rest) = crate::structured_then_bytes::<Params>(&data)?;
                (rest == header.as_bytes() && params.now_unix_s == SEED_NOW_S && params.mint.is_none())
                    .then(|| (format!("jwt-{name}"), data))
            })
        })
        .collect()
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((input, rest)) = crate::structured_then_bytes::<Params>(data) else {
        return;
    };
    let header = String::from_utf8_lossy(rest);
    let keys = keys();
    let verifier = Verifier::new(keys.clone());
    match verifier.verify(Some(&header), input.now_unix_s) {
        Ok(claims) => {
            assert!(input.now_unix_s <= claims.exp.saturating_add(EXPIRY_LEEWAY_S), "expired but accepted");
            assert!(claims.exp <= input.now_unix_s.saturating_add(MAX_TTL_S + EXPIRY_LEEWAY_S), "too long-lived");
        }
        Err(error) => check_refusal(&header, &error),
    }
    if let Some(m) = &input.mint {
        minted(&keys, &verifier, m);
    }
}

/// A refusal says why without quoting the token's signature or a secret, in a bounded message.
fn check_refusal(header: &str, error: &AuthError) {
    let message = error.to_string();
    assert!(!message.is_empty());
    assert!(message.len() <= 400, "{} bytes of message", message.len());
    let token = header.trim().split_once(' ').map_or("", |(_, token)| token.trim());
    // An unknown key id is echoed (bounded): it is the client's own text, which may be anything.
    if matches!(error, AuthError::UnknownKey(_)) {
        return;
    }
    let base64url = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let signature =
        token.rsplit('.').next().filter(|s| s.len() >= 16 && base64url(s) && token.matches('.').count() == 2);
    if let Some(signature) = signature {
        assert!(!message.contains(signature), "the refusal quotes the signature: {message}");
    }
    for (_, secret) in KEYS {
        assert!(!message.contains(secret), "the refusal quotes a secret");
    }
}

fn minted(keys: &Keys, verifier: &Verifier, m: &Mint) {
    let (key_id, _) = KEYS[usize::from(m.second_key)];
    let grant = if m.admin { Grant::Admin } else { Grant::ReadOnly };
    let ttl = Duration::from_secs(m.ttl_s);
    let token = match mint(keys, key_id, grant, &m.subject, ttl, m.now_unix_s) {
        Ok(token) => token,
        Err(AuthError::BadSubject { .. }) => {
            let bad =
                m.subject.is_empty() || m.subject.len() > MAX_SUBJECT_BYTES || m.subject.chars().any(char::is_control);
            assert!(bad, "subject {:?} refused", m.subject);
            return;
        }
        Err(AuthError::BadTtl { .. }) => {
            assert!(!(1..=MAX_TTL_S).contains(&m.ttl_s) || m.now_unix_s.checked_add(m.ttl_s).is_none());
            return;
        }
        Err(error) => panic!("minting refused: {error}"),
    };
    let exp = m.now_unix_s + m.ttl_s;
    let expected = Claims { sub: m.subject.clone(), grant, iat: m.now_unix_s, exp };
    let header = match m.scheme {
        Scheme::Bearer => format!("Bearer {token}"),
        Scheme::Lower => format!("bearer {token}"),
        Scheme::Upper => format!("BEARER {token}"),
        Scheme::Spaced => format!("  Bearer   {token} "),
    };
    let accepted = |now: u64| verifier.verify(Some(&header), now).ok();
    assert_eq!(accepted(m.now_unix_s).as_ref(), Some(&expected), "a fresh token");
    if let Some(last) = exp.checked_add(EXPIRY_LEEWAY_S) {
        assert_eq!(accepted(last).as_ref(), Some(&expected), "within the leeway");
        if let Some(after) = last.checked_add(1) {
            let refused = verifier.verify(Some(&header), after);
            assert!(matches!(refused, Err(AuthError::Expired { .. })), "after expiry: {refused:?}");
        }
    }
    // One character changed (never a dot, never to one): refused.
    let mut bytes = token.clone().into_bytes();
    let positions: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != b'.').collect();
    let at = positions[usize::from(m.tamper.0) % positions.len()];
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut replacement = ALPHABET[usize::from(m.tamper.1) % ALPHABET.len()];
    if replacement == bytes[at] {
        replacement = if replacement == b'A' { b'B' } else { b'A' };
    }
    bytes[at] = replacement;
    let tampered = String::from_utf8(bytes).expect("ASCII");
    let refused = verifier.verify(Some(&format!("Bearer {tampered}")), m.now_unix_s);
    assert!(refused.is_err(), "a token with byte {at} changed was accepted: {refused:?}");
}
