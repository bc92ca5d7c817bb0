//! Completes the generated OpenAPI document so that it is the whole contract. The handlers
//! document what is particular to them (their success, their roles, their conflicts); this pass
//! adds what every operation shares, from what the operation is, so no handler can forget it:
//!
//! - the session cookie as a security scheme, and `security` on every operation that needs it;
//! - the answers the shared machinery gives: 400 for a body that is not JSON or a path that does
//!   not decode, 401 without a session, 403 for a cross-site browser write, 404 for an unknown
//!   id in the path, 422 for input the use case refuses, 429 and 503 from the log-in and sign-up
//!   throttles, 429 for an address past its share of refused signed requests, 500 for a bug or
//!   an outage;
//! - every error answer as `application/problem+json` with the `Problem` schema (RFC 9457);
//! - `GET /v1/openapi.json` itself.

use crate::auth::{SECURE_SESSION_COOKIE, SESSION_COOKIE};
use crate::error::Problem;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterIn, PathItem};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// The name of the session cookie's security scheme.
pub const SESSION_SCHEME: &str = "session";
/// The name of the access-key signature's security scheme.
pub const ACCESS_KEY_SCHEME: &str = "access_key";

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Operations anyone may call.
const PUBLIC: &[(&str, &str)] = &[
    ("post", "/v1/accounts"),
    ("post", "/v1/sessions"),
    ("get", "/v1/products"),
    ("get", "/v1/products/{product_id}"),
    ("get", "/v1/categories"),
    ("get", "/healthz"),
    ("get", "/v1/openapi.json"),
];

/// Operations that use the session when there is one, and succeed without it.
const SESSION_OPTIONAL: &[(&str, &str)] = &[("delete", "/v1/sessions/current")];

/// Operations behind the per-address throttles and the bounded password-hashing line.
const THROTTLED: &[(&str, &str)] = &[("post", "/v1/accounts"), ("post", "/v1/sessions")];

