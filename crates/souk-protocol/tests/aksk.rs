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
        query: c.query.clone(),
        headers: c
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
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
