//! The ingest gateway's routes, kept by the operator: every reconciled stream's key (as
//! a salted digest), application and worker address, in one Secret that the gateway
//! watches. Reconciles set and remove entries; one task writes the Secret, only when
//! the table changed, so an unchanged fleet causes no writes.
//!
//! The operator starts from the Secret it finds: its salt (so digests stay the same
//! across restarts) and its routes, which stand for the streams that no reconcile has
//! visited since (so encoders keep reaching their workers while a restarted operator
//! catches up). A route goes when its stream goes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::Metrics;
use super::cache::until_ready;
use super::children::{FIELD_MANAGER, MANAGED_SELECTOR};
use crate::api::LiveStream;
use crate::gateway::routes::{ROUTES_KEY, Route, RouteTable};
use crate::ingest::session::StreamKey;

/// Changes that come within this time are written together.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// What a reconcile knows of a stream's route.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    app: String,
    key: StreamKey,
    address: SocketAddr,
    /// When the stream was created: of two streams with one key, the older keeps it.
    created: Option<jiff::Timestamp>,
}

/// A stream whose key another stream, created before it, already publishes with behind
/// the gateway, which could route a publish with that key to only one of them.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("stream {holder} uses the same stream key and application, and the gateway routes a key to one stream only")]
pub struct KeyInUse {
    /// `NAMESPACE/NAME` of the stream that keeps the key.
    pub holder: String,
}

/// The routes of the streams, and the Secret they are written to.
#[derive(Debug)]
pub struct GatewayRoutes {
    namespace: String,
    name: String,
    state: Mutex<State>,
    changed: Notify,
    /// The version of the entries that the Secret holds.
    written: watch::Sender<u64>,
}

/// The entries, and their version: one more at each change.
#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    version: u64,
}

impl State {
    fn changed(&mut self, notify: &Notify) {
        self.version += 1;
        notify.notify_one();
    }
}

