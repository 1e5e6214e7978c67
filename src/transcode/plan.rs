//! The transcoding plan: which renditions to encode and how, chosen from the requested
//! ladder and the source's picture size.

use std::path::PathBuf;

use thiserror::Error;

use crate::media::video_tag::VideoCodec;

/// What ffmpeg writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Container {
    /// Fragmented MP4 (CMAF), one stream per rendition to a socket of the run, cut into
    /// parts and segments by the packager.
    #[default]
    Fmp4,
    /// MPEG-TS segments written by ffmpeg's HLS muxer into the run's folder.
    Ts,
}

/// H.264 profile of an encoded rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Constrained devices; no B-frames or CABAC.
    Baseline,
    /// Main profile.
    Main,
    /// High profile, the default.
    #[default]
    High,
}

impl Profile {
    /// Name of the profile for libx264's `-profile:v`.
    pub fn x264_name(self) -> &'static str {
        match self {
            Profile::Baseline => "baseline",
            Profile::Main => "main",
            Profile::High => "high",
        }
    }
}

/// AAC settings shared by every encoded rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioPlan {
    /// Bit rate in kbit/s.
    pub bitrate_kbps: u32,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Number of channels.
    pub channels: u32,
}

impl Default for AudioPlan {
    fn default() -> Self {
        Self { bitrate_kbps: 128, sample_rate: 48_000, channels: 2 }
    }
}

/// One rendition as it will be produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedRendition {
    /// Scaled and encoded with libx264, audio encoded to AAC.
    Encoded {
        /// Rendition name (folder name, variant name).
        name: String,
        /// Output width in pixels (even).
        width: u32,
        /// Output height in pixels (even).
        height: u32,
        /// Target video bit rate in kbit/s.
        video_kbps: u32,
        /// VBV maximum bit rate in kbit/s; 1.5 times the target when absent.
        max_kbps: Option<u32>,
        /// Output frame rate; the source's when absent.
        frame_rate: Option<u32>,
        /// H.264 profile.
        profile: Profile,
    },
    /// The source's video and audio copied unchanged.
    Passthrough {
        /// Rendition name.
        name: String,
    },
    /// Audio alone, encoded to AAC: the one rendition of a source without video.
    Audio {
        /// Rendition name.
        name: String,
    },
}

impl PlannedRendition {
    /// The rendition's name.
    pub fn name(&self) -> &str {
        match self {
            PlannedRendition::Encoded { name, .. }
            | PlannedRendition::Passthrough { name }
            | PlannedRendition::Audio { name } => name,
        }
    }

    /// The VBV maximum video bit rate in kbit/s (encoded renditions).
    pub fn max_video_kbps(&self) -> Option<u32> {
        match self {
            PlannedRendition::Encoded { video_kbps, max_kbps, .. } => {
                Some(max_kbps.unwrap_or_else(|| video_kbps.saturating_mul(3) / 2).max(*video_kbps))
            }
            PlannedRendition::Passthrough { .. } | PlannedRendition::Audio { .. } => None,
        }
    }
}

/// Everything needed to run ffmpeg for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscodePlan {
    /// The renditions, in the order of the requested ladder.
    pub renditions: Vec<PlannedRendition>,
    /// Audio encoding.
    pub audio: AudioPlan,
    /// The source has audio. Without, the renditions are video only.
    pub has_audio: bool,
    /// x264 preset name, e.g. `veryfast`.
    pub preset: String,
    /// Seconds between keyframes, identical in every encoded rendition.
    pub keyframe_interval_s: u32,
    /// Target segment duration in seconds (a multiple of the keyframe interval).
    pub segment_duration_s: u32,
    /// Segment container.
    pub container: Container,
    /// For fMP4: the longest fragment ffmpeg writes (a part of LL-HLS); `None` cuts
    /// fragments at keyframes only.
    pub fragment_duration: Option<std::time::Duration>,
    /// The ffmpeg binary.
    pub ffmpeg: PathBuf,
    /// Folder for ffmpeg's local output; each run writes into its own sub-folder.
    pub scratch_dir: PathBuf,
    /// The poster's picture size (the top encoded rendition's); `None` makes no poster.
    pub poster: Option<(u32, u32)>,
}

impl TranscodePlan {
    /// The poster size of `renditions`: the first encoded rendition's picture.
    pub fn poster_size(renditions: &[PlannedRendition]) -> Option<(u32, u32)> {
        renditions.iter().find_map(|rendition| match rendition {
            PlannedRendition::Encoded { width, height, .. } => Some((*width, *height)),
            PlannedRendition::Passthrough { .. } | PlannedRendition::Audio { .. } => None,
        })
    }

    /// Whether a rendition copies the source.
    pub fn has_passthrough(&self) -> bool {
        self.renditions.iter().any(|rendition| matches!(rendition, PlannedRendition::Passthrough { .. }))
    }
}

