//! The TLS certificate and key the listener serves: loaded at start (a file that cannot be
//! read stops start-up, naming it), reloaded on demand (SIGHUP) and when either file changes.
//! A new pair that does not load is logged and the one in use is kept, so a half-renewed
//! certificate never takes the gateway down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN: HTTP/2 first so clients that speak it use it; HTTP/1.1 for the rest.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the TLS {what} file {path} holds no PEM {expected}")]
    NoPem {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("the TLS certificate {cert} and key {key} cannot be used together: {source}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// The served certificate, swappable while connections are being accepted.
#[derive(Clone)]
pub struct Tls {
    cert: Arc<PathBuf>,
    key: Arc<PathBuf>,
    config: Arc<ArcSwap<ServerConfig>>,
    /// What the files looked like at the last load attempt, good or bad: a bad pair is
    /// reported once per change, not once per poll.
    seen: Arc<Mutex<Stamp>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Modification time and length of both files; `None` where a file cannot be read.
type Stamp = [Option<(SystemTime, u64)>; 2];

impl Tls {
    /// Loads the pair; the error names the file at fault.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let seen = stamp(cert, key);
        let config = build(cert, key)?;
        Ok(Tls {
            cert: Arc::new(cert.to_path_buf()),
            key: Arc::new(key.to_path_buf()),
            config: Arc::new(ArcSwap::from_pointee(config)),
            seen: Arc::new(Mutex::new(seen)),
        })
    }

    /// Reads the files again and serves the new pair to new connections; on failure keeps
    /// the pair in use and logs why. Returns whether the new pair is in use.
    pub fn reload(&self) -> bool {
        let seen = stamp(&self.cert, &self.key);
        if let Ok(mut last) = self.seen.lock() {
            *last = seen;
        }
        match build(&self.cert, &self.key) {
            Ok(config) => {
                self.config.store(Arc::new(config));
                tracing::info!(cert = %self.cert.display(), key = %self.key.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; still serving the previous one");
                false
            }
        }
    }

    /// Checks the files every `every` and reloads when either changed. Polling rather than
    /// inotify: two `stat` calls per interval cost nothing, need no extra dependency, and
    /// also see changes through the symlink swaps Kubernetes uses for mounted secrets.
    pub fn watch(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = stamp(&tls.cert, &tls.key);
                let changed = tls.seen.lock().map(|last| *last != now).unwrap_or(false);
                if changed {
                    tls.reload();
                }
            }
        })
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.load_full())
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| {
        let meta = std::fs::metadata(p).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    [one(cert), one(key)]
}

fn build(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read("certificate", cert_path)?;
    let key_pem = read("key", key_path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            what: "certificate",
            path: cert_path.to_path_buf(),
            expected: "certificate (-----BEGIN CERTIFICATE-----)",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoPem {
        what: "key",
        path: key_path.to_path_buf(),
        expected: "private key (PKCS#8, PKCS#1 or SEC1)",
    })?;
    let pair = |source| TlsError::Pair {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(pair)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(pair)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
