//! `livestream serve`: the worker as one standalone process. RTMP and SRT in, the HLS ladder on
//! local disk (or S3), served over HTTP with an index page of the live streams.

mod index;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Html;
use axum::routing::get;

use crate::api::{BehindPolicy, HlsSpec, LadderSpec, SegmentContainer};
use crate::ingest::listener::TlsFiles;
use crate::origin::{LiveIndex, Origin};
use crate::storage::{AnyStore, LocalStore, S3Settings, S3Store};
use crate::worker::config::credentials_from_env;
use crate::worker::keys::{KeyConfigError, KeyPolicy};
use crate::worker::manager::{ManagerSettings, PrefixRule, StreamManager};
use crate::worker::runtime::{self, Addresses, Bound, ScratchUse, SrtIngest};

pub use index::{Listing, render as render_index};

/// Options of `livestream serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Where encoders push RTMP.
    #[arg(long, default_value = "0.0.0.0:1935", env = "LIVESTREAM_RTMP_ADDR")]
    pub rtmp_addr: SocketAddr,
    /// Where encoders push RTMPS (with --tls-cert and --tls-key).
    #[arg(long, default_value = "0.0.0.0:1936", env = "LIVESTREAM_RTMPS_ADDR")]
    pub rtmps_addr: SocketAddr,
    /// PEM certificate chain for RTMPS; with --tls-key, serve RTMPS beside RTMP. A changed
    /// file is read again within seconds.
    #[arg(long, env = "LIVESTREAM_TLS_CERT", requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "LIVESTREAM_TLS_KEY", requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// SRT ingest beside RTMP (UDP, on --srt-addr).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL", env = "LIVESTREAM_SRT")]
    pub srt: bool,
    /// Where encoders push SRT (UDP), with the stream ID `#!::r=APP/NAME,m=publish`.
    #[arg(long, default_value = "0.0.0.0:9000", env = "LIVESTREAM_SRT_ADDR")]
    pub srt_addr: SocketAddr,
    /// SRT receiver latency in milliseconds (libsrt's and ffmpeg's default): how long
    /// packets are held to recover losses; the larger of this and the encoder's applies.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(20..=8000))]
    pub srt_latency_ms: u64,
    /// SRT encryption (AES): callers must send this passphrase (10 to 79 characters).
    #[arg(long, env = "LIVESTREAM_SRT_PASSPHRASE", hide_env_values = true, value_name = "PASSPHRASE")]
    pub srt_passphrase: Option<String>,
    /// The RTMP application encoders publish to (`rtmp://HOST:PORT/APP/NAME`); publishes to
    /// any other application are refused.
    #[arg(long, default_value = "live", env = "LIVESTREAM_RTMP_APP")]
    pub app: String,
    /// Where the HLS, the index page, health and metrics are served.
    #[arg(long, default_value = "0.0.0.0:8080", env = "LIVESTREAM_HTTP_ADDR")]
    pub http_addr: SocketAddr,
    /// Directory of the HLS output (when not writing to S3).
    #[arg(long, default_value = "./livestream-data", env = "LIVESTREAM_DATA_DIR")]
    pub data_dir: PathBuf,
    /// A stream allowed to publish, as NAME=KEY (repeatable). Without keys, any stream
    /// name may publish.
    #[arg(long = "stream-key", value_name = "NAME=KEY")]
    pub stream_keys: Vec<String>,
    /// A file of NAME=KEY lines.
    #[arg(long, env = "LIVESTREAM_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,
    /// Segment duration in seconds.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub segment_duration: u32,
    /// Segments in the live playlists.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(3..=100))]
    pub window: u32,
    /// Segment container.
    #[arg(long, value_enum, default_value_t = Container::Fmp4)]
    pub container: Container,
    /// Keep a VOD playlist of each whole event.
    #[arg(long)]
    pub recording: bool,
    /// Low-Latency HLS for fmp4: parts, and playlists with blocking reloads from this
    /// server (standard players play the same URLs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub low_latency: bool,
    /// The longest part of Low-Latency HLS, in seconds: at most half the segment duration.
    #[arg(long, default_value_t = 0.4, value_name = "SECONDS")]
    pub part_duration: f64,
    /// With S3: the URL at which viewers reach the bucket root (a CDN in front of it), for
    /// the media of the low-latency playlists that this server serves. Default: the
    /// bucket's own URL.
    #[arg(long, env = "LIVESTREAM_MEDIA_BASE_URL")]
    pub media_base_url: Option<String>,
    /// Renditions as NAME:WIDTHxHEIGHT:KBPS, or NAME:passthrough for the source as it comes
    /// (repeatable), highest first. Default: 1080p, 720p, 480p and 360p, none above the
    /// source.
    #[arg(long = "rendition", value_name = "NAME:WxH:KBPS")]
    pub renditions: Vec<String>,
    /// x264 preset: ultrafast, superfast, veryfast, faster, fast or medium.
    #[arg(long, default_value = "veryfast")]
    pub preset: String,
    /// When ffmpeg cannot encode the ladder in real time: restart it at a faster preset
    /// (faster-preset), or only report it (report).
    #[arg(long, value_enum, default_value_t = WhenBehind::FasterPreset)]
    pub when_behind: WhenBehind,
    /// Seconds after an encoder disconnects during which a reconnect continues the stream.
    #[arg(long, default_value_t = 10)]
    pub reconnect_grace: u64,
    /// The ffmpeg binary.
    #[arg(long, default_value = "ffmpeg", env = "LIVESTREAM_FFMPEG")]
    pub ffmpeg: PathBuf,
    /// Where this server makes its scratch directory (removed when it stops). Default:
    /// the system's temporary directory.
    #[arg(long, env = "LIVESTREAM_SCRATCH_DIR")]
    pub scratch_dir: Option<PathBuf>,
    /// Write to this S3 bucket instead of the data directory (credentials from
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "LIVESTREAM_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Endpoint of an S3-compatible service, e.g. http://127.0.0.1:9000.
    #[arg(long, env = "LIVESTREAM_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, default_value = "us-east-1", env = "LIVESTREAM_S3_REGION")]
    pub s3_region: String,
    /// Path-style addressing (MinIO needs it).
    #[arg(long, env = "LIVESTREAM_S3_PATH_STYLE")]
    pub s3_path_style: bool,
    /// Key prefix in the bucket.
    #[arg(long, default_value = "", env = "LIVESTREAM_S3_PREFIX")]
    pub s3_prefix: String,
    /// Where the watch pages load hls.js from: a URL, or a local file that serve serves
    /// itself (for use without internet). Default: the pinned release on jsDelivr, checked
    /// by its integrity hash.
    #[arg(long, value_name = "URL|FILE", env = "LIVESTREAM_PLAYER_SCRIPT")]
    pub player_script: Option<String>,
}

