//! The access-key request signature (`SDK-HMAC-SHA256`) that Huawei Cloud's public SDKs put on
//! every call, so a seller's back end calls souk with the official SDK core unchanged: a canonical
//! form of the request is hashed, the hash is signed with the secret key, and the `Authorization`
//! header carries the access key, the signed headers and the signature.
//!
//! The canonical request is, one per line: the method; the path, each segment percent-encoded,
//! always ending in `/`; the query pairs sorted and percent-encoded; each signed header as
//! `name:value` (lower-case name, trimmed value); the signed header names joined by `;`; the hex
//! SHA-256 of the body (or the `X-Sdk-Content-Sha256` header's value when the client sent one).
//! The string to sign is the algorithm, the `X-Sdk-Date` (`YYYYMMDDTHHMMSSZ`) and the hex SHA-256
//! of the canonical request, one per line.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use subtle::ConstantTimeEq;

/// The algorithm name in the `Authorization` header.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// The header carrying the signing time.
pub const DATE_HEADER: &str = "x-sdk-date";
/// The header a client uses to sign a declared body hash (`UNSIGNED-PAYLOAD`) instead of the body.
pub const CONTENT_HASH_HEADER: &str = "x-sdk-content-sha256";

/// Why a signed request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AkSkError {
    /// The `Authorization` header is not an `SDK-HMAC-SHA256` one, or lacks a part.
    #[error(
        "the Authorization header is not SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…"
    )]
    Malformed,
    /// `X-Sdk-Date` is missing, unsigned or not `YYYYMMDDTHHMMSSZ`.
    #[error("X-Sdk-Date is missing, not signed, or not YYYYMMDDTHHMMSSZ")]
    BadDate,
    /// The signing time is too far from now.
    #[error("the request was signed too long ago, or in the future")]
    Expired,
    /// A header named in `SignedHeaders` was not sent.
    #[error("a signed header is missing: {0}")]
    MissingHeader(String),
    /// The signature does not match the request and the secret key.
    #[error("the signature does not match")]
    BadSignature,
    /// `Host` is not among the signed headers, so the signature is not tied to souk.
    #[error("the Host header must be signed")]
    HostNotSigned,
    /// The body is not covered by the signature: `X-Sdk-Content-Sha256` was sent unsigned, or
    /// declares `UNSIGNED-PAYLOAD` or a hash that is not the body's.
    #[error("the body must be signed: X-Sdk-Content-Sha256, when sent, must be signed and be the body's SHA-256")]
    UnsignedBody,
}

/// The parts of an `Authorization: SDK-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    /// Lower-case header names, in the order signed.
    pub signed_headers: Vec<String>,
    /// Lower-case hex.
    pub signature: String,
}

impl Authorization {
    /// Reads an `Authorization` header value.
    pub fn parse(value: &str) -> Result<Authorization, AkSkError> {
        let rest = value
            .trim()
            .strip_prefix(ALGORITHM)
            .ok_or(AkSkError::Malformed)?
            .trim_start();
        let (mut access_key, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (k, v) = part.trim().split_once('=').ok_or(AkSkError::Malformed)?;
            match k.trim() {
                "Access" => access_key = Some(v.trim().to_owned()),
                "SignedHeaders" => {
                    signed = Some(
                        v.trim()
                            .split(';')
                            .map(|h| h.trim().to_ascii_lowercase())
                            .filter(|h| !h.is_empty())
                            .collect::<Vec<_>>(),
                    )
                }
                "Signature" => signature = Some(v.trim().to_ascii_lowercase()),
                _ => return Err(AkSkError::Malformed),
            }
        }
        match (access_key, signed, signature) {
            (Some(a), Some(h), Some(s)) if !a.is_empty() && !h.is_empty() && !s.is_empty() => {
                Ok(Authorization {
                    access_key: a,
                    signed_headers: h,
                    signature: s,
                })
            }
            _ => Err(AkSkError::Malformed),
        }
    }

