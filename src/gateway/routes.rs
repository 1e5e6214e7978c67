//! The gateway's route table: which stream each stream key publishes to, and where that
//! stream's worker listens. The operator writes it (into a Secret the gateway watches);
//! it names each key by a salted SHA-256 digest, so the gateway never holds a key, and
//! looks keys up by comparing against every digest in constant time.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ingest::session::{StreamKey, constant_time_eq};

/// The key of the route table's JSON in the operator's Secret.
pub const ROUTES_KEY: &str = "routes.json";

/// Every stream the gateway may route to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    /// The salt of the key digests, in hex.
    pub salt: String,
    /// The routes, by stream.
    pub routes: Vec<Route>,
}

/// Where one stream's publishes go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// `NAMESPACE/NAME` of the LiveStream, for logs.
    pub stream: String,
    /// The RTMP application the stream's encoders push to.
    pub app: String,
    /// The stream key's digest ([`RouteTable::digest`]), in hex.
    pub key_digest: String,
    /// The worker's RTMP address (its ingest Service's cluster IP and port).
    pub address: SocketAddr,
}

impl RouteTable {
    /// A table with a fresh random salt and no routes.
    pub fn new() -> Self {
        Self { salt: hex(&rand::random::<[u8; 16]>()), routes: Vec::new() }
    }

    /// The digest of `key` under this table's salt, in hex.
    pub fn digest(&self, key: &StreamKey) -> String {
        hex(&key.digest(self.salt.as_bytes()))
    }

    /// The route of a publish to `app` with `key`. Every digest is compared, each in
    /// constant time, so the time taken tells nothing of which key came near.
    pub fn lookup(&self, app: &str, key: &StreamKey) -> Option<&Route> {
        let digest = self.digest(key);
        let mut found = None;
        for route in &self.routes {
            if constant_time_eq(route.key_digest.as_bytes(), digest.as_bytes()) && route.app == app {
                found = Some(route);
            }
        }
        found
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(table: &RouteTable, stream: &str, app: &str, key: &str, port: u16) -> Route {
        Route {
            stream: stream.into(),
            app: app.into(),
            key_digest: table.digest(&StreamKey::new(key)),
            address: SocketAddr::from(([10, 96, 0, 7], port)),
        }
    }

    #[test]
    fn keys_find_their_stream_by_digest_and_application() {
        let mut table = RouteTable::new();
        table.routes =
            vec![route(&table, "a/one", "live", "k3y-one", 1935), route(&table, "b/two", "live", "k3y-two", 1936)];
        assert_eq!(table.lookup("live", &StreamKey::new("k3y-two")).map(|r| r.stream.as_str()), Some("b/two"));
        assert_eq!(table.lookup("vod", &StreamKey::new("k3y-two")), None, "another application");
        assert_eq!(table.lookup("live", &StreamKey::new("k3y-tw")), None);
        assert!(!serde_json::to_string(&table).unwrap().contains("k3y"), "no key in the table");
        let other = RouteTable::new();
        assert_ne!(other.salt, table.salt);
        assert_ne!(other.digest(&StreamKey::new("k3y-one")), table.routes[0].key_digest, "salted");
        let parsed: RouteTable = serde_json::from_str(&serde_json::to_string(&table).unwrap()).unwrap();
        assert_eq!(parsed, table);
    }
}
