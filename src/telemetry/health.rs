//! Liveness and readiness, as named checks that the parts of a process set.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The health of one part of the process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthCheck {
    /// Working.
    Ok,
    /// Not working, with a reason fit for an operator (never a secret).
    Failing(String),
}

/// Named readiness checks. The process is ready when every registered check is Ok.
/// Liveness is the HTTP server answering at all: a wedged runtime fails the probe.
#[derive(Clone, Debug, Default)]
pub struct Health {
    checks: Arc<Mutex<BTreeMap<String, HealthCheck>>>,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the state of the check `name`, registering it on first use.
    pub fn set(&self, name: &str, check: HealthCheck) {
        self.checks.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_string(), check);
    }

    /// Whether every check is Ok, and the failing ones.
    pub fn readiness(&self) -> (bool, Vec<(String, String)>) {
        let checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        let failing: Vec<(String, String)> = checks
            .iter()
            .filter_map(|(name, check)| match check {
                HealthCheck::Ok => None,
                HealthCheck::Failing(reason) => Some((name.clone(), reason.clone())),
            })
            .collect();
        (failing.is_empty(), failing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_is_ok() {
        let health = Health::new();
        assert!(health.readiness().0, "no checks: ready");
        health.set("storage", HealthCheck::Failing("bucket unreachable".into()));
        health.set("rtmp", HealthCheck::Ok);
        let (ready, failing) = health.readiness();
        assert!(!ready);
        assert_eq!(failing, vec![("storage".to_string(), "bucket unreachable".to_string())]);
        health.set("storage", HealthCheck::Ok);
        assert!(health.readiness().0);
    }
}
