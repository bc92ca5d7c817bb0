//! `souk seller check-endpoint` as a seller runs it against the endpoint it is building.

mod common;

use common::souk_bin;
use souk_server::testing::{stub_seller, KEY};
use std::process::Command;

fn check(url: &str, key: &str) -> (bool, String) {
    check_with(url, key, &[])
}

fn check_with(url: &str, key: &str, flags: &[&str]) -> (bool, String) {
    let out = Command::new(souk_bin())
        .args(["seller", "check-endpoint", url])
        .args(flags)
        .env("SOUK_SELLER_KEY", key)
        .env("SOUK_CONFIG", "/dev/null")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_endpoint_check_passes_a_conforming_seller_and_fails_a_wrong_key() {
    let (endpoint, _stub) = stub_seller("000000", 0, KEY).await;
    let url = endpoint.clone();
    let (passed, out) = tokio::task::spawn_blocking(move || check(&url, KEY))
        .await
        .unwrap();
    assert!(passed, "{out}");
    assert!(out.contains("12 of 12 checks passed"), "{out}");
    assert!(
        out.contains("PASS newInstance again with the same businessId answers the same instance"),
        "{out}"
    );

    let (passed, out) = tokio::task::spawn_blocking(move || check(&endpoint, "not-the-key"))
        .await
        .unwrap();
    assert!(!passed, "{out}");
    assert!(
        out.contains("FAIL newInstance creates an instance: 000001"),
        "{out}"
    );
    assert!(out.contains("does not yet answer as souk expects"), "{out}");
}

#[tokio::test]
async fn with_signed_answers_the_check_requires_each_answer_signed() {
    let run = |url: String, signed: bool| {
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["seller", "check-endpoint", url.as_str()];
            if signed {
                args.push("--signed-answers");
            }
            let out = Command::new(souk_bin())
                .args(&args)
                .env("SOUK_SELLER_KEY", KEY)
                .env("SOUK_CONFIG", "/dev/null")
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        })
    };
    let (signing, _s) = souk_server::testing::signing_stub_seller(KEY).await;
    let (passed, out) = run(signing, true).await.unwrap();
    assert!(passed && out.contains("12 of 12 checks passed"), "{out}");
    let (unsigned, _u) = stub_seller("000000", 0, KEY).await;
    let (passed, out) = run(unsigned, true).await.unwrap();
    assert!(!passed, "{out}");
    assert!(out.contains("Body-Sign is missing"), "{out}");
    // Its refusals were answers, unsigned: said so, not that it did not answer.
    assert!(
        out.contains("(a refusal is signed like any answer)"),
        "{out}"
    );
    assert!(!out.contains("did not answer"), "{out}");
}

#[tokio::test]
async fn with_v1_the_check_speaks_the_older_protocol() {
    // The seller kit answers V1 on the same endpoint, every answer signed.
    let (endpoint, stub) = stub_seller("000000", 0, KEY).await;
    let url = endpoint.clone();
    let (passed, out) = tokio::task::spawn_blocking(move || check_with(&url, KEY, &["--v1"]))
        .await
        .unwrap();
    assert!(passed, "{out}");
    assert!(out.contains("12 of 12 checks passed"), "{out}");
    assert!(
        stub.heard()
            .iter()
            .any(|h| h == "v1 new for Test customer: month x1 trial 0"),
        "{:?}",
        stub.heard()
    );
    // A wrong key: the endpoint refuses the calls and signs its answers with its own key.
    let (passed, out) =
        tokio::task::spawn_blocking(move || check_with(&endpoint, "not-the-key", &["--v1"]))
            .await
            .unwrap();
    assert!(!passed, "{out}");
    assert!(
        out.contains("FAIL newInstance creates an instance: the answer's Body-Sign is missing"),
        "{out}"
    );
}
