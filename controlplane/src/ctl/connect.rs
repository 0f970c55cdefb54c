//! Where and how `ringfwd ctl` connects: the API address (`ADDR`, `http://ADDR`, `https://ADDR`), plaintext or TLS,
//! the CA the server is verified against and the client certificate for mutual TLS; and the advice added to a
//! failure that TLS explains (an untrusted certificate, a name mismatch, a client certificate required or refused,
//! a plaintext server or client on the other side).
//!
//! TLS is used when the address says `https://`, when a `--tls-*` flag is given, or when the `--config` read has
//! `[api.tls]` (then, unless `--tls-ca` says otherwise, the server is verified against the certificates of its
//! `api.tls.cert_file`: the daemon's own chain on the same host). Without a CA from either, an `https://` server is
//! verified against the system's trust store. The server name checked is `--tls-server-name`, else the address's
//! host. Owns [`ApiAddress`], [`TlsFlags`], [`Target`] and [`advice`]. Must never disable certificate
//! verification, and never fall back from TLS to plaintext.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Args;
use ringfwd_tuning::Config;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The control API's address as given to `--api`: `HOST:PORT` (plaintext unless a TLS flag or the config says
/// otherwise), `http://HOST:PORT` or `https://HOST:PORT`. HOST is an IPv4 address, `[IPv6]` or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiAddress {
    /// `Some(true)` for `https://`, `Some(false)` for `http://`, `None` without a scheme.
    https: Option<bool>,
    /// `HOST:PORT` as given (IPv6 in brackets).
    authority: String,
    /// The host without brackets: the server name TLS checks by default.
    host: String,
}

impl FromStr for ApiAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (https, rest) = match text.split_once("://") {
            Some(("https", rest)) => (Some(true), rest),
            Some(("http", rest)) => (Some(false), rest),
            Some((scheme, _)) => return Err(format!("{text:?}: scheme {scheme:?} is not http or https")),
            None => (None, text),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let parsed: http::uri::Authority =
            authority.parse().map_err(|_| format!("{text:?} is not HOST:PORT (e.g. 127.0.0.1:50051)"))?;
        if parsed.port_u16().is_none() {
            return Err(format!("{text:?} has no port (e.g. {authority}:50051)"));
        }
        let host = parsed.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        Ok(ApiAddress { https, authority: authority.to_owned(), host })
    }
}

impl From<std::net::SocketAddr> for ApiAddress {
    fn from(address: std::net::SocketAddr) -> Self {
        ApiAddress { https: None, authority: address.to_string(), host: address.ip().to_string() }
    }
}

/// The TLS flags of `ringfwd ctl`.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsFlags {
    /// Connect with TLS and verify the server's certificate against the CA certificates (PEM) in FILE.
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Mutual TLS: present this client certificate (PEM chain); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of the API address).
    #[arg(long, value_name = "NAME", global = true)]
    pub tls_server_name: Option<String>,
}

impl TlsFlags {
    fn any(&self) -> bool {
        self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_server_name.is_some()
    }
}

/// What ctl connects to, and how.
#[derive(Debug)]
pub struct Target {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub uri: String,
    /// The TLS settings when the connection uses TLS.
    pub tls: Option<ClientTlsConfig>,
    /// Whether a client certificate is presented (mutual TLS).
    pub client_cert: bool,
}

/// The bytes of `path`, given with `flag`; the error says which.
fn read(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: cannot read: {e}", path.display()))
}

/// The PEM file at `path`, given with `flag`, holding at least one certificate (`key`: false) or a private key
/// (`key`: true); tonic would skip what it cannot parse and fail later with a less helpful error.
fn read_pem(flag: &str, path: &Path, key: bool) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem = read(flag, path)?;
    let found = if key {
        PrivateKeyDer::from_pem_slice(&pem).is_ok()
    } else {
        CertificateDer::pem_slice_iter(&pem).next().is_some_and(|c| c.is_ok())
    };
    if !found {
        let what = if key { "private key" } else { "CERTIFICATE" };
        return Err(format!("{flag} {}: holds no PEM {what} block", path.display()));
    }
    Ok(pem)
}

