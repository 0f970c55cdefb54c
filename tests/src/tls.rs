//! Certificates for the TLS tests, made fresh per test with rcgen: a CA, a server certificate it signed (SANs
//! `localhost` and `127.0.0.1`; its file holds the chain, the server's certificate then the CA's, as a server's
//! full chain file may), a node certificate for a server and a client alike, a client certificate it signed, and a second, unrelated CA with a client
//! certificate of its own (one the daemon must refuse). All are PEM files in a private temporary folder that lives
//! as long as the [`TestPki`].
//!
//! Owns the files and the `[api.tls]` section that names them. Must never write outside its folder.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// The PEM files of one test's certificates.
pub struct TestPki {
    dir: tempfile::TempDir,
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("self-signed CA")
}

/// A leaf certificate for `names` (DNS names or IP addresses) signed by `issuer`, for `usages`.
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    common_name: &str,
    names: &[&str],
    usages: &[ExtendedKeyUsagePurpose],
) -> (String, String) {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.extended_key_usages = usages.to_vec();
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("signed leaf");
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    /// Makes the CA, the server and client certificates, and the unrelated CA and its client certificate.
    pub fn new() -> TestPki {
        let dir = crate::daemon::private_tempdir();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write PEM");
        let authority = ca("ringfwd test CA");
        write("ca.pem", &authority.pem());
        let (cert, key) = leaf(
            &authority,
            "ringfwd test server",
            &["localhost", "127.0.0.1"],
            &[ExtendedKeyUsagePurpose::ServerAuth],
        );
        write("server.pem", &format!("{cert}{}", authority.pem()));
        write("server.key", &key);
        let both = [ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let (cert, key) = leaf(&authority, "ringfwd test node", &["localhost", "127.0.0.1"], &both);
        write("node.pem", &format!("{cert}{}", authority.pem()));
        write("node.key", &key);
        let (cert, key) = leaf(&authority, "ringfwd test client", &[], &[ExtendedKeyUsagePurpose::ClientAuth]);
        write("client.pem", &cert);
        write("client.key", &key);
        let stranger = ca("unrelated CA");
        write("other-ca.pem", &stranger.pem());
        let (cert, key) = leaf(&stranger, "unrelated client", &[], &[ExtendedKeyUsagePurpose::ClientAuth]);
        write("other-client.pem", &cert);
        write("other-client.key", &key);
        TestPki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA that signed the server and client certificates.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A CA that signed nothing the daemon knows.
    pub fn other_ca(&self) -> PathBuf {
        self.path("other-ca.pem")
    }

    /// The server's certificate chain (SANs `localhost`, `127.0.0.1`; then the CA) and key.
    pub fn server(&self) -> CertFiles {
        CertFiles { cert: self.path("server.pem"), key: self.path("server.key") }
    }

    /// A cluster node's certificate chain (SANs `localhost`, `127.0.0.1`; then the CA), for a server and a client
    /// alike (mutual TLS between nodes), and its key.
    pub fn node(&self) -> CertFiles {
        CertFiles { cert: self.path("node.pem"), key: self.path("node.key") }
    }

    /// A client certificate signed by [`TestPki::ca`].
    pub fn client(&self) -> CertFiles {
        CertFiles { cert: self.path("client.pem"), key: self.path("client.key") }
    }

    /// A client certificate signed by [`TestPki::other_ca`].
    pub fn other_client(&self) -> CertFiles {
        CertFiles { cert: self.path("other-client.pem"), key: self.path("other-client.key") }
    }

    /// An `[api]` section on a free loopback port with `[api.tls]` naming the server's files, and with
    /// `client_ca_file` = [`TestPki::ca`] when `mutual`.
    pub fn api_section(&self, mutual: bool) -> String {
        let server = self.server();
        let mut text = format!(
            "\n[api]\nlisten = \"127.0.0.1:0\"\n[api.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            server.cert.display().to_string(),
            server.key.display().to_string()
        );
        if mutual {
            text.push_str(&format!("client_ca_file = {:?}\n", self.ca().display().to_string()));
        }
        text
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}
