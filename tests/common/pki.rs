//! Test certificates (rcgen): a CA, a server certificate it signed for
//! `localhost` and 127.0.0.1, a client certificate it signed, and a second,
//! unrelated CA with a client certificate of its own — PEM files in a
//! directory, keys in PKCS#8 (what Netty's JDK provider reads).

#![allow(dead_code)] // each test uses a subset

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Another CA, trusted by nobody here.
    pub other_ca: PathBuf,
    /// A client certificate signed by the other CA.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let key = KeyPair::generate().expect("key");
    let cert = p.self_signed(&key).expect("self-signed CA");
    (cert.pem(), Issuer::new(p, key))
}

fn leaf(issuer: &Issuer<'static, KeyPair>, names: &[&str], server: bool) -> (String, String) {
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
    p.distinguished_name.push(DnType::CommonName, names[0]);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    p.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, issuer).expect("signed");
    (cert.pem(), key.serialize_pem())
}

/// Writes a fresh PKI into `dir`.
pub fn make(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).expect("pki dir");
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write pem");
        p
    };
    let (ca_pem, issuer) = ca("shardmq test CA");
    let (server_cert, server_key) = leaf(&issuer, &["localhost", "127.0.0.1"], true);
    let (client_cert, client_key) = leaf(&issuer, &["test-client"], false);
    let (other_pem, other) = ca("another CA");
    let (stranger_cert, stranger_key) = leaf(&other, &["stranger"], false);
    Pki {
        ca: w("ca.pem", &ca_pem),
        server_cert: w("server.pem", &server_cert),
        server_key: w("server.key", &server_key),
        client_cert: w("client.pem", &client_cert),
        client_key: w("client.key", &client_key),
        other_ca: w("other-ca.pem", &other_pem),
        stranger_cert: w("stranger.pem", &stranger_cert),
        stranger_key: w("stranger.key", &stranger_key),
    }
}
