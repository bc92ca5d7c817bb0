//! Access data a seller may encrypt in its answers: `iv + base64(AES-CBC-PKCS5(key, text))`, with
//! the key derived from the product's access key the way Java's `SHA1PRNG` does when seeded with
//! the key's UTF-8 bytes (`encryptType` "1": AES-256, "2": AES-128).

use crate::Error;
use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

/// The AES key size an `encryptType` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptType {
    /// `"1"`: AES-256.
    Aes256,
    /// `"2"`: AES-128.
    Aes128,
}

impl EncryptType {
    /// Reads the `encryptType` field; `None` for absent or unknown values.
    pub fn from_wire(value: Option<&str>) -> Option<EncryptType> {
        match value {
            Some("1") => Some(EncryptType::Aes256),
            Some("2") => Some(EncryptType::Aes128),
            _ => None,
        }
    }

    /// The wire value.
    pub fn wire(self) -> &'static str {
        match self {
            EncryptType::Aes256 => "1",
            EncryptType::Aes128 => "2",
        }
    }

    fn key_len(self) -> usize {
        match self {
            EncryptType::Aes256 => 32,
            EncryptType::Aes128 => 16,
        }
    }
}

/// The first `len` bytes of Java's `SHA1PRNG` stream seeded with `seed`: the state starts as
/// SHA1(seed); each block is SHA1(state), after which state = state + block + 1 (mod 2^160, bytes
/// added from index 0 with Java's signed-byte carry).
pub fn sha1prng_bytes(seed: &[u8], len: usize) -> Vec<u8> {
    let mut state: [u8; 20] = Sha1::digest(seed).into();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let block: [u8; 20] = Sha1::digest(state).into();
        let mut carry: i32 = 1;
        let mut changed = false;
        for i in 0..20 {
            let v = i32::from(state[i] as i8) + i32::from(block[i] as i8) + carry;
            let t = v as u8;
            changed |= state[i] != t;
            state[i] = t;
            carry = v >> 8;
        }
        if !changed {
            state[0] = state[0].wrapping_add(1);
        }
        let take = (len - out.len()).min(20);
        out.extend_from_slice(&block[..take]);
    }
    out
}

/// The AES key for `access_key` and `kind`.
pub fn derive_key(access_key: &str, kind: EncryptType) -> Vec<u8> {
    sha1prng_bytes(access_key.as_bytes(), kind.key_len())
}

/// Encrypts `plaintext` with a 16-character printable `iv`, as a seller does.
pub fn encrypt(
    access_key: &str,
    kind: EncryptType,
    iv: &str,
    plaintext: &str,
) -> Result<String, Error> {
    if iv.len() != 16 {
        return Err(Error::InvalidParameter("iv".into()));
    }
    let key = derive_key(access_key, kind);
    let ct = match kind {
        EncryptType::Aes128 => cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, iv.as_bytes())
            .map_err(|_| Error::InvalidParameter("iv".into()))?
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes()),
        EncryptType::Aes256 => cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, iv.as_bytes())
            .map_err(|_| Error::InvalidParameter("iv".into()))?
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes()),
    };
    Ok(format!("{iv}{}", STANDARD.encode(ct)))
}

/// Decrypts `iv + base64(ciphertext)`.
pub fn decrypt(access_key: &str, kind: EncryptType, value: &str) -> Result<String, Error> {
    if value.len() <= 16 || !value.is_char_boundary(16) {
        return Err(Error::Decrypt);
    }
    let (iv, b64) = value.split_at(16);
    let ct = STANDARD.decode(b64).map_err(|_| Error::Decrypt)?;
    let key = derive_key(access_key, kind);
    let pt = match kind {
        EncryptType::Aes128 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, iv.as_bytes())
            .map_err(|_| Error::Decrypt)?
            .decrypt_padded_vec_mut::<Pkcs7>(&ct),
        EncryptType::Aes256 => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, iv.as_bytes())
            .map_err(|_| Error::Decrypt)?
            .decrypt_padded_vec_mut::<Pkcs7>(&ct),
    }
    .map_err(|_| Error::Decrypt)?;
    String::from_utf8(pt).map_err(|_| Error::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Vector {
        access_key: String,
        encrypt_type: String,
        key_hex: String,
        iv: String,
        plaintext: String,
        ciphertext: String,
    }

    fn vectors() -> Vec<Vector> {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../tests/protocol-vectors.json")).unwrap();
        serde_json::from_value(doc["aes"].clone()).unwrap()
    }

    #[test]
    fn keys_and_ciphertexts_match_the_jdk() {
        let vs = vectors();
        assert!(vs.len() >= 18);
        for v in vs {
            let kind = EncryptType::from_wire(Some(&v.encrypt_type)).unwrap();
            assert_eq!(
                hex::encode(derive_key(&v.access_key, kind)),
                v.key_hex,
                "key for {}",
                v.access_key
            );
            assert_eq!(
                encrypt(&v.access_key, kind, &v.iv, &v.plaintext).unwrap(),
                v.ciphertext
            );
            assert_eq!(
                decrypt(&v.access_key, kind, &v.ciphertext).unwrap(),
                v.plaintext
            );
        }
    }

    #[test]
    fn wrong_key_or_garbage_does_not_decrypt() {
        let ct = encrypt("right", EncryptType::Aes256, "abcdefgh12345678", "secret").unwrap();
        assert!(decrypt("wrong", EncryptType::Aes256, &ct)
            .map(|p| p != "secret")
            .unwrap_or(true));
        assert_eq!(
            decrypt("right", EncryptType::Aes256, "short"),
            Err(Error::Decrypt)
        );
        assert_eq!(
            decrypt("right", EncryptType::Aes256, "abcdefgh12345678!!notbase64"),
            Err(Error::Decrypt)
        );
    }
}
