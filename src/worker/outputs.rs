//! What the transcoder produced and the publisher has yet to put in storage: init
//! segments, parts (fMP4) and segment files (MPEG-TS), in order, in a queue that never
//! makes the transcoder wait.
//!
//! The queue is bounded by count and by bytes: past a bound the oldest media is dropped
//! (a TS segment's file with it) and its rendition is reported as having a gap, so it
//! continues after a discontinuity. A storage outage thus costs the oldest media, never
//! the encoder's connection. A part whose segment is already complete further down the
//! queue is handed out as stale: storage is behind, and it is stored as part of its
//! segment only.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use tokio::sync::{Notify, oneshot};

/// A part of a rendition's fMP4 stream: one fragment, placed by the cutter.
#[derive(Clone, Debug)]
pub struct ReadyPart {
    /// Index of the rendition in the publisher's list.
    pub rendition: usize,
    /// Transcoder run: a new run starts a discontinuity.
    pub run: u32,
    pub bytes: Bytes,
    pub duration: Duration,
    /// Starts with a sync sample.
    pub independent: bool,
    /// Opens a new segment.
    pub opens_segment: bool,
    /// Completes its segment.
    pub completes_segment: bool,
    /// Ingest time of its first frame.
    pub starts_at: Timestamp,
}

/// A segment that ffmpeg finished, waiting on the scratch disk (MPEG-TS).
#[derive(Clone, Debug)]
pub struct ReadySegment {
    pub rendition: usize,
    pub run: u32,
    pub path: PathBuf,
    pub duration: Duration,
    /// When ffmpeg finished it.
    pub completed_at: Timestamp,
    /// Segments of its rendition were lost just before it.
    pub after_gap: bool,
}

/// One thing for the publisher to do, in order.
#[derive(Debug)]
pub enum Output {
    /// The init segment of a rendition in a run (fMP4).
    Init {
        rendition: usize,
        run: u32,
        bytes: Bytes,
    },
    Part(ReadyPart),
    /// A rendition's stream of a run ended: its open segment is complete.
    RunEnded {
        rendition: usize,
        run: u32,
    },
    Segment(ReadySegment),
    /// A new poster of the stream (a whole JPEG); only the newest waits.
    Poster(Bytes),
    /// End the playlists (ENDLIST, recording); the result goes back on the channel.
    EndStream(oneshot::Sender<Result<(), super::publisher::PublishError>>),
}

impl Output {
    fn media_bytes(&self) -> Option<usize> {
        match self {
            Output::Part(part) => Some(part.bytes.len()),
            Output::Segment(_) => Some(0),
            _ => None,
        }
    }

    fn rendition(&self) -> Option<usize> {
        match self {
            Output::Part(part) => Some(part.rendition),
            Output::Segment(segment) => Some(segment.rendition),
            Output::Init { rendition, .. } | Output::RunEnded { rendition, .. } => Some(*rendition),
            Output::EndStream(_) | Output::Poster(_) => None,
        }
    }
}

/// What the publisher takes next.
#[derive(Debug)]
pub enum Next {
    Output(Output),
    /// A part whose segment is complete further down the queue: store it with its segment,
    /// not on its own.
    StalePart(ReadyPart),
    /// Media of this rendition was dropped.
    Gap(usize),
    /// No more outputs will come.
    Closed,
}

/// The bounds of an [`OutputQueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueBounds {
    /// Most parts and segments waiting.
    pub items: usize,
    /// Most bytes of parts waiting in memory.
    pub bytes: usize,
}

/// The queue between the transcoder and the publisher.
#[derive(Clone)]
pub struct OutputQueue {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    notify: Notify,
    bounds: QueueBounds,
}

#[derive(Default)]
struct State {
    outputs: VecDeque<Output>,
    media_items: usize,
    bytes: usize,
    gaps: Vec<usize>,
    closed: bool,
}