/// Segment containers on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Fmp4,
    Ts,
}

/// `--when-behind` on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenBehind {
    FasterPreset,
    Report,
}

/// Errors of `livestream serve` before it runs.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Keys(#[from] KeyConfigError),
    #[error(
        "rendition {0:?} is not NAME:WIDTHxHEIGHT:KBPS with even sizes and a positive bitrate, nor NAME:passthrough"
    )]
    Rendition(String),
    #[error("--preset {0:?} is not one of ultrafast, superfast, veryfast, faster, fast, medium")]
    Preset(String),
    #[error("--part-duration {0} must be at least 0.1 s and at most half of --segment-duration")]
    PartDuration(f64),
    #[error("--app {0:?} must be a name of letters, digits, '.', '_' or '-'")]
    App(String),
    #[error(transparent)]
    Credentials(#[from] crate::worker::config::ConfigError),
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
}

/// Runs `livestream serve` until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<(), ServeError> {
    let shutdown = runtime::shutdown_on_signals();
    run_until(args, shutdown, |_| {}).await
}

/// Runs until `shutdown` turns true; `on_bound` learns the bound addresses.
pub async fn run_until(
    args: ServeArgs,
    shutdown: tokio::sync::watch::Receiver<bool>,
    on_bound: impl FnOnce(Bound),
) -> Result<(), ServeError> {
    let mut entries = KeyPolicy::parse_entries(args.stream_keys.iter().map(String::as_str))?;
    if let Some(file) = &args.keys_file {
        entries.extend(KeyPolicy::read_entries(file)?);
    }
    let policy = if entries.is_empty() { KeyPolicy::Open } else { KeyPolicy::from_entries(entries)? };
    let ladder = ladder_from_args(&args)?;
    let part_ms = (args.part_duration * 1000.0).round();
    if !(100.0..=f64::from(args.segment_duration) * 500.0).contains(&part_ms) {
        return Err(ServeError::PartDuration(args.part_duration));
    }
    let hls = HlsSpec {
        segment_duration_seconds: args.segment_duration,
        window_segments: args.window,
        container: match args.container {
            Container::Fmp4 => SegmentContainer::Fmp4,
            Container::Ts => SegmentContainer::Ts,
        },
        recording: args.recording,
        low_latency: args.low_latency,
        part_duration_milliseconds: part_ms as u32,
    };
    let (store, prefix, files) = match &args.s3_bucket {
        Some(bucket) => {
            let credentials = credentials_from_env("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")?;
            let mut settings = S3Settings::new(bucket.clone(), args.s3_region.clone(), credentials);
            if let Some(endpoint) = &args.s3_endpoint {
                settings = settings.with_endpoint(endpoint.clone(), args.s3_path_style);
            }
            (AnyStore::from(S3Store::new(settings)), args.s3_prefix.trim_matches('/').to_string(), None)
        }
        None => (AnyStore::from(LocalStore::new(args.data_dir.clone())), String::new(), Some(args.data_dir.clone())),
    };
    let scratch_dir = args.scratch_dir.clone().unwrap_or_else(std::env::temp_dir);
    // With S3 this server serves playlists only: their media comes from the bucket, at the
    // URL given or at the bucket's own.
    let bucket_base = args.s3_bucket.as_ref().map(|bucket| {
        crate::storage::bucket_url(bucket, &args.s3_region, args.s3_endpoint.as_deref(), args.s3_path_style)
    });
    let media_base_url = match (args.media_base_url.clone().or(bucket_base), args.s3_prefix.trim_matches('/')) {
        (Some(base), "") => Some(base.trim_end_matches('/').to_string()),
        (Some(base), prefix) => Some(format!("{}/{prefix}", base.trim_end_matches('/'))),
        (None, _) => None,
    };
    let open = policy.is_open();
    if !crate::worker::keys::is_valid_name(&args.app) {
        return Err(ServeError::App(args.app.clone()));
    }
    let settings = ManagerSettings {
        app: Some(args.app.clone()),
        policy,
        prefix: PrefixRule::PerStream(prefix),
        ladder,
        hls,
        media_base_url,
        ffmpeg: args.ffmpeg.clone(),
        scratch_dir,
        reconnect_grace: Duration::from_secs(args.reconnect_grace),
    };
    let s3_note = args.s3_bucket.clone();
    let app = args.app.clone();
    let index_app = args.app.clone();
    let player = watch::PlayerScript::from_option(args.player_script.as_deref());
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(certificate), Some(private_key)) => {
            Some(TlsFiles { certificate: certificate.clone(), private_key: private_key.clone() })
        }
        _ => None,
    };
    let addresses = Addresses {
        rtmp: args.rtmp_addr,
        rtmps: tls.map(|files| (args.rtmps_addr, files)),
        srt: args.srt.then(|| SrtIngest {
            addr: args.srt_addr,
            latency: Duration::from_millis(args.srt_latency_ms),
            passphrase: args.srt_passphrase.clone().map(crate::ingest::srt::Passphrase::new),
            default_app: args.app.clone(),
        }),
        http: args.http_addr,
        origin: None,
    };
    runtime::run(
        settings,
        store,
        addresses,
        ScratchUse::Shared,
        move |manager, index, bound| {
            let ingest = Ingest {
                app: index_app,
                port: bound.rtmp.port(),
                tls_port: bound.rtmps.map(|a| a.port()),
                srt_port: bound.srt.map(|a| a.port()),
            };
            routes(manager, index, files, player, ingest)
        },
        move |bound, _| {
            announce(bound, &app, open, s3_note.as_deref());
            on_bound(bound);
        },
        shutdown,
    )
    .await?;
    Ok(())
}

