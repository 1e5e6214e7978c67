//! The `LiveStream` spec: what a user asks for.
//!
//! Every field has a documented default that the API server applies at admission, and
//! every bound a user could get wrong is checked there too, by schema bounds and CEL rules,
//! so a bad manifest is refused by `kubectl apply` with a message naming the field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::LiveStreamStatus;

/// A live stream: one RTMP ingest, transcoded into an HLS ABR ladder and written to
/// S3-compatible storage.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "livestream.dev",
    version = "v1alpha1",
    kind = "LiveStream",
    plural = "livestreams",
    singular = "livestream",
    shortname = "ls",
    category = "streaming",
    namespaced,
    status = "LiveStreamStatus",
    doc = "A live stream: RTMP ingest, an HLS ABR ladder, S3-compatible storage.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Live","type":"string","jsonPath":".status.conditions[?(@.type==\"Live\")].status"}"#,
    printcolumn = r#"{"name":"Playback","type":"string","jsonPath":".status.playbackUrl","priority":0}"#,
    printcolumn = r#"{"name":"Low-Latency","type":"string","jsonPath":".status.lowLatencyPlaybackUrl","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new(
    "self.hls.segmentDurationSeconds % self.ladder.keyframeIntervalSeconds == 0"
).message("hls.segmentDurationSeconds must be a multiple of ladder.keyframeIntervalSeconds, so that every segment starts on a keyframe").field_path(".hls.segmentDurationSeconds"))]
#[x_kube(validation = Rule::new(
    "self.hls.partDurationMilliseconds * 2 <= self.hls.segmentDurationSeconds * 1000"
).message("hls.partDurationMilliseconds must be at most half of hls.segmentDurationSeconds, so that every segment has two parts or more").field_path(".hls.partDurationMilliseconds"))]
#[serde(rename_all = "camelCase")]
pub struct LiveStreamSpec {
    /// How encoders reach the stream.
    #[serde(default)]
    pub ingest: IngestSpec,
    /// The renditions viewers can switch between.
    #[serde(default)]
    pub ladder: LadderSpec,
    /// How the stream is packaged.
    #[serde(default)]
    pub hls: HlsSpec,
    /// Where segments and playlists are written.
    pub storage: StorageSpec,
    /// The CDN in front of the storage, used to build playback URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdn: Option<CdnSpec>,
    /// The worker's HLS origin, which serves the low-latency playlists.
    #[serde(default)]
    pub origin: OriginSpec,
    /// Settings of the ingest worker pod.
    #[serde(default)]
    pub worker: WorkerSpec,
    /// Stops the worker without deleting the stream; its playlists stay in storage.
    #[serde(default)]
    pub suspend: bool,
}

/// Where encoders push and how they authenticate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.tls) || !has(self.service) || self.tls.port != self.service.port").message("the RTMPS port must differ from the RTMP port").field_path(".tls.port"))]
#[serde(rename_all = "camelCase")]
pub struct IngestSpec {
    /// The Secret key that holds the stream key. When omitted, the operator generates a
    /// Secret named `<name>-stream-key` with a random key under `streamKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_key_secret_ref: Option<SecretKeyRef>,
    /// The RTMP application name: encoders push to `rtmp://HOST:PORT/APP/STREAMKEY`.
    #[serde(default = "default_app")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))]
    pub app: String,
    /// The Service that exposes the RTMP port.
    #[serde(default)]
    pub service: IngestServiceSpec,
    /// RTMPS beside RTMP: TLS with the certificate of a Secret, on its own port of the
    /// same Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<IngestTlsSpec>,
    /// SRT beside RTMP: a UDP port of the same Service; encoders send the application and
    /// stream key as the stream ID `#!::r=APP/STREAMKEY,m=publish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srt: Option<IngestSrtSpec>,
}

impl Default for IngestSpec {
    fn default() -> Self {
        Self {
            stream_key_secret_ref: None,
            app: default_app(),
            service: IngestServiceSpec::default(),
            tls: None,
            srt: None,
        }
    }
}