impl GatewayRoutes {
    /// Routes kept in the Secret `name` of `namespace`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            written: watch::Sender::new(0),
        }
    }

    /// Routes publishes of `stream` (`NAMESPACE/NAME`, created at `created`) with `key`
    /// to `app` at `address`. A key and application that another stream routes already
    /// stay with the older of the two (by creation, then name): the younger gets
    /// [`KeyInUse`] and no route; an older claimant takes the key over, and the stream
    /// that held it learns so at its next reconcile.
    pub fn claim(
        &self,
        stream: &str,
        created: Option<jiff::Timestamp>,
        app: &str,
        key: &StreamKey,
        address: SocketAddr,
    ) -> Result<(), KeyInUse> {
        let entry = Entry { app: app.into(), key: key.clone(), address, created };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let rival = state
            .entries
            .iter()
            .find(|(name, other)| name.as_str() != stream && other.app == entry.app && other.key == entry.key)
            .map(|(name, other)| (name.clone(), other.created));
        if let Some((holder, held_since)) = rival {
            if (held_since, holder.as_str()) < (created, stream) {
                if state.entries.remove(stream).is_some() {
                    state.changed(&self.changed);
                }
                return Err(KeyInUse { holder });
            }
            state.entries.remove(&holder);
            state.changed(&self.changed);
        }
        if state.entries.get(stream) != Some(&entry) {
            state.entries.insert(stream.into(), entry);
            state.changed(&self.changed);
        }
        Ok(())
    }

    /// Routes nothing to `stream` any more.
    pub fn remove(&self, stream: &str) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.entries.remove(stream).is_some() {
            state.changed(&self.changed);
        }
    }

    /// Waits, at most `patience`, until the Secret holds every change made so far, so
    /// that a stream reported ready is routed; whether it does.
    pub async fn settled(&self, patience: Duration) -> bool {
        let version = self.state.lock().unwrap_or_else(PoisonError::into_inner).version;
        let mut written = self.written.subscribe();
        tokio::time::timeout(patience, written.wait_for(|written| *written >= version)).await.is_ok_and(|r| r.is_ok())
    }

    /// The table to write, and the version of the entries it holds: the streams of
    /// `streams` by their entries, or by their routes in `found` (the Secret as the
    /// operator found it) until a reconcile visits them.
    fn table(&self, salt: &str, found: &RouteTable, streams: &[String]) -> (RouteTable, u64) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let entries = &state.entries;
        let mut table = RouteTable { salt: salt.to_string(), routes: Vec::new() };
        for stream in streams {
            let route = match entries.get(stream) {
                Some(entry) => Some(Route {
                    stream: stream.clone(),
                    app: entry.app.clone(),
                    key_digest: table.digest(&entry.key),
                    address: entry.address,
                }),
                None => found.routes.iter().find(|route| route.stream == *stream).cloned(),
            };
            table.routes.extend(route);
        }
        (table, state.version)
    }

    /// Writes the table whenever it changes, until `stop`.
    pub async fn run(&self, client: Client, streams: Store<LiveStream>, metrics: Metrics, stop: CancellationToken) {
        let api: Api<Secret> = Api::namespaced(client, &self.namespace);
        let found = loop {
            match api.get_opt(&self.name).await {
                Ok(secret) => break secret.and_then(|secret| read_table(&secret)),
                Err(error) => {
                    tracing::warn!(%error, secret = %self.name, "cannot read the gateway's routes; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        };
        let salt = found.as_ref().map(|table| table.salt.clone()).unwrap_or_else(|| RouteTable::new().salt);
        let found = found.unwrap_or_default();
        let mut written = found.clone();
        until_ready(&streams).await;
        loop {
            let mut names: Vec<String> = streams
                .state()
                .iter()
                .filter(|stream| stream.metadata.deletion_timestamp.is_none())
                .map(|stream| format!("{}/{}", stream.namespace().unwrap_or_default(), stream.name_any()))
                .collect();
            names.sort();
            let (table, version) = self.table(&salt, &found, &names);
            if table != written || written.salt != salt {
                match self.write(&api, &table).await {
                    Ok(()) => {
                        metrics.observe_write("Secret");
                        tracing::info!(routes = table.routes.len(), "wrote the gateway's routes");
                        written = table;
                        self.written.send_replace(version);
                    }
                    Err(error) => {
                        tracing::warn!(%error, secret = %self.name, "cannot write the gateway's routes; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(2)) => continue,
                            () = stop.cancelled() => return,
                        }
                    }
                }
            } else {
                self.written.send_replace(version);
            }
            tokio::select! {
                () = self.changed.notified() => {}
                () = stop.cancelled() => return,
            }
            tokio::time::sleep(DEBOUNCE).await;
        }
    }

    async fn write(&self, api: &Api<Secret>, table: &RouteTable) -> Result<(), kube::Error> {
        let routes = serde_json::to_vec(table).map_err(kube::Error::SerdeError)?;
        let (label, value) = MANAGED_SELECTOR.split_once('=').unwrap_or((MANAGED_SELECTOR, ""));
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.name, "labels": {label: value}},
            "type": "Opaque",
            "data": {ROUTES_KEY: ByteString(routes)},
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&self.name, &params, &Patch::Apply(&secret)).await.map(|_| ())
    }
}

fn read_table(secret: &Secret) -> Option<RouteTable> {
    let bytes = secret.data.as_ref()?.get(ROUTES_KEY)?;
    match serde_json::from_slice(&bytes.0) {
        Ok(table) => Some(table),
        Err(error) => {
            tracing::warn!(%error, "the gateway's routes do not parse; starting afresh");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 96, 0, 9], port))
    }

    #[test]
    fn the_table_holds_reconciled_streams_and_keeps_found_routes_until_they_are() {
        let routes = GatewayRoutes::new("livestream", "routes");
        let found = RouteTable {
            salt: "5a17".into(),
            routes: vec![
                Route { stream: "a/old".into(), app: "live".into(), key_digest: "d1".into(), address: address(1) },
                Route { stream: "a/gone".into(), app: "live".into(), key_digest: "d2".into(), address: address(2) },
            ],
        };
        routes.claim("a/new", None, "live", &StreamKey::new("k3y"), address(3)).unwrap();
        let streams = vec!["a/new".to_string(), "a/old".to_string()];
        let (table, _) = routes.table("5a17", &found, &streams);
        let names: Vec<&str> = table.routes.iter().map(|r| r.stream.as_str()).collect();
        assert_eq!(names, ["a/new", "a/old"], "a stream that is gone loses its route");
        assert_eq!(table.routes[0].key_digest, table.digest(&StreamKey::new("k3y")));
        assert!(table.lookup("live", &StreamKey::new("k3y")).is_some());
        // Once reconciled, a stream's own entry replaces what was found.
        routes.claim("a/old", None, "live", &StreamKey::new("other"), address(4)).unwrap();
        let (table, _) = routes.table("5a17", &found, &streams);
        assert_eq!(table.routes[1].address, address(4));
        routes.remove("a/new");
        assert_eq!(routes.table("5a17", &found, &streams).0.routes.len(), 1);
    }

    #[test]
    fn an_unchanged_entry_is_no_change() {
        let routes = GatewayRoutes::new("livestream", "routes");
        routes.claim("a/s", None, "live", &StreamKey::new("k"), address(1)).unwrap();
        routes.claim("a/s", None, "live", &StreamKey::new("k"), address(1)).unwrap();
        // One notification is stored at most; the second set did not add one.
        let notified = routes.changed.notified();
        let mut notified = std::pin::pin!(notified);
        assert!(futures::FutureExt::now_or_never(notified.as_mut()).is_some());
        assert!(futures::FutureExt::now_or_never(routes.changed.notified()).is_none());
    }

    #[test]
    fn of_two_streams_with_one_key_the_older_keeps_it() {
        let routes = GatewayRoutes::new("livestream", "routes");
        let at = |second| Some(jiff::Timestamp::from_second(second).unwrap());
        let key = StreamKey::new("shared");
        routes.claim("a/first", at(100), "live", &key, address(1)).unwrap();
        let refused = routes.claim("a/second", at(200), "live", &key, address(2)).unwrap_err();
        assert_eq!(refused.holder, "a/first");
        // Another application is another route.
        routes.claim("a/second", at(200), "other", &key, address(2)).unwrap();
        // An older stream that comes later (an operator restarted, a reconcile out of
        // order) takes the key over.
        routes.claim("a/elder", at(50), "live", &key, address(3)).unwrap();
        assert_eq!(routes.claim("a/first", at(100), "live", &key, address(1)).unwrap_err().holder, "a/elder");
        let streams: Vec<String> = ["a/elder", "a/first", "a/second"].map(String::from).to_vec();
        let (table, _) = routes.table("5a17", &RouteTable::default(), &streams);
        let routed: Vec<(&str, &str)> = table.routes.iter().map(|r| (r.stream.as_str(), r.app.as_str())).collect();
        assert_eq!(routed, [("a/elder", "live"), ("a/second", "other")]);
        // Same age: the name decides, the same way each time.
        routes.remove("a/elder");
        routes.claim("a/b", at(100), "live", &key, address(4)).unwrap();
        assert_eq!(routes.claim("a/c", at(100), "live", &key, address(5)).unwrap_err().holder, "a/b");
    }

    #[tokio::test]
    async fn settled_waits_for_the_write_of_every_change_made_before() {
        let routes = GatewayRoutes::new("livestream", "routes");
        assert!(routes.settled(Duration::ZERO).await, "nothing changed, nothing to wait for");
        routes.claim("a/s", None, "live", &StreamKey::new("k"), address(1)).unwrap();
        assert!(!routes.settled(Duration::from_millis(50)).await, "the change is not written yet");
        let (_, version) = routes.table("5a17", &RouteTable::default(), &["a/s".to_string()]);
        let waiting = routes.settled(Duration::from_secs(30));
        let mut waiting = std::pin::pin!(waiting);
        assert!(futures::FutureExt::now_or_never(waiting.as_mut()).is_none());
        routes.written.send_replace(version);
        assert!(waiting.await, "settled once the table of that version is written");
    }
}
