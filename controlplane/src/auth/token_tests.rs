//! Unit tests of [`super`]: minting and verifying tokens. Tests only; never compiled into the
//! library.

use super::*;
use ringfwd_tuning::{Auth, AuthKey};

/// A time well past any test's clock arithmetic, in unix seconds.
const NOW: u64 = 1_700_000_000;
/// base64 of the 32 bytes `kkkk…` (0x6b).
const OPS_SECRET: &str = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=";

fn ops_keys() -> Keys {
    let auth = Auth { keys: vec![AuthKey { id: "ops".into(), secret_base64: OPS_SECRET.into() }], ..Auth::default() };
    Keys::from_config(&auth).unwrap()
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Verifies `token` as a `Bearer` header with a verifier of `keys` at `now`.
fn round_trip(keys: &Keys, token: &str, now: u64) -> Result<Claims, AuthError> {
    Verifier::new(keys.clone()).verify(Some(&bearer(token)), now)
}

#[test]
fn round_trip_per_grant() {
    let (keys, id) = Keys::generate_dev();
    for grant in [Grant::Admin, Grant::ReadOnly] {
        let token = mint(&keys, &id, grant, "ctl@host", hour(), NOW).unwrap();
        let claims = round_trip(&keys, &token, NOW + 10).unwrap();
        let expected = Claims { sub: "ctl@host".into(), grant, iat: NOW, exp: NOW + 3600 };
        assert_eq!(claims, expected);
    }
}

#[test]
fn grant_allows_write_only_for_admin() {
    assert!(Grant::Admin.allows_write());
    assert!(!Grant::ReadOnly.allows_write());
    assert_eq!(Grant::ReadOnly.to_string(), "read");
    assert_eq!(Grant::Admin.as_str(), "admin");
}

#[test]
fn token_has_kid_header_and_the_documented_claims() {
    let keys = ops_keys();
    let token = mint(&keys, "ops", Grant::ReadOnly, "me", hour(), NOW).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.kid.as_deref(), Some("ops"));
    let payload = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&token).unwrap().claims;
    let expected = serde_json::json!({
        "sub": "me", "grant": "read", "iat": NOW, "exp": NOW + 3600
    });
    assert_eq!(payload, expected);
}

#[test]
fn scheme_is_case_insensitive() {
    let keys = ops_keys();
    let token = mint(&keys, "ops", Grant::Admin, "me", hour(), NOW).unwrap();
    let verifier = Verifier::new(keys);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let header = format!("{scheme} {token}");
        verifier.verify(Some(&header), NOW).unwrap();
    }
}

#[test]
fn expired_after_the_leeway() {
    let keys = ops_keys();
    let token = mint(&keys, "ops", Grant::Admin, "me", Duration::from_secs(60), NOW).unwrap();
    let exp = NOW + 60;
    round_trip(&keys, &token, exp).unwrap();
    round_trip(&keys, &token, exp + EXPIRY_LEEWAY_S).unwrap();
    let err = round_trip(&keys, &token, exp + EXPIRY_LEEWAY_S + 1).unwrap_err();
    assert!(matches!(err, AuthError::Expired { exp: e, now } if e == exp && now == exp + 6), "{err:?}");
    assert!(err.to_string().contains(&exp.to_string()), "{err}");
}

#[test]
fn iat_in_the_future_is_accepted() {
    let keys = ops_keys();
    let token = mint(&keys, "ops", Grant::Admin, "me", hour(), NOW + 86_400).unwrap();
    let claims = round_trip(&keys, &token, NOW).unwrap();
    assert_eq!(claims.iat, NOW + 86_400);
}

#[test]
fn wrong_key_is_a_bad_signature() {
    let (signer, id) = Keys::generate_dev();
    let (other, _) = Keys::generate_dev();
    let token = mint(&signer, &id, Grant::Admin, "me", hour(), NOW).unwrap();
    let err = round_trip(&other, &token, NOW).unwrap_err();
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
}

#[test]
fn unknown_kid_is_named() {
    let token = mint(&ops_keys(), "ops", Grant::Admin, "me", hour(), NOW).unwrap();
    let (dev, _) = Keys::generate_dev();
    let err = round_trip(&dev, &token, NOW).unwrap_err();
    assert!(matches!(&err, AuthError::UnknownKey(kid) if kid == "ops"), "{err:?}");
}

#[test]
fn tampered_payload_is_a_bad_signature() {
    // A read-only token whose claims are swapped for an admin token's (same kid, other key).
    let (keys, id) = Keys::generate_dev();
    let (other, _) = Keys::generate_dev();
    let read = mint(&keys, &id, Grant::ReadOnly, "me", hour(), NOW).unwrap();
    let admin = mint(&other, &id, Grant::Admin, "me", hour(), NOW).unwrap();
    let read_parts: Vec<&str> = read.split('.').collect();
    let admin_parts: Vec<&str> = admin.split('.').collect();
    assert_ne!(read_parts[1], admin_parts[1]);
    let forged = [read_parts[0], admin_parts[1], read_parts[2]].join(".");
    let err = round_trip(&keys, &forged, NOW).unwrap_err();
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
}

