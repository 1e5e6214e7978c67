//! Live figures of an incoming stream: bitrate and frame rate over a sliding window.
//! Pure: the caller passes the clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bytes and video frames received, over the last `window`.
#[derive(Debug)]
pub struct IngestFigures {
    window: Duration,
    samples: VecDeque<(Instant, usize, bool)>,
    bytes_in_window: usize,
    frames_in_window: usize,
    /// Bounds memory whatever the message rate.
    max_samples: usize,
}

impl IngestFigures {
    pub fn new(window: Duration) -> Self {
        Self { window, samples: VecDeque::new(), bytes_in_window: 0, frames_in_window: 0, max_samples: 10_000 }
    }

    /// Records one media message of `bytes`, a video frame or not.
    pub fn record(&mut self, now: Instant, bytes: usize, video_frame: bool) {
        self.expire(now);
        if self.samples.len() >= self.max_samples {
            self.pop_front();
        }
        self.samples.push_back((now, bytes, video_frame));
        self.bytes_in_window += bytes;
        self.frames_in_window += usize::from(video_frame);
    }

    /// Bitrate in kbit/s over the window (0 until a second has been seen).
    pub fn bitrate_kbps(&mut self, now: Instant) -> u64 {
        self.expire(now);
        match self.span(now) {
            Some(span) => ((self.bytes_in_window as f64 * 8.0 / 1000.0) / span.as_secs_f64()) as u64,
            None => 0,
        }
    }

    /// Video frames per second over the window.
    pub fn frame_rate(&mut self, now: Instant) -> f64 {
        self.expire(now);
        match self.span(now) {
            Some(span) => (self.frames_in_window as f64 / span.as_secs_f64() * 100.0).round() / 100.0,
            None => 0.0,
        }
    }

    /// The time covered by the samples: the whole window once it is full.
    fn span(&self, now: Instant) -> Option<Duration> {
        let first = self.samples.front()?.0;
        let span = now.saturating_duration_since(first).max(Duration::from_secs(1));
        Some(span.min(self.window))
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, _, _)) = self.samples.front() {
            if now.saturating_duration_since(at) <= self.window {
                break;
            }
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, bytes, frame)) = self.samples.pop_front() {
            self.bytes_in_window -= bytes;
            self.frames_in_window -= usize::from(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_stream_reports_its_rate() {
        let start = Instant::now();
        let mut figures = IngestFigures::new(Duration::from_secs(5));
        // 25 fps of 5000-byte frames for 10 s: 1000 kbit/s.
        for i in 0..250u64 {
            figures.record(start + Duration::from_millis(i * 40), 5000, true);
        }
        let now = start + Duration::from_millis(250 * 40);
        let kbps = figures.bitrate_kbps(now);
        assert!((950..=1050).contains(&kbps), "{kbps}");
        let fps = figures.frame_rate(now);
        assert!((24.0..=26.0).contains(&fps), "{fps}");
    }

    #[test]
    fn silence_drains_the_window() {
        let start = Instant::now();
        let mut figures = IngestFigures::new(Duration::from_secs(5));
        figures.record(start, 1000, true);
        assert_eq!(figures.bitrate_kbps(start + Duration::from_secs(6)), 0);
        assert_eq!(figures.frame_rate(start + Duration::from_secs(6)), 0.0);
    }

    #[test]
    fn memory_is_bounded() {
        let start = Instant::now();
        let mut figures = IngestFigures::new(Duration::from_secs(3600));
        for _ in 0..20_000 {
            figures.record(start, 1, false);
        }
        assert_eq!(figures.samples.len(), 10_000);
    }
}