/// Where ctl connects: `address` (else the config's `api.listen`, an unspecified IP replaced by loopback), and
/// with TLS when the address, `flags` or the config `from_file` (the `--config` read, if any) ask for it.
pub fn target(address: Option<ApiAddress>, flags: &TlsFlags, from_file: Option<&Config>) -> Result<Target, String> {
    let config_tls = from_file.and_then(|c| c.api.tls.as_ref());
    let address = match address {
        Some(address) => address,
        None => {
            let mut listen = from_file.map_or(ringfwd_tuning::defaults::API_LISTEN, |c| c.api.listen);
            if listen.ip().is_unspecified() {
                let loopback: std::net::IpAddr = if listen.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                };
                listen.set_ip(loopback);
            }
            ApiAddress::from(listen)
        }
    };
    let tls = match address.https {
        Some(https) => https,
        None => flags.any() || config_tls.is_some(),
    };
    if !tls {
        if flags.any() {
            return Err(format!(
                "http://{} is plaintext, but --tls-* flags were given: use https://{0} (or the address alone) for TLS",
                address.authority
            ));
        }
        return Ok(Target { uri: format!("http://{}", address.authority), tls: None, client_cert: false });
    }
    let mut config =
        ClientTlsConfig::new().domain_name(flags.tls_server_name.clone().unwrap_or_else(|| address.host.clone()));
    config = match (&flags.tls_ca, config_tls.and_then(|t| t.cert_file.as_deref())) {
        (Some(ca), _) => config.ca_certificate(Certificate::from_pem(read_pem("--tls-ca", ca, false)?)),
        (None, Some(server_chain)) => {
            let pem = std::fs::read(server_chain).map_err(|e| {
                format!(
                    "the config's api.tls.cert_file {} cannot be read to verify the server by ({e}): pass --tls-ca \
                     FILE with the CA certificate that signed the server's certificate",
                    server_chain.display()
                )
            })?;
            config.ca_certificate(Certificate::from_pem(pem))
        }
        (None, None) => config.with_native_roots(),
    };
    let client_cert = if let (Some(cert), Some(key)) = (&flags.tls_cert, &flags.tls_key) {
        config = config
            .identity(Identity::from_pem(read_pem("--tls-cert", cert, false)?, read_pem("--tls-key", key, true)?));
        true
    } else {
        false
    };
    Ok(Target { uri: format!("https://{}", address.authority), tls: Some(config), client_cert })
}

/// The rustls error somewhere in `error`'s chain (also inside an `io::Error`, whose `source` skips it).
fn rustls_error<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(found) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(found) = found.downcast_ref::<rustls::Error>() {
                return Some(found);
            }
        }
        next = e.source();
    }
    None
}

/// The advice [`advice`] gives for a connection that broke off with no TLS error to explain it; the caller, which
/// knows how it connected, replaces it with [`Target::broke_off`] (a TLS 1.3 server refuses a client certificate
/// after the client's handshake is done, so the client sees only the connection closing).
pub const BROKE_OFF: &str = "the connection broke off";

impl Target {
    /// What a connection made this way that broke off with no TLS error most likely means.
    pub fn broke_off(&self) -> String {
        match (&self.tls, self.client_cert) {
            (None, _) => "the connection broke off: if the API is served over TLS ([api.tls]), connect with \
                          https://ADDR or --tls-ca FILE"
                .to_owned(),
            (Some(_), false) => "the server closed the connection after the TLS handshake: if it requires a client \
                                 certificate (mutual TLS, api.tls.client_ca_file), pass --tls-cert FILE --tls-key FILE"
                .to_owned(),
            (Some(_), true) => "the server closed the connection after the TLS handshake: it may have refused the \
                                client certificate; pass --tls-cert/--tls-key with one signed by a CA of the \
                                server's api.tls.client_ca_file"
                .to_owned(),
        }
    }
}

