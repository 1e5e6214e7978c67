//! The HTTP origin: low-latency HLS playlists straight from the packager's memory, with
//! blocking playlist reloads (`_HLS_msn`, `_HLS_part`) and delta updates (`_HLS_skip`),
//! and, for `livestream serve`, the objects of its local storage directory (where a
//! request for the hinted part waits until the part exists).
//!
//! A worker's origin serves playlists only: their media URIs point at the bucket (or the
//! CDN in front of it), which serves media. Holding requests is bounded: at most
//! [`MAX_HOLDS`] at once and three target durations each, as RFC 8216bis asks; a request
//! further ahead than two segments is refused.

mod files;
mod index;

pub use index::{IndexOptions, LiveIndex, Readiness, StreamIndex, Target};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tokio::sync::Semaphore;

/// Most requests held at once by one origin; more are answered 503 at once.
pub const MAX_HOLDS: usize = 4096;
/// Longest hold when the playlist does not say its target duration yet.
const DEFAULT_HOLD: Duration = Duration::from_secs(6);
/// Cache lifetime of playlist responses that were not blocking: at most half a part target
/// at the default part target is not expressible, one second is the shortest.
const PLAYLIST_MAX_AGE: &str = "max-age=1";

/// What an origin serves.
#[derive(Clone)]
pub struct Origin {
    index: Arc<LiveIndex>,
    /// The local storage directory, for `livestream serve`.
    files: Option<PathBuf>,
    holds: Arc<Semaphore>,
}

impl Origin {
    /// An origin of low-latency playlists only (a worker's).
    pub fn playlists(index: Arc<LiveIndex>) -> Self {
        Self { index, files: None, holds: Arc::new(Semaphore::new(MAX_HOLDS)) }
    }

    /// At most `holds` requests waiting at once, instead of [`MAX_HOLDS`].
    pub fn with_hold_limit(self, holds: usize) -> Self {
        Self { holds: Arc::new(Semaphore::new(holds)), ..self }
    }

    /// An origin of low-latency playlists and of the objects under `root`.
    pub fn with_files(index: Arc<LiveIndex>, root: PathBuf) -> Self {
        Self { files: Some(root), ..Self::playlists(index) }
    }

    /// Every path of the origin, for GET, HEAD and CORS preflights.
    pub fn router(self) -> Router {
        Router::new().route("/{*path}", any(handle)).with_state(self)
    }
}

/// The blocking-reload parameters of a playlist request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reload {
    pub msn: Option<u64>,
    pub part: Option<u32>,
    pub skip: bool,
}

impl Reload {
    /// Reads `_HLS_msn`, `_HLS_part` and `_HLS_skip` from a query string; other parameters
    /// are ignored. A part without a segment number, or a value that is not a number, is
    /// an error.
    pub fn parse(query: Option<&str>) -> Result<Self, &'static str> {
        let mut reload = Reload::default();
        for pair in query.unwrap_or_default().split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "_HLS_msn" => reload.msn = Some(value.parse().map_err(|_| "_HLS_msn is not a number")?),
                "_HLS_part" => reload.part = Some(value.parse().map_err(|_| "_HLS_part is not a number")?),
                "_HLS_skip" => reload.skip = matches!(value, "YES" | "v2"),
                _ => {}
            }
        }
        if reload.part.is_some() && reload.msn.is_none() {
            return Err("_HLS_part needs _HLS_msn");
        }
        Ok(reload)
    }
}

async fn handle(
    method: Method,
    headers: HeaderMap,
    State(origin): State<Origin>,
    UrlPath(path): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut response = match method {
        Method::OPTIONS => preflight(),
        Method::GET | Method::HEAD => {
            let range = headers.get(header::RANGE).and_then(|value| value.to_str().ok());
            get(&origin, &method, &path, query.as_deref(), range).await
        }
        _ => (StatusCode::METHOD_NOT_ALLOWED, "GET, HEAD or OPTIONS\n").into_response(),
    };
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if method == Method::HEAD {
        *response.body_mut() = axum::body::Body::empty();
    }
    response
}

fn preflight() -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, OPTIONS"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    (StatusCode::NO_CONTENT, headers).into_response()
}

