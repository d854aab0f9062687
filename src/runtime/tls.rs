//! TLS on the client-facing ports (remoting, name server, gRPC) and on the
//! broker's own connections to name servers, with rustls (ring provider).
//!
//! # Modes (RocketMQ's `tls.server.mode`, here `tlsServerMode`)
//! * `disabled` — plain TCP only; a TLS ClientHello is just a broken frame.
//! * `permissive` — TLS and plain on the same port. The first byte decides,
//!   as the Java broker does: `0x16` is a TLS handshake record; a plain
//!   remoting frame cannot start with it (its 4-byte big-endian length
//!   would be ≥ 369 MB, far over any frame limit), nor can HTTP/2's `PRI`
//!   preface on the gRPC ports.
//! * `enforcing` — TLS only; anything else fails the handshake and the
//!   connection is closed.
//!
//! Client certificates (mutual TLS, `tlsServerNeedClientAuth`): `none`,
//! `optional` (verified when sent) or `require`, verified against
//! `tlsServerTrustCertPath`.
//!
//! # What a handshake may hold
//! A connection is admitted (per shard, per address) before its handshake,
//! and the handshake — including the wait for the first byte in permissive
//! mode — must finish within [`HANDSHAKE_TIMEOUT`] or the connection is
//! closed. rustls bounds its own buffers (16 KiB of received plaintext,
//! 64 KiB of outgoing TLS by default).
//!
//! # Shared reader and writer
//! A remoting connection has a reader task and a writer task over one
//! [`Io`] (see `connection::Shared`). With TLS both go through one
//! `futures_rustls` stream: each poll borrows it only for that poll, and
//! glommio keeps separate read and write wakers per socket. The reader
//! writes only to send a fatal alert, on a connection that is closing.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::{client, server, TlsAcceptor, TlsConnector};
use glommio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A TLS handshake (and, in permissive mode, the client's first byte) must
/// complete within this, or the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS handshake record (ContentType handshake).
const TLS_HANDSHAKE: u8 = 0x16;

/// `tlsServerMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Disabled,
    Permissive,
    Enforcing,
}

impl Mode {
    pub fn parse(v: &str) -> Option<Mode> {
        match v {
            "disabled" => Some(Mode::Disabled),
            "permissive" => Some(Mode::Permissive),
            "enforcing" => Some(Mode::Enforcing),
            _ => None,
        }
    }
}

/// `tlsServerNeedClientAuth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    None,
    Optional,
    Require,
}

impl ClientAuth {
    pub fn parse(v: &str) -> Option<ClientAuth> {
        match v {
            "none" => Some(ClientAuth::None),
            "optional" => Some(ClientAuth::Optional),
            "require" => Some(ClientAuth::Require),
            _ => None,
        }
    }
}

/// The server side of the broker's TLS settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerSettings {
    pub mode: Mode,
    /// `tlsServerCertPath`: PEM certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// `tlsServerKeyPath`: PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// `tlsServerTrustCertPath`: PEM CA certificates for client certificates.
    pub trust: Option<PathBuf>,
}

/// The client side: the broker's connections to name servers, the admin
/// tool, the bench.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientSettings {
    /// `tlsClientAuthServer`: verify the server's certificate against
    /// `trust` (RocketMQ's default is not to, as here).
    pub verify_server: bool,
    /// `tlsClientTrustCertPath`.
    pub trust: Option<PathBuf>,
    /// `tlsClientCertPath` / `tlsClientKeyPath`: our certificate, for a
    /// server that asks for one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

fn read_certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{what} {}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

fn read_key(what: &str, path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{what} {}: no usable PEM private key: {e}", path.display()))
}

fn roots(what: &str, path: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    for c in read_certs(what, path)? {
        store.add(c).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    }
    Ok(Arc::new(store))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server configuration, or says which setting is wrong.
pub fn server_config(s: &ServerSettings) -> Result<Arc<ServerConfig>, String> {
    let cert = s
        .cert
        .as_deref()
        .ok_or("tlsServerMode is not disabled but tlsServerCertPath is not set")?;
    let key = s
        .key
        .as_deref()
        .ok_or("tlsServerMode is not disabled but tlsServerKeyPath is not set")?;
    let chain = read_certs("tlsServerCertPath", cert)?;
    let key = read_key("tlsServerKeyPath", key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match s.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let trust = s
                .trust
                .as_deref()
                .ok_or("tlsServerNeedClientAuth needs tlsServerTrustCertPath (the CA of client certificates)")?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots("tlsServerTrustCertPath", trust)?,
                provider(),
            );
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("tlsServerTrustCertPath: {e}"))?)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("tlsServerCertPath / tlsServerKeyPath: {e}"))?;
    Ok(Arc::new(config))
}