/// SRT ingest: the port and the receiver's latency.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngestSrtSpec {
    /// The SRT port (UDP) of the ingest Service.
    #[serde(default = "default_srt_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// A fixed node port for SRT, for NodePort and LoadBalancer Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
    /// How long the worker holds packets to recover losses, in milliseconds (libsrt's and
    /// ffmpeg's default); the larger of this and the encoder's own applies.
    #[serde(default = "default_srt_latency")]
    #[schemars(range(min = 20, max = 8000))]
    pub latency_milliseconds: u32,
}

impl Default for IngestSrtSpec {
    fn default() -> Self {
        Self { port: default_srt_port(), node_port: None, latency_milliseconds: default_srt_latency() }
    }
}

fn default_srt_port() -> i32 {
    9000
}

fn default_srt_latency() -> u32 {
    120
}

/// RTMPS: the certificate and the port.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngestTlsSpec {
    /// A Secret of type `kubernetes.io/tls` (keys `tls.crt` and `tls.key`, PEM), such as
    /// cert-manager's Certificate writes. A renewed certificate is served within a
    /// minute, without restarting the worker.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub secret_name: String,
    /// The RTMPS port of the ingest Service.
    #[serde(default = "default_rtmps_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// A fixed node port for RTMPS, for NodePort and LoadBalancer Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
}

fn default_rtmps_port() -> i32 {
    1936
}

fn default_app() -> String {
    "live".into()
}

/// A reference to one key of a Secret in the LiveStream's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_stream_key_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_stream_key_key() -> String {
    "streamKey".into()
}

/// The ingest Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.nodePort) || (has(self.type) && self.type != 'ClusterIP')").message("nodePort needs service type NodePort or LoadBalancer").field_path(".nodePort"))]
#[serde(rename_all = "camelCase")]
pub struct IngestServiceSpec {
    /// Service type. LoadBalancer gives encoders outside the cluster an address of the
    /// stream's own. Defaults to LoadBalancer, or to ClusterIP when the operator runs the
    /// ingest gateway: encoders then push to the gateway's one address
    /// (`status.ingestUrl`), and no stream pays for a load balancer of its own.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// The RTMP port of the Service.
    #[serde(default = "default_rtmp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// A fixed node port, for NodePort and LoadBalancer Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
    /// Annotations for the Service, for example a cloud load balancer's settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for IngestServiceSpec {
    fn default() -> Self {
        Self { type_: None, port: default_rtmp_port(), node_port: None, annotations: BTreeMap::new() }
    }
}

fn default_rtmp_port() -> i32 {
    1935
}

/// Kubernetes Service types that can carry RTMP.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    #[default]
    LoadBalancer,
}

/// The ABR ladder.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LadderSpec {
    /// The renditions, highest first by convention. When empty, the default ladder is
    /// used: 1080p, 720p, 480p and 360p. Renditions taller than the source are left out
    /// unless `allowUpscale` is set; the smallest one is always kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(
        validation = Rule::new("self.all(r, self.exists_one(s, s.name == r.name))").message("rendition names must be unique"),
        validation = Rule::new("self.filter(r, has(r.passthrough) && r.passthrough).size() <= 1").message("at most one rendition may be a passthrough"),
    )]
    pub renditions: Vec<Rendition>,
    /// Keep renditions taller than the source (wasteful; off by default).
    #[serde(default)]
    pub allow_upscale: bool,
    /// Audio settings, shared by every rendition.
    #[serde(default)]
    pub audio: AudioSpec,
    /// x264 preset: faster presets use less CPU for lower quality per bit.
    #[serde(default)]
    pub preset: EncoderPreset,
    /// Seconds between keyframes, aligned across renditions.
    #[serde(default = "default_keyframe_interval")]
    #[schemars(range(min = 1, max = 10))]
    pub keyframe_interval_seconds: u32,
    /// What the worker does when ffmpeg cannot encode the ladder in real time (the
    /// `TranscoderBehind` problem): `FasterPreset` restarts ffmpeg at a faster preset,
    /// chosen from the speed it reached, so the stream stays live at a lower quality per
    /// bit; `Report` only reports it, and viewers stall.
    #[serde(default)]
    pub when_behind: BehindPolicy,
}

impl Default for LadderSpec {
    fn default() -> Self {
        Self {
            renditions: Vec::new(),
            allow_upscale: false,
            audio: AudioSpec::default(),
            preset: EncoderPreset::default(),
            keyframe_interval_seconds: default_keyframe_interval(),
            when_behind: BehindPolicy::default(),
        }
    }
}