    /// The header value.
    pub fn header(&self) -> String {
        format!(
            "{ALGORITHM} Access={}, SignedHeaders={}, Signature={}",
            self.access_key,
            self.signed_headers.join(";"),
            self.signature
        )
    }
}

/// A request as both ends see it. Its parts borrow what the caller holds where they can, so the
/// check of a signed request copies nothing of it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded), without the query.
    pub path: &'a str,
    /// The query pairs, decoded.
    pub query: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Every header sent, any case.
    pub headers: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub body: &'a [u8],
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `s` to `out`, percent-encoding everything but the unreserved characters of RFC 3986.
fn encode_into(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(UPPER_HEX[usize::from(b >> 4)] as char);
            out.push(UPPER_HEX[usize::from(b & 0xf)] as char);
        }
    }
}

/// Decodes percent-escapes (invalid ones are kept as they are); a path without any is borrowed.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Appends the canonical path: each segment decoded and encoded again, ending in `/`.
fn canonical_uri(path: &str, out: &mut String) {
    let start = out.len();
    for (i, segment) in decode(path).split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        encode_into(segment, out);
    }
    if out.len() == start || !out.ends_with('/') {
        out.push('/');
    }
}

/// Appends the canonical query: the decoded pairs sorted, each encoded, joined with `&`.
fn canonical_query(query: &[(Cow<'_, str>, Cow<'_, str>)], out: &mut String) {
    let mut pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    pairs.sort_unstable();
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_into(k, out);
        out.push('=');
        encode_into(v, out);
    }
}

/// The canonical form of `req` over `signed_headers`, written into one buffer.
pub fn canonical_request(
    req: &Request<'_>,
    signed_headers: &[String],
) -> Result<String, AkSkError> {
    let mut out = String::with_capacity(256 + req.path.len());
    out.extend(req.method.chars().map(|c| c.to_ascii_uppercase()));
    out.push('\n');
    canonical_uri(req.path, &mut out);
    out.push('\n');
    canonical_query(&req.query, &mut out);
    out.push('\n');
    for name in signed_headers {
        let value = req
            .header(name)
            .ok_or_else(|| AkSkError::MissingHeader(name.clone()))?;
        out.push_str(name);
        out.push(':');
        out.push_str(value.trim());
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    match req.header(CONTENT_HASH_HEADER) {
        Some(declared) if !req.body.is_empty() => out.push_str(declared),
        _ => out.push_str(&hex::encode(Sha256::digest(req.body))),
    }
    Ok(out)
}

/// The signature of a canonical request as lower-case hex, in place: the HMAC of the string to
/// sign (the algorithm, the date and the canonical request's hash, one per line), which is fed
/// to the HMAC piece by piece rather than written out.
fn signature(secret_key: &str, canonical: &str, date: &str) -> [u8; 64] {
    let mut hashed = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(canonical.as_bytes()), &mut hashed)
        .expect("a SHA-256 is 32 bytes");
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(ALGORITHM.as_bytes());
    mac.update(b"\n");
    mac.update(date.as_bytes());
    mac.update(b"\n");
    mac.update(&hashed);
    let mut signature = [0u8; 64];
    hex::encode_to_slice(mac.finalize().into_bytes(), &mut signature)
        .expect("an HMAC-SHA256 is 32 bytes");
    signature
}

/// Signs `req` (which must carry `X-Sdk-Date` and `Host`) over every header it has, as the SDKs
/// do; returns the `Authorization` header.
pub fn sign(
    access_key: &str,
    secret_key: &str,
    req: &Request<'_>,
) -> Result<Authorization, AkSkError> {
    let date = req.header(DATE_HEADER).ok_or(AkSkError::BadDate)?;
    let mut signed_headers: Vec<String> = req
        .headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| !k.contains('_') && k != "authorization")
        .collect();
    signed_headers.sort();
    signed_headers.dedup();
    let canonical = canonical_request(req, &signed_headers)?;
    Ok(Authorization {
        access_key: access_key.to_owned(),
        signature: std::str::from_utf8(&signature(secret_key, &canonical, date))
            .expect("hex is ASCII")
            .to_owned(),
        signed_headers,
    })
}

