//! Refuses browser writes that another site started (cross-site request forgery). A
//! state-changing request (POST, PUT, PATCH, DELETE) that carries the session cookie must come
//! from souk's own pages: `Sec-Fetch-Site: cross-site` is refused, and an `Origin` must be
//! souk's own (the request's `Host`, or the configured public URL). Requests without the cookie,
//! or from programs that send neither header (curl, SDKs), pass: they cannot be forged by a
//! page in someone's browser.

use crate::error::AppError;
use crate::SharedState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The middleware.
pub async fn guard(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let writes = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if writes && crate::auth::session_token(req.headers()).is_some() {
        if let Some(why) = cross_site(&state, req.headers()) {
            return AppError::CrossSite(why).into_response();
        }
    }
    next.run(req).await
}

/// Why these headers show a request another site started, or `None`.
pub fn cross_site(state: &SharedState, headers: &HeaderMap) -> Option<String> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    match fetch_site.as_deref() {
        Some("cross-site") => {
            return Some("a page on another site may not change things here".into())
        }
        // The browser vouches that souk's own page (or the user, typing) sent it.
        Some("same-origin") | Some("none") => return None,
        _ => {}
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("null").trim();
    let own_host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let authority = origin.split_once("://").map(|(_, a)| a);
    let same_host =
        matches!((authority, own_host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h));
    let public = state
        .settings
        .public_url
        .as_deref()
        .map(public_origin)
        .is_some_and(|p| p.eq_ignore_ascii_case(origin));
    if same_host || public {
        None
    } else {
        Some(format!(
            "a page from {origin} may not change things here; use souk's own pages"
        ))
    }
}

/// `https://market.example.com/some/path` -> `https://market.example.com`.
fn public_origin(url: &str) -> &str {
    let url = url.trim();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest
                .find(['/', '?', '#'])
                .map_or(url.len(), |i| scheme.len() + 3 + i);
            &url[..end]
        }
        None => url,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_public_origin_is_scheme_and_authority() {
        assert_eq!(
            super::public_origin("https://m.example.com/x?y"),
            "https://m.example.com"
        );
        assert_eq!(
            super::public_origin("https://m.example.com"),
            "https://m.example.com"
        );
    }
}
