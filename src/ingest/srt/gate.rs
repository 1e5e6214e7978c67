//! The decision on an SRT caller during its handshake, on libsrt's thread: the connection
//! budgets, the stream ID, the application and the key. A caller that passes leaves a
//! [`Pending`] entry that the accepted connection takes up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use livestream_protocol::srt::{StreamIdError, parse_stream_id};
use livestream_srt::{Caller, Rejection as SrtRejection, Verdict};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::SrtConfig;
use crate::ingest::admission::{Admission, Unauthenticated};
use crate::ingest::listener::{PublishHandler, PublishRequest};
use crate::ingest::session::Rejection;
use crate::telemetry::clip;

/// A caller the gate let through, until its connection is accepted.
pub(super) struct Pending {
    pub request: PublishRequest,
    pub slot: OwnedSemaphorePermit,
    pub unauthenticated: Unauthenticated,
    admitted: Instant,
}

/// What the gate and the accept loop share.
pub(super) struct Gate {
    config: SrtConfig,
    handler: Arc<dyn PublishHandler>,
    slots: Arc<Semaphore>,
    admission: Admission,
    pending: Mutex<HashMap<i32, Pending>>,
}

impl Gate {
    pub fn new(config: SrtConfig, handler: Arc<dyn PublishHandler>) -> Self {
        let slots = Arc::new(Semaphore::new(config.max_connections.min(Semaphore::MAX_PERMITS)));
        let admission = Admission::new(config.max_unauthenticated, config.max_unauthenticated_per_address);
        Self { config, handler, slots, admission, pending: Mutex::default() }
    }

    pub fn config(&self) -> &SrtConfig {
        &self.config
    }

    pub fn handler(&self) -> &Arc<dyn PublishHandler> {
        &self.handler
    }

    /// Decides on a caller in the handshake.
    pub fn decide(&self, caller: &Caller<'_>) -> Verdict {
        let metrics = &self.config.metrics;
        let peer = caller.peer;
        let (slot, unauthenticated) = match (
            Arc::clone(&self.slots).try_acquire_owned(),
            self.admission.admit(peer.ip()),
        ) {
            (Ok(slot), Ok(unauthenticated)) => (slot, unauthenticated),
            (Err(_), _) => {
                metrics.record_refused();
                tracing::warn!(%peer, limit = self.config.max_connections, "SRT connection limit reached; refusing");
                return Verdict::Reject(SrtRejection::Overload);
            }
            (_, Err(full)) => {
                metrics.record_refused();
                tracing::warn!(%peer, limit = full.limit, "too many SRT connections that have not published; refusing");
                return Verdict::Reject(SrtRejection::Overload);
            }
        };
        let parsed = match parse_stream_id(caller.stream_id) {
            Ok(parsed) => parsed,
            Err(error) => {
                metrics.record_rejected(&Rejection::Other(error.to_string()));
                tracing::info!(%peer, %error, "SRT caller refused: its stream ID");
                return Verdict::Reject(match error {
                    StreamIdError::Mode(_) => SrtRejection::BadMode,
                    StreamIdError::Type(_) => SrtRejection::UnsupportedMedia,
                    _ => SrtRejection::BadRequest,
                });
            }
        };
        let app = parsed.app.unwrap_or_else(|| self.config.default_app.clone());
        let request = PublishRequest { app, stream_key: parsed.stream_key, peer };
        if let Err(rejection) = self.handler.admits(&request) {
            metrics.record_rejected(&rejection);
            tracing::info!(
                %peer,
                app = %clip(&request.app),
                key_fingerprint = request.stream_key.fingerprint(),
                reason = rejection.label(),
                "SRT publish refused"
            );
            return Verdict::Reject(match rejection {
                Rejection::BadKey => SrtRejection::Unauthorized,
                Rejection::AlreadyLive => SrtRejection::Conflict,
                Rejection::Other(_) => SrtRejection::Forbidden,
            });
        }
        let entry = Pending { request, slot, unauthenticated, admitted: Instant::now() };
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(caller.socket, entry);
        Verdict::Accept
    }

