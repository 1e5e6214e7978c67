//! Parser of ffmpeg's `-progress` output: blocks of `key=value` lines, each ending with
//! `progress=continue` (or `progress=end` for the last one). Sans IO: fed line by line.

/// One progress report.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Progress {
    /// Frames output so far (first video stream).
    pub frame: u64,
    /// Output frames per second.
    pub fps: f64,
    /// Output bit rate in kbit/s, when ffmpeg knows it.
    pub bitrate_kbps: Option<f64>,
    /// Output time in microseconds, when known.
    pub out_time_us: Option<i64>,
    /// Speed relative to real time (1.0 keeps up with a live source), when known.
    pub speed: Option<f64>,
    /// This is the last report (`progress=end`).
    pub ended: bool,
}

/// Collects the lines of one block and yields a [`Progress`] at its end.
#[derive(Debug, Clone, Default)]
pub struct ProgressParser {
    current: Progress,
}

impl ProgressParser {
    /// A parser at the start of a block.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one line (with or without its line break); returns the report when the line
    /// ends a block. Unknown keys and malformed values are ignored.
    pub fn push_line(&mut self, line: &str) -> Option<Progress> {
        let (key, value) = line.trim().split_once('=')?;
        let value = value.trim();
        match key.trim() {
            "frame" => self.current.frame = value.parse().unwrap_or(self.current.frame),
            "fps" => self.current.fps = value.parse().unwrap_or(self.current.fps),
            "bitrate" => {
                self.current.bitrate_kbps = value.strip_suffix("kbits/s").and_then(|number| number.trim().parse().ok())
            }
            "out_time_us" => self.current.out_time_us = value.parse().ok(),
            "speed" => self.current.speed = value.strip_suffix('x').and_then(|number| number.trim().parse().ok()),
            "progress" => {
                self.current.ended = value == "end";
                return Some(std::mem::take(&mut self.current));
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks() {
        let text = "frame=151\nfps=24.80\nstream_0_0_q=-1.0\nbitrate= 245.3kbits/s\ntotal_size=N/A\nout_time_us=6040000\nout_time_ms=6040000\nout_time=00:00:06.040000\ndup_frames=0\ndrop_frames=0\nspeed=1.01x\nprogress=continue\nframe=160\nfps=25.00\nbitrate=N/A\nout_time_us=N/A\nspeed=N/A\nprogress=end\n";
        let mut parser = ProgressParser::new();
        let reports: Vec<Progress> = text.lines().filter_map(|line| parser.push_line(line)).collect();
        assert_eq!(
            reports,
            vec![
                Progress {
                    frame: 151,
                    fps: 24.8,
                    bitrate_kbps: Some(245.3),
                    out_time_us: Some(6_040_000),
                    speed: Some(1.01),
                    ended: false
                },
                Progress { frame: 160, fps: 25.0, bitrate_kbps: None, out_time_us: None, speed: None, ended: true },
            ]
        );
    }

    #[test]
    fn ignores_noise() {
        let mut parser = ProgressParser::new();
        assert_eq!(parser.push_line("garbage"), None);
        assert_eq!(parser.push_line("frame=abc"), None);
        assert_eq!(parser.push_line("progress=continue\r\n").map(|report| report.frame), Some(0));
    }
}
