//! Which bearer token `ringfwd ctl` sends: `--token` / `RINGFWD_TOKEN`, else the development token file a daemon
//! without keys wrote, found by the same rule the daemon wrote it by (`ringfwd_tuning::dev_token`).
//!
//! Owns [`bearer_token`] and the messages that say, when there is no token, where ctl looked and which flag or
//! environment variable to use. Must never put the token or a piece of it into a message.

use std::io;

use ringfwd_tuning::{Config, DevTokenLocation};

/// The token to send: `given` (from `--token` or `RINGFWD_TOKEN`), else the development token file of `config`
/// for this user and environment. The error is the message to print.
pub fn bearer_token(given: Option<&str>, config: &Config) -> Result<String, String> {
    if let Some(token) = given {
        return Ok(token.to_owned());
    }
    // A daemon with keys has no development token: a file left from an earlier run would only be refused.
    if !config.auth.keys.is_empty() {
        return Err("no token: the config has [[auth.keys]], so there is no development token; pass --token or \
                    set RINGFWD_TOKEN with a token minted by `ringfwd token --config FILE`"
            .to_owned());
    }
    let location = config
        .auth
        .dev_token_location()
        .map_err(|e| format!("no token: {e}; or pass --token or set RINGFWD_TOKEN (mint one with `ringfwd token`)"))?;
    crate::auth::read_dev_token(&location.path).map_err(|e| unreadable(&location, &e))
}

/// Why the development token file at `location` gave no token, and what to do instead.
fn unreadable(location: &DevTokenLocation, error: &io::Error) -> String {
    let path = location.path.display();
    let instead = "pass --token or set RINGFWD_TOKEN (mint one with `ringfwd token`)";
    if error.kind() == io::ErrorKind::NotFound {
        format!(
            "no token: no development token file at {path} (looked there because {source}). A daemon without \
             [[auth.keys]] writes it there when it runs as this user with the same RUNTIME_DIRECTORY and \
             XDG_RUNTIME_DIR; otherwise set RUNTIME_DIRECTORY or XDG_RUNTIME_DIR as the daemon has them, pass \
             --config FILE with the daemon's auth.dev_token_file, or {instead}",
            source = location.source
        )
    } else {
        format!("no token: the development token file {path} could not be read: {error}; {instead}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfwd_tuning::AuthKey;

    fn config_with_file(path: &std::path::Path) -> Config {
        let mut config = Config::default();
        config.auth.dev_token_file = Some(path.to_path_buf());
        config
    }

    #[test]
    fn a_given_token_wins() {
        let config = config_with_file(std::path::Path::new("/nonexistent/dev-token"));
        assert_eq!(bearer_token(Some("a.b.c"), &config).unwrap(), "a.b.c");
    }

    #[test]
    fn a_missing_file_names_the_path_the_rule_and_the_ways_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev-token");
        let err = bearer_token(None, &config_with_file(&path)).unwrap_err();
        for hint in [
            path.to_str().unwrap(),
            "because auth.dev_token_file is set in the config",
            "RUNTIME_DIRECTORY",
            "XDG_RUNTIME_DIR",
            "--config",
            "--token",
            "RINGFWD_TOKEN",
            "ringfwd token",
        ] {
            assert!(err.contains(hint), "no {hint:?} in: {err}");
        }
    }

    #[test]
    fn the_file_is_read_and_a_symlink_refused() {
        let dir = crate::auth::dev::tests::private_tempdir();
        let path = dir.path().join("dev-token");
        crate::auth::write_dev_token(&path, "aaa.bbb.ccc").unwrap();
        assert_eq!(bearer_token(None, &config_with_file(&path)).unwrap(), "aaa.bbb.ccc");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = bearer_token(None, &config_with_file(&link)).unwrap_err();
        assert!(err.contains("symlink") && err.contains(link.to_str().unwrap()), "{err}");
        assert!(!err.contains("aaa"), "{err}");
    }

    #[test]
    fn a_config_with_keys_has_no_development_token() {
        let mut config = Config::default();
        config.auth.keys = vec![AuthKey { id: "ops".into(), secret_base64: "x".into() }];
        let err = bearer_token(None, &config).unwrap_err();
        assert!(err.contains("[[auth.keys]]") && err.contains("ringfwd token"), "{err}");
    }
}
