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

/// The document is the whole contract: every error answer is a problem document, every operation
/// that needs a session says so, and the enumerations and bounds the code checks are in it.
#[tokio::test]
async fn openapi_document_states_errors_authentication_and_bounds() {
    let app = TestApp::spawn(souk_store::Backend::Sqlite).await;
    let doc: Value = TestApp::client()
        .get(format!("{}/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scheme = &doc["components"]["securitySchemes"]["session"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "cookie");
    assert_eq!(scheme["name"], "souk_session");
    assert!(scheme["description"]
        .as_str()
        .unwrap()
        .contains("__Host-souk_session"));

    let public = [
        ("post", "/v1/accounts"),
        ("post", "/v1/sessions"),
        ("delete", "/v1/sessions/current"),
        ("get", "/v1/products"),
        ("get", "/v1/products/{product_id}"),
        ("get", "/v1/categories"),
        ("get", "/healthz"),
        ("get", "/v1/openapi.json"),
    ];
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let name = format!("{method} {path}");
            let responses = op["responses"].as_object().unwrap();
            for (status, response) in responses {
                let content = response["content"].as_object();
                if status.starts_with('2') {
                    continue;
                }
                let content = content.unwrap_or_else(|| panic!("{name} {status} has no body"));
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    ["application/problem+json"],
                    "{name} {status}"
                );
                assert_eq!(
                    content["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{name} {status}"
                );
            }
            assert!(responses.contains_key("500"), "{name} documents no 500");
            let security = op["security"].as_array();
            if public.contains(&(method.as_str(), path.as_str())) {
                let anonymous = security.is_none_or(|s| s.iter().any(|r| r == &json!({})));
                assert!(anonymous, "{name} is public but requires a session");
            } else {
                assert_eq!(
                    security.map(Vec::as_slice),
                    Some(&[json!({"session": []}), json!({"access_key": []})][..]),
                    "{name} needs a session but does not declare it"
                );
                assert!(responses.contains_key("401"), "{name} documents no 401");
            }
            if method != "get" {
                assert!(responses.contains_key("403"), "{name}: cross-site 403");
            }
            if op["tags"][0] == "operator" {
                let description = op["description"].as_str().unwrap_or_default();
                assert!(description.contains("role `"), "{name} names no role");
            }
            if op["requestBody"].is_object() {
                for status in ["400", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{name} documents no {status}"
                    );
                }
            }
        }
    }
    assert!(operations >= 34, "only {operations} operations");
    for throttled in ["/v1/accounts", "/v1/sessions"] {
        let responses = &doc["paths"][throttled]["post"]["responses"];
        assert!(responses["429"]["headers"]["Retry-After"].is_object());
        assert!(responses["503"].is_object());
    }
    // An operation a signed request may call says it can be answered 429 past the address's
    // share of refused signatures.
    let signed = &doc["paths"]["/v1/orders"]["get"]["responses"]["429"];
    assert!(signed["headers"]["Retry-After"].is_object(), "{signed}");

    let schemas = &doc["components"]["schemas"];
    // Follows a `$ref` (or an `Option`'s `oneOf` with `null`) to the schema it names.
    let resolve = |s: &Value| -> Value {
        let s = s["oneOf"]
            .as_array()
            .and_then(|all| all.iter().find(|v| v["type"] != "null"))
            .unwrap_or(s);
        match s["$ref"].as_str() {
            Some(r) => schemas[r.trim_start_matches("#/components/schemas/")].clone(),
            None => s.clone(),
        }
    };
    let sign_up = &schemas["SignUp"]["properties"];
    assert_eq!(
        resolve(&sign_up["kind"])["enum"],
        json!(["individual", "enterprise"])
    );
    assert_eq!(sign_up["name"]["maxLength"], 100);
    assert_eq!(sign_up["email"]["format"], "email");
    assert_eq!(sign_up["password"]["minLength"], 10);
    let order = &schemas["OrderInput"]["properties"];
    assert_eq!(
        resolve(&order["period"])["enum"],
        json!(["month", "year", "once", "on_demand"])
    );
    assert_eq!(order["periods"]["minimum"], 1);
    assert_eq!(order["periods"]["maximum"], 36);
    let currencies = resolve(&schemas["PlanInput"]["properties"]["currency"]);
    assert_eq!(currencies["enum"].as_array().unwrap().len(), 7);
    let content = &schemas["ContentInput"]["properties"];
    assert_eq!(content["summary"]["maxLength"], 200);
    assert_eq!(content["endpoint_url"]["format"], "uri");
    assert_eq!(content["plans"]["minItems"], 1);
    assert!(resolve(&content["category"])["enum"]
        .as_array()
        .unwrap()
        .contains(&json!("developer-tools")));
    let states = resolve(&schemas["InstanceView"]["properties"]["state"]);
    assert!(states["enum"].as_array().unwrap().contains(&json!("grace")));

    let params = doc["paths"]["/v1/orders"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
    let limit = resolve(&limit["schema"]);
    assert_eq!(limit["minimum"], 1);
    assert_eq!(limit["maximum"], 100);
    let search = doc["paths"]["/v1/products"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let currency = search.iter().find(|p| p["name"] == "currency").unwrap();
    assert!(resolve(&currency["schema"])["enum"]
        .as_array()
        .unwrap()
        .contains(&json!("CNY")));
}

/// A path segment that does not decode is a malformed request, answered as a problem.
#[tokio::test]
async fn undecodable_path_segments_are_problems() {
    let app = TestApp::spawn(souk_store::Backend::Sqlite).await;
    assert_problem(
        TestApp::client()
            .get(format!("{}/v1/products/%FF", app.base))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        None,
    )
    .await;
}