/// Seconds since the UNIX epoch of a `YYYYMMDDTHHMMSSZ` time.
pub fn parse_date(date: &str) -> Result<i64, AkSkError> {
    let b = date.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(AkSkError::BadDate);
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, AkSkError> {
        date.get(r)
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or(AkSkError::BadDate)
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return Err(AkSkError::BadDate);
    }
    // Days from the civil date (proleptic Gregorian), so no calendar crate is needed here.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Checks a signed request: `X-Sdk-Date` and `Host` are signed, the date is within
/// `window_secs` of `now_secs`, every signed header was sent, the body is what was signed, and
/// the signature matches (compared in constant time).
pub fn verify(
    secret_key: &str,
    auth: &Authorization,
    req: &Request<'_>,
    now_secs: i64,
    window_secs: i64,
) -> Result<(), AkSkError> {
    let signs = |name: &str| auth.signed_headers.iter().any(|h| h == name);
    if !signs(DATE_HEADER) {
        return Err(AkSkError::BadDate);
    }
    if !signs("host") {
        return Err(AkSkError::HostNotSigned);
    }
    // The canonical request takes a declared body hash in place of the body, as the SDKs sign
    // it; souk accepts the declaration only when it is signed and true, so a body cannot be
    // swapped under a signature.
    if let Some(declared) = req
        .header(CONTENT_HASH_HEADER)
        .filter(|_| !req.body.is_empty())
    {
        let body = hex::encode(Sha256::digest(req.body));
        let true_and_signed =
            signs(CONTENT_HASH_HEADER) && declared.trim().eq_ignore_ascii_case(&body);
        if !true_and_signed {
            return Err(AkSkError::UnsignedBody);
        }
    }
    let date = req.header(DATE_HEADER).ok_or(AkSkError::BadDate)?;
    if (parse_date(date)? - now_secs).abs() > window_secs {
        return Err(AkSkError::Expired);
    }
    let canonical = canonical_request(req, &auth.signed_headers)?;
    let expected = signature(secret_key, &canonical, date);
    if bool::from(expected[..].ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(AkSkError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_to_unix_seconds() {
        assert_eq!(parse_date("19700101T000000Z").unwrap(), 0);
        assert_eq!(parse_date("20261129T120000Z").unwrap(), 1_795_953_600);
        assert_eq!(parse_date("20240229T235959Z").unwrap(), 1_709_251_199);
        for bad in [
            "2026-11-29T12:00:00Z",
            "20261329T120000Z",
            "20261129T120000",
            "",
        ] {
            assert_eq!(parse_date(bad), Err(AkSkError::BadDate), "{bad}");
        }
    }

    #[test]
    fn authorization_headers_round_trip_and_junk_is_refused() {
        let a = Authorization::parse(
            "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=ABCD",
        )
        .unwrap();
        assert_eq!(a.access_key, "AK1");
        assert_eq!(a.signed_headers, vec!["host", "x-sdk-date"]);
        assert_eq!(a.signature, "abcd");
        assert_eq!(Authorization::parse(&a.header()).unwrap(), a);
        for bad in [
            "Bearer x",
            "SDK-HMAC-SHA256 Access=AK1",
            "SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=1",
        ] {
            assert!(Authorization::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_and_queries_are_canonical() {
        let uri = |path: &str| {
            let mut out = String::new();
            canonical_uri(path, &mut out);
            out
        };
        assert_eq!(uri("/v1/products"), "/v1/products/");
        assert_eq!(uri("/v1/a%20b/"), "/v1/a%20b/");
        assert_eq!(uri("/v1/caf%C3%A9s/%zz"), "/v1/caf%C3%A9s/%25zz/");
        assert_eq!(uri(""), "/");
        let mut query = String::new();
        canonical_query(
            &[
                ("q".into(), "Notes & Wiki".into()),
                ("limit".into(), "20".into()),
                ("limit".into(), "10".into()),
            ],
            &mut query,
        );
        assert_eq!(query, "limit=10&limit=20&q=Notes%20%26%20Wiki");
    }
}