/// Adds the shared parts of the contract to `doc`; see the module documentation.
pub fn complete(doc: &mut OpenApi) {
    doc.paths.paths.insert(
        "/v1/openapi.json".to_owned(),
        PathItem::new(HttpMethod::Get, openapi_operation()),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .entry(Problem::name().into_owned())
        .or_insert_with(Problem::schema);
    components.security_schemes.insert(
        SESSION_SCHEME.to_owned(),
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            SESSION_COOKIE.to_owned(),
            format!(
                "The session cookie that `POST /v1/sessions` (log-in) and `POST /v1/accounts` \
                 (sign-up) set. Under https it is named `{SECURE_SESSION_COOKIE}` (Secure, \
                 Path=/); browsers send it back as they received it."
            ),
        ))),
    );
    components.security_schemes.insert(
        ACCESS_KEY_SCHEME.to_owned(),
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization".to_owned(),
            "A request signed with an IAM user's access key, exactly as Huawei Cloud's SDKs sign: \
             `Authorization: SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…` over the \
             canonical request, with `X-Sdk-Date` within 15 minutes. The key's policy limits \
             what it may call; a signed request is accepted once."
                .to_owned(),
        ))),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations(item) {
            complete_operation(method, path, op);
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("patch", &mut item.patch),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

fn complete_operation(method: &str, path: &str, op: &mut Operation) {
    let is = |list: &[(&str, &str)]| list.contains(&(method, path));
    let params = |place: ParameterIn| {
        op.parameters
            .iter()
            .flatten()
            .any(|p| p.parameter_in == place)
    };
    let (in_path, in_query, in_header) = (
        params(ParameterIn::Path),
        params(ParameterIn::Query),
        params(ParameterIn::Header),
    );
    let body = op.request_body.is_some();
    let writes = method != "get";
    // Operator operations name their role in their one-line summary; clients show the
    // description, so it says the same.
    let operator = op.tags.iter().flatten().any(|t| t == "operator");
    if operator {
        let summary = op.summary.clone().unwrap_or_default();
        match &mut op.description {
            Some(d) if d.contains("role `") => {}
            Some(d) => *d = format!("{summary}\n\n{d}"),
            None => op.description = Some(summary),
        }
    }

    if is(SESSION_OPTIONAL) {
        // Either no credentials or the session cookie.
        op.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new(SESSION_SCHEME, Vec::<String>::new()),
        ]);
    } else if !is(PUBLIC) {
        // Either credential: the session cookie, or a request signed with an access key.
        op.security = Some(vec![
            SecurityRequirement::new(SESSION_SCHEME, Vec::<String>::new()),
            SecurityRequirement::new(ACCESS_KEY_SCHEME, Vec::<String>::new()),
        ]);
        add(
            op,
            401,
            "Log in first: no session cookie, or the session ended",
        );
        add(
            op,
            429,
            "Too many refused signed requests from this address; see `Retry-After`",
        );
        add(
            op,
            503,
            "A signed request the node could not yet check against the signatures accepted \
             before (they are being handed over between nodes); try again after `Retry-After`",
        );
    }
    if body || in_path {
        add(
            op,
            400,
            "Malformed request: the body is not JSON sent as `application/json`, is larger than \
             1 MiB, or a path segment does not decode",
        );
    }
    if writes {
        add(
            op,
            403,
            "Cross-site request refused: a browser write carrying the session cookie came from \
             another site's page",
        );
    }
    if in_path {
        add(op, 404, "Nothing with this id (or not yours)");
    }
    if body || in_query || in_header {
        add(
            op,
            422,
            "Invalid input: `field` names the input at fault, as the API spells it",
        );
    }
    if is(THROTTLED) {
        add(
            op,
            429,
            "Too many attempts from this address (or at this account); see `Retry-After`",
        );
        add(
            op,
            503,
            "Busy checking passwords; try again after `Retry-After`",
        );
    }
    for status in ["429", "503"] {
        if let Some(RefOr::T(r)) = op.responses.responses.get_mut(status) {
            r.headers.insert("Retry-After".to_owned(), retry_after());
        }
    }
    add(
        op,
        500,
        "Internal error: a bug or an outage; the details are logged, not shown",
    );

    // Every error answer is a problem document, whatever the handler wrote.
    for (status, response) in op.responses.responses.iter_mut() {
        if let (false, RefOr::T(r)) = (status.starts_with('2'), response) {
            r.content.clear();
            r.content.insert(
                PROBLEM_JSON.to_owned(),
                Content::new(Some(Ref::from_schema_name(Problem::name()))),
            );
        }
    }
}

/// Documents `status` on `op`; when the handler already did, adds `why` to its description.
fn add(op: &mut Operation, status: u16, why: &str) {
    let responses = &mut op.responses.responses;
    match responses.get_mut(&status.to_string()) {
        Some(RefOr::T(r)) if r.description.is_empty() => r.description = why.to_owned(),
        Some(RefOr::T(r)) if !r.description.contains(why) => {
            r.description = format!("{}; or: {why}", r.description)
        }
        Some(_) => {}
        None => {
            responses.insert(status.to_string(), RefOr::T(Response::new(why)));
        }
    }
}

fn retry_after() -> Header {
    let mut h = Header::new(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1)),
    );
    h.description = Some("Seconds to wait before trying again.".to_owned());
    h
}

fn openapi_operation() -> Operation {
    OperationBuilder::new()
        .operation_id(Some("openapi"))
        .tag("system")
        .summary(Some("This document"))
        .description(Some(
            "The OpenAPI 3.1 document: the whole contract of this API.",
        ))
        .response(
            "200",
            Response::builder()
                .description("The OpenAPI 3.1 document")
                .content(
                    "application/json",
                    Content::new(Some(ObjectBuilder::new().schema_type(Type::Object))),
                )
                .build(),
        )
        .build()
}