/// A requested rendition, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RenditionRequest {
    /// Name.
    pub name: String,
    /// Copy the source instead of encoding.
    pub passthrough: bool,
    /// Width of the box the picture must fit in.
    pub width: Option<u32>,
    /// Height of the box the picture must fit in.
    pub height: Option<u32>,
    /// Target video bit rate in kbit/s.
    pub video_kbps: Option<u32>,
    /// VBV maximum bit rate in kbit/s.
    pub max_kbps: Option<u32>,
    /// Output frame rate.
    pub frame_rate: Option<u32>,
    /// H.264 profile (High when absent).
    pub profile: Option<Profile>,
}

/// The source's picture size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// What ffmpeg is told of the source besides the plan: its video codec and whether it
/// came with Enhanced RTMP headers, which decide the container on stdin and a
/// passthrough's sample entry, and its frame rate, which sets the keyframe distance of
/// renditions without a rate of their own.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SourceFormat {
    pub codec: VideoCodec,
    pub enhanced: bool,
    pub frame_rate: Option<f64>,
}

/// Errors choosing the ladder.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    /// An encoded rendition lacks its size or bit rate.
    #[error("rendition {0:?} needs width, height and a video bit rate")]
    Incomplete(String),
    /// A size of zero.
    #[error("rendition {0:?} has a zero size")]
    ZeroSize(String),
    /// The source reports a zero size.
    #[error("the source reports a zero picture size")]
    ZeroSource,
    /// Nothing to produce.
    #[error("the ladder is empty")]
    Empty,
}

/// The default ladder: 1080p 5000k, 720p 3000k, 480p 1400k, 360p 800k (16:9 boxes).
pub fn default_ladder() -> Vec<RenditionRequest> {
    [("1080p", 1920, 1080, 5000), ("720p", 1280, 720, 3000), ("480p", 854, 480, 1400), ("360p", 640, 360, 800)]
        .into_iter()
        .map(|(name, width, height, kbps)| RenditionRequest {
            name: name.into(),
            width: Some(width),
            height: Some(height),
            video_kbps: Some(kbps),
            ..RenditionRequest::default()
        })
        .collect()
}

/// Chooses the renditions to produce.
///
/// - No requests: the [`default_ladder`].
/// - Each encoded rendition's picture fits its requested box with the source's aspect
///   ratio (the box itself when the aspects match), with even dimensions.
/// - With a known source and without `allow_upscale`, renditions larger than the source are
///   left out; when that would leave no encoded rendition, the smallest one is kept, shrunk
///   to the source's size.
/// - Passthrough renditions are always kept. The order of the requests is preserved.
pub fn select_ladder(
    requests: &[RenditionRequest],
    source: Option<SourceSize>,
    allow_upscale: bool,
) -> Result<Vec<PlannedRendition>, PlanError> {
    if source.is_some_and(|size| size.width == 0 || size.height == 0) {
        return Err(PlanError::ZeroSource);
    }
    let defaults;
    let requests = if requests.is_empty() {
        defaults = default_ladder();
        &defaults
    } else {
        requests
    };
    let mut planned = Vec::with_capacity(requests.len());
    let mut dropped_smallest: Option<(u64, PlannedRendition)> = None;
    let mut kept_encoded = 0;
    for request in requests {
        if request.passthrough {
            planned.push(PlannedRendition::Passthrough { name: request.name.clone() });
            continue;
        }
        let (Some(box_width), Some(box_height), Some(video_kbps)) = (request.width, request.height, request.video_kbps)
        else {
            return Err(PlanError::Incomplete(request.name.clone()));
        };
        if box_width == 0 || box_height == 0 {
            return Err(PlanError::ZeroSize(request.name.clone()));
        }
        let (width, height) =
            source.map_or((even(box_width), even(box_height)), |size| fit(size, box_width, box_height));
        let rendition = PlannedRendition::Encoded {
            name: request.name.clone(),
            width,
            height,
            video_kbps,
            max_kbps: request.max_kbps,
            frame_rate: request.frame_rate,
            profile: request.profile.unwrap_or_default(),
        };
        let too_large = source.is_some_and(|size| width > size.width || height > size.height);
        if too_large && !allow_upscale {
            let area = u64::from(width) * u64::from(height);
            if dropped_smallest.as_ref().is_none_or(|(smallest, _)| area < *smallest) {
                dropped_smallest = Some((area, rendition));
            }
            continue;
        }
        kept_encoded += 1;
        planned.push(rendition);
    }
    if kept_encoded == 0
        && let (Some((_, mut rendition)), Some(size)) = (dropped_smallest, source)
    {
        if let PlannedRendition::Encoded { width, height, .. } = &mut rendition {
            (*width, *height) = fit(size, size.width, size.height);
        }
        planned.push(rendition);
    }
    if planned.is_empty() {
        return Err(PlanError::Empty);
    }
    Ok(planned)
}

