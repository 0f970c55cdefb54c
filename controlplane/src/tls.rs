//! The control API's TLS: `[api.tls]`'s PEM files read and parsed into the rustls server config the API's accept
//! loop ([`crate::incoming`]) hands its connections to.
//!
//! Owns [`server_config`] and [`TlsFileError`], whose message names the config key and the path of the file it
//! could not use (missing, unreadable, no PEM block of the kind the key needs, a key that is not the certificate's,
//! a CA that is no CA). Runs once at start-up (and for `--check-config`); a renewed certificate needs a restart.
//! The crypto provider is *ring*, named explicitly, never the process default. Must never log or print a key, and
//! never accept a client without a certificate once `client_ca_file` is set.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringfwd_tuning::ApiTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The ALPN protocol the API speaks: HTTP/2 (gRPC clients such as grpcio insist on it).
pub const ALPN_H2: &[u8] = b"h2";

/// Why a file of `[api.tls]` cannot be used: the key naming it, its path and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{key} = {}: {reason}", path.display())]
pub struct TlsFileError {
    /// `api.tls.cert_file`, `api.tls.key_file` or `api.tls.client_ca_file`.
    pub key: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl TlsFileError {
    fn new(key: &'static str, path: &Path, reason: impl Into<String>) -> TlsFileError {
        TlsFileError { key, path: path.to_owned(), reason: reason.into() }
    }
}

/// `[api.tls]` with its two required files, as validation leaves it.
fn required<'a>(key: &'static str, path: &'a Option<PathBuf>) -> Result<&'a Path, TlsFileError> {
    path.as_deref()
        .ok_or_else(|| TlsFileError::new(key, Path::new(""), "not set (both cert_file and key_file are needed)"))
}

/// The bytes of `path`, the error naming `key`.
fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| {
        let reason = match e.kind() {
            io::ErrorKind::NotFound => "no such file".to_owned(),
            io::ErrorKind::PermissionDenied => "cannot be read by the daemon's user (permission denied)".to_owned(),
            _ => format!("cannot be read: {e}"),
        };
        TlsFileError::new(key, path, reason)
    })
}

/// Every `CERTIFICATE` block of the PEM file at `path`; at least one.
fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsFileError::new(key, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsFileError::new(key, path, "holds no PEM CERTIFICATE block"));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of the PEM file at `path`.
fn private_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let pem = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsFileError::new(
            key,
            path,
            "holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)",
        ),
        e => TlsFileError::new(key, path, format!("not valid PEM: {e}")),
    })
}

/// The TLS of this node's calls to other nodes' APIs (relaying, when their API has `[api.tls]`): their certificates
/// verified against the CA certificates of `ca_file` (`cluster.tls_ca_file`; `None`: the system's trust store), and,
/// when this node has `[api.tls]` itself, its certificate and key presented to a node that asks for one (mutual TLS:
/// it must then allow client authentication). The server name checked is set per call (the other node's address).
pub fn node_client_config(
    ca_file: Option<&Path>,
    own: Option<&ApiTls>,
) -> Result<tonic::transport::ClientTlsConfig, TlsFileError> {
    const CA: &str = "cluster.tls_ca_file";
    let mut config = tonic::transport::ClientTlsConfig::new();
    config = match ca_file {
        Some(path) => {
            certificates(CA, path)?;
            config.ca_certificate(tonic::transport::Certificate::from_pem(read(CA, path)?))
        }
        None => config.with_native_roots(),
    };
    if let Some(own) = own {
        const CERT: &str = "api.tls.cert_file";
        const KEY: &str = "api.tls.key_file";
        let (cert_path, key_path) = (required(CERT, &own.cert_file)?, required(KEY, &own.key_file)?);
        certificates(CERT, cert_path)?;
        private_key(KEY, key_path)?;
        let identity = tonic::transport::Identity::from_pem(read(CERT, cert_path)?, read(KEY, key_path)?);
        config = config.identity(identity);
    }
    Ok(config)
}

/// The rustls server config of `tls`: its certificate chain and key, and, with `client_ca_file`, a client
/// certificate required and verified against those CAs. ALPN offers h2 only.
pub fn server_config(tls: &ApiTls) -> Result<Arc<ServerConfig>, TlsFileError> {
    const CERT: &str = "api.tls.cert_file";
    const KEY: &str = "api.tls.key_file";
    const CA: &str = "api.tls.client_ca_file";
    let cert_path = required(CERT, &tls.cert_file)?;
    let key_path = required(KEY, &tls.key_file)?;
    let chain = certificates(CERT, cert_path)?;
    let key = private_key(KEY, key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError::new(CERT, cert_path, format!("no TLS version available: {e}")))?;
    let builder = match &tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(CA, ca_path)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsFileError::new(CA, ca_path, format!("a certificate is not a usable CA: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsFileError::new(CA, ca_path, format!("cannot verify clients with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            TlsFileError::new(CERT, cert_path, format!("the first certificate is not usable: {e}"))
        }
        rustls::Error::InconsistentKeys(_) => TlsFileError::new(
            KEY,
            key_path,
            format!("is not the private key of the first certificate in {CERT} ({})", cert_path.display()),
        ),
        e => TlsFileError::new(KEY, key_path, format!("not a usable private key: {e}")),
    })?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(dir: &Path, cert: &str, key: &str, ca: Option<&str>) -> ApiTls {
        ApiTls {
            cert_file: Some(dir.join(cert)),
            key_file: Some(dir.join(key)),
            client_ca_file: ca.map(|c| dir.join(c)),
        }
    }

    #[test]
    fn missing_and_non_pem_files_name_their_key_and_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = server_config(&tls(dir.path(), "absent.pem", "absent.key", None)).expect_err("missing");
        assert_eq!(err.key, "api.tls.cert_file");
        let text = err.to_string();
        assert!(text.contains("absent.pem") && text.contains("no such file"), "{text}");

        std::fs::write(dir.path().join("junk.pem"), "not a certificate\n").expect("write");
        let err = server_config(&tls(dir.path(), "junk.pem", "absent.key", None)).expect_err("junk");
        assert_eq!(err.key, "api.tls.cert_file");
        assert!(err.to_string().contains("no PEM CERTIFICATE"), "{err}");
    }

    #[test]
    fn a_file_without_a_key_names_the_key_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Any well-formed PEM certificate block gets past the certificate file's parse; the key file is read next.
        let block = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("cert.pem"), block).expect("write");
        std::fs::write(dir.path().join("cert-only.key"), block).expect("write");
        let err = server_config(&tls(dir.path(), "cert.pem", "cert-only.key", None)).expect_err("no key");
        assert_eq!(err.key, "api.tls.key_file");
        assert!(err.to_string().contains("no PEM private key"), "{err}");
    }
}
