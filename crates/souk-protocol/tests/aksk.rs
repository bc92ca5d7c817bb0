//! The access-key signature against requests signed by the official Huawei Cloud SDK core's
//! signer (`aksk-vectors.json`, produced with PyPI's huaweicloudsdkcore): souk signs them to the
//! same header and accepts them; a changed byte, a stale date or a missing header is refused.

use souk_protocol::aksk::{self, AkSkError, Authorization, Request};

#[derive(serde::Deserialize)]
struct Vectors {
    access_key: String,
    secret_key: String,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    body: String,
    headers: std::collections::BTreeMap<String, String>,
    authorization: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("aksk-vectors.json")).unwrap()
}

fn request(c: &Case) -> Request<'_> {
    Request {
        method: &c.method,
        path: &c.path,
        query: c.query.iter().map(|(k, v)| (k.into(), v.into())).collect(),
        headers: c
            .headers
            .iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
        body: c.body.as_bytes(),
    }
}

#[test]
fn souk_signs_exactly_as_the_official_sdk_does() {
    let v = vectors();
    assert_eq!(v.cases.len(), 3);
    for c in &v.cases {
        let ours = aksk::sign(&v.access_key, &v.secret_key, &request(c)).unwrap();
        assert_eq!(ours.header(), c.authorization, "{} {}", c.method, c.path);
    }
}

#[test]
fn sdk_signed_requests_are_accepted_and_tampered_ones_refused() {
    let v = vectors();
    let now = aksk::parse_date("20261129T120000Z").unwrap();
    for c in &v.cases {
        let auth = Authorization::parse(&c.authorization).unwrap();
        let req = request(c);
        assert_eq!(
            aksk::verify(&v.secret_key, &auth, &req, now + 60, 900),
            Ok(())
        );
        assert_eq!(
            aksk::verify(&v.secret_key, &auth, &req, now + 901, 900),
            Err(AkSkError::Expired)
        );
        assert_eq!(
            aksk::verify("another-secret", &auth, &req, now, 900),
            Err(AkSkError::BadSignature)
        );
        let mut changed = req.clone();
        changed.query.push(("extra".into(), "1".into()));
        assert_eq!(
            aksk::verify(&v.secret_key, &auth, &changed, now, 900),
            Err(AkSkError::BadSignature)
        );
        let mut headless = req.clone();
        headless
            .headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("host"));
        assert_eq!(
            aksk::verify(&v.secret_key, &auth, &headless, now, 900),
            Err(AkSkError::MissingHeader("host".into()))
        );
        if !c.body.is_empty() {
            let body = c.body.replace("12.5", "125");
            let forged = Request {
                body: body.as_bytes(),
                ..req.clone()
            };
            assert_eq!(
                aksk::verify(&v.secret_key, &auth, &forged, now, 900),
                Err(AkSkError::BadSignature)
            );
        }
    }
}

#[test]
fn the_body_and_host_are_always_signed() {
    let v = vectors();
    let now = aksk::parse_date("20261129T120000Z").unwrap();
    let c = v.cases.iter().find(|c| !c.body.is_empty()).unwrap();
    let req = request(c);
    let hash = |b: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b.as_bytes()))
    };
    let signed = |req: &Request<'_>| aksk::sign(&v.access_key, &v.secret_key, req).unwrap();
    let check =
        |auth: &Authorization, req: &Request<'_>| aksk::verify(&v.secret_key, auth, req, now, 900);

    // A declared hash sent beside the signature (not signed) cannot stand in for another body.
    let auth = signed(&req);
    let swapped = c.body.replace("12.5", "125");
    let mut forged = Request {
        body: swapped.as_bytes(),
        ..req.clone()
    };
    forged
        .headers
        .push((aksk::CONTENT_HASH_HEADER.into(), hash(&c.body).into()));
    assert_eq!(check(&auth, &forged), Err(AkSkError::UnsignedBody));

    // Signed, the declaration must be the body's hash; UNSIGNED-PAYLOAD is refused.
    for (declared, expect) in [
        (hash(&c.body), Ok(())),
        (hash(&c.body).to_uppercase(), Ok(())),
        ("UNSIGNED-PAYLOAD".to_owned(), Err(AkSkError::UnsignedBody)),
        (hash(&swapped), Err(AkSkError::UnsignedBody)),
    ] {
        let mut declaring = req.clone();
        declaring
            .headers
            .push((aksk::CONTENT_HASH_HEADER.into(), declared.clone().into()));
        assert_eq!(check(&signed(&declaring), &declaring), expect, "{declared}");
    }

    // A signature over the date alone is not tied to a host.
    let mut dated_only = Authorization::parse(&c.authorization).unwrap();
    dated_only.signed_headers.retain(|h| h == aksk::DATE_HEADER);
    assert_eq!(check(&dated_only, &req), Err(AkSkError::HostNotSigned));
}
