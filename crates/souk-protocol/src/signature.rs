//! The request signature souk puts on every call to a seller, and the check a seller makes.
//!
//! `bodyHmac = hex(HMAC-SHA256(accessKey, body))` and
//! `signature = HEX(HMAC-SHA256(accessKey, accessKey + nonce + timestamp + bodyHmac))`, sent as
//! URL parameters with the millisecond `timestamp` and a random 64-hex-digit `nonce`.

use crate::Error;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How far a call's timestamp may be from the seller's clock.
pub const TIMESTAMP_WINDOW_MS: i64 = 60_000;

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex HMAC of the body bytes.
pub fn body_hmac(access_key: &str, body: &[u8]) -> String {
    hex::encode(hmac(access_key.as_bytes(), body))
}

/// The upper-case hex signature of a call.
pub fn sign(access_key: &str, body: &[u8], timestamp: &str, nonce: &str) -> String {
    let message = format!(
        "{access_key}{nonce}{timestamp}{}",
        body_hmac(access_key, body)
    );
    hex::encode_upper(hmac(access_key.as_bytes(), message.as_bytes()))
}

/// The header a seller signs its answer with, where its product asks souk to check answers.
pub const BODY_SIGN_HEADER: &str = "Body-Sign";

/// The `Body-Sign` value of an answer: `sign_type="HMAC-SHA256", signature="<base64 HMAC>"`,
/// the HMAC-SHA256 of the answer's bytes under the product's key.
pub fn body_sign(access_key: &str, body: &[u8]) -> String {
    use base64::Engine;
    format!(
        "sign_type=\"HMAC-SHA256\", signature=\"{}\"",
        base64::engine::general_purpose::STANDARD.encode(hmac(access_key.as_bytes(), body))
    )
}

/// Whether `header` (a `Body-Sign` value) signs `body` with one of `keys`; compared in constant
/// time. A missing header, another sign type or a malformed value is not a signature.
pub fn verify_body_sign(keys: &[&str], body: &[u8], header: Option<&str>) -> bool {
    use base64::Engine;
    let Some(header) = header else { return false };
    let field = |name: &str| {
        header.split(',').find_map(|part| {
            let (k, v) = part.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
        })
    };
    if field("sign_type").as_deref() != Some("HMAC-SHA256") {
        return false;
    }
    let Some(given) =
        field("signature").and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
    else {
        return false;
    };
    keys.iter()
        .any(|k| bool::from(hmac(k.as_bytes(), body).as_slice().ct_eq(&given)))
}

/// A fresh nonce: 32 random bytes as 64 upper-case hex digits, as in the guide's examples.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode_upper(bytes)
}

/// The URL parameters of a signed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParams {
    /// Upper-case hex signature.
    pub signature: String,
    /// UNIX milliseconds.
    pub timestamp: String,
    /// 64 hex digits.
    pub nonce: String,
}

impl SignedParams {
    /// Signs `body` at `now_ms` with a fresh nonce.
    pub fn new(access_key: &str, body: &[u8], now_ms: i64) -> Self {
        let timestamp = now_ms.to_string();
        let nonce = new_nonce();
        SignedParams {
            signature: sign(access_key, body, &timestamp, &nonce),
            timestamp,
            nonce,
        }
    }

    /// `signature=…&timestamp=…&nonce=…`; all three are URL-safe as they are.
    pub fn query(&self) -> String {
        format!(
            "signature={}&timestamp={}&nonce={}",
            self.signature, self.timestamp, self.nonce
        )
    }
}

/// Appends the signature parameters to an endpoint URL that may already carry a query.
pub fn signed_url(endpoint: &str, params: &SignedParams) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{}", params.query())
}

