//! The throwaway self-signed pair in `tls/` (made with `openssl req -x509` for `localhost` and
//! 127.0.0.1), as a TLS acceptor for the stand-in servers.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate's file, for a client to trust it as a root (e.g. a Hearth started with
/// `SSL_CERT_FILE` set to it).
pub const SELF_SIGNED_CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tls/self-signed.crt");

/// A TLS acceptor with the self-signed pair, offering these ALPN protocols (none: no ALPN).
pub(crate) fn self_signed_acceptor(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let cert = CertificateDer::from_pem_slice(include_bytes!("tls/self-signed.crt")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("tls/self-signed.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
