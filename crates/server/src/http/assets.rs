//! The web UI: static files embedded in the binary at build time from
//! `crates/server/ui/`, so nothing else is installed or fetched (no CDN).
//! The UI is a single page that talks to `/api/` like any other client.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use include_dir::{include_dir, Dir};
use std::sync::Arc;

use super::Api;

static UI: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/ui");

pub(crate) fn router() -> Router<Arc<Api>> {
    Router::new()
        .route("/", get(|| async { file("index.html") }))
        .route(
            "/{*path}",
            get(|Path(p): Path<String>| async move { file(&p) }),
        )
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn file(path: &str) -> Response {
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let Some(f) = UI.get_file(path) else {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    };
    let mut resp = f.contents().into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    // The assets change with the binary; revalidate rather than guess.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
        ),
    );
    resp
}