/// Checks a call as a seller receives it: the signature (any letter case, compared in constant
/// time) against each key accepted now (two during a key rotation), and the timestamp against
/// `now_ms`. Replay protection by nonce is the caller's, who remembers nonces.
pub fn verify(keys: &[&str], body: &[u8], params: &SignedParams, now_ms: i64) -> Result<(), Error> {
    let ts: i64 = params
        .timestamp
        .parse()
        .map_err(|_| Error::StaleTimestamp)?;
    if (now_ms - ts).abs() > TIMESTAMP_WINDOW_MS {
        return Err(Error::StaleTimestamp);
    }
    if params.nonce.is_empty() || params.nonce.len() > 128 {
        return Err(Error::InvalidParameter("nonce".into()));
    }
    let given = params.signature.to_ascii_uppercase();
    let matched = keys.iter().any(|key| {
        let expected = sign(key, body, &params.timestamp, &params.nonce);
        bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    });
    if matched {
        Ok(())
    } else {
        Err(Error::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector computed by the JDK (protocol-vectors.json, `v1BodySign`).
    #[test]
    fn answers_are_signed_as_the_jdk_signs_them() {
        let body = br#"{"resultCode":"000000","resultMsg":"success","instanceId":"ins-seller-42"}"#;
        let header = body_sign("souk-v1-demo-key", body);
        assert_eq!(
            header,
            r#"sign_type="HMAC-SHA256", signature="Jd3qzDxF2t1JSOXBrYzEEDPOW0MwkGtOGv98WxTMfVg=""#
        );
        assert!(verify_body_sign(
            &["old", "souk-v1-demo-key"],
            body,
            Some(&header)
        ));
        assert!(!verify_body_sign(&["another-key"], body, Some(&header)));
        assert!(!verify_body_sign(
            &["souk-v1-demo-key"],
            b"{}",
            Some(&header)
        ));
        assert!(!verify_body_sign(&["souk-v1-demo-key"], body, None));
        assert!(!verify_body_sign(
            &["souk-v1-demo-key"],
            body,
            Some("sign_type=\"MD5\", signature=\"x\"")
        ));
        assert!(!verify_body_sign(
            &["souk-v1-demo-key"],
            body,
            Some("garbage")
        ));
    }

    /// Vectors computed with the JDK's HMAC (shared/protocol-vectors.json).
    const VECTORS: &[(&str, &str, &str, &str, &str, &str)] = &[
        (
            "c7a0e5f4-2b1d-4e8a-9f3c-5d6b7a8c9e0f",
            r#"{"activity":"newInstance","businessId":"61e834ba-7b97-4418-b8f7-e5345137278c","orderId":"CS1906666688ABCDE","orderLineId":"CS1906666688ABCDE-000001","testFlag":"0"}"#,
            "1732800000000",
            "5A0F2C9E3B7D41A6C8E0F1D2B3A495867788990AABBCCDDEEFF0011223344556",
            "2620f021ccad0218418517d52883c2b9780ad7bbd40cbb352bbc764b0f22d986",
            "D23B8459F2DD358F80873BA2E7A6F5256A728B42F69C5E83590587DE7B85AAA3",
        ),
        (
            "souk-demo-key",
            r#"{"activity":"updateInstanceStatus","instanceId":"ins_01","status":"FREEZE","testFlag":"0"}"#,
            "1732800060000",
            "0000000000000000000000000000000000000000000000000000000000000001",
            "85898b5b2028c7e7490da7413ef2797f78479721cf01f42bd9d601cf0a6f0746",
            "7EEC33917426CC2731EFCE15EF16EA69680C645FF64F09508384300161CB4086",
        ),
    ];

    #[test]
    fn matches_the_jdk_vectors() {
        for (key, body, ts, nonce, body_mac, sig) in VECTORS {
            assert_eq!(body_hmac(key, body.as_bytes()), *body_mac);
            assert_eq!(sign(key, body.as_bytes(), ts, nonce), *sig);
        }
    }

    #[test]
    fn verify_accepts_any_case_and_refuses_tampering_and_stale_calls() {
        let (key, body, ts, nonce, _, sig) = VECTORS[0];
        let now: i64 = ts.parse().unwrap();
        let p = SignedParams {
            signature: sig.to_lowercase(),
            timestamp: ts.into(),
            nonce: nonce.into(),
        };
        assert_eq!(verify(&[key], body.as_bytes(), &p, now + 59_000), Ok(()));
        assert_eq!(verify(&["old-key", key], body.as_bytes(), &p, now), Ok(()));
        assert_eq!(
            verify(&[key], body.as_bytes(), &p, now + 61_000),
            Err(Error::StaleTimestamp)
        );
        assert_eq!(
            verify(&["wrong"], body.as_bytes(), &p, now),
            Err(Error::BadSignature)
        );
        let tampered = body.replace("newInstance", "releaseInstance");
        assert_eq!(
            verify(&[key], tampered.as_bytes(), &p, now),
            Err(Error::BadSignature)
        );
        let other_nonce = SignedParams {
            nonce: new_nonce(),
            ..p.clone()
        };
        assert_eq!(
            verify(&[key], body.as_bytes(), &other_nonce, now),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn signed_params_round_trip() {
        let p = SignedParams::new("k", b"{}", 1_000);
        assert_eq!(p.nonce.len(), 64);
        assert_eq!(verify(&["k"], b"{}", &p, 1_000), Ok(()));
        assert_eq!(
            signed_url("https://s.example/x?a=1", &p),
            format!("https://s.example/x?a=1&{}", p.query())
        );
    }
}