/// The largest picture with the source's aspect ratio inside the box, with even sides.
fn fit(source: SourceSize, box_width: u32, box_height: u32) -> (u32, u32) {
    let (sw, sh) = (u64::from(source.width), u64::from(source.height));
    let (bw, bh) = (u64::from(box_width), u64::from(box_height));
    if bw * sh <= bh * sw {
        // The box is narrower than the source: full width, height from the aspect.
        (even(box_width), even_u64(bw * sh, sw))
    } else {
        (even_u64(bh * sw, sh), even(box_height))
    }
}

/// `numerator / denominator` rounded to the nearest even number, at least 2.
fn even_u64(numerator: u64, denominator: u64) -> u32 {
    let halves = (numerator + denominator) / (2 * denominator).max(1);
    u32::try_from(halves * 2).unwrap_or(u32::MAX - 1).max(2)
}

/// `value` rounded to the nearest even number (halves up), at least 2.
fn even(value: u32) -> u32 {
    even_u64(u64::from(value), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(name: &str, width: u32, height: u32) -> (String, u32, u32) {
        (name.to_string(), width, height)
    }

    fn sizes(plan: &[PlannedRendition]) -> Vec<(String, u32, u32)> {
        plan.iter()
            .map(|rendition| match rendition {
                PlannedRendition::Encoded { name, width, height, .. } => encoded(name, *width, *height),
                PlannedRendition::Passthrough { name } | PlannedRendition::Audio { name } => encoded(name, 0, 0),
            })
            .collect()
    }

    #[test]
    fn default_ladder_for_a_720p_source_drops_1080p() {
        let plan = select_ladder(&[], Some(SourceSize { width: 1280, height: 720 }), false).unwrap();
        assert_eq!(
            sizes(&plan),
            vec![encoded("720p", 1280, 720), encoded("480p", 854, 480), encoded("360p", 640, 360)]
        );
        let PlannedRendition::Encoded { video_kbps, profile, max_kbps, .. } = &plan[0] else { panic!() };
        assert_eq!((*video_kbps, *profile, *max_kbps), (3000, Profile::High, None));
        assert_eq!(plan[0].max_video_kbps(), Some(4500));
    }

    #[test]
    fn tiny_source_keeps_smallest_shrunk_to_source() {
        let plan = select_ladder(&[], Some(SourceSize { width: 320, height: 180 }), false).unwrap();
        assert_eq!(sizes(&plan), vec![encoded("360p", 320, 180)]);
    }

    #[test]
    fn upscale_allowed_keeps_everything() {
        let plan = select_ladder(&[], Some(SourceSize { width: 320, height: 180 }), true).unwrap();
        assert_eq!(plan.len(), 4);
    }

    #[test]
    fn aspect_of_source_is_preserved_in_the_box() {
        let four_by_three = Some(SourceSize { width: 640, height: 480 });
        let plan = select_ladder(&default_ladder()[1..], four_by_three, true).unwrap();
        assert_eq!(sizes(&plan), vec![encoded("720p", 960, 720), encoded("480p", 640, 480), encoded("360p", 480, 360)]);
        let portrait = Some(SourceSize { width: 1080, height: 1920 });
        let plan = select_ladder(&default_ladder()[..1], portrait, false).unwrap();
        assert_eq!(sizes(&plan), vec![encoded("1080p", 608, 1080)]);
    }

    #[test]
    fn odd_sizes_become_even() {
        let request = RenditionRequest {
            name: "odd".into(),
            width: Some(333),
            height: Some(187),
            video_kbps: Some(100),
            ..Default::default()
        };
        let plan = select_ladder(&[request], None, false).unwrap();
        assert_eq!(sizes(&plan), vec![encoded("odd", 334, 188)]);
        let plan =
            select_ladder(&default_ladder()[2..3], Some(SourceSize { width: 1920, height: 1080 }), false).unwrap();
        assert_eq!(sizes(&plan), vec![encoded("480p", 854, 480)]);
    }

    #[test]
    fn passthrough_is_kept_and_incomplete_requests_refused() {
        let requests = vec![
            RenditionRequest { name: "source".into(), passthrough: true, ..Default::default() },
            RenditionRequest {
                name: "low".into(),
                width: Some(640),
                height: Some(360),
                video_kbps: Some(800),
                ..Default::default()
            },
        ];
        let plan = select_ladder(&requests, Some(SourceSize { width: 320, height: 180 }), false).unwrap();
        assert_eq!(sizes(&plan), vec![encoded("source", 0, 0), encoded("low", 320, 180)]);
        let incomplete = RenditionRequest { name: "x".into(), width: Some(640), ..Default::default() };
        assert_eq!(select_ladder(&[incomplete], None, false), Err(PlanError::Incomplete("x".into())));
        assert_eq!(select_ladder(&[], Some(SourceSize { width: 0, height: 10 }), false), Err(PlanError::ZeroSource));
    }
}
