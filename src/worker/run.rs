//! `livestream worker --config FILE`: the one stream of a LiveStream, as the operator runs it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::ingest::srt::Passphrase;
use crate::storage::{AnyStore, LocalStore, S3Settings, S3Store};

use super::config::{ConfigError, StorageConfig, WorkerConfig, credentials_from_env, read_secret_env};
use super::keys::{KeyConfigError, KeyPolicy};
use super::manager::{ManagerSettings, PrefixRule, StreamManager};
use super::runtime::{self, Addresses, Bound, RuntimeError, ScratchUse, SrtIngest};

/// Errors of `livestream worker`.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Keys(#[from] KeyConfigError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Runs the worker until SIGINT or SIGTERM. `listen_ip` replaces the IP of the configured
/// listen addresses (the pod IP, so that each pod binds its own address).
pub async fn run(config: WorkerConfig, listen_ip: Option<IpAddr>) -> Result<(), WorkerError> {
    run_until(config, listen_ip, runtime::shutdown_on_signals(), |_| {}).await
}

/// Runs until `shutdown` turns true.
pub async fn run_until(
    config: WorkerConfig,
    listen_ip: Option<IpAddr>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    on_bound: impl FnOnce(Bound),
) -> Result<(), WorkerError> {
    let key = read_secret_env(&config.rtmp.stream_key_env)?;
    let policy = KeyPolicy::single(&config.stream.name, key)?;
    let (store, prefix) = match &config.storage {
        StorageConfig::S3(s3) => {
            let credentials = credentials_from_env(&s3.access_key_id_env, &s3.secret_access_key_env)?;
            let mut settings = S3Settings::new(s3.bucket.clone(), s3.region.clone(), credentials);
            if let Some(endpoint) = &s3.endpoint {
                settings = settings.with_endpoint(endpoint.clone(), s3.force_path_style);
            }
            (AnyStore::from(S3Store::new(settings)), s3.prefix.clone())
        }
        StorageConfig::Local(local) => (AnyStore::from(LocalStore::new(local.dir.clone())), local.prefix.clone()),
    };
    let with_ip = |addr: SocketAddr| listen_ip.map_or(addr, |ip| SocketAddr::new(ip, addr.port()));
    let settings = ManagerSettings {
        app: Some(config.rtmp.app.clone()),
        policy,
        prefix: PrefixRule::Fixed(prefix),
        ladder: config.ladder.clone(),
        hls: config.hls.clone(),
        media_base_url: config.origin.media_base_url.clone(),
        ffmpeg: config.ffmpeg.clone(),
        scratch_dir: config.scratch_dir.clone(),
        reconnect_grace: config.reconnect_grace(),
    };
    let srt = match &config.srt {
        Some(srt) => Some(SrtIngest {
            addr: with_ip(srt.listen),
            latency: std::time::Duration::from_millis(u64::from(srt.latency_milliseconds)),
            passphrase: srt.passphrase_env.as_deref().map(read_secret_env).transpose()?.map(Passphrase::new),
            default_app: config.rtmp.app.clone(),
        }),
        None => None,
    };
    let identity = format!("{}/{}", config.stream.namespace, config.stream.name);
    let addresses = Addresses {
        rtmp: with_ip(config.rtmp.listen),
        rtmps: config.rtmp.tls.as_ref().map(|tls| (with_ip(tls.listen), tls.files())),
        srt,
        http: with_ip(config.http.listen),
        origin: config.hls.part_target().map(|_| with_ip(config.origin.listen)),
    };
    runtime::run(
        settings,
        store,
        addresses,
        ScratchUse::Sole,
        |manager, _, _| routes(manager),
        move |bound, _| {
            tracing::info!(
                stream = %identity,
                rtmp = %bound.rtmp,
                rtmps = ?bound.rtmps,
                srt = ?bound.srt,
                http = %bound.http,
                origin = ?bound.origin,
                "worker ready for a publish"
            );
            on_bound(bound);
        },
        shutdown,
    )
    .await?;
    Ok(())
}

fn routes(manager: Arc<StreamManager>) -> Router {
    Router::new().route("/status", get(status)).with_state(manager)
}

async fn status(State(manager): State<Arc<StreamManager>>) -> axum::Json<super::status::WorkerStatus> {
    axum::Json(manager.single_status())
}
