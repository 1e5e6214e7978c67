//! Leader election on a `coordination.k8s.io` Lease, so that of several replicas exactly
//! one reconciles. The decision is pure; the shell reads and writes the Lease with
//! optimistic concurrency (a conflicting write loses and retries later).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Which Lease, who we are, and how long a holder keeps it without renewing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long the Lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// How often the holder renews and others retry.
    pub retry_interval: Duration,
}

impl LeaseSettings {
    /// Settings with a 15 s lease renewed every 5 s.
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            retry_interval: Duration::from_secs(5),
        }
    }
}

/// What to do with the Lease as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it.
    Follow { holder: String },
}

/// Decides from the Lease's spec (`None`: no Lease yet).
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else { return Decision::Acquire };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Acquire;
    }
    if holder == identity {
        return Decision::Renew;
    }
    let last = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    match last {
        Some(last) if last.checked_add(duration).is_ok_and(|expiry| expiry > now) => Decision::Follow { holder },
        _ => Decision::Acquire,
    }
}

/// The Lease spec after acquiring or renewing.
pub fn held_spec(
    previous: Option<&LeaseSpec>,
    settings: &LeaseSettings,
    decision: &Decision,
    now: Timestamp,
) -> LeaseSpec {
    let previous = previous.cloned().unwrap_or_default();
    let acquiring = *decision == Decision::Acquire;
    LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(settings.lease_duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if acquiring { Some(MicroTime(now)) } else { previous.acquire_time.clone() },
        renew_time: Some(MicroTime(now)),
        lease_transitions: if acquiring && previous.holder_identity.is_some() {
            Some(previous.lease_transitions.unwrap_or(0).saturating_add(1))
        } else {
            previous.lease_transitions.or(Some(0))
        },
        ..previous
    }
}

/// The outcome of one round of [`LeaderElector::try_acquire_or_renew`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// This replica holds the Lease.
    Yes,
    /// It does not: another replica holds it (when known; a lost write race does not say).
    No { holder: Option<String> },
}

/// Acquires, renews and releases one Lease.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
}

impl LeaderElector {
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self { api: Api::namespaced(client, &settings.namespace), settings }
    }

    /// One round: whether this replica holds the Lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<Held, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.settings.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = decide(spec, &self.settings.identity, now);
        if let Decision::Follow { holder } = decision {
            return Ok(Held::No { holder: Some(holder) });
        }
        let spec = held_spec(spec, &self.settings, &decision, now);
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.name.clone()),
                        namespace: Some(self.settings.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.api.replace(&self.settings.name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => Ok(Held::Yes),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Held::No { holder: None }),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this replica holds it, so a successor need not wait.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self.api.replace(&self.settings.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Keeps trying and renewing until `stop` is cancelled, publishing leadership on
    /// `leader`. Leadership is dropped when renewals fail for two thirds of the lease
    /// duration, before another replica may take over. Releases the Lease at the end.
    pub async fn run(self, leader: watch::Sender<bool>, stop: CancellationToken) {
        let renew_deadline = self.settings.lease_duration.mul_f64(2.0 / 3.0);
        let mut last_renewal: Option<tokio::time::Instant> = None;
        let mut followed: Option<String> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Held::Yes) => {
                    if !*leader.borrow() {
                        info!(lease = %self.settings.name, identity = %self.settings.identity, "became leader");
                    }
                    followed = None;
                    last_renewal = Some(tokio::time::Instant::now());
                    leader.send_replace(true);
                }
                Ok(Held::No { holder }) => {
                    if *leader.borrow() {
                        warn!(lease = %self.settings.name, holder = ?holder, "another replica holds the lease now");
                    } else if holder.is_some() && followed != holder {
                        info!(
                            lease = %self.settings.name,
                            holder = holder.as_deref().unwrap_or_default(),
                            "standing by: another replica holds the lease"
                        );
                    }
                    followed = holder;
                    last_renewal = None;
                    leader.send_replace(false);
                }
                Err(error) => {
                    warn!(lease = %self.settings.name, %error, "cannot acquire or renew the lease");
                    if last_renewal.is_none_or(|at| at.elapsed() > renew_deadline) {
                        leader.send_replace(false);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.retry_interval) => {}
                _ = stop.cancelled() => break,
            }
        }
        leader.send_replace(false);
        if let Err(error) = self.release().await {
            warn!(lease = %self.settings.name, %error, "cannot release the lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn held_by(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn free_expired_own_and_foreign_leases() {
        assert_eq!(decide(None, "a", at(100)), Decision::Acquire);
        assert_eq!(decide(Some(&LeaseSpec::default()), "a", at(100)), Decision::Acquire);
        assert_eq!(decide(Some(&held_by("a", 90)), "a", at(100)), Decision::Renew);
        assert_eq!(decide(Some(&held_by("b", 90)), "a", at(100)), Decision::Follow { holder: "b".into() });
        assert_eq!(decide(Some(&held_by("b", 80)), "a", at(100)), Decision::Acquire);
    }

    #[test]
    fn acquiring_counts_transitions_and_renewing_keeps_the_acquire_time() {
        let settings = LeaseSettings::new("lease", "ns", "a");
        let taken = held_spec(Some(&held_by("b", 10)), &settings, &Decision::Acquire, at(100));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(100))));
        let renewed = held_spec(Some(&taken), &settings, &Decision::Renew, at(105));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(100))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(105))));
        assert_eq!(renewed.lease_transitions, Some(1));
        assert_eq!(renewed.lease_duration_seconds, Some(15));
    }
}