fn announce(bound: Bound, app: &str, open: bool, s3_bucket: Option<&str>) {
    let host = |addr: SocketAddr| {
        if addr.ip().is_unspecified() { format!("localhost:{}", addr.port()) } else { addr.to_string() }
    };
    let rtmp = host(bound.rtmp);
    let http = host(bound.http);
    if let Some(rtmps) = bound.rtmps {
        tracing::info!("RTMPS on rtmps://{}/{app}/", host(rtmps));
    }
    if let Some(srt) = bound.srt {
        tracing::info!("SRT on {}", srt_url(&host(srt), app, if open { "NAME" } else { "KEY" }));
    }
    if open {
        tracing::warn!(
            "no stream keys configured: any stream name may publish (use --stream-key NAME=KEY to restrict)"
        );
        tracing::info!(
            "push to rtmp://{rtmp}/{app}/NAME, for example: ffmpeg -re -i input.mp4 -c copy -f flv rtmp://{rtmp}/{app}/demo"
        );
    } else {
        tracing::info!("push to rtmp://{rtmp}/{app}/KEY with one of the configured stream keys");
    }
    match s3_bucket {
        Some(bucket) => tracing::info!("segments and playlists go to the S3 bucket {bucket}"),
        None => {
            tracing::info!("watch at http://{http}/{app}/NAME/master.m3u8; live streams are listed at http://{http}/")
        }
    }
}

#[derive(Clone)]
struct AppState {
    manager: Arc<StreamManager>,
    ingest: Ingest,
}

/// Where encoders push, for the index page.
#[derive(Clone, Debug)]
struct Ingest {
    app: String,
    port: u16,
    /// The RTMPS port, when serving it.
    tls_port: Option<u16>,
    /// The SRT port, when serving it.
    srt_port: Option<u16>,
}

