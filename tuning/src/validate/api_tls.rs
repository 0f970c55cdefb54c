//! Rules of `[api.tls]` and `api.allow_plaintext`: the TLS files are named as absolute paths, the
//! certificate and its key both or neither; a non-loopback `api.listen` is served over TLS unless
//! plaintext is allowed explicitly.
//!
//! Owns the shape of the TLS settings only: it must never open, read or parse a file (the daemon
//! loads them at start and names the key and path of one it cannot use).

use std::path::Path;

use crate::api::{Api, ApiTls};
use crate::error::ConfigError;

/// `key` holds an absolute path naming a file.
pub(crate) fn check_path(key: &str, path: &Path) -> Result<(), ConfigError> {
    let value = format!("{:?}", path.display().to_string());
    if !path.is_absolute() {
        return Err(ConfigError::invalid(
            key,
            value,
            "must be an absolute path (the daemon and `ringfwd ctl` may run in other directories)",
        ));
    }
    if path.file_name().is_none() {
        return Err(ConfigError::invalid(key, value, "must name a file, not a directory"));
    }
    Ok(())
}

/// `[api.tls]`: `cert_file` and `key_file` both set, every path absolute.
fn validate_tls(tls: &ApiTls) -> Result<(), ConfigError> {
    let pair = [("api.tls.cert_file", &tls.cert_file), ("api.tls.key_file", &tls.key_file)];
    for (i, (key, value)) in pair.iter().enumerate() {
        let (other, other_value) = pair[1 - i];
        if value.is_none() {
            let reason = match other_value {
                Some(_) => format!("{other} is set; a certificate needs its key and a key its certificate"),
                None => "[api.tls] needs cert_file and key_file (PEM files); remove the section for plaintext".into(),
            };
            return Err(ConfigError::invalid(*key, "(unset)", reason));
        }
    }
    let paths = [
        ("api.tls.cert_file", &tls.cert_file),
        ("api.tls.key_file", &tls.key_file),
        ("api.tls.client_ca_file", &tls.client_ca_file),
    ];
    for (key, path) in paths {
        if let Some(path) = path {
            check_path(key, path)?;
        }
    }
    Ok(())
}

/// `[api.tls]` when present; and a non-loopback `api.listen` needs it unless `api.allow_plaintext`.
pub(super) fn validate_api_tls(api: &Api) -> Result<(), ConfigError> {
    if let Some(tls) = &api.tls {
        validate_tls(tls)?;
    }
    if api.tls.is_none() && !api.allow_plaintext && !api.listen.ip().is_loopback() {
        return Err(ConfigError::invalid(
            "api.tls",
            "(unset)",
            format!(
                "api.listen = {} is not a loopback address, and without TLS its tokens and calls cross the \
                 network in the clear: add [api.tls] with cert_file and key_file, listen on 127.0.0.1 or [::1], \
                 or set api.allow_plaintext = true to serve plaintext anyway",
                api.listen
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::validate::tests::key_after;
    use crate::{AuthKey, Config};

    /// base64 of the 32 bytes `0123456789abcdef0123456789abcdef`.
    const SECRET_32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn tls(cert: Option<&str>, key: Option<&str>, ca: Option<&str>) -> Option<crate::api::ApiTls> {
        Some(crate::api::ApiTls {
            cert_file: cert.map(PathBuf::from),
            key_file: key.map(PathBuf::from),
            client_ca_file: ca.map(PathBuf::from),
        })
    }

    /// The default config listening on `listen`, with a configured key (so the development-key rule is met).
    fn keyed(config: &mut Config, listen: &str) {
        config.auth.keys = vec![AuthKey { id: "ops".into(), secret_base64: SECRET_32.into() }];
        config.api.listen = listen.parse().unwrap();
    }

    #[test]
    fn non_loopback_without_tls_is_refused_naming_api_tls_and_the_address() {
        let mut config = Config::default();
        keyed(&mut config, "192.0.2.1:50051");
        let err = config.validate().unwrap_err();
        assert_eq!(err.key(), Some("api.tls"));
        let text = err.to_string();
        assert!(text.contains("192.0.2.1:50051") && text.contains("api.allow_plaintext"), "{text}");
        assert_eq!(key_after(|c| keyed(c, "0.0.0.0:50051")), "api.tls");
        assert_eq!(key_after(|c| keyed(c, "[::]:50051")), "api.tls");
    }

    #[test]
    fn non_loopback_is_served_with_tls_or_with_plaintext_allowed() {
        let with_tls = |c: &mut Config| {
            keyed(c, "0.0.0.0:50051");
            c.api.tls = tls(Some("/etc/ringfwd/api.pem"), Some("/etc/ringfwd/api.key"), None);
        };
        assert_eq!(key_after(with_tls), "<valid>");
        let allowed = |c: &mut Config| {
            keyed(c, "0.0.0.0:50051");
            c.api.allow_plaintext = true;
        };
        assert_eq!(key_after(allowed), "<valid>");
        assert_eq!(key_after(|c| keyed(c, "127.0.0.1:50051")), "<valid>");
    }

    #[test]
    fn the_development_key_rule_still_comes_first() {
        assert_eq!(key_after(|c| c.api.listen = "0.0.0.0:50051".parse().unwrap()), "auth.keys");
    }

    #[test]
    fn certificate_and_key_both_or_neither() {
        let only_cert = |c: &mut Config| c.api.tls = tls(Some("/etc/a.pem"), None, None);
        assert_eq!(key_after(only_cert), "api.tls.key_file");
        let only_key = |c: &mut Config| c.api.tls = tls(None, Some("/etc/a.key"), None);
        assert_eq!(key_after(only_key), "api.tls.cert_file");
        let only_ca = |c: &mut Config| c.api.tls = tls(None, None, Some("/etc/ca.pem"));
        assert_eq!(key_after(only_ca), "api.tls.cert_file");
        let mutual = |c: &mut Config| c.api.tls = tls(Some("/etc/a.pem"), Some("/etc/a.key"), Some("/etc/ca.pem"));
        assert_eq!(key_after(mutual), "<valid>");
    }

    #[test]
    fn paths_are_absolute_files() {
        let relative = |c: &mut Config| c.api.tls = tls(Some("api.pem"), Some("/etc/a.key"), None);
        assert_eq!(key_after(relative), "api.tls.cert_file");
        let directory = |c: &mut Config| c.api.tls = tls(Some("/etc/a.pem"), Some("/"), None);
        assert_eq!(key_after(directory), "api.tls.key_file");
        let ca = |c: &mut Config| c.api.tls = tls(Some("/etc/a.pem"), Some("/etc/a.key"), Some("ca.pem"));
        assert_eq!(key_after(ca), "api.tls.client_ca_file");
    }

    #[test]
    fn the_section_parses_from_toml_and_rejects_unknown_keys() {
        let text = "[api]\nallow_plaintext = true\n[api.tls]\ncert_file = \"/a.pem\"\nkey_file = \"/a.key\"\n";
        let config: Config = toml::from_str(text).unwrap();
        assert!(config.api.allow_plaintext);
        assert_eq!(config.api.tls, tls(Some("/a.pem"), Some("/a.key"), None));
        let err = toml::from_str::<Config>("[api.tls]\ncert = \"/a.pem\"\n").unwrap_err();
        assert!(err.to_string().contains("cert"), "{err}");
    }
}
