//! What the in-process gateway tests share: a registry in a fresh data directory.

// In a test a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hearth_registry::{Registry, RegistryConfig};

/// A new SQLite registry; keep the directory alive as long as the registry.
pub async fn registry() -> (Arc<Registry>, tempfile::TempDir) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&RegistryConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .await
    .unwrap();
    (Arc::new(registry), dir)
}
