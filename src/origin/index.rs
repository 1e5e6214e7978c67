//! The low-latency playlists of the live streams of a process, as their publishers last
//! left them, and the waiting that blocking playlist reloads do on them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::package::{LowLatencyPlaylist, Position, RenderOptions, RenditionReport, names};

/// Every live stream of a process, by storage prefix (`live/demo`, `media/launch`).
#[derive(Default)]
pub struct LiveIndex {
    streams: RwLock<BTreeMap<String, Arc<StreamIndex>>>,
}

/// How a stream's low-latency playlists are rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexOptions {
    pub part_target: Duration,
    /// URL of the stream's storage prefix that media URIs point to (the bucket, or the CDN
    /// in front of it); `None` keeps them relative, for an origin that serves media too.
    pub media_base: Option<String>,
}

impl LiveIndex {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a stream's renditions (replacing an earlier registration of the prefix).
    pub fn register(&self, prefix: &str, renditions: Vec<String>, options: IndexOptions) -> Arc<StreamIndex> {
        let (version, _) = watch::channel(0);
        let stream = Arc::new(StreamIndex {
            state: Mutex::new(State { playlists: vec![None; renditions.len()], master: None }),
            renditions,
            options,
            version,
        });
        self.streams.write().unwrap_or_else(PoisonError::into_inner).insert(prefix.to_string(), stream.clone());
        stream
    }

    /// The stream registered under `prefix`.
    pub fn get(&self, prefix: &str) -> Option<Arc<StreamIndex>> {
        self.streams.read().unwrap_or_else(PoisonError::into_inner).get(prefix).cloned()
    }

    /// What a request path names: a stream's master playlist (`PREFIX/master.m3u8`) or a
    /// rendition's media playlist or part (`PREFIX/RENDITION/FILE`).
    pub fn resolve(&self, path: &str) -> Option<(Arc<StreamIndex>, Target)> {
        let (parent, file) = path.rsplit_once('/')?;
        if file == names::MASTER_PLAYLIST
            && let Some(stream) = self.get(parent)
        {
            return Some((stream, Target::Master));
        }
        let (prefix, rendition) = parent.rsplit_once('/')?;
        let stream = self.get(prefix)?;
        let index = stream.renditions.iter().position(|name| name == rendition)?;
        if file == names::MEDIA_PLAYLIST_FILE {
            return Some((stream, Target::MediaPlaylist(index)));
        }
        let part = parse_part_file(file)?;
        Some((stream, Target::Part { rendition: index, msn: part.0, part: part.1 }))
    }
}

/// What a request asks of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Master,
    MediaPlaylist(usize),
    Part { rendition: usize, msn: u64, part: u32 },
}

/// `42.3.m4s` as (42, 3).
fn parse_part_file(file: &str) -> Option<(u64, u32)> {
    let stem = file.strip_suffix(".m4s")?;
    let (msn, part) = stem.split_once('.')?;
    Some((msn.parse().ok()?, part.parse().ok()?))
}

/// One stream's low-latency playlists.
pub struct StreamIndex {
    renditions: Vec<String>,
    options: IndexOptions,
    state: Mutex<State>,
    /// Bumped on every change, for blocked requests to wake up.
    version: watch::Sender<u64>,
}

struct State {
    playlists: Vec<Option<LowLatencyPlaylist>>,
    master: Option<Arc<str>>,
}

/// Whether a blocking reload can be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The playlist holds what was asked for.
    Ready,
    /// Not yet: wait for a change.
    Wait,
    /// Further ahead than a server should wait for.
    TooFar,
    /// The rendition has no playlist yet.
    Unknown,
}

