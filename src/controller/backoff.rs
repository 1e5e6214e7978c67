//! Per-stream failure counts for the retry delays of [`crate::backoff`]: reset on
//! success, so a broken stream is retried promptly at first and never in a hot loop.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

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
    fn counts_reset_on_success() {
        let counts = FailureCounts::default();
        assert_eq!(counts.record_failure("a/b"), 1);
        assert_eq!(counts.record_failure("a/b"), 2);
        counts.reset("a/b");
        assert_eq!(counts.record_failure("a/b"), 1);
    }
}
