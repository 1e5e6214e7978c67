//! Where the gateway's route table comes from, kept current: a Secret that the operator
//! writes (watched through the API, so a new stream routes within a second), or a file
//! (read again when it changes) for a gateway outside Kubernetes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::routes::{ROUTES_KEY, RouteTable};

/// How often a routes file is read for changes.
const FILE_POLL: Duration = Duration::from_secs(1);

/// Errors of the route sources.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading the routes file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the routes in {origin} are not a route table: {source}")]
    Parse { origin: String, source: serde_json::Error },
    #[error("the routes Secret must be named NAMESPACE/NAME, not {0:?}")]
    SecretName(String),
    #[error("connecting to Kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

fn parse(origin: &str, text: &[u8]) -> Result<RouteTable, SourceError> {
    serde_json::from_slice(text).map_err(|source| SourceError::Parse { origin: origin.to_string(), source })
}

/// Reads `path` now (an unreadable or malformed file is an error), then again whenever it
/// changes, until `stop`; a change that does not parse keeps the last table, with a warning.
pub async fn from_file(
    path: PathBuf,
    stop: CancellationToken,
) -> Result<(watch::Receiver<Arc<RouteTable>>, tokio::task::JoinHandle<()>), SourceError> {
    let read = |path: &PathBuf| std::fs::read(path).map_err(|source| SourceError::Read { path: path.clone(), source });
    let mut last = read(&path)?;
    let (tx, rx) = watch::channel(Arc::new(parse(&path.display().to_string(), &last)?));
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(FILE_POLL) => {}
                () = stop.cancelled() => return,
            }
            match read(&path) {
                Ok(text) if text != last => {
                    match parse(&path.display().to_string(), &text) {
                        Ok(table) => {
                            tracing::info!(routes = table.routes.len(), "routes changed");
                            tx.send_replace(Arc::new(table));
                        }
                        Err(error) => tracing::warn!(%error, "keeping the last routes"),
                    }
                    last = text;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "keeping the last routes"),
            }
        }
    });
    Ok((rx, task))
}

/// Watches the Secret `namespace/name` until `stop`. Until it exists the table is empty;
/// `ready` turns true once the first answer of the API server was read.
pub async fn from_secret(
    qualified_name: &str,
    stop: CancellationToken,
    ready: watch::Sender<bool>,
) -> Result<(watch::Receiver<Arc<RouteTable>>, tokio::task::JoinHandle<()>), SourceError> {
    let (namespace, name) = qualified_name
        .split_once('/')
        .filter(|(namespace, name)| !namespace.is_empty() && !name.is_empty())
        .ok_or_else(|| SourceError::SecretName(qualified_name.to_string()))?;
    let client = kube::Client::try_default().await?;
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let origin = format!("Secret {qualified_name}");
    let (tx, rx) = watch::channel(Arc::new(RouteTable::default()));
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        // Whether a (re)list found the Secret: one that did not, found none.
        let mut listed = false;
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                () = stop.cancelled() => return,
            };
            match event {
                Some(Ok(watcher::Event::Apply(secret) | watcher::Event::InitApply(secret))) => {
                    listed = true;
                    let data = secret.data.as_ref().and_then(|data| data.get(ROUTES_KEY));
                    match data.map(|bytes| parse(&origin, &bytes.0)) {
                        Some(Ok(table)) => {
                            tracing::info!(routes = table.routes.len(), "routes changed");
                            tx.send_replace(Arc::new(table));
                        }
                        Some(Err(error)) => tracing::warn!(%error, "keeping the last routes"),
                        None => tracing::warn!(secret = %origin, key = ROUTES_KEY, "the routes Secret has no routes"),
                    }
                }
                Some(Ok(watcher::Event::Delete(_))) => {
                    tracing::warn!(secret = %origin, "the routes Secret was deleted: no stream routes");
                    tx.send_replace(Arc::new(RouteTable::default()));
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    if !listed {
                        tracing::warn!(secret = %origin, "no routes Secret yet: no stream routes");
                        tx.send_replace(Arc::new(RouteTable::default()));
                    }
                    ready.send_replace(true);
                }
                Some(Ok(watcher::Event::Init)) => listed = false,
                Some(Err(error)) => tracing::warn!(%error, secret = %origin, "watching the routes failed; retrying"),
                None => return,
            }
        }
    });
    Ok((rx, task))
}
