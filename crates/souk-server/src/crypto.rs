//! Secrets at rest (seller signing keys, instance credentials): AES-256-GCM with the key from
//! configuration, stored as `v1:` + base64(nonce || ciphertext).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Seals and opens secrets.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

/// A stored secret could not be opened (wrong key or tampered data).
#[derive(Debug, thiserror::Error)]
#[error("a stored secret cannot be decrypted: is the secret key the one it was written with?")]
pub struct OpenError;

impl SecretBox {
    /// A box with this 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        SecretBox {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// Encrypts `plaintext` with a fresh random nonce.
    pub fn seal(&self, plaintext: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption does not fail for in-memory data");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("v1:{}", STANDARD.encode(out))
    }

    /// Decrypts what [`SecretBox::seal`] produced.
    pub fn open(&self, sealed: &str) -> Result<String, OpenError> {
        let raw = STANDARD
            .decode(sealed.strip_prefix("v1:").ok_or(OpenError)?)
            .map_err(|_| OpenError)?;
        if raw.len() < 12 {
            return Err(OpenError);
        }
        let (nonce, ct) = raw.split_at(12);
        let pt = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| OpenError)?;
        String::from_utf8(pt).map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_round_trip_and_refuse_other_keys() {
        let a = SecretBox::new(&[1; 32]);
        let sealed = a.seal("p@ss");
        assert_ne!(sealed, a.seal("p@ss"), "fresh nonce each time");
        assert!(!sealed.contains("p@ss"));
        assert_eq!(a.open(&sealed).unwrap(), "p@ss");
        assert!(SecretBox::new(&[2; 32]).open(&sealed).is_err());
        assert!(a.open("v1:AAAA").is_err());
    }
}
