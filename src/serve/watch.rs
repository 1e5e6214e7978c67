//! The watch page of `livestream serve`: one page per live stream (`/watch/APP/NAME`) that
//! plays it in any current browser, with the live latency and the rendition on screen.
//!
//! The page loads hls.js from a pinned URL with its subresource-integrity hash (jsDelivr's
//! copy of the npm release), or from where `--player-script` says: another URL, or a file
//! that serve then serves itself at [`LOCAL_SCRIPT_PATH`], for machines without internet.
//! Depends on the stream manager for the list of streams, and on nothing of the media path.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::index::escape;
use crate::worker::manager::StreamManager;

/// The hls.js release the pages use by default: the version tests/player/package.json pins.
const HLS_JS_URL: &str = "https://cdn.jsdelivr.net/npm/hls.js@1.7.4/dist/hls.min.js";
/// sha384 of `dist/hls.min.js` in the npm tarball of hls.js 1.7.4, base64.
const HLS_JS_INTEGRITY: &str = "sha384-p9vgU/7IYJWd3I4STrtqxqR/2cAQlhIX7D/HrTnIMEjjcUox165b7se7sxmm3zDg";
/// Where serve answers with the file given to `--player-script`.
pub const LOCAL_SCRIPT_PATH: &str = "/assets/hls.min.js";

const TEMPLATE: &str = include_str!("watch.html");

/// Where the watch pages load hls.js from.
#[derive(Clone, Debug, PartialEq)]
pub enum PlayerScript {
    /// The pinned release on jsDelivr, checked by its integrity hash.
    Pinned,
    /// Another URL (an own CDN, a mirror), loaded as is.
    Url(String),
    /// A local copy, served by serve at [`LOCAL_SCRIPT_PATH`].
    File(PathBuf),
}

impl PlayerScript {
    /// From the `--player-script` option: an `http(s)://` URL, else a file.
    pub fn from_option(option: Option<&str>) -> Self {
        match option {
            None | Some("") => Self::Pinned,
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => Self::Url(url.to_string()),
            Some(file) => Self::File(PathBuf::from(file)),
        }
    }

    /// The script's URL and integrity hash, as the page names them.
    fn source(&self) -> (&str, &str) {
        match self {
            Self::Pinned => (HLS_JS_URL, HLS_JS_INTEGRITY),
            Self::Url(url) => (url, ""),
            Self::File(_) => (LOCAL_SCRIPT_PATH, ""),
        }
    }
}

/// Renders the watch page of `stream` (`APP/NAME`) playing `playlist`.
pub fn render(stream: &str, playlist: &str, script: &PlayerScript) -> String {
    let (script_url, integrity) = script.source();
    fill(
        TEMPLATE,
        &[
            ("title", &escape(stream)),
            ("playlist", &escape(playlist)),
            ("script", &escape(script_url)),
            ("integrity", &escape(integrity)),
        ],
    )
}

/// Replaces each `{{name}}` of `template` in one pass, so that a value can never be read as
/// a placeholder.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| values.iter().find(|(name, _)| *name == &after[..end]).map(|v| (end, v)))
        {
            Some((end, (_, value))) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Clone)]
struct WatchState {
    manager: Arc<StreamManager>,
    script: Arc<PlayerScript>,
}

/// `/watch/APP/NAME` for the streams the manager knows, and the local player script.
pub fn routes(manager: Arc<StreamManager>, script: PlayerScript) -> Router {
    let state = WatchState { manager, script: Arc::new(script) };
    Router::new()
        .route("/watch/{*stream}", get(watch_page))
        .route(LOCAL_SCRIPT_PATH, get(local_script))
        .with_state(state)
}

async fn watch_page(State(state): State<WatchState>, UrlPath(stream): UrlPath<String>) -> Response {
    let stream = stream.trim_end_matches('/');
    if !state.manager.list().iter().any(|(path, _)| path == stream) {
        let body = format!(
            "<!doctype html><meta charset=\"utf-8\"><title>livestream</title><p>No stream {} here. \
             <a href=\"/\">All live streams</a></p>\n",
            escape(stream)
        );
        return (StatusCode::NOT_FOUND, Html(body)).into_response();
    }
    let mut response = Html(render(stream, &format!("/{stream}/master.m3u8"), &state.script)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn local_script(State(state): State<WatchState>) -> Response {
    let PlayerScript::File(file) = state.script.as_ref() else {
        return (StatusCode::NOT_FOUND, "no local player script\n").into_response();
    };
    match tokio::fs::read(file).await {
        Ok(body) => {
            let mut response = body.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
            response
        }
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read the player script");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the player script\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_script_carries_its_integrity_hash() {
        let page = render("live/demo", "/live/demo/master.m3u8", &PlayerScript::Pinned);
        assert!(page.contains(&format!("data-script=\"{HLS_JS_URL}\"")), "{page}");
        assert!(page.contains(&format!("data-integrity=\"{HLS_JS_INTEGRITY}\"")), "{page}");
        assert!(page.contains("data-src=\"/live/demo/master.m3u8\""));
        assert!(!page.contains("{{"), "every placeholder is filled: {page}");
    }

    #[test]
    fn another_script_is_loaded_without_a_hash() {
        let page = render("live/demo", "/p.m3u8", &PlayerScript::from_option(Some("https://cdn.example/hls.js")));
        assert!(page.contains("data-script=\"https://cdn.example/hls.js\" data-integrity=\"\""), "{page}");
        let page = render("live/demo", "/p.m3u8", &PlayerScript::from_option(Some("/opt/hls.min.js")));
        assert!(page.contains(&format!("data-script=\"{LOCAL_SCRIPT_PATH}\"")), "{page}");
        assert_eq!(PlayerScript::from_option(None), PlayerScript::Pinned);
    }

    #[test]
    fn names_are_escaped_and_never_read_as_placeholders() {
        let page = render("<b>\"{{playlist}}", "/x\"><script>", &PlayerScript::Pinned);
        assert!(!page.contains("<b>") && !page.contains("\"><script>"), "{page}");
        assert!(page.contains("&lt;b&gt;&quot;{{playlist}}"), "{page}");
    }
}
