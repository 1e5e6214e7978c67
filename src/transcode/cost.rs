//! What a ladder costs in CPU, so that a worker can ask the scheduler for enough of it.
//!
//! x264 spends CPU in proportion to the pixels it encodes per second, by a factor that
//! depends on the preset. The factors are cores per million pixels per second, measured
//! with the worker's x264 settings (`LOW_DELAY_X264_PARAMS`) on a 1280x720 30 fps source
//! with film-grain-like noise (harder than a screen capture, easier than sports) on one
//! core of a 2-core x86-64 cloud machine: 0.53 cores for 720p30 at veryfast, 0.13 at 360p30.
//! Decoding the source costs about 2 millicores per million pixels per second (0.06 cores
//! for 1080p30 H.264 at 6 Mbit/s), and the rest of the worker (audio, scaling, packaging)
//! fits in 100 millicores.

use super::plan::{RenditionRequest, default_ladder};
use crate::api::EncoderPreset;

/// The share of a core's time that a faster preset is chosen to leave free: the measured
/// speed includes decoding and scaling, which a preset does not change.
const SPEED_HEADROOM: f64 = 0.8;

/// The frame rate assumed for a rendition that keeps the source's, which admission does
/// not know.
pub const ASSUMED_FRAME_RATE: u32 = 30;

/// CPU the worker needs besides decoding and encoding, in millicores.
const BASE_MILLICORES: f64 = 100.0;
/// Decoding, in millicores per million source pixels per second.
const DECODE_MILLICORES_PER_MPIXEL: f64 = 2.0;

/// Encoding with x264 at `preset`, in millicores per million pixels per second.
fn encode_millicores_per_mpixel(preset: EncoderPreset) -> f64 {
    match preset {
        EncoderPreset::Ultrafast => 3.3,
        EncoderPreset::Superfast => 9.9,
        EncoderPreset::Veryfast => 19.1,
        EncoderPreset::Faster => 27.2,
        EncoderPreset::Fast => 46.1,
        EncoderPreset::Medium => 56.4,
    }
}

/// The preset to restart at when ffmpeg encoded at `current` ran at `speed` times real
/// time (below 1): the slowest faster preset whose encoding cost, scaled by the speed
/// reached, fits with some headroom; one step faster when the speed is unknown. `None`
/// when no preset is faster.
pub fn faster_preset(current: EncoderPreset, speed: Option<f64>) -> Option<EncoderPreset> {
    let mut faster = EncoderPreset::ALL.into_iter().skip_while(|p| *p != current).skip(1);
    let Some(speed) = speed.filter(|s| s.is_finite() && *s > 0.0) else {
        return faster.next();
    };
    let budget = encode_millicores_per_mpixel(current) * speed.min(1.0) * SPEED_HEADROOM;
    let mut chosen = None;
    for preset in faster {
        chosen = Some(preset);
        if encode_millicores_per_mpixel(preset) <= budget {
            break;
        }
    }
    chosen
}

/// The CPU, in millicores rounded up to 50, that a worker needs to transcode `requests`
/// (the default ladder when empty) at `preset` in real time. The source is taken to be
/// as large as the largest rendition, and a rendition without a frame rate to run at
/// [`ASSUMED_FRAME_RATE`]; a passthrough rendition costs nothing beyond the base.
pub fn cpu_millicores(requests: &[RenditionRequest], preset: EncoderPreset) -> u32 {
    let defaults;
    let requests = if requests.is_empty() {
        defaults = default_ladder();
        &defaults[..]
    } else {
        requests
    };
    let pixel_rates: Vec<f64> = requests
        .iter()
        .filter(|r| !r.passthrough)
        .map(|r| {
            let pixels = f64::from(r.width.unwrap_or(0)) * f64::from(r.height.unwrap_or(0));
            pixels * f64::from(r.frame_rate.unwrap_or(ASSUMED_FRAME_RATE)) / 1e6
        })
        .collect();
    let encode: f64 = pixel_rates.iter().sum::<f64>() * encode_millicores_per_mpixel(preset);
    let decode = pixel_rates.iter().copied().fold(0.0, f64::max) * DECODE_MILLICORES_PER_MPIXEL;
    let total = (BASE_MILLICORES + encode + decode).ceil();
    // At most a few hundred thousand millicores for 8 renditions of 8K at 120 fps.
    let total = total.min(f64::from(u32::MAX)) as u32;
    total.div_ceil(50) * 50
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendition(width: u32, height: u32, frame_rate: Option<u32>) -> RenditionRequest {
        RenditionRequest {
            name: format!("{height}p"),
            width: Some(width),
            height: Some(height),
            video_kbps: Some(1000),
            frame_rate,
            ..RenditionRequest::default()
        }
    }

    #[test]
    fn a_faster_preset_is_chosen_from_the_speed_reached() {
        use EncoderPreset::*;
        // medium at half speed: 56.4 * 0.5 * 0.8 = 22.6 fits veryfast (19.1).
        assert_eq!(faster_preset(Medium, Some(0.5)), Some(Veryfast));
        // Nearly real time: the next preset suffices.
        assert_eq!(faster_preset(Veryfast, Some(0.95)), Some(Superfast));
        // Far behind: as fast as there is.
        assert_eq!(faster_preset(Veryfast, Some(0.1)), Some(Ultrafast));
        assert_eq!(faster_preset(Fast, None), Some(Faster), "one step without a speed");
        assert_eq!(faster_preset(Ultrafast, Some(0.5)), None, "nothing is faster");
        assert_eq!(faster_preset(Superfast, Some(f64::NAN)), Some(Ultrafast));
    }

    #[test]
    fn the_default_ladder_needs_more_than_two_cores_at_veryfast() {
        // 109 Mpixel/s encoded, 62 decoded.
        assert_eq!(cpu_millicores(&[], EncoderPreset::Veryfast), 2350);
        assert_eq!(cpu_millicores(&[], EncoderPreset::Ultrafast), 600);
    }

    #[test]
    fn cost_grows_with_pixels_frame_rate_and_preset() {
        let p720 = [rendition(1280, 720, None)];
        assert_eq!(cpu_millicores(&p720, EncoderPreset::Veryfast), 700);
        assert_eq!(cpu_millicores(&[rendition(1280, 720, Some(60))], EncoderPreset::Veryfast), 1300);
        assert!(cpu_millicores(&p720, EncoderPreset::Medium) > 2 * cpu_millicores(&p720, EncoderPreset::Veryfast));
        let small = [rendition(320, 180, None), rendition(160, 90, None)];
        assert_eq!(cpu_millicores(&small, EncoderPreset::Veryfast), 150);
    }

    #[test]
    fn a_passthrough_costs_only_the_base() {
        let copy = RenditionRequest { name: "source".into(), passthrough: true, ..RenditionRequest::default() };
        assert_eq!(cpu_millicores(&[copy], EncoderPreset::Veryfast), 100);
    }
}