/// The SRT URL an encoder such as ffmpeg publishes to, with the Access Control stream ID.
fn srt_url(host_port: &str, app: &str, name: &str) -> String {
    format!("srt://{host_port}?streamid=#!::r={app}/{name},m=publish")
}

fn routes(
    manager: Arc<StreamManager>,
    live: Arc<LiveIndex>,
    files: Option<PathBuf>,
    player: watch::PlayerScript,
    ingest: Ingest,
) -> Router {
    let state = AppState { manager: manager.clone(), ingest };
    let origin = match files {
        Some(root) => Origin::with_files(live, root),
        None => Origin::playlists(live),
    };
    Router::new()
        .route("/", get(index))
        .route("/status", get(status))
        .with_state(state)
        .merge(watch::routes(manager, player))
        .merge(origin.router())
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Html<String> {
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_string();
    let listings: Vec<Listing> = state
        .manager
        .list()
        .into_iter()
        .map(|(path, status)| Listing {
            path,
            phase: format!("{:?}", status.phase),
            bitrate_kbps: status.ingest_bitrate_kbps,
        })
        .collect();
    // The host the browser used (without its port), with the port and application that
    // this server takes publishes on.
    let rtmp_host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host.as_str(),
    };
    let Ingest { app, port, tls_port, srt_port } = &state.ingest;
    let mut ingest = vec![format!("rtmp://{rtmp_host}:{port}/{app}/NAME")];
    ingest.extend(tls_port.map(|port| format!("rtmps://{rtmp_host}:{port}/{app}/NAME")));
    ingest.extend(srt_port.map(|port| srt_url(&format!("{rtmp_host}:{port}"), app, "NAME")));
    Html(render_index(&format!("http://{host}"), &ingest, &listings))
}

async fn status(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    let streams: serde_json::Map<String, serde_json::Value> = state
        .manager
        .list()
        .into_iter()
        .map(|(path, status)| (path, serde_json::to_value(status).unwrap_or_default()))
        .collect();
    axum::Json(serde_json::json!({ "streams": streams }))
}

fn ladder_from_args(args: &ServeArgs) -> Result<LadderSpec, ServeError> {
    let renditions = args
        .renditions
        .iter()
        .map(|text| parse_rendition(text).ok_or_else(|| ServeError::Rendition(text.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let preset = serde_json::from_value(serde_json::Value::String(args.preset.clone()))
        .map_err(|_| ServeError::Preset(args.preset.clone()))?;
    Ok(LadderSpec {
        renditions,
        preset,
        // Keyframes every 2 s where that divides the segment duration, else once a segment.
        keyframe_interval_seconds: if args.segment_duration.is_multiple_of(2) { 2 } else { args.segment_duration },
        when_behind: match args.when_behind {
            WhenBehind::FasterPreset => BehindPolicy::FasterPreset,
            WhenBehind::Report => BehindPolicy::Report,
        },
        ..LadderSpec::default()
    })
}

fn parse_rendition(text: &str) -> Option<crate::api::Rendition> {
    let mut parts = text.split(':');
    let name = parts.next()?.to_string();
    let size = parts.next()?;
    if size == "passthrough" {
        let valid = parts.next().is_none() && crate::worker::keys::is_valid_name(&name);
        return valid.then(|| crate::api::Rendition { name, passthrough: true, ..Default::default() });
    }
    let (width, height) = size.split_once('x')?;
    let kbps: u32 = parts.next()?.trim_end_matches('k').parse().ok()?;
    let width: u32 = width.parse().ok()?;
    let height: u32 = height.parse().ok()?;
    if parts.next().is_some()
        || !crate::worker::keys::is_valid_name(&name)
        || !width.is_multiple_of(2)
        || !height.is_multiple_of(2)
        || width == 0
        || height == 0
        || kbps == 0
    {
        return None;
    }
    Some(crate::api::Rendition {
        name,
        width: Some(width),
        height: Some(height),
        video_bitrate_kbps: Some(kbps),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renditions_parse_from_flags() {
        let r = parse_rendition("720p:1280x720:3000").unwrap();
        assert_eq!(
            (r.name.as_str(), r.width, r.height, r.video_bitrate_kbps),
            ("720p", Some(1280), Some(720), Some(3000))
        );
        assert!(parse_rendition("720p:1281x720:3000").is_none(), "odd width");
        assert!(parse_rendition("720p:1280x720:0").is_none());
        assert!(parse_rendition("a/b:1280x720:100").is_none());
        assert!(parse_rendition("720p:1280x720").is_none());
        let source = parse_rendition("source:passthrough").unwrap();
        assert!(source.passthrough && source.width.is_none() && source.video_bitrate_kbps.is_none());
        assert!(parse_rendition("source:passthrough:3000").is_none());
    }
}