impl StreamIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest playlist of `rendition`.
    pub fn update(&self, rendition: usize, playlist: LowLatencyPlaylist) {
        if let Some(slot) = self.lock().playlists.get_mut(rendition) {
            *slot = Some(playlist);
        }
        self.version.send_modify(|version| *version = version.wrapping_add(1));
    }

    /// The master playlist, once every rendition can be played.
    pub fn set_master(&self, master: String) {
        let mut state = self.lock();
        if state.master.as_deref() != Some(master.as_str()) {
            state.master = Some(master.into());
            drop(state);
            self.version.send_modify(|version| *version = version.wrapping_add(1));
        }
    }

    pub fn master(&self) -> Option<Arc<str>> {
        self.lock().master.clone()
    }

    /// A receiver that changes whenever a playlist does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn part_target(&self) -> Duration {
        self.options.part_target
    }

    /// The target duration of `rendition`'s playlist, once it has one.
    pub fn target_duration(&self, rendition: usize) -> Option<Duration> {
        let state = self.lock();
        let playlist = state.playlists.get(rendition)?.as_ref()?;
        Some(Duration::from_secs(u64::from(playlist.target_duration_s)))
    }

    /// Whether a reload of `rendition` blocking on `msn` (and `part`) can be answered.
    pub fn readiness(&self, rendition: usize, msn: u64, part: Option<u32>) -> Readiness {
        let state = self.lock();
        let Some(playlist) = state.playlists.get(rendition).and_then(Option::as_ref) else {
            return Readiness::Unknown;
        };
        if playlist.satisfies(msn, part) {
            Readiness::Ready
        } else if msn > playlist.furthest_blockable() {
            Readiness::TooFar
        } else {
            Readiness::Wait
        }
    }

    /// Whether a request for the file of part `part` of segment `msn` can be answered: as
    /// [`Self::readiness`], and at once when that segment is whole (its parts are all
    /// written, whether or not the playlist lists them).
    pub fn part_readiness(&self, rendition: usize, msn: u64, part: u32) -> Readiness {
        let whole = {
            let state = self.lock();
            let playlist = state.playlists.get(rendition).and_then(Option::as_ref);
            playlist.is_some_and(|playlist| playlist.holds_whole(msn))
        };
        if whole { Readiness::Ready } else { self.readiness(rendition, msn, Some(part)) }
    }

    /// Renders `rendition`'s playlist, with the positions of the others as rendition
    /// reports.
    pub fn render(&self, rendition: usize, skip: bool) -> Option<String> {
        let state = self.lock();
        let playlist = state.playlists.get(rendition)?.as_ref()?;
        let reports: Vec<RenditionReport> = state
            .playlists
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != rendition)
            .filter_map(|(index, other)| {
                let position: Position = other.as_ref()?.position()?;
                Some(RenditionReport {
                    uri: format!("../{}/{}", self.renditions[index], names::MEDIA_PLAYLIST_FILE),
                    position,
                })
            })
            .collect();
        let media_base = self
            .options
            .media_base
            .as_ref()
            .map(|base| format!("{}/{}", base.trim_end_matches('/'), playlist.rendition));
        let options = RenderOptions {
            part_target: self.options.part_target,
            skip,
            media_base: media_base.as_deref(),
            reports: &reports,
        };
        Some(playlist.render(&options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> IndexOptions {
        IndexOptions { part_target: Duration::from_millis(500), media_base: None }
    }

    #[test]
    fn paths_resolve_to_masters_playlists_and_parts() {
        let index = LiveIndex::new();
        index.register("live/demo", vec!["720p".into(), "360p".into()], options());
        let target = |path: &str| index.resolve(path).map(|(_, target)| target);
        assert_eq!(target("live/demo/master.m3u8"), Some(Target::Master));
        assert_eq!(target("live/demo/360p/index.m3u8"), Some(Target::MediaPlaylist(1)));
        assert_eq!(target("live/demo/720p/42.3.m4s"), Some(Target::Part { rendition: 0, msn: 42, part: 3 }));
        assert_eq!(target("live/demo/720p/42.m4s"), None, "a whole segment is a file, not a part");
        assert_eq!(target("live/demo/1080p/index.m3u8"), None);
        assert_eq!(target("live/other/master.m3u8"), None);
        assert_eq!(target("master.m3u8"), None);
    }

    #[tokio::test]
    async fn updates_wake_subscribers() {
        let index = LiveIndex::new();
        let stream = index.register("s", vec!["a".into()], options());
        assert_eq!(stream.readiness(0, 0, None), Readiness::Unknown);
        let mut changes = stream.subscribe();
        stream.set_master("#EXTM3U\n".into());
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();
        stream.set_master("#EXTM3U\n".into());
        assert!(!changes.has_changed().unwrap(), "an unchanged master wakes nobody");
    }
}
