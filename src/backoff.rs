//! Exponential backoff: the one schedule of every retry in the crate (a failed reconcile,
//! a storage upload, an ffmpeg restart, the storage check at start-up). The delay after the
//! n-th consecutive failure is the minimum doubled n - 1 times, capped at the maximum; a
//! jittered delay is drawn between half and all of that, so that many workers that failed
//! together (storage went away for all of them) do not retry together.
//!
//! Each user counts its own failures (per stream, per object, per minute of restarts),
//! so the schedule is a pure function of that count.

use std::time::Duration;

/// The bounds of an exponential backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub min: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    pub const fn new(min: Duration, max: Duration) -> Self {
        Self { min, max }
    }

    /// The delay after `failures` consecutive failures (1 = the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.min.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// [`Self::delay`] scaled between a half (`unit` = 0) and the whole (`unit` = 1).
    pub fn jittered(&self, failures: u32, unit: f64) -> Duration {
        let ceiling = self.delay(failures);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_minimum_up_to_the_maximum() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
        assert_eq!(backoff.delay(0), Duration::from_secs(2), "no failure yet counts as the first");
        assert_eq!(backoff.delay(1), Duration::from_secs(2));
        assert_eq!(backoff.delay(2), Duration::from_secs(4));
        assert_eq!(backoff.delay(5), Duration::from_secs(32));
        assert_eq!(backoff.delay(6), Duration::from_secs(60));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_delay() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(backoff.jittered(3, 0.0), Duration::from_millis(200));
        assert_eq!(backoff.jittered(3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff.jittered(3, 0.5), Duration::from_millis(300));
        assert_eq!(backoff.jittered(3, 7.0), Duration::from_millis(400), "the unit is clamped");
    }
}