/// What to shed when the transcoder falls behind real time.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BehindPolicy {
    /// Report `TranscoderBehind` and change nothing.
    Report,
    /// Restart ffmpeg at a faster x264 preset (down to `ultrafast`), with a discontinuity
    /// in the playlists; the renditions stay.
    #[default]
    FasterPreset,
}

fn default_keyframe_interval() -> u32 {
    2
}

/// One rendition of the ladder: an encoded variant, or a passthrough copy of the source.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("self.passthrough || (has(self.width) && has(self.height) && has(self.videoBitrateKbps))").message("an encoded rendition needs width, height and videoBitrateKbps"),
    validation = Rule::new("!self.passthrough || !(has(self.width) || has(self.height) || has(self.videoBitrateKbps) || has(self.maxBitrateKbps) || has(self.frameRate) || has(self.profile))").message("a passthrough rendition copies the source and takes no encoding settings"),
    validation = Rule::new("!has(self.maxBitrateKbps) || !has(self.videoBitrateKbps) || self.maxBitrateKbps >= self.videoBitrateKbps").message("maxBitrateKbps must be at least videoBitrateKbps").field_path(".maxBitrateKbps"),
)]
#[serde(rename_all = "camelCase")]
pub struct Rendition {
    /// Name of the rendition, used in object names: lowercase letters, digits and dashes.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Copy the source video and audio without re-encoding.
    #[serde(default)]
    pub passthrough: bool,
    /// Width in pixels (even).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 16, max = 7680), extend("multipleOf" = 2))]
    pub width: Option<u32>,
    /// Height in pixels (even).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 16, max = 4320), extend("multipleOf" = 2))]
    pub height: Option<u32>,
    /// Target video bitrate in kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub video_bitrate_kbps: Option<u32>,
    /// Peak video bitrate in kbit/s (VBV maximum). Defaults to 1.5 times the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 150000))]
    pub max_bitrate_kbps: Option<u32>,
    /// Output frame rate. Defaults to the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 120))]
    pub frame_rate: Option<u32>,
    /// H.264 profile. Defaults to high.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<H264Profile>,
}

/// H.264 profiles that players everywhere decode.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum H264Profile {
    Baseline,
    Main,
    #[default]
    High,
}

/// x264 presets, fastest first.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum EncoderPreset {
    Ultrafast,
    Superfast,
    #[default]
    Veryfast,
    Faster,
    Fast,
    Medium,
}

impl EncoderPreset {
    /// Every preset, slowest first.
    pub const ALL: [EncoderPreset; 6] = [
        EncoderPreset::Medium,
        EncoderPreset::Fast,
        EncoderPreset::Faster,
        EncoderPreset::Veryfast,
        EncoderPreset::Superfast,
        EncoderPreset::Ultrafast,
    ];

    /// The preset named `name`, as x264 spells it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|preset| preset.as_str() == name)
    }

    /// The preset's name, as x264 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EncoderPreset::Ultrafast => "ultrafast",
            EncoderPreset::Superfast => "superfast",
            EncoderPreset::Veryfast => "veryfast",
            EncoderPreset::Faster => "faster",
            EncoderPreset::Fast => "fast",
            EncoderPreset::Medium => "medium",
        }
    }
}

/// Audio settings: AAC-LC for every rendition.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AudioSpec {
    /// AAC bitrate in kbit/s.
    #[serde(default = "default_audio_bitrate")]
    #[schemars(range(min = 16, max = 512))]
    pub bitrate_kbps: u32,
    /// Sample rate in Hz.
    #[serde(default = "default_sample_rate")]
    pub sample_rate: SampleRate,
    /// Number of channels: 1 or 2.
    #[serde(default = "default_channels")]
    #[schemars(range(min = 1, max = 2))]
    pub channels: u32,
}

impl Default for AudioSpec {
    fn default() -> Self {
        Self { bitrate_kbps: default_audio_bitrate(), sample_rate: default_sample_rate(), channels: default_channels() }
    }
}

fn default_audio_bitrate() -> u32 {
    128
}
fn default_sample_rate() -> SampleRate {
    SampleRate::Hz48000
}
fn default_channels() -> u32 {
    2
}

