//! Whether the transcoder keeps up with the source: the share of the last seconds that
//! the worker spent waiting to hand ffmpeg its input. An ffmpeg that keeps up takes every
//! tag at once; one that falls behind fills its input queue, the worker waits, and the
//! encoder is slowed down through TCP. A slow source leaves the queue empty instead, so it
//! is not mistaken for a slow transcoder.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The span over which the waiting is summed.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The least history before a verdict: the first seconds of a run are not judged.
const MIN_HISTORY: Duration = Duration::from_secs(5);
/// Behind from this share of waiting on.
pub const BEHIND_SHARE: f64 = 0.25;
/// Caught up again at this share or less.
pub const CAUGHT_UP_SHARE: f64 = 0.05;

/// A change of verdict.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RealTimeChange {
    /// The share of the window spent waiting on the transcoder's input.
    Behind {
        share: f64,
    },
    CaughtUp {
        share: f64,
    },
}

/// The waits of one publish, and the verdict on them.
#[derive(Debug)]
pub struct RealTimeWatch {
    since: Option<Instant>,
    waits: VecDeque<(Instant, Duration)>,
    behind: bool,
}

impl Default for RealTimeWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RealTimeWatch {
    pub fn new() -> Self {
        Self { since: None, waits: VecDeque::new(), behind: false }
    }

    /// Whether the last verdict was "behind".
    pub fn is_behind(&self) -> bool {
        self.behind
    }

    /// Records that handing a tag to the transcoder, begun at `started`, took `waited`;
    /// returns the change of verdict it makes, if any.
    pub fn record(&mut self, started: Instant, waited: Duration) -> Option<RealTimeChange> {
        let now = started + waited;
        let since = *self.since.get_or_insert(started);
        if !waited.is_zero() {
            self.waits.push_back((started, waited));
        }
        let window_start = now.checked_sub(WINDOW).unwrap_or(since).max(since);
        while self.waits.front().is_some_and(|(at, waited)| *at + *waited <= window_start) {
            self.waits.pop_front();
        }
        let span = now.saturating_duration_since(window_start);
        if span < MIN_HISTORY {
            return None;
        }
        let waited: Duration = self
            .waits
            .iter()
            .map(|(at, waited)| (*at + *waited).saturating_duration_since((*at).max(window_start)))
            .sum();
        let share = waited.as_secs_f64() / span.as_secs_f64();
        match self.behind {
            false if share >= BEHIND_SHARE => {
                self.behind = true;
                Some(RealTimeChange::Behind { share })
            }
            true if share <= CAUGHT_UP_SHARE => {
                self.behind = false;
                Some(RealTimeChange::CaughtUp { share })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(40);

    /// Feeds `seconds` of 25 fps tags, each handed over after `wait`.
    fn feed(watch: &mut RealTimeWatch, at: &mut Instant, seconds: u64, wait: Duration) -> Vec<RealTimeChange> {
        let mut changes = Vec::new();
        for _ in 0..seconds * 25 {
            changes.extend(watch.record(*at, wait));
            *at += FRAME.max(wait);
        }
        changes
    }

    #[test]
    fn a_transcoder_that_takes_every_tag_at_once_keeps_up() {
        let mut watch = RealTimeWatch::new();
        let mut at = Instant::now();
        assert!(feed(&mut watch, &mut at, 60, Duration::ZERO).is_empty());
        assert!(feed(&mut watch, &mut at, 60, Duration::from_millis(1)).is_empty(), "2.5 % waiting is noise");
        assert!(!watch.is_behind());
    }

    #[test]
    fn a_full_input_queue_is_behind_and_an_empty_one_caught_up() {
        let mut watch = RealTimeWatch::new();
        let mut at = Instant::now();
        // Every tag waits 100 ms: ffmpeg runs at about 0.3x.
        let changes = feed(&mut watch, &mut at, 20, Duration::from_millis(100));
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(matches!(changes[0], RealTimeChange::Behind { share } if share > 0.9), "{changes:?}");
        assert!(watch.is_behind());
        // Back to real time: the verdict holds until the window has little waiting left.
        let changes = feed(&mut watch, &mut at, 20, Duration::ZERO);
        assert!(matches!(changes.as_slice(), [RealTimeChange::CaughtUp { share }] if *share <= CAUGHT_UP_SHARE));
        assert!(!watch.is_behind());
    }

    #[test]
    fn the_first_seconds_and_a_short_stall_are_not_judged() {
        let mut watch = RealTimeWatch::new();
        let start = Instant::now();
        // The held tags of the probe, then ffmpeg starting: a second of waiting at once.
        assert_eq!(watch.record(start, Duration::from_secs(1)), None);
        let mut at = start + Duration::from_secs(1);
        assert!(feed(&mut watch, &mut at, 30, Duration::ZERO).is_empty());
        // One stall of 2 s in 10 s is 20 %: not yet behind.
        assert_eq!(watch.record(at, Duration::from_secs(2)), None);
        at += Duration::from_secs(2);
        assert!(feed(&mut watch, &mut at, 10, Duration::ZERO).is_empty());
    }
}