async fn get(origin: &Origin, method: &Method, path: &str, query: Option<&str>, range: Option<&str>) -> Response {
    if let Some((stream, target)) = origin.index.resolve(path) {
        match target {
            Target::Master => {
                if let Some(master) = stream.master() {
                    return playlist_response(master.to_string(), PLAYLIST_MAX_AGE.into());
                }
            }
            Target::MediaPlaylist(rendition) => return media_playlist(origin, &stream, rendition, query).await,
            Target::Part { rendition, msn, part } => {
                if origin.files.is_some() {
                    // The hinted part: a player asks for it before it exists.
                    if let Err(refused) = hold(origin, &stream, rendition, Awaited::PartFile { msn, part }).await {
                        return refused;
                    }
                }
            }
        }
    }
    match &origin.files {
        Some(root) => files::serve(root, method, path, range).await,
        None => files::not_found(),
    }
}

async fn media_playlist(origin: &Origin, stream: &StreamIndex, rendition: usize, query: Option<&str>) -> Response {
    let reload = match Reload::parse(query) {
        Ok(reload) => reload,
        Err(message) => return (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response(),
    };
    let cache = match reload.msn {
        Some(msn) => {
            if let Err(refused) = hold(origin, stream, rendition, Awaited::Playlist { msn, part: reload.part }).await {
                return refused;
            }
            // The answer to a blocking request holds what was asked for however old it
            // gets, so a CDN may keep it (per query string) while viewers ask for it.
            let target = stream.target_duration(rendition).unwrap_or(DEFAULT_HOLD / 3);
            format!("max-age={}", (target * 6).as_secs())
        }
        None => PLAYLIST_MAX_AGE.into(),
    };
    match stream.render(rendition, reload.skip) {
        Some(text) => playlist_response(text, cache),
        None => files::not_found(),
    }
}

/// What a held request waits for.
#[derive(Clone, Copy, Debug)]
enum Awaited {
    /// A playlist holding segment `msn` (and `part`), or later media.
    Playlist { msn: u64, part: Option<u32> },
    /// The file of a part: it is written once the playlist lists it, or once its segment
    /// is whole.
    PartFile { msn: u64, part: u32 },
}

impl Awaited {
    fn readiness(self, stream: &StreamIndex, rendition: usize) -> Readiness {
        match self {
            Awaited::Playlist { msn, part } => stream.readiness(rendition, msn, part),
            Awaited::PartFile { msn, part } => stream.part_readiness(rendition, msn, part),
        }
    }
}

/// Waits until the playlist of `rendition` holds what is awaited, at most three target
/// durations; the refusal to send when it cannot.
async fn hold(origin: &Origin, stream: &StreamIndex, rendition: usize, awaited: Awaited) -> Result<(), Response> {
    let mut changes = stream.subscribe();
    let limit = stream.target_duration(rendition).map_or(DEFAULT_HOLD, |target| target * 3);
    let deadline = tokio::time::Instant::now() + limit;
    let mut permit = None;
    loop {
        changes.borrow_and_update();
        match awaited.readiness(stream, rendition) {
            Readiness::Ready => return Ok(()),
            Readiness::TooFar => {
                return Err((StatusCode::BAD_REQUEST, "_HLS_msn is more than two segments ahead\n").into_response());
            }
            Readiness::Wait | Readiness::Unknown => {}
        }
        if permit.is_none() {
            match origin.holds.clone().try_acquire_owned() {
                Ok(acquired) => permit = Some(acquired),
                Err(_) => return Err(unavailable("too many requests are waiting")),
            }
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(unavailable("the playlist did not reach the requested part in time")),
        }
    }
}

fn unavailable(message: &str) -> Response {
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, format!("{message}\n")).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn playlist_response(text: String, cache_control: String) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.apple.mpegurl"));
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;

    use super::*;
    use crate::package::{LowLatencyPlaylist, PartRecord, SegmentRecord, low_latency::OpenSegmentView};

    fn playlist(parts: usize) -> LowLatencyPlaylist {
        LowLatencyPlaylist {
            rendition: "720p".into(),
            target_duration_s: 1,
            window: Vec::new(),
            recent_parts: Vec::new(),
            open: Some(OpenSegmentView {
                sequence: 0,
                discontinuity: false,
                discontinuity_number: 0,
                starts_at: Timestamp::UNIX_EPOCH,
                parts: vec![PartRecord { duration: Duration::from_millis(500), independent: true }; parts],
            }),
            next_sequence: 0,
            empty_discontinuity_sequence: 0,
            ended: false,
        }
    }

    /// An origin on a loopback port with one stream `live/demo` of one rendition.
    async fn origin(holds: usize) -> (String, Arc<StreamIndex>, Origin) {
        let index = LiveIndex::new();
        let options = IndexOptions { part_target: Duration::from_millis(500), media_base: None };
        let stream = index.register("live/demo", vec!["720p".into()], options);
        stream.update(0, playlist(1));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let origin = Origin::playlists(index).with_hold_limit(holds);
        let router = origin.clone().router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (format!("http://{address}/live/demo/720p/index.m3u8"), stream, origin)
    }

    #[tokio::test]
    async fn holds_are_bounded_and_released_by_the_part() {
        let (url, stream, origin) = origin(2).await;
        let client = reqwest::Client::new();
        let blocking = format!("{url}?_HLS_msn=0&_HLS_part=1");
        let held: Vec<_> = (0..2).map(|_| tokio::spawn(client.get(&blocking).send())).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while origin.holds.available_permits() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "the two requests are not held");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let started = std::time::Instant::now();
        let third = client.get(&blocking).send().await.unwrap();
        assert_eq!(third.status(), 503, "a hold beyond the limit is refused");
        assert!(started.elapsed() < Duration::from_secs(1), "at once");
        assert_eq!(third.headers()["cache-control"], "no-cache");
        // Not refused: answered without a hold.
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
        stream.update(0, playlist(2));
        for request in held {
            let response = tokio::time::timeout(Duration::from_secs(5), request).await.unwrap().unwrap().unwrap();
            assert_eq!(response.status(), 200);
            assert!(response.text().await.unwrap().contains("URI=\"0.1.m4s\""));
        }
    }

    #[tokio::test]
    async fn a_hold_ends_after_three_target_durations() {
        let (url, _stream, _origin) = origin(8).await;
        let started = std::time::Instant::now();
        let response = reqwest::get(format!("{url}?_HLS_msn=0&_HLS_part=1")).await.unwrap();
        assert_eq!(response.status(), 503);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(3) && waited < Duration::from_secs(5), "{waited:?}");
    }

    /// The segment closed with parts that its playlist does not list: their files are
    /// served at once, not held for parts that will never be listed.
    #[tokio::test]
    async fn the_part_of_a_whole_segment_is_served_without_a_hold() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("live/demo/720p");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0.1.m4s"), b"part").unwrap();
        let index = LiveIndex::new();
        let options = IndexOptions { part_target: Duration::from_millis(500), media_base: None };
        let stream = index.register("live/demo", vec!["720p".into()], options);
        let mut whole = playlist(0);
        whole.open = None;
        whole.next_sequence = 1;
        whole.window = vec![SegmentRecord {
            sequence: 0,
            duration: Duration::from_millis(900),
            listed_duration: Duration::from_millis(900),
            discontinuity: false,
            discontinuity_number: 0,
            program_date_time: Timestamp::UNIX_EPOCH,
            bytes: 4,
            parts: Some(2),
        }];
        stream.update(0, whole);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Origin::with_files(index, root.path().to_path_buf()).router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let started = std::time::Instant::now();
        let response = reqwest::get(format!("http://{address}/live/demo/720p/0.1.m4s")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(2), "not held: {:?}", started.elapsed());
        let missing = reqwest::get(format!("http://{address}/live/demo/720p/0.2.m4s")).await.unwrap();
        assert_eq!(missing.status(), 404, "a part its whole segment never had");
    }

    #[test]
    fn reload_parameters() {
        assert_eq!(Reload::parse(None), Ok(Reload::default()));
        assert_eq!(
            Reload::parse(Some("_HLS_msn=42&_HLS_part=3&_HLS_skip=YES&t=1")),
            Ok(Reload { msn: Some(42), part: Some(3), skip: true })
        );
        assert_eq!(Reload::parse(Some("_HLS_skip=v2")).map(|r| r.skip), Ok(true));
        assert_eq!(Reload::parse(Some("_HLS_skip=NO")).map(|r| r.skip), Ok(false));
        assert!(Reload::parse(Some("_HLS_part=1")).is_err());
        assert!(Reload::parse(Some("_HLS_msn=abc")).is_err());
        assert!(Reload::parse(Some("_HLS_msn=-1")).is_err());
    }
}