/// AAC sample rates that HLS players handle.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleRate {
    #[serde(rename = "44100")]
    Hz44100,
    #[serde(rename = "48000")]
    Hz48000,
}

impl SampleRate {
    pub fn hz(self) -> u32 {
        match self {
            SampleRate::Hz44100 => 44_100,
            SampleRate::Hz48000 => 48_000,
        }
    }
}

/// HLS packaging.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HlsSpec {
    /// Target segment duration in seconds.
    #[serde(default = "default_segment_duration")]
    #[schemars(range(min = 1, max = 10))]
    pub segment_duration_seconds: u32,
    /// Number of segments in the live playlist window.
    #[serde(default = "default_window")]
    #[schemars(range(min = 3, max = 100))]
    pub window_segments: u32,
    /// Segment container: fmp4 (CMAF, the default) or ts (MPEG-TS).
    #[serde(default)]
    pub container: SegmentContainer,
    /// Keep every segment and a VOD playlist of the whole event after the stream ends.
    #[serde(default)]
    pub recording: bool,
    /// Low-Latency HLS for fmp4 streams: segments are also stored as parts, and the
    /// worker's origin serves playlists with parts and blocking reloads (the low-latency
    /// playback URL). Standard playlists are written to storage either way; ts streams are
    /// always standard HLS.
    #[serde(default = "default_low_latency")]
    pub low_latency: bool,
    /// The longest part of Low-Latency HLS, in milliseconds: at most half the segment
    /// duration. Players stay about three parts behind the newest.
    #[serde(default = "default_part_duration")]
    #[schemars(range(min = 100, max = 5000))]
    pub part_duration_milliseconds: u32,
}

impl Default for HlsSpec {
    fn default() -> Self {
        Self {
            segment_duration_seconds: default_segment_duration(),
            window_segments: default_window(),
            container: SegmentContainer::default(),
            recording: false,
            low_latency: default_low_latency(),
            part_duration_milliseconds: default_part_duration(),
        }
    }
}

impl HlsSpec {
    /// The part target when Low-Latency HLS applies (fmp4 with `lowLatency`).
    pub fn part_target(&self) -> Option<std::time::Duration> {
        (self.low_latency && self.container == SegmentContainer::Fmp4)
            .then(|| std::time::Duration::from_millis(u64::from(self.part_duration_milliseconds)))
    }
}

fn default_low_latency() -> bool {
    true
}
/// 0.4 s: whole frames at 25, 30, 50 and 60 fps, five parts to a 2 s segment, and with the
/// players' hold-back of three parts, about 1.2 s behind the newest part.
fn default_part_duration() -> u32 {
    400
}

fn default_segment_duration() -> u32 {
    2
}
fn default_window() -> u32 {
    6
}

/// HLS segment containers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SegmentContainer {
    #[default]
    Fmp4,
    Ts,
}

/// S3-compatible storage. Credentials come from `credentialsSecretRef`, or from
/// `webIdentity`, or, with neither, from the standard AWS provider chain in the worker:
/// the web identity that EKS's IRSA injects for the worker's ServiceAccount, EKS Pod
/// Identity, or the node's instance role.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.credentialsSecretRef) || !has(self.webIdentity)").message("credentialsSecretRef and webIdentity are two ways to the same credentials: set one").field_path(".webIdentity"))]
pub struct StorageSpec {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63), regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"))]
    pub bucket: String,
    /// Key prefix of the stream's objects. Defaults to `NAMESPACE/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$"))]
    #[x_kube(validation = Rule::new("!self.split('/').exists(p, p == '.' || p == '..')").message("prefix must not contain '.' or '..' path segments"))]
    pub prefix: Option<String>,
    /// Region of the bucket.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: String,
    /// Endpoint URL of an S3-compatible service (MinIO, R2, ...). Defaults to AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"))]
    pub endpoint: Option<String>,
    /// Address buckets as `ENDPOINT/BUCKET` rather than `BUCKET.ENDPOINT` (MinIO needs it).
    #[serde(default)]
    pub force_path_style: bool,
    /// Secret with the access key, under `accessKeyId` and `secretAccessKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,
    /// Temporary credentials for a role, in exchange for the worker's ServiceAccount token
    /// (STS AssumeRoleWithWebIdentity), on clusters whose token issuer the STS trusts
    /// without EKS's webhook: a self-managed cluster registered as an IAM OIDC provider, or
    /// MinIO with an OpenID identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_identity: Option<WebIdentitySpec>,
    /// What happens to the stream's objects when the LiveStream is deleted.
    #[serde(default)]
    pub retention: Retention,
}

