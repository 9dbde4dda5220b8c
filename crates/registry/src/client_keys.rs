//! Client API keys for the inference routes: shown once at creation, stored as SHA-256
//! hashes. The keys are 192 random bits, so a fast hash is enough; no password hashing needed.

use sha2::{Digest, Sha256};

/// A client key as lists show it: never the key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientKey {
    pub id: i64,
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl ClientKey {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

pub(crate) const KEY_PREFIX: &str = "hth_";
pub(crate) const SHOWN_PREFIX_LEN: usize = 12;

pub(crate) fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
