//! Bandwidth bookkeeping of one variant from the sizes and durations of its segments, for
//! the master playlist's `BANDWIDTH` (peak) and `AVERAGE-BANDWIDTH`.

use std::time::Duration;

/// A variant's bit rates as measured, never below what its configuration implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BandwidthMeter {
    floor: BandwidthFloor,
    min_peak_duration: Duration,
    peak_bps: u64,
    total_bits: u128,
    total_micros: u128,
}

/// The bit rates a variant's configuration implies, in bit/s: the peak from its maximum
/// video rate plus audio, the average from its target video rate plus audio. Zero for a
/// passthrough, whose rates are only known by measuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BandwidthFloor {
    /// Lower bound of `BANDWIDTH`.
    pub peak_bps: u64,
    /// Lower bound of `AVERAGE-BANDWIDTH`.
    pub average_bps: u64,
}

impl BandwidthFloor {
    /// The floor of an encoded rendition from its configured rates in kbit/s.
    pub fn from_kbps(video_kbps: u32, max_video_kbps: u32, audio_kbps: u32) -> Self {
        let bps = |kbps: u32| u64::from(kbps) * 1000;
        Self {
            peak_bps: bps(max_video_kbps.max(video_kbps)) + bps(audio_kbps),
            average_bps: bps(video_kbps) + bps(audio_kbps),
        }
    }
}

impl BandwidthMeter {
    /// A meter with the given floor. Segments shorter than `min_peak_duration` (the short
    /// last segment of a run, mostly one keyframe) count towards the average but not the
    /// peak, which they would inflate; half the segment duration is a good value.
    pub fn new(floor: BandwidthFloor, min_peak_duration: Duration) -> Self {
        Self { floor, min_peak_duration, peak_bps: 0, total_bits: 0, total_micros: 0 }
    }

    /// Accounts one media segment (init segments are not counted).
    pub fn record(&mut self, bytes: u64, duration: Duration) {
        let micros = duration.as_micros();
        if micros == 0 {
            return;
        }
        let bits = u128::from(bytes) * 8;
        self.total_bits += bits;
        self.total_micros += micros;
        if duration >= self.min_peak_duration {
            let rate = u64::try_from(bits * 1_000_000 / micros).unwrap_or(u64::MAX);
            self.peak_bps = self.peak_bps.max(rate);
        }
    }

    /// `BANDWIDTH`: the highest segment bit rate seen, at least the configured peak.
    pub fn peak_bps(&self) -> u64 {
        self.peak_bps.max(self.floor.peak_bps).max(self.measured_average_bps())
    }

    /// `AVERAGE-BANDWIDTH`: total bits over total duration, at least the configured
    /// average, and never above [`Self::peak_bps`].
    pub fn average_bps(&self) -> u64 {
        self.measured_average_bps().max(self.floor.average_bps).min(self.peak_bps())
    }

    fn measured_average_bps(&self) -> u64 {
        if self.total_micros == 0 {
            return 0;
        }
        u64::try_from(self.total_bits * 1_000_000 / self.total_micros).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_holds_until_measurements_exceed_it() {
        let floor = BandwidthFloor::from_kbps(800, 1200, 128);
        assert_eq!(floor, BandwidthFloor { peak_bps: 1_328_000, average_bps: 928_000 });
        let mut meter = BandwidthMeter::new(floor, Duration::from_secs(1));
        assert_eq!((meter.peak_bps(), meter.average_bps()), (1_328_000, 928_000));
        meter.record(250_000, Duration::from_secs(2)); // 1 Mbit/s
        assert_eq!((meter.peak_bps(), meter.average_bps()), (1_328_000, 1_000_000));
        meter.record(500_000, Duration::from_secs(2)); // 2 Mbit/s
        assert_eq!((meter.peak_bps(), meter.average_bps()), (2_000_000, 1_500_000));
    }

    #[test]
    fn short_segments_do_not_set_the_peak() {
        let mut meter = BandwidthMeter::new(BandwidthFloor::default(), Duration::from_secs(1));
        meter.record(250_000, Duration::from_secs(2));
        meter.record(20_000, Duration::from_millis(40)); // 4 Mbit/s over one frame
        // The peak is the average now (never below it), far from the 4 Mbit/s of the frame.
        assert_eq!(meter.average_bps(), 270_000 * 8 * 1000 / 2040);
        assert_eq!(meter.peak_bps(), 1_058_823);
        meter.record(1, Duration::ZERO);
        assert_eq!(meter.peak_bps(), 1_058_823);
    }
}