fn default_region() -> String {
    "us-east-1".into()
}

/// A Secret holding S3 credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key of the access key ID.
    #[serde(default = "default_access_key_id_key")]
    #[schemars(length(min = 1, max = 253))]
    pub access_key_id_key: String,
    /// Key of the secret access key.
    #[serde(default = "default_secret_access_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_access_key_key: String,
}

/// A role assumed with the worker's ServiceAccount token.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebIdentitySpec {
    /// ARN of the role, e.g. `arn:aws:iam::123456789012:role/live-video`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^arn:[a-z0-9-]+:[a-z0-9-]*:[a-z0-9-]*:[0-9]*:.+$"))]
    pub role_arn: String,
    /// Audience of the token, as the STS expects it.
    #[serde(default = "default_web_identity_audience")]
    #[schemars(length(min = 1, max = 256))]
    pub audience: String,
    /// Endpoint of the STS, e.g. MinIO's own URL. Defaults to AWS's STS in the bucket's
    /// region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"))]
    pub sts_endpoint: Option<String>,
}

fn default_web_identity_audience() -> String {
    "sts.amazonaws.com".into()
}

fn default_access_key_id_key() -> String {
    "accessKeyId".into()
}
fn default_secret_access_key_key() -> String {
    "secretAccessKey".into()
}

/// Whether a deleted stream's objects stay in storage.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Retention {
    #[default]
    Retain,
    Delete,
}

/// The CDN that fronts the storage.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CdnSpec {
    /// Base URL that maps to the bucket root, e.g. `https://cdn.example.com`. The playback
    /// URL is `BASE/PREFIX/master.m3u8`, and the media of low-latency playlists is fetched
    /// under it.
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"))]
    pub base_url: String,
    /// Base URL whose playlist requests the CDN sends to the worker's origin (query strings
    /// included), e.g. `https://cdn.example.com` when one distribution routes `*.m3u8` to
    /// the origin and the rest to the bucket. The low-latency playback URL is
    /// `BASE/PREFIX/master.m3u8`. Without it, that URL is the origin Service's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"))]
    pub low_latency_base_url: Option<String>,
}

/// The worker's HLS origin.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OriginSpec {
    /// The Service that exposes the origin's port (a ClusterIP Service while Low-Latency
    /// HLS is off).
    #[serde(default)]
    pub service: OriginServiceSpec,
}

/// The origin Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.nodePort) || self.type != 'ClusterIP'").message("nodePort needs service type NodePort or LoadBalancer").field_path(".nodePort"))]
#[serde(rename_all = "camelCase")]
pub struct OriginServiceSpec {
    /// Service type. Viewers (or the CDN) must reach it: LoadBalancer by default.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// The HTTP port of the Service.
    #[serde(default = "default_origin_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// A fixed node port, for NodePort and LoadBalancer Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
    /// Annotations for the Service, for example a cloud load balancer's settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for OriginServiceSpec {
    fn default() -> Self {
        Self {
            type_: ServiceType::default(),
            port: default_origin_port(),
            node_port: None,
            annotations: BTreeMap::new(),
        }
    }
}

fn default_origin_port() -> i32 {
    80
}

/// The worker pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// Container image of the worker. Defaults to the operator's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub image: Option<String>,
    /// CPU and memory of the worker container. When unset, the worker requests the CPU
    /// that its ladder needs to transcode in real time (from the pixels per second of each
    /// rendition and the preset; a rendition without a frame rate counts as 30 fps), and
    /// sets no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the worker must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the worker pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// ServiceAccount of the worker pod: the identity of its storage credentials under
    /// EKS's IRSA or Pod Identity, and of `storage.webIdentity`. Defaults to the operator's
    /// `--worker-service-account`, else the namespace's `default`. The worker needs no
    /// API rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub service_account_name: Option<String>,
}