/// What to do about a connection failure, when TLS explains it (or [`BROKE_OFF`] when a `transport` failure has no
/// TLS error in it); `None` when nothing does. `transport` is whether the failure is the connection's (not a
/// status the server answered).
pub fn advice(error: &(dyn Error + 'static), transport: bool) -> Option<String> {
    use rustls::{AlertDescription as Alert, CertificateError as Cert};
    let Some(tls) = rustls_error(error) else {
        return transport.then(|| BROKE_OFF.to_owned());
    };
    let advice = match tls {
        rustls::Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            "the server's certificate does not carry the name connected to: connect by a name or address in its \
             subjectAltName (https://NAME:PORT), or pass --tls-server-name NAME"
        }
        rustls::Error::InvalidCertificate(
            Cert::Expired | Cert::ExpiredContext { .. } | Cert::NotValidYet | Cert::NotValidYetContext { .. },
        ) => "the server's certificate is expired or not yet valid: renew it (api.tls.cert_file) and restart ringfwd",
        rustls::Error::InvalidCertificate(_) => {
            "the server's certificate is not trusted: pass --tls-ca FILE with the CA certificate (PEM) that signed \
             it"
        }
        rustls::Error::AlertReceived(Alert::CertificateRequired) => {
            "the server requires a client certificate (mutual TLS, api.tls.client_ca_file): pass --tls-cert FILE \
             --tls-key FILE"
        }
        rustls::Error::AlertReceived(
            Alert::BadCertificate | Alert::UnknownCA | Alert::CertificateUnknown | Alert::DecryptError,
        ) => {
            "the server refused the client certificate: pass --tls-cert/--tls-key with a certificate signed by a CA \
             of the server's api.tls.client_ca_file"
        }
        rustls::Error::AlertReceived(Alert::HandshakeFailure) => {
            "the server refused the TLS handshake: if it requires a client certificate, pass --tls-cert FILE \
             --tls-key FILE"
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the server does not speak TLS there: if the API is plaintext, drop https:// and the --tls-* flags"
        }
        _ => return None,
    };
    Some(advice.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> ApiAddress {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn addresses_parse_with_or_without_a_scheme() {
        assert_eq!(address("127.0.0.1:5").https, None);
        assert_eq!(address("http://127.0.0.1:5").https, Some(false));
        let tls = address("https://[::1]:5/");
        assert_eq!((tls.https, tls.authority.as_str(), tls.host.as_str()), (Some(true), "[::1]:5", "::1"));
        assert_eq!(address("https://localhost:5").host, "localhost");
        for bad in ["127.0.0.1", "ftp://127.0.0.1:5", "https://", "a b:5"] {
            assert!(bad.parse::<ApiAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_when_the_scheme_a_flag_or_the_config_asks() {
        let none = TlsFlags::default();
        let plain = target(Some(address("127.0.0.1:5")), &none, None).unwrap();
        assert_eq!((plain.uri.as_str(), plain.tls.is_some()), ("http://127.0.0.1:5", false));
        let https = target(Some(address("https://127.0.0.1:5")), &none, None).unwrap();
        assert_eq!((https.uri.as_str(), https.tls.is_some()), ("https://127.0.0.1:5", true));
        let named = TlsFlags { tls_server_name: Some("api.example".into()), ..TlsFlags::default() };
        assert!(target(Some(address("127.0.0.1:5")), &named, None).unwrap().tls.is_some());
        let err = target(Some(address("http://127.0.0.1:5")), &named, None).unwrap_err();
        assert!(err.contains("https://127.0.0.1:5"), "{err}");
        let missing = TlsFlags { tls_ca: Some("/nonexistent/ca.pem".into()), ..TlsFlags::default() };
        let err = target(Some(address("127.0.0.1:5")), &missing, None).unwrap_err();
        assert!(err.contains("--tls-ca /nonexistent/ca.pem"), "{err}");
        let dir = tempfile::tempdir().expect("temp dir");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not PEM\n").expect("write");
        let junk_ca = TlsFlags { tls_ca: Some(junk.clone()), ..TlsFlags::default() };
        let err = target(Some(address("127.0.0.1:5")), &junk_ca, None).unwrap_err();
        assert!(err.contains("--tls-ca") && err.contains("no PEM CERTIFICATE"), "{err}");
    }

    #[test]
    fn the_config_gives_the_address_and_tls() {
        let mut config = Config::default();
        config.api.listen = "0.0.0.0:7".parse().unwrap();
        let plain = target(None, &TlsFlags::default(), Some(&config)).unwrap();
        assert_eq!(plain.uri, "http://127.0.0.1:7", "an unspecified listen address is reached on loopback");
        config.api.tls = Some(ringfwd_tuning::ApiTls {
            cert_file: Some("/nonexistent/api.pem".into()),
            key_file: Some("/nonexistent/api.key".into()),
            client_ca_file: None,
        });
        let err = target(None, &TlsFlags::default(), Some(&config)).unwrap_err();
        assert!(err.contains("api.tls.cert_file /nonexistent/api.pem") && err.contains("--tls-ca"), "{err}");
    }

    #[test]
    fn tls_failures_get_advice_naming_the_flag() {
        let wrapped = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let untrusted = wrapped(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        assert!(advice(&untrusted, true).unwrap().contains("--tls-ca"));
        let name = wrapped(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName));
        assert!(advice(&name, true).unwrap().contains("--tls-server-name"));
        let required = wrapped(rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired));
        assert!(advice(&required, true).unwrap().contains("--tls-cert"));
        let other = std::io::Error::other("refused");
        assert_eq!(advice(&other, true).as_deref(), Some(BROKE_OFF));
        assert_eq!(advice(&other, false), None);
        let plain = target(Some(address("127.0.0.1:5")), &TlsFlags::default(), None).unwrap();
        assert!(plain.broke_off().contains("https://") && plain.broke_off().contains("--tls-ca"));
        let tls = target(Some(address("https://127.0.0.1:5")), &TlsFlags::default(), None).unwrap();
        assert!(tls.broke_off().contains("--tls-cert FILE --tls-key FILE"));
    }
}