/// Builds the client configuration, or says which setting is wrong.
pub fn client_config(s: &ClientSettings) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if s.verify_server {
        let trust = s
            .trust
            .as_deref()
            .ok_or("tlsClientAuthServer needs tlsClientTrustCertPath")?;
        builder.with_root_certificates(roots("tlsClientTrustCertPath", trust)?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
    };
    let config = match (&s.cert, &s.key) {
        (Some(c), Some(k)) => builder
            .with_client_auth_cert(read_certs("tlsClientCertPath", c)?, read_key("tlsClientKeyPath", k)?)
            .map_err(|e| format!("tlsClientCertPath / tlsClientKeyPath: {e}"))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("tlsClientCertPath and tlsClientKeyPath go together".into()),
    };
    Ok(Arc::new(config))
}

/// RocketMQ's `tls.client.authServer=false`: any server certificate is
/// accepted (the handshake's signature is still checked, so the channel is
/// encrypted to whoever holds the presented key — protection against
/// passive listeners, not against an active man in the middle).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server name a client sends: the host part of `addr` (`host:port`),
/// or `localhost` when it is not a usable name.
pub fn server_name(addr: &str) -> ServerName<'static> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    };
    ServerName::try_from(host.to_string()).unwrap_or_else(|_| {
        ServerName::from(rustls::pki_types::DnsName::try_from("localhost").expect("a valid DNS name"))
    })
}

/// What every listener of one process shares: the mode and, unless it is
/// disabled, the server configuration. Cheap to clone (an `Arc`).
#[derive(Clone, Default)]
pub struct ServerTls {
    mode: Mode,
    config: Option<Arc<ServerConfig>>,
}

impl ServerTls {
    /// Loads the certificates now (on the main thread, before any shard),
    /// so a bad file fails the start with its name.
    pub fn load(s: &ServerSettings) -> Result<ServerTls, String> {
        if s.mode == Mode::Disabled {
            return Ok(ServerTls::default());
        }
        Ok(ServerTls {
            mode: s.mode,
            config: Some(server_config(s)?),
        })
    }

