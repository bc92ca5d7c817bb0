//! The OpenAPI document and the test clock.

use reqwest::StatusCode;
use serde_json::{json, Value};
use souk_server::testing::*;

#[tokio::test]
async fn openapi_document_is_served_and_the_test_clock_needs_its_flag() {
    let app = TestApp::spawn_with(
        souk_store::Backend::Sqlite,
        souk_server::Settings {
            test_clock: false,
            ..souk_server::Settings::for_tests()
        },
    )
    .await;
    let c = TestApp::client();
    let doc: Value = c
        .get(format!("{}/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/orders",
        "/v1/instances/{instance_id}/renew",
        "/v1/operator/reviews/{revision_id}/decision",
        "/v1/products",
        "/healthz",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "operationIds must be unique: {ids:?}");
    assert_problem(
        c.post(format!("{}/v1/test/clock", app.base))
            .json(&json!({"advance_seconds": 1}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    let health: Value = c
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    app.cleanup().await;
}
