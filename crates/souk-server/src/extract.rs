//! Request extractors whose rejections are problem+json naming the field at fault.

use crate::error::AppError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The largest JSON body souk accepts.
const MAX_BODY: usize = 1 << 20;

/// A JSON body; a body that does not parse is answered with the path of the bad field.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            // Requiring JSON also keeps plain HTML forms on other sites from posting here.
            return Err(AppError::BadRequest(
                "send a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        if bytes.len() > MAX_BODY {
            return Err(AppError::BadRequest("the body is larger than 1 MiB".into()));
        }
        parse_json(&bytes).map(Body)
    }
}

fn field_of(path: &str, message: &str) -> String {
    // serde reports a missing field at its parent's path; name the field itself.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(f)) | ("", Some(f)) => f.to_owned(),
        (p, Some(f)) => format!("{p}.{f}"),
        (".", None) | ("", None) => "body".to_owned(),
        (p, None) => p.to_owned(),
    }
}

/// Parses JSON, naming the field that failed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            AppError::BadRequest(format!("the body is not valid JSON: {inner}"))
        } else {
            let message = inner.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            AppError::invalid(field_of(&path, &message), message)
        }
    })
}

/// Path parameters; one that does not decode (percent-encoded bytes that are not UTF-8) is
/// answered as a malformed request.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| AppError::BadRequest(e.body_text()))
    }
}

/// Query parameters; a bad one is answered as a validation problem.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                AppError::invalid(field_of(&path, &message), message)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Plan {
        name: String,
        price: u32,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Product {
        name: String,
        plans: Vec<Plan>,
    }

    fn field(json: &str) -> String {
        match parse_json::<Product>(json.as_bytes()) {
            Err(AppError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_the_field_at_fault() {
        assert_eq!(field(r#"{"plans":[]}"#), "name");
        assert_eq!(
            field(r#"{"name":"x","plans":[{"name":"a","price":"x"}]}"#),
            "plans[0].price"
        );
        assert_eq!(
            field(r#"{"name":"x","plans":[{"price":1}]}"#),
            "plans[0].name"
        );
        assert!(matches!(
            parse_json::<Product>(b"{"),
            Err(AppError::BadRequest(_))
        ));
    }
}
