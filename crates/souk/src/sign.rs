//! `souk sign`: a curl command for one request signed with an access key (SDK-HMAC-SHA256), for
//! trying the API by hand the way a program calls it.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use souk_protocol::aksk;

/// The curl command for `method url` with `data` as a JSON body, signed by (`ak`, `sk`) at `now`.
pub fn curl_command(
    method: &str,
    url: &str,
    data: Option<&str>,
    ak: &str,
    sk: &str,
    now: DateTime<Utc>,
) -> Result<String> {
    let method = method.to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        bail!("the method must be a word such as GET or POST, not {method:?}");
    }
    let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("the URL must be http or https");
    }
    let Some(host) = parsed.host_str() else {
        bail!("the URL has no host");
    };
    // The Host header curl sends: the port only when it is not the scheme's default.
    let host = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let mut headers = vec![
        ("Host".to_owned(), host),
        (
            "X-Sdk-Date".to_owned(),
            now.format("%Y%m%dT%H%M%SZ").to_string(),
        ),
    ];
    if data.is_some() {
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    }
    let body = data.unwrap_or_default();
    let request = aksk::Request {
        method: &method,
        path: parsed.path(),
        query: parsed.query_pairs().collect(),
        headers: headers.iter().map(|(k, v)| (k.into(), v.into())).collect(),
        body: body.as_bytes(),
    };
    let authorization = aksk::sign(ak, sk, &request).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut words = vec!["curl".to_owned(), "-X".to_owned(), method.clone()];
    for (name, value) in headers.iter().filter(|(name, _)| name != "Host") {
        words.push("-H".to_owned());
        words.push(quote(&format!("{name}: {value}")));
    }
    words.push("-H".to_owned());
    words.push(quote(&format!("Authorization: {}", authorization.header())));
    if let Some(d) = data {
        words.push("--data-binary".to_owned());
        words.push(quote(d));
    }
    words.push(quote(parsed.as_str()));
    Ok(words.join(" "))
}

/// `s` as one shell word in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_command_carries_a_signature_souk_accepts() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let cmd = curl_command(
            "post",
            "http://127.0.0.1:8080/v1/orders?x=a+b",
            Some(r#"{"note":"it's"}"#),
            "AKEXAMPLE",
            "secret",
            now,
        )
        .unwrap();
        assert!(cmd.starts_with("curl -X POST -H 'X-Sdk-Date: 20261129T120000Z'"));
        assert!(
            cmd.contains(r#"--data-binary '{"note":"it'\''s"}'"#),
            "{cmd}"
        );
        // What the server checks: the same request, as it arrives, verifies.
        let at = cmd.find("Signature=").unwrap() + 10;
        let signature = &cmd[at..at + 64];
        let request = aksk::Request {
            method: "POST",
            path: "/v1/orders",
            query: vec![("x".into(), "a b".into())],
            headers: vec![
                ("host".into(), "127.0.0.1:8080".into()),
                ("x-sdk-date".into(), "20261129T120000Z".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: br#"{"note":"it's"}"#,
        };
        let expected = aksk::sign("AKEXAMPLE", "secret", &request).unwrap();
        assert_eq!(signature, expected.signature);
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let now = Utc::now();
        let err = |m, u| {
            curl_command(m, u, None, "AK", "SK", now)
                .unwrap_err()
                .to_string()
        };
        assert!(err("GET", "not a url").contains("is not a URL"));
        assert!(err("GET", "ftp://x/y").contains("http or https"));
        assert!(err("G T", "http://x/").contains("method"));
    }
}
