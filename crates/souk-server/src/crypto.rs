//! Secrets at rest (seller signing keys, instance credentials): AES-256-GCM with the key from
//! configuration, stored as `v2:` + base64(nonce || ciphertext). The associated data names the
//! row and column a secret belongs to (`products.signing_key_enc:prd_…`), so a ciphertext copied
//! into another row does not open. `v1:` values (no associated data) are still read, and
//! [`reseal_v1`] rewrites them as `v2:` at start.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Seals and opens secrets.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

/// A stored secret could not be opened (wrong key, tampered data, or another row's secret).
#[derive(Debug, thiserror::Error)]
#[error("a stored secret cannot be decrypted: is the secret key the one it was written with?")]
pub struct OpenError;

/// The associated data of a product's signing key.
pub fn product_key_aad(product_id: &str) -> String {
    format!("products.signing_key_enc:{product_id}")
}

/// The associated data of an instance's access data.
pub fn instance_access_aad(instance_id: &str) -> String {
    format!("instances.access_enc:{instance_id}")
}

/// The associated data binding an access key's sealed secret to its key.
pub fn access_key_aad(access_key: &str) -> String {
    format!("access_keys.secret_enc:{access_key}")
}

impl SecretBox {
    /// A box with this 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        SecretBox {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// Encrypts `plaintext` for the row `aad` names, with a fresh random nonce.
    pub fn seal(&self, aad: &str, plaintext: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: aad.as_bytes(),
        };
        // AES-GCM fails only for inputs of gigabytes; secrets are a few hundred bytes.
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("v2:{}", STANDARD.encode(out))
    }

    /// Decrypts what [`SecretBox::seal`] produced for the same `aad` (or an older `v1:` value).
    pub fn open(&self, aad: &str, sealed: &str) -> Result<String, OpenError> {
        let (raw, aad) = if let Some(b64) = sealed.strip_prefix("v2:") {
            (b64, aad.as_bytes())
        } else if let Some(b64) = sealed.strip_prefix("v1:") {
            (b64, &b""[..])
        } else {
            return Err(OpenError);
        };
        let raw = STANDARD.decode(raw).map_err(|_| OpenError)?;
        if raw.len() < 12 {
            return Err(OpenError);
        }
        let (nonce, ct) = raw.split_at(12);
        let pt = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| OpenError)?;
        String::from_utf8(pt).map_err(|_| OpenError)
    }
}

/// Re-seals every `v1:` secret as `v2:` bound to its row; returns how many were rewritten. Run
/// at start (`souk serve`, `souk migrate`); a value that does not open is left alone and
/// reported, so a wrong key never destroys data.
pub async fn reseal_v1(
    store: &souk_store::Store,
    secrets: &SecretBox,
) -> Result<usize, souk_store::Error> {
    let mut done = 0;
    for old in store.sealed_values("v1:").await? {
        let aad = format!("{}.{}:{}", old.table, old.column, old.id);
        match secrets.open(&aad, &old.value) {
            Ok(plain) => {
                if store
                    .replace_sealed(&old, &secrets.seal(&aad, &plain))
                    .await?
                {
                    done += 1;
                }
            }
            Err(_) => tracing::error!(
                table = old.table,
                id = %old.id,
                "a v1 secret does not open with this key; left as it is"
            ),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_round_trip_and_refuse_other_keys_and_rows() {
        let a = SecretBox::new(&[1; 32]);
        let row = product_key_aad("prd_1");
        let sealed = a.seal(&row, "p@ss");
        assert!(sealed.starts_with("v2:"));
        assert_ne!(sealed, a.seal(&row, "p@ss"), "fresh nonce each time");
        assert!(!sealed.contains("p@ss"));
        assert_eq!(a.open(&row, &sealed).unwrap(), "p@ss");
        assert!(SecretBox::new(&[2; 32]).open(&row, &sealed).is_err());
        assert!(a.open(&product_key_aad("prd_2"), &sealed).is_err());
        assert!(a.open(&instance_access_aad("prd_1"), &sealed).is_err());
        assert!(a.open(&row, "v2:AAAA").is_err());
        assert!(a.open(&row, "v1:AAAA").is_err());
    }
}
