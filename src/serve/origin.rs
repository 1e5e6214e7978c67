//! The HTTP origin of `livestream serve`: the HLS objects of the local storage directory,
//! with the same Content-Type and Cache-Control that S3 uploads carry, and CORS open so
//! that players on any page can read them.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::storage::ObjectKind;

/// Shared state of the origin: the storage root.
#[derive(Clone, Debug)]
pub struct Origin {
    root: PathBuf,
}

impl Origin {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Maps a URL path to a file under the root, refusing anything that could escape it
    /// (the same rules as storage keys).
    fn resolve(&self, url_path: &str) -> Option<PathBuf> {
        crate::storage::key::validate_key(url_path).ok()?;
        Some(self.root.join(url_path))
    }
}

/// GET or HEAD of one object.
pub async fn get_object(method: Method, State(origin): State<Origin>, UrlPath(path): UrlPath<String>) -> Response {
    let Some(kind) = ObjectKind::from_key(&path) else {
        return (StatusCode::NOT_FOUND, "not an HLS object\n").into_response();
    };
    let Some(file) = origin.resolve(&path) else {
        return (StatusCode::BAD_REQUEST, "invalid path\n").into_response();
    };
    let body = match tokio::fs::read(&file).await {
        Ok(body) => body,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return not_found();
        }
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => return not_found(),
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "cannot read object");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot read object\n").into_response();
        }
    };
    let length = body.len();
    let mut response =
        if method == Method::HEAD { Response::new(Body::empty()) } else { Response::new(Body::from(body)) };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(kind.cache_control()));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

fn not_found() -> Response {
    // Short negative caching: a playlist that does not exist yet may appear in a moment.
    let mut response = (StatusCode::NOT_FOUND, "not found\n").into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape_the_root() {
        let origin = Origin::new(PathBuf::from("/data"));
        assert_eq!(origin.resolve("live/demo/master.m3u8"), Some(PathBuf::from("/data/live/demo/master.m3u8")));
        assert_eq!(origin.resolve("../etc/passwd"), None);
        assert_eq!(origin.resolve("live/../../etc/passwd"), None);
        assert_eq!(origin.resolve("/etc/passwd"), None);
        assert_eq!(origin.resolve("live/./demo"), None);
        assert_eq!(origin.resolve(""), None);
    }
}