#[test]
fn missing_header_is_missing() {
    let verifier = Verifier::new(ops_keys());
    assert!(matches!(verifier.verify(None, NOW), Err(AuthError::Missing)));
    assert!(matches!(verifier.verify(Some("  "), NOW), Err(AuthError::Missing)));
}

#[test]
fn basic_and_garbage_headers_are_malformed_and_not_echoed() {
    let keys = ops_keys();
    let token = mint(&keys, "ops", Grant::Admin, "me", hour(), NOW).unwrap();
    let verifier = Verifier::new(keys);
    let too_long = bearer(&"a".repeat(MAX_TOKEN_BYTES + 1));
    let headers = [
        "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
        "garbage".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer not-a-jwt".to_owned(),
        "Bearer a.b.c".to_owned(),
        bearer("eyJ.eyJ.sig"),
        // The token without its scheme: the message must not quote it.
        token.clone(),
        too_long,
    ];
    for header in headers {
        let err = verifier.verify(Some(&header), NOW).unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_)), "{header}: {err:?}");
        let text = err.to_string();
        let signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "{text}");
        assert!(!text.contains("dXNlcjpw"), "{text}");
    }
}

/// Signs `claims` under `header` with the secret of the "ops" key, bypassing [`mint`].
fn sign_raw<T: Serialize>(header: Header, claims: &T) -> String {
    let secret = b"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn admin_claims() -> Claims {
    Claims { sub: "me".into(), grant: Grant::Admin, iat: NOW, exp: NOW + 60 }
}

fn ops_header(algorithm: Algorithm) -> Header {
    Header { kid: Some("ops".into()), ..Header::new(algorithm) }
}

#[test]
fn raw_signing_matches_the_ops_key() {
    let token = sign_raw(ops_header(Algorithm::HS256), &admin_claims());
    assert_eq!(round_trip(&ops_keys(), &token, NOW).unwrap(), admin_claims());
}

#[test]
fn other_algorithm_is_malformed() {
    let token = sign_raw(ops_header(Algorithm::HS512), &admin_claims());
    let err = round_trip(&ops_keys(), &token, NOW).unwrap_err();
    assert!(matches!(&err, AuthError::Malformed(m) if m.contains("HS256")), "{err:?}");
}

#[test]
fn token_without_kid_is_malformed() {
    let token = sign_raw(Header::new(Algorithm::HS256), &admin_claims());
    let err = round_trip(&ops_keys(), &token, NOW).unwrap_err();
    assert!(matches!(&err, AuthError::Malformed(m) if m.contains("kid")), "{err:?}");
}

#[test]
fn signed_token_without_a_grant_is_malformed() {
    #[derive(Serialize)]
    struct NoGrant {
        sub: &'static str,
        exp: u64,
    }
    let claims = NoGrant { sub: "me", exp: NOW + 60 };
    let token = sign_raw(ops_header(Algorithm::HS256), &claims);
    let err = round_trip(&ops_keys(), &token, NOW).unwrap_err();
    assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
}

#[test]
fn mint_checks_ttl_subject_and_key() {
    let keys = ops_keys();
    let mint_with = |ttl: Duration, subject: &str, now: u64| mint(&keys, "ops", Grant::Admin, subject, ttl, now);
    let bad_ttl = |r: Result<String, AuthError>| matches!(r, Err(AuthError::BadTtl { .. }));
    assert!(bad_ttl(mint_with(Duration::from_millis(999), "me", NOW)));
    assert!(bad_ttl(mint_with(Duration::from_secs(MAX_TTL_S + 1), "me", NOW)));
    assert!(bad_ttl(mint_with(hour(), "me", u64::MAX - 10)));
    mint_with(Duration::from_secs(MAX_TTL_S), "me", NOW).unwrap();
    let long = "s".repeat(MAX_SUBJECT_BYTES + 1);
    for subject in ["", "a\nb", long.as_str()] {
        let r = mint_with(hour(), subject, NOW);
        assert!(matches!(r, Err(AuthError::BadSubject { .. })), "{subject:?}");
    }
    let r = mint(&keys, "nope", Grant::Admin, "me", hour(), NOW);
    assert!(matches!(r, Err(AuthError::UnknownKey(k)) if k == "nope"));
}

#[test]
fn verifier_debug_shows_ids_not_secrets() {
    let text = format!("{:?}", Verifier::new(ops_keys()));
    assert!(text.contains("ops"), "{text}");
    assert!(!text.contains("107"), "{text}");
    assert!(!text.contains("kkkk"), "{text}");
}

#[test]
fn an_expiry_beyond_the_longest_lifetime_is_refused() {
    let keys = ops_keys();
    // Signed with the right key, but expiring centuries from now (as if minted by a clock far ahead).
    let centuries = NOW + 300 * 365 * 86_400;
    let token = mint(&keys, "ops", Grant::Admin, "me", hour(), centuries).unwrap();
    let err = round_trip(&keys, &token, NOW).unwrap_err();
    assert!(matches!(err, AuthError::TooLongLived { max_s: MAX_TTL_S, .. }), "{err:?}");
    assert!(err.is_unauthenticated());
    // The longest lifetime ringfwd mints is still accepted.
    let longest = mint(&keys, "ops", Grant::Admin, "me", Duration::from_secs(MAX_TTL_S), NOW).unwrap();
    round_trip(&keys, &longest, NOW).unwrap();
}
