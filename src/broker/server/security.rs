//! What a shard starts with to check its clients and keep its data: TLS,
//! the encryption-at-rest key ring, the name-server signing account —
//! loaded on the main thread before anything listens.

use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::runtime::tls::{ClientTls, ServerTls};

/// What a shard starts with to check its clients and keep its data: the
/// ACL, TLS, the keys of encryption at rest.
pub(super) struct Security {
    pub(super) acl: Option<crate::broker::access::Loaded>,
    pub(super) tls: NetTls,
    pub(super) keys: Option<Arc<crate::store::crypt::KeyRing>>,
    /// The account registrations with name servers are signed with.
    pub(super) sign: Option<crate::admin::client::Credentials>,
}

/// The key ring of `storeEncryptionEnable`, read now (main thread).
pub(super) fn store_keys(cfg: &BrokerConfig) -> Result<Option<Arc<crate::store::crypt::KeyRing>>, String> {
    if !cfg.store_encryption_enable {
        return Ok(None);
    }
    let path = cfg
        .store_encryption_key_file
        .as_deref()
        .ok_or("storeEncryptionEnable=true needs storeEncryptionKeyFile")?;
    if path.starts_with(&cfg.store_path_root_dir) {
        log::warn!(
            "storeEncryptionKeyFile {} is inside storePathRootDir: a copy of the data directory carries its key",
            path.display()
        );
    }
    let ring = crate::store::crypt::KeyRing::load(path)?;
    log::info!(
        "encryption at rest on: new records sealed with key {} of {}",
        ring.active(),
        path.display()
    );
    Ok(Some(Arc::new(ring)))
}

/// The process's TLS, loaded on the main thread before anything listens
/// (a bad certificate fails the start, naming the setting).
#[derive(Clone)]
pub(super) struct NetTls {
    /// The remoting ports and the name server.
    pub(super) server: ServerTls,
    /// The gRPC ports (ALPN `h2`).
    pub(super) grpc: ServerTls,
    /// The broker's own connections to name servers (`tlsEnable`).
    pub(super) client: Option<ClientTls>,
}

impl NetTls {
    pub(super) fn load(cfg: &BrokerConfig) -> Result<NetTls, String> {
        let server = ServerTls::load(&cfg.tls_server)?;
        let grpc = server.with_alpn(&[b"h2"]);
        let client = if cfg.tls_outgoing() {
            Some(ClientTls::load(&cfg.tls_client)?)
        } else {
            None
        };
        Ok(NetTls { server, grpc, client })
    }
}
