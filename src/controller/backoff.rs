//! Per-stream retry delays: doubling from a minimum to a maximum, reset on success, so a
//! broken stream is retried promptly at first and never in a hot loop.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The delay after `failures` consecutive failures (1 = the first failure).
pub fn delay(failures: u32, min: Duration, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    min.saturating_mul(1u32 << exponent).min(max)
}

/// Consecutive failure counts by stream key (`namespace/name`).
#[derive(Debug, Default)]
pub struct FailureCounts {
    counts: Mutex<HashMap<String, u32>>,
}

impl FailureCounts {
    /// Records one more failure of `key` and returns the count.
    pub fn record_failure(&self, key: &str) -> u32 {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(key.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// Forgets the failures of `key`.
    pub fn reset(&self, key: &str) {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_up_to_the_maximum() {
        let (min, max) = (Duration::from_secs(2), Duration::from_secs(60));
        assert_eq!(delay(1, min, max), Duration::from_secs(2));
        assert_eq!(delay(2, min, max), Duration::from_secs(4));
        assert_eq!(delay(5, min, max), Duration::from_secs(32));
        assert_eq!(delay(6, min, max), Duration::from_secs(60));
        assert_eq!(delay(u32::MAX, min, max), Duration::from_secs(60));
    }

    #[test]
    fn counts_reset_on_success() {
        let counts = FailureCounts::default();
        assert_eq!(counts.record_failure("a/b"), 1);
        assert_eq!(counts.record_failure("a/b"), 2);
        counts.reset("a/b");
        assert_eq!(counts.record_failure("a/b"), 1);
    }
}
