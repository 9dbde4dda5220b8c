//! Encryption at rest for deployment API keys (AES-256-GCM).
//!
//! The key comes from `HEARTH_SECRET_KEY` when set, else from `secret.key` in the data
//! directory, created once with mode 0600. Losing that key makes stored API keys unreadable,
//! which the registry reports per deployment instead of failing to start.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::error::RegistryError;

/// Format marker in front of every sealed value, so the scheme can change later.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
pub(crate) const KEY_FILE: &str = "secret.key";

pub(crate) struct SecretBox {
    cipher: Aes256Gcm,
}

/// Where the key came from, for the start-up log.
#[derive(Clone, Debug)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    CreatedFile(PathBuf),
}

impl SecretBox {
    pub(crate) fn load(
        configured: Option<&SecretString>,
        data_dir: &Path,
    ) -> Result<(SecretBox, KeySource), RegistryError> {
        if let Some(key) = configured {
            let bytes = decode_key(key.expose_secret()).ok_or_else(|| {
                RegistryError::Config(
                    "HEARTH_SECRET_KEY must be 32 bytes written as 64 hex characters or as base64 \
                     (make one with `openssl rand -hex 32`)"
                        .into(),
                )
            })?;
            return Ok((Self::from_bytes(&bytes), KeySource::Environment));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = decode_key(text.trim()).ok_or_else(|| {
                    RegistryError::Config(format!(
                        "{} does not hold a 32-byte key (64 hex characters); restore it from backup \
                         or set HEARTH_SECRET_KEY",
                        path.display()
                    ))
                })?;
                Ok((Self::from_bytes(&bytes), KeySource::File(path)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                write_private_file(&path, &hex(&bytes))?;
                Ok((Self::from_bytes(&bytes), KeySource::CreatedFile(path)))
            }
            Err(e) => Err(RegistryError::Config(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    fn from_bytes(bytes: &[u8; 32]) -> SecretBox {
        SecretBox {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)),
        }
    }

    pub(crate) fn seal(&self, plaintext: &SecretString) -> Result<Vec<u8>, RegistryError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                plaintext.expose_secret().as_bytes(),
            )
            .map_err(|_| RegistryError::Crypto("encryption failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    pub(crate) fn open(&self, sealed: &[u8]) -> Result<SecretString, RegistryError> {
        let unreadable = || {
            RegistryError::Crypto(
                "the stored API key cannot be decrypted with the current secret key \
                 (HEARTH_SECRET_KEY or secret.key changed); restore the old key or set the API key again"
                    .into(),
            )
        };
        let (&version, rest) = sealed.split_first().ok_or_else(unreadable)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(unreadable());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| unreadable())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| unreadable())
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        B64.decode(text).ok()?
    };
    bytes.try_into().ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a new file only its owner can read; refuses to overwrite one.
pub(crate) fn write_private_file(path: &Path, contents: &str) -> Result<(), RegistryError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| RegistryError::Config(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| RegistryError::Config(format!("cannot write {}: {e}", path.display())))
}

/// A fresh random token, hex-encoded, for secrets Hearth generates itself.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-crypto-{tag}-{}", random_token(6)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn seal_then_open_round_trips_and_each_seal_differs() {
        let key = SecretString::from("00".repeat(32));
        let (sb, _) = SecretBox::load(Some(&key), Path::new("/nonexistent")).unwrap();
        let secret = SecretString::from("sk-live-123");
        let a = sb.seal(&secret).unwrap();
        let b = sb.seal(&secret).unwrap();
        assert_ne!(a, b, "nonces must differ");
        assert!(!a.windows(11).any(|w| w == b"sk-live-123"));
        assert_eq!(sb.open(&a).unwrap().expose_secret(), "sk-live-123");
    }

    #[test]
    fn a_different_key_cannot_open_and_says_so() {
        let (a, _) =
            SecretBox::load(Some(&SecretString::from("11".repeat(32))), Path::new("/x")).unwrap();
        let (b, _) =
            SecretBox::load(Some(&SecretString::from("22".repeat(32))), Path::new("/x")).unwrap();
        let sealed = a.seal(&SecretString::from("k")).unwrap();
        let err = b.open(&sealed).unwrap_err().to_string();
        assert!(err.contains("cannot be decrypted"), "{err}");
        assert!(b.open(&[]).is_err());
        assert!(b.open(&[1, 2, 3]).is_err());
    }

    #[test]
    fn key_file_is_created_once_with_owner_only_mode() {
        let dir = temp_dir("file");
        let (first, source) = SecretBox::load(None, &dir).unwrap();
        assert!(matches!(source, KeySource::CreatedFile(_)));
        let sealed = first.seal(&SecretString::from("abc")).unwrap();
        let (second, source) = SecretBox::load(None, &dir).unwrap();
        assert!(matches!(source, KeySource::File(_)));
        assert_eq!(second.open(&sealed).unwrap().expose_secret(), "abc");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn malformed_keys_are_refused_with_a_fix() {
        for bad in ["", "abc", &"zz".repeat(32), &"00".repeat(31)] {
            let err = SecretBox::load(Some(&SecretString::from(bad.to_string())), Path::new("/x"))
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("openssl rand -hex 32"), "{err}");
        }
        let b64 = B64.encode([7u8; 32]);
        assert!(SecretBox::load(Some(&SecretString::from(b64)), Path::new("/x")).is_ok());
    }
}
