//! `ringfwd token`: mint a bearer token with a key from the config.
//!
//! Owns [`TokenArgs`] (the subcommand's flags) and [`run`], which turns them and a config
//! into a token. Sans-IO: the caller loads the config, passes the time and prints the token (only the error without
//! keys reads the environment, to say where the development token is).
//! This module must never print or log the token or a secret itself.

use std::time::Duration;

use ringfwd_tuning::Config;

use super::error::AuthError;
use super::keys::Keys;
use super::token::{mint, Grant};

/// Flags of `ringfwd token`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TokenArgs {
    /// What the token allows: "admin" (every call) or "read" (reading calls only).
    #[arg(long, value_enum, default_value_t = Grant::Admin)]
    pub grant: Grant,
    /// Lifetime, e.g. "1h", "30m", "86400s" or "1h 30m"; 1 s to 365 days.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    pub ttl: Duration,
    /// Who the token is for; shown in the daemon's log of the calls it makes.
    #[arg(long, default_value = "ringfwd-ctl")]
    pub subject: String,
    /// Id of the `[[auth.keys]]` key that signs; default: the config's first key.
    #[arg(long, value_name = "ID")]
    pub key_id: Option<String>,
}

/// Mints the token `args` ask for with the keys of `config`, valid from `now_unix_s`.
/// A config without `[[auth.keys]]` is an error pointing at the development token file (where this process, its
/// user and environment, would find it).
pub fn run(args: &TokenArgs, config: &Config, now_unix_s: u64) -> Result<String, AuthError> {
    let keys = Keys::from_config(&config.auth)?;
    let Some(first) = keys.ids().next() else {
        return Err(AuthError::NoKeys { dev_token_file: config.auth.dev_token_location()?.path });
    };
    let key_id = args.key_id.as_deref().unwrap_or(first);
    mint(&keys, key_id, args.grant, &args.subject, args.ttl, now_unix_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::{Claims, Verifier};
    use clap::Parser;
    use ringfwd_tuning::AuthKey;

    const NOW: u64 = 1_700_000_000;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        token: TokenArgs,
    }

    fn parse(args: &[&str]) -> Result<TokenArgs, clap::Error> {
        let argv = std::iter::once("token").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|cli| cli.token)
    }

    fn config_with_keys(ids: &[&str]) -> Config {
        let mut config = Config::default();
        config.auth.keys = ids
            .iter()
            .map(|id| AuthKey {
                id: (*id).to_owned(),
                // base64 of 32 bytes of 'k'.
                secret_base64: "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=".to_owned(),
            })
            .collect();
        config
    }

    fn verify(config: &Config, token: &str) -> Result<Claims, AuthError> {
        let verifier = Verifier::new(Keys::from_config(&config.auth).unwrap());
        verifier.verify(Some(&format!("Bearer {token}")), NOW)
    }

    #[test]
    fn defaults() {
        let args = parse(&[]).unwrap();
        let expected = TokenArgs {
            grant: Grant::Admin,
            ttl: Duration::from_secs(3600),
            subject: "ringfwd-ctl".into(),
            key_id: None,
        };
        assert_eq!(args, expected);
    }

    #[test]
    fn flags_parse() {
        let args = parse(&["--grant", "read", "--ttl", "30m", "--subject", "x"]).unwrap();
        assert_eq!(args.grant, Grant::ReadOnly);
        assert_eq!(args.ttl, Duration::from_secs(1800));
        assert_eq!(args.subject, "x");
        let args = parse(&["--ttl", "86400s", "--key-id", "ops"]).unwrap();
        assert_eq!(args.ttl, Duration::from_secs(86_400));
        assert_eq!(args.key_id.as_deref(), Some("ops"));
        assert_eq!(parse(&["--ttl", "1h 30m"]).unwrap().ttl, Duration::from_secs(5400));
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(parse(&["--grant", "root"]).is_err());
        assert!(parse(&["--ttl", "soon"]).is_err());
        assert!(parse(&["--ttl", "-1h"]).is_err());
    }

    #[test]
    fn run_signs_with_the_first_key_by_default() {
        let config = config_with_keys(&["first", "second"]);
        let args = parse(&["--grant", "read", "--ttl", "2h"]).unwrap();
        let token = run(&args, &config, NOW).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("first"));
        let claims = verify(&config, &token).unwrap();
        assert_eq!(claims.grant, Grant::ReadOnly);
        assert_eq!(claims.sub, "ringfwd-ctl");
        assert_eq!(claims.exp, NOW + 7200);
    }

    #[test]
    fn run_signs_with_the_named_key() {
        let config = config_with_keys(&["first", "second"]);
        let args = parse(&["--key-id", "second"]).unwrap();
        let token = run(&args, &config, NOW).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("second"));
        verify(&config, &token).unwrap();
        let args = parse(&["--key-id", "third"]).unwrap();
        let err = run(&args, &config, NOW).unwrap_err();
        assert!(matches!(&err, AuthError::UnknownKey(k) if k == "third"), "{err:?}");
    }

    #[test]
    fn run_without_keys_points_at_the_dev_token_file() {
        let mut config = Config::default();
        config.auth.dev_token_file = Some("/run/ringfwd/token".into());
        for args in [parse(&[]).unwrap(), parse(&["--key-id", "dev"]).unwrap()] {
            let err = run(&args, &config, NOW).unwrap_err();
            assert!(matches!(err, AuthError::NoKeys { .. }), "{err:?}");
            assert!(err.to_string().ends_with("it is in /run/ringfwd/token"), "{err}");
        }
    }
}