    /// The entry of an accepted connection.
    pub fn take(&self, socket: i32) -> Option<Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&socket)
    }

    /// Forgets callers whose handshake failed after the gate (libsrt refused their
    /// passphrase, say) or did not complete in time: their budget comes back.
    pub fn expire(&self) {
        let limit = self.config.handshake_timeout;
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|socket, entry| entry.admitted.elapsed() < limit && !livestream_srt::is_gone(*socket));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::listener::PublishSink;
    use std::net::SocketAddr;
    use std::time::Duration;

    /// Takes the key "good" under the application "live".
    struct Keys;

    impl PublishHandler for Keys {
        fn authorize(&self, _: &PublishRequest) -> Result<crate::ingest::listener::Publish, Rejection> {
            Ok(crate::ingest::listener::Publish::Media(PublishSink::channel(1).0))
        }

        fn admits(&self, request: &PublishRequest) -> Result<(), Rejection> {
            match (request.app.as_str(), request.stream_key.expose()) {
                ("live", "good") => Ok(()),
                (_, "busy") => Err(Rejection::AlreadyLive),
                _ => Err(Rejection::BadKey),
            }
        }
    }

    fn gate(config: SrtConfig) -> Gate {
        Gate::new(config, Arc::new(Keys))
    }

    fn call(gate: &Gate, socket: i32, peer: &str, stream_id: &str) -> Verdict {
        let peer: SocketAddr = peer.parse().unwrap();
        gate.decide(&Caller { socket, peer, stream_id })
    }

    #[test]
    fn stream_ids_and_keys_decide_with_srt_reasons() {
        let gate = gate(SrtConfig::default());
        assert_eq!(call(&gate, 1, "192.0.2.1:5000", "#!::r=live/good,m=publish"), Verdict::Accept);
        assert_eq!(call(&gate, 2, "192.0.2.2:5000", "good"), Verdict::Accept, "the default application");
        let refusals = [
            ("#!::r=live/bad,m=publish", SrtRejection::Unauthorized),
            ("vod/good", SrtRejection::Unauthorized),
            ("#!::r=live/good,m=request", SrtRejection::BadMode),
            ("#!::r=live/good,t=file", SrtRejection::UnsupportedMedia),
            ("", SrtRejection::BadRequest),
            ("live/busy", SrtRejection::Conflict),
        ];
        for (index, (stream_id, reason)) in refusals.into_iter().enumerate() {
            let socket = 10 + index as i32;
            assert_eq!(call(&gate, socket, "192.0.2.3:5000", stream_id), Verdict::Reject(reason), "{stream_id:?}");
            assert!(gate.take(socket).is_none(), "a refused caller leaves nothing behind");
        }
        let metrics = &gate.config().metrics;
        assert_eq!(metrics.publishes_rejected(&Rejection::BadKey), 2);
        assert_eq!(metrics.publishes_rejected(&Rejection::AlreadyLive), 1);
        let pending = gate.take(1).expect("the accepted caller's entry");
        assert_eq!((pending.request.app.as_str(), pending.request.stream_key.expose()), ("live", "good"));
        assert!(gate.take(1).is_none(), "taken once");
    }

    #[test]
    fn budgets_refuse_with_overload_and_come_back() {
        let config = SrtConfig {
            max_connections: 3,
            max_unauthenticated_per_address: 2,
            handshake_timeout: Duration::ZERO,
            ..SrtConfig::default()
        };
        let gate = gate(config);
        assert_eq!(call(&gate, 1, "192.0.2.1:1", "good"), Verdict::Accept);
        assert_eq!(call(&gate, 2, "192.0.2.1:2", "good"), Verdict::Accept);
        assert_eq!(call(&gate, 3, "192.0.2.1:3", "good"), Verdict::Reject(SrtRejection::Overload), "per address");
        assert_eq!(call(&gate, 4, "192.0.2.2:1", "good"), Verdict::Accept);
        assert_eq!(call(&gate, 5, "192.0.2.3:1", "good"), Verdict::Reject(SrtRejection::Overload), "in all");
        assert_eq!(gate.config().metrics.connections_refused(), 2);
        // Handshakes that never complete give their budget back.
        gate.expire();
        assert_eq!(call(&gate, 6, "192.0.2.1:4", "good"), Verdict::Accept);
    }
}