impl OutputQueue {
    pub fn new(bounds: QueueBounds) -> Self {
        let bounds = QueueBounds { items: bounds.items.max(1), bytes: bounds.bytes.max(1) };
        Self { inner: Arc::new(Inner { state: Mutex::new(State::default()), notify: Notify::new(), bounds }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an output; never waits. Returns the renditions whose oldest media was dropped
    /// to make room.
    pub fn push(&self, output: Output) -> Vec<usize> {
        let mut dropped_files = Vec::new();
        let dropped = {
            let mut state = self.lock();
            if let Some(bytes) = output.media_bytes() {
                state.media_items += 1;
                state.bytes += bytes;
            }
            if matches!(output, Output::Poster(_)) {
                // A newer picture replaces one that was not uploaded yet.
                state.outputs.retain(|waiting| !matches!(waiting, Output::Poster(_)));
            }
            state.outputs.push_back(output);
            let mut dropped = Vec::new();
            while state.media_items > self.inner.bounds.items || state.bytes > self.inner.bounds.bytes {
                let Some(position) = state.outputs.iter().position(|o| o.media_bytes().is_some()) else { break };
                let Some(oldest) = state.outputs.remove(position) else { break };
                state.media_items -= 1;
                state.bytes -= oldest.media_bytes().unwrap_or(0);
                if let Some(rendition) = oldest.rendition() {
                    state.gaps.push(rendition);
                    dropped.push(rendition);
                }
                if let Output::Segment(segment) = oldest {
                    dropped_files.push(segment.path);
                }
            }
            dropped
        };
        for path in dropped_files {
            let _ = std::fs::remove_file(path);
        }
        self.inner.notify.notify_one();
        dropped
    }

    /// No more outputs will be pushed; the publisher drains what is queued, then stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.inner.notify.notify_one();
    }

    /// Parts and segments waiting.
    pub fn len(&self) -> usize {
        self.lock().media_items
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the next thing to do.
    pub async fn next(&self) -> Next {
        loop {
            let notified = self.inner.notify.notified();
            {
                let mut state = self.lock();
                if let Some(rendition) = state.gaps.pop() {
                    return Next::Gap(rendition);
                }
                if let Some(output) = state.outputs.pop_front() {
                    if let Some(bytes) = output.media_bytes() {
                        state.media_items -= 1;
                        state.bytes -= bytes;
                    }
                    return match output {
                        Output::Part(part) if segment_completes_later(&state.outputs, &part) => Next::StalePart(part),
                        output => Next::Output(output),
                    };
                }
                if state.closed {
                    return Next::Closed;
                }
            }
            notified.await;
        }
    }
}

/// Whether the queue holds what completes `part`'s segment: a later part of its rendition
/// that opens a segment, or the end of its run.
fn segment_completes_later(queue: &VecDeque<Output>, part: &ReadyPart) -> bool {
    queue.iter().any(|output| match output {
        Output::Part(later) => later.rendition == part.rendition && (later.opens_segment || later.run != part.run),
        Output::RunEnded { rendition, .. } => *rendition == part.rendition,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(rendition: usize, opens_segment: bool, size: usize) -> Output {
        Output::Part(ReadyPart {
            rendition,
            run: 1,
            bytes: Bytes::from(vec![0; size]),
            duration: Duration::from_millis(500),
            independent: opens_segment,
            opens_segment,
            completes_segment: false,
            starts_at: Timestamp::UNIX_EPOCH,
        })
    }

    fn bounds(items: usize, bytes: usize) -> QueueBounds {
        QueueBounds { items, bytes }
    }

    #[tokio::test]
    async fn drops_the_oldest_media_past_the_count() {
        let queue = OutputQueue::new(bounds(2, 1 << 20));
        assert!(queue.push(Output::Init { rendition: 0, run: 1, bytes: Bytes::from_static(b"init") }).is_empty());
        assert!(queue.push(part(0, true, 10)).is_empty());
        assert!(queue.push(part(1, true, 10)).is_empty());
        assert_eq!(queue.push(part(1, false, 10)), vec![0], "the oldest part (rendition 0) is dropped");
        assert!(matches!(queue.next().await, Next::Gap(0)));
        assert!(matches!(queue.next().await, Next::Output(Output::Init { .. })), "only media is dropped");
        assert!(matches!(queue.next().await, Next::Output(Output::Part(p)) if p.rendition == 1 && p.opens_segment));
        assert!(matches!(queue.next().await, Next::Output(Output::Part(p)) if !p.opens_segment));
        queue.close();
        assert!(matches!(queue.next().await, Next::Closed));
    }

    #[tokio::test]
    async fn drops_the_oldest_media_past_the_bytes() {
        let queue = OutputQueue::new(bounds(100, 25));
        queue.push(part(0, true, 10));
        queue.push(part(0, false, 10));
        assert_eq!(queue.push(part(0, false, 10)), vec![0]);
        assert_eq!(queue.len(), 2);
    }

    #[tokio::test]
    async fn a_part_whose_segment_is_complete_later_in_the_queue_is_stale() {
        let queue = OutputQueue::new(bounds(10, 1 << 20));
        queue.push(part(0, true, 1));
        queue.push(part(1, true, 1));
        queue.push(part(0, true, 1));
        assert!(matches!(queue.next().await, Next::StalePart(p) if p.rendition == 0));
        assert!(matches!(queue.next().await, Next::Output(Output::Part(p)) if p.rendition == 1), "fresh");
        assert!(matches!(queue.next().await, Next::Output(Output::Part(p)) if p.rendition == 0));
        queue.push(part(1, false, 1));
        queue.push(Output::RunEnded { rendition: 1, run: 1 });
        assert!(matches!(queue.next().await, Next::StalePart(_)), "its run ends later in the queue");
    }

    #[tokio::test]
    async fn wakes_a_waiting_publisher() {
        let queue = OutputQueue::new(bounds(4, 1 << 20));
        let waiter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.next().await })
        };
        tokio::task::yield_now().await;
        queue.push(part(0, true, 1));
        let next = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("woken").expect("task");
        assert!(matches!(next, Next::Output(Output::Part(_))));
    }
}