    /// The same certificates, offering these ALPN protocols (gRPC clients
    /// insist on `h2`; RocketMQ's remoting clients send none).
    pub fn with_alpn(&self, alpn: &[&[u8]]) -> ServerTls {
        let config = self.config.as_ref().map(|c| {
            let mut c = (**c).clone();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Arc::new(c)
        });
        ServerTls {
            mode: self.mode,
            config,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Turns an accepted connection into its byte stream (TCP_NODELAY
    /// set): plain, or TLS after a handshake within [`HANDSHAKE_TIMEOUT`].
    /// An error means the connection must be dropped (it says why, for a
    /// debug line).
    pub async fn accept(&self, stream: TcpStream) -> Result<Io, String> {
        let _ = stream.set_nodelay(true);
        let Some(config) = &self.config else {
            return Ok(Io::Plain(stream));
        };
        let acceptor = TlsAcceptor::from(config.clone());
        let mode = self.mode;
        let handshake = async move {
            if mode == Mode::Permissive {
                let mut first = [0u8; 1];
                match stream.peek(&mut first).await {
                    Ok(1) if first[0] == TLS_HANDSHAKE => {}
                    Ok(1) => return Ok(Io::Plain(stream)),
                    Ok(_) => return Err("closed before its first byte".to_string()),
                    Err(e) => return Err(e.to_string()),
                }
            }
            match acceptor.accept(stream).await {
                Ok(s) => Ok(Io::Server(Box::new(s))),
                Err(e) => Err(format!("TLS handshake failed: {e}")),
            }
        };
        glommio::timer::timeout(HANDSHAKE_TIMEOUT, async { Ok(handshake.await) })
            .await
            .map_err(|_| format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"))?
    }
}

/// The broker's TLS for its outgoing connections, when configured.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
}

impl ClientTls {
    pub fn load(s: &ClientSettings) -> Result<ClientTls, String> {
        Ok(ClientTls::from_config(client_config(s)?))
    }

    pub fn from_config(config: Arc<ClientConfig>) -> ClientTls {
        ClientTls {
            connector: TlsConnector::from(config),
        }
    }

    /// TLS over a connected stream to `addr` (`host:port`), within
    /// [`HANDSHAKE_TIMEOUT`].
    pub async fn connect(&self, addr: &str, stream: TcpStream) -> Result<Io, String> {
        let connect = self.connector.connect(server_name(addr), stream);
        match glommio::timer::timeout(HANDSHAKE_TIMEOUT, async { Ok(connect.await) }).await {
            Ok(Ok(s)) => Ok(Io::Client(Box::new(s))),
            Ok(Err(e)) => Err(format!("TLS handshake with {addr} failed: {e}")),
            Err(_) => Err(format!("no TLS handshake with {addr} within {HANDSHAKE_TIMEOUT:?}")),
        }
    }
}

/// A connection's bytes: plain TCP or TLS over it.
pub enum Io {
    Plain(TcpStream),
    Server(Box<server::TlsStream<TcpStream>>),
    Client(Box<client::TlsStream<TcpStream>>),
}

impl Io {
    pub fn is_tls(&self) -> bool {
        !matches!(self, Io::Plain(_))
    }

    /// The client's certificate (DER), when it sent one (mutual TLS).
    pub fn peer_certificate(&self) -> Option<CertificateDer<'static>> {
        match self {
            Io::Server(s) => s
                .get_ref()
                .1
                .peer_certificates()?
                .first()
                .map(|c| c.clone().into_owned()),
            _ => None,
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Server(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Io::Client(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Server(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Io::Client(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Server(s) => Pin::new(&mut **s).poll_flush(cx),
            Io::Client(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_close(cx),
            Io::Server(s) => Pin::new(&mut **s).poll_close(cx),
            Io::Client(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}

/// A blocking TLS client stream (std sockets), for the admin tool and tests.
pub type BlockingClient = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// Starts TLS over a connected blocking socket (the handshake runs on the
/// first read or write, under the socket's timeouts).
pub fn blocking_client(
    config: Arc<ClientConfig>,
    addr: &str,
    sock: std::net::TcpStream,
) -> Result<BlockingClient, String> {
    let conn = rustls::ClientConnection::new(config, server_name(addr)).map_err(|e| format!("TLS: {e}"))?;
    Ok(rustls::StreamOwned::new(conn, sock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_client_auth_parse_rocketmq_names() {
        assert_eq!(Mode::parse("permissive"), Some(Mode::Permissive));
        assert_eq!(Mode::parse("enforcing"), Some(Mode::Enforcing));
        assert_eq!(Mode::parse("disabled"), Some(Mode::Disabled));
        assert_eq!(Mode::parse("on"), None);
        assert_eq!(ClientAuth::parse("require"), Some(ClientAuth::Require));
        assert_eq!(ClientAuth::parse("yes"), None);
    }

    #[test]
    fn server_name_is_the_host_part() {
        assert_eq!(
            format!("{:?}", server_name("broker.example:10911")),
            format!("{:?}", ServerName::try_from("broker.example").unwrap())
        );
        assert!(matches!(server_name("127.0.0.1:9876"), ServerName::IpAddress(_)));
        assert!(matches!(server_name("[::1]:9876"), ServerName::IpAddress(_)));
    }

    #[test]
    fn missing_or_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = ServerSettings {
            mode: Mode::Enforcing,
            ..Default::default()
        };
        assert!(server_config(&s).unwrap_err().contains("tlsServerCertPath is not set"));
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let s = ServerSettings {
            mode: Mode::Enforcing,
            cert: Some(cert.clone()),
            key: Some(cert.clone()),
            ..Default::default()
        };
        let e = server_config(&s).unwrap_err();
        assert!(
            e.contains("tlsServerCertPath") && e.contains("no PEM certificate"),
            "{e}"
        );
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let s = ServerSettings {
            mode: Mode::Enforcing,
            cert: Some(cert.clone()),
            key: Some(key.clone()),
            client_auth: ClientAuth::Require,
            trust: None,
        };
        assert!(server_config(&s).unwrap_err().contains("tlsServerTrustCertPath"));
        let s = ServerSettings {
            trust: Some(cert.clone()),
            ..s
        };
        server_config(&s).expect("a self-signed cert as its own CA");
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(&key, other.signing_key.serialize_pem()).unwrap();
        let e = server_config(&s).unwrap_err();
        assert!(e.contains("tlsServerKeyPath"), "a key of another certificate: {e}");
    }
}
