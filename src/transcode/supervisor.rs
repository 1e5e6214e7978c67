//! The async shell around ffmpeg: one process per stream for the whole ladder, fed FLV on
//! stdin, restarted with backoff when it dies while input continues, its output folders
//! watched for completed segments.
//!
//! Input: [`FlvTag`]s (an RTMP audio, video or data message each), through a bounded
//! queue ([`Transcoder::send`] waits when ffmpeg falls behind). Output: [`TranscodeEvent`]s
//! on a bounded channel that the caller must keep draining, also while
//! [`Transcoder::finish`] runs; progress reports are dropped rather than waited for.
//!
//! Each run of ffmpeg has its own number and its own folder `scratch_dir/run-{n}/`, emptied
//! when the run starts. With fMP4, ffmpeg streams each rendition to a Unix socket there and
//! the supervisor reports the init segment and every fragment as it arrives. With MPEG-TS,
//! ffmpeg's HLS muxer writes `run-{n}/{rendition}/` and the supervisor reports each segment
//! listed in its local playlists; segment files stay there until the caller, having
//! uploaded one, deletes it.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tracing::{info, warn};

use crate::backoff::Backoff;

use super::args::{LOCAL_PLAYLIST, ffmpeg_args, fragment_socket};
use super::gate::{InputFormat, InputGate};
use super::lines::read_bounded_line;
use super::local_playlist::{SegmentCursor, parse_local_playlist};
use super::plan::{Container, SourceFormat, TranscodePlan};
use super::poster::watch_poster;
use super::progress::{Progress, ProgressParser};
use crate::media::flv::FlvTag;
use crate::media::fmp4::{Fragment, FragmentReader, InitSegment, Piece};

/// ffmpeg stderr lines logged per run; later ones are counted, not logged.
const MAX_LOGGED_STDERR_LINES: usize = 100;
/// Longest stderr or progress line kept, in bytes.
const MAX_LINE_BYTES: usize = 1024;
/// Window over which restarts are counted.
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// How ffmpeg is restarted after it dies while input continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within any minute; one more and the transcoder gives up.
    pub max_restarts_per_minute: u32,
    /// Delays before a restart, growing with the restarts of the last minute.
    pub backoff: Backoff,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self { max_restarts_per_minute: 5, backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)) }
    }
}

impl RestartPolicy {
    /// The delay before a restart when `recent` restarts happened in the last minute.
    pub fn delay(&self, recent: u32) -> Duration {
        self.backoff.delay(recent.saturating_add(1))
    }
}

/// Settings of a [`Transcoder`].
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorConfig {
    /// What to produce.
    pub plan: TranscodePlan,
    /// Number of the first run. Give each transcoder of a stream numbers after those of
    /// the previous one (e.g. after an encoder reconnect), so runs stay distinct.
    pub first_run: u32,
    /// The source's codec and frame rate.
    pub source: SourceFormat,
    /// Restarts.
    pub restart: RestartPolicy,
    /// How often the output folders are checked for new segments.
    pub poll_interval: Duration,
    /// How long ffmpeg may take to flush its last segments once input ends.
    pub finish_timeout: Duration,
    /// How long a write to ffmpeg's stdin may block before ffmpeg counts as hung.
    pub stall_timeout: Duration,
    /// Tags queued towards ffmpeg.
    pub input_capacity: usize,
    /// Events queued towards the caller.
    pub event_capacity: usize,
}

impl SupervisorConfig {
    /// Settings with defaults around a plan.
    pub fn new(plan: TranscodePlan) -> Self {
        Self {
            plan,
            first_run: 1,
            source: SourceFormat::default(),
            restart: RestartPolicy::default(),
            poll_interval: Duration::from_millis(50),
            finish_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(15),
            input_capacity: 512,
            event_capacity: 256,
        }
    }
}

/// What the transcoder reports.
#[derive(Debug)]
pub enum TranscodeEvent {
    /// ffmpeg run `run` started.
    Started {
        /// Run number.
        run: u32,
        /// Process id of ffmpeg.
        pid: Option<u32>,
    },
    /// A progress report of run `run`.
    Progress {
        /// Run number.
        run: u32,
        /// The report.
        progress: Progress,
    },
    /// Media of run `run` started flowing into ffmpeg at this input timestamp: the output
    /// of the run starts at this instant of the input.
    InputStarted { run: u32, timestamp_ms: u32 },
    /// A segment is complete on local disk (MPEG-TS).
    Segment(SegmentReady),
    /// The init segment of a rendition's fMP4 stream in run `run`.
    Init {
        run: u32,
        /// Index of the rendition in the plan.
        rendition: usize,
        init: InitSegment,
    },
    /// The next fragment of a rendition's fMP4 stream.
    Fragment { run: u32, rendition: usize, fragment: Fragment },
    /// A rendition's fMP4 stream of run `run` ended (ffmpeg closed it).
    OutputEnded { run: u32, rendition: usize },
    /// A new poster of run `run`: a whole JPEG.
    Poster { run: u32, jpeg: Bytes },
    /// ffmpeg run `run` ended.
    Exited {
        /// Run number.
        run: u32,
        /// Exit status, when known.
        status: Option<ExitStatus>,
        /// A new run follows.
        will_restart: bool,
    },
    /// ffmpeg died too often; the transcoder stopped. No events follow.
    GaveUp {
        /// Restarts within the last minute.
        restarts: u32,
    },
}

/// A completed segment of one rendition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReady {
    /// Run that produced it; a new run means a discontinuity.
    pub run: u32,
    /// Rendition name.
    pub rendition: String,
    /// The segment file.
    pub path: PathBuf,
    /// Duration as listed by ffmpeg.
    pub duration: Duration,
    /// The run's init segment for this rendition (fMP4).
    pub init: Option<PathBuf>,
    /// Segments of this rendition were lost just before this one (read too late).
    pub after_gap: bool,
}

/// Errors of the transcoder.
#[derive(Debug, Error)]
pub enum TranscodeError {
    /// ffmpeg could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The ffmpeg path.
        program: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The scratch folder could not be prepared.
    #[error("cannot prepare scratch folder {path}: {source}")]
    Scratch {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The transcoder has stopped and takes no more input.
    #[error("the transcoder has stopped")]
    Stopped,
    /// ffmpeg died too often.
    #[error("ffmpeg died {0} times within a minute; giving up")]
    GaveUp(u32),
    /// Not called within a Tokio runtime, or the supervising task failed.
    #[error("transcoder task: {0}")]
    Task(String),
}

/// A running transcoder: one ffmpeg at a time, restarted as needed.
#[derive(Debug)]
pub struct Transcoder {
    input: mpsc::Sender<FlvTag>,
    /// The x264 preset asked for; a change restarts ffmpeg at the next keyframe.
    preset: watch::Sender<String>,
    pid: watch::Receiver<Option<u32>>,
    task: JoinHandle<Result<(), TranscodeError>>,
}

impl Transcoder {
    /// Starts ffmpeg (run `first_run`) and its supervisor; must run within a Tokio runtime.
    pub fn start(config: SupervisorConfig) -> Result<(Self, mpsc::Receiver<TranscodeEvent>), TranscodeError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|error| TranscodeError::Task(error.to_string()))?;
        let (input_tx, input_rx) = mpsc::channel(config.input_capacity.max(1));
        let (events_tx, events_rx) = mpsc::channel(config.event_capacity.max(1));
        let (pid_tx, pid_rx) = watch::channel(None);
        let (preset_tx, preset_rx) = watch::channel(config.plan.preset.clone());
        let run = {
            let _guard = runtime.enter();
            Run::spawn(&config, config.first_run, &events_tx)?
        };
        let gate = InputGate::new(InputFormat::for_source(&config.source)).expecting_audio(config.plan.has_audio);
        let supervisor =
            Supervisor { config, events: events_tx, pid: pid_tx, gate, restarts: VecDeque::new(), preset: preset_rx };
        let task = runtime.spawn(supervisor.run(run, input_rx));
        Ok((Self { input: input_tx, preset: preset_tx, pid: pid_rx, task }, events_rx))
    }

    /// Restarts ffmpeg at x264 preset `preset`: the current run ends as at the end of the
    /// input (its last segments are flushed), and the next starts at the source's next
    /// keyframe. Not counted as a restart.
    pub fn change_preset(&self, preset: &str) {
        self.preset.send_if_modified(|current| {
            let changed = current != preset;
            preset.clone_into(current);
            changed
        });
    }

    /// Queues one tag for ffmpeg, waiting while the queue is full.
    pub async fn send(&self, tag: FlvTag) -> Result<(), TranscodeError> {
        self.input.send(tag).await.map_err(|_| TranscodeError::Stopped)
    }

    /// Process id of the current ffmpeg, if one runs.
    pub fn pid(&self) -> Option<u32> {
        *self.pid.borrow()
    }

    /// Ends the input: ffmpeg flushes its last segments (within the finish timeout) and the
    /// event channel closes after the final `Exited`. Keep draining events meanwhile.
    pub async fn finish(self) -> Result<(), TranscodeError> {
        drop(self.input);
        self.task.await.map_err(|error| TranscodeError::Task(error.to_string()))?
    }
}

/// One ffmpeg process and the tasks reading its output.
struct Run {
    number: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Tells the output readers that ffmpeg is gone: a socket it never connected to will
    /// not be, and the local playlists get one last look.
    stop_watcher: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Why feeding a run stopped.
enum RunEnd {
    InputClosed,
    /// Another preset was asked for.
    PresetChanged,
    Exited,
    WriteFailed,
    Stalled,
}

/// The folder of run `run` inside the scratch folder.
pub fn run_dir(scratch_dir: &Path, run: u32) -> PathBuf {
    scratch_dir.join(format!("run-{run}"))
}

impl Run {
    fn spawn(
        config: &SupervisorConfig,
        number: u32,
        events: &mpsc::Sender<TranscodeEvent>,
    ) -> Result<Self, TranscodeError> {
        let plan = &config.plan;
        let dir = run_dir(&plan.scratch_dir, number);
        // A folder of the same number can be left from an earlier process (a restarted
        // container keeps its scratch volume): its files must not be taken for this run's.
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(source) if source.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(TranscodeError::Scratch { path: dir, source }),
        }
        std::fs::create_dir_all(&dir).map_err(|source| TranscodeError::Scratch { path: dir.clone(), source })?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::with_capacity(plan.renditions.len() + 2);
        match plan.container {
            Container::Fmp4 => {
                for index in 0..plan.renditions.len() {
                    let path = fragment_socket(&dir, index);
                    let listener = UnixListener::bind(&path)
                        .map_err(|source| TranscodeError::Scratch { path: path.clone(), source })?;
                    tasks.push(tokio::spawn(read_fragments(number, index, listener, events.clone(), stop_rx.clone())));
                }
            }
            Container::Ts => {
                let renditions: Vec<(String, PathBuf)> = plan
                    .renditions
                    .iter()
                    .map(|rendition| (rendition.name().to_owned(), dir.join(rendition.name())))
                    .collect();
                for (_, folder) in &renditions {
                    std::fs::create_dir_all(folder)
                        .map_err(|source| TranscodeError::Scratch { path: folder.clone(), source })?;
                }
                tasks.push(tokio::spawn(watch_segments(
                    number,
                    renditions,
                    events.clone(),
                    stop_rx.clone(),
                    config.poll_interval,
                )));
            }
        }
        if plan.poster.is_some() {
            tasks.push(tokio::spawn(watch_poster(number, dir.clone(), events.clone(), stop_rx.clone())));
        }
        let mut child = Command::new(&plan.ffmpeg)
            .args(ffmpeg_args(plan, &dir, config.source))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| TranscodeError::Spawn { program: plan.ffmpeg.clone(), source })?;
        info!(run = number, pid = child.id(), "ffmpeg started");
        if let Some(stdout) = child.stdout.take() {
            tasks.push(tokio::spawn(read_progress(number, stdout, events.clone())));
        }
        if let Some(stderr) = child.stderr.take() {
            tasks.push(tokio::spawn(log_stderr(number, stderr)));
        }
        let stdin = child.stdin.take();
        Ok(Self { number, child, stdin, stop_watcher: Some(stop_tx), tasks })
    }

    async fn write(&mut self, bytes: &Bytes, stall_timeout: Duration) -> Result<(), RunEnd> {
        let stdin = self.stdin.as_mut().ok_or(RunEnd::WriteFailed)?;
        match timeout(stall_timeout, stdin.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(RunEnd::WriteFailed),
            Err(_) => Err(RunEnd::Stalled),
        }
    }

    /// Ends the run: closes stdin (or kills ffmpeg), waits for the exit within `grace`,
    /// then lets the watcher report the last segments.
    async fn end(mut self, kill: bool, grace: Duration) -> Option<ExitStatus> {
        drop(self.stdin.take());
        if kill {
            let _ = self.child.start_kill();
        }
        let status = match timeout(grace, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                warn!(run = self.number, "ffmpeg did not exit in time; killing it");
                let _ = self.child.start_kill();
                self.child.wait().await.ok()
            }
        };
        if let Some(stop) = self.stop_watcher.take() {
            let _ = stop.send(true);
        }
        for task in self.tasks {
            let _ = task.await;
        }
        status
    }
}

/// The supervising task's state.
struct Supervisor {
    config: SupervisorConfig,
    events: mpsc::Sender<TranscodeEvent>,
    pid: watch::Sender<Option<u32>>,
    gate: InputGate,
    restarts: VecDeque<Instant>,
    preset: watch::Receiver<String>,
}

impl Supervisor {
    async fn run(mut self, mut run: Run, mut input: mpsc::Receiver<FlvTag>) -> Result<(), TranscodeError> {
        loop {
            self.pid.send_replace(run.child.id());
            self.emit(TranscodeEvent::Started { run: run.number, pid: run.child.id() }).await;
            let end = self.feed(&mut run, &mut input).await;
            let number = run.number;
            if let RunEnd::InputClosed = end {
                let status = run.end(false, self.config.finish_timeout).await;
                self.pid.send_replace(None);
                info!(run = number, ?status, "ffmpeg finished");
                self.emit(TranscodeEvent::Exited { run: number, status, will_restart: false }).await;
                return Ok(());
            }
            if let RunEnd::PresetChanged = end {
                let status = run.end(false, self.config.finish_timeout).await;
                self.pid.send_replace(None);
                let preset = self.preset.borrow_and_update().clone();
                info!(run = number, ?status, %preset, "ffmpeg ended for a preset change");
                self.emit(TranscodeEvent::Exited { run: number, status, will_restart: false }).await;
                self.config.plan.preset = preset;
                let next = number.saturating_add(1);
                match Run::spawn(&self.config, next, &self.events) {
                    Ok(next) => run = next,
                    Err(error) => {
                        warn!(run = next, %error, "starting ffmpeg at the new preset failed");
                        match self.restart(next, None, &mut input).await? {
                            Some(next) => run = next,
                            None => return Ok(()),
                        }
                    }
                }
                continue;
            }
            let status = run.end(true, Duration::from_secs(2)).await;
            self.pid.send_replace(None);
            warn!(run = number, ?status, reason = end.describe(), "ffmpeg stopped while input continues");
            match self.restart(number, status, &mut input).await? {
                Some(next) => run = next,
                None => return Ok(()),
            }
        }
    }

    /// Writes input to the run until the input ends or ffmpeg fails.
    async fn feed(&mut self, run: &mut Run, input: &mut mpsc::Receiver<FlvTag>) -> RunEnd {
        let stall = self.config.stall_timeout;
        if let Err(end) = run.write(&self.gate.start_run(), stall).await {
            return end;
        }
        loop {
            let tag = tokio::select! {
                _ = run.child.wait() => return RunEnd::Exited,
                Ok(()) = self.preset.changed() => {
                    if *self.preset.borrow() != self.config.plan.preset {
                        return RunEnd::PresetChanged;
                    }
                    continue;
                }
                tag = input.recv() => tag,
            };
            let Some(tag) = tag else { return RunEnd::InputClosed };
            let was_flowing = self.gate.run_start().is_some();
            let chunks = match self.gate.accept(&tag) {
                Ok(chunks) => chunks,
                Err(error) => {
                    warn!(run = run.number, %error, "dropping an input tag");
                    continue;
                }
            };
            if let (false, Some(timestamp_ms)) = (was_flowing, self.gate.run_start()) {
                self.emit(TranscodeEvent::InputStarted { run: run.number, timestamp_ms }).await;
            }
            for chunk in &chunks {
                if let Err(end) = run.write(chunk, stall).await {
                    return end;
                }
            }
        }
    }

    /// Starts the next run after a backoff, or gives up; `None` when the input ended
    /// meanwhile.
    async fn restart(
        &mut self,
        failed: u32,
        status: Option<ExitStatus>,
        input: &mut mpsc::Receiver<FlvTag>,
    ) -> Result<Option<Run>, TranscodeError> {
        let mut number = failed;
        let mut reported_exit = false;
        loop {
            let now = Instant::now();
            while self.restarts.front().is_some_and(|at| now.duration_since(*at) >= RESTART_WINDOW) {
                self.restarts.pop_front();
            }
            let recent = u32::try_from(self.restarts.len()).unwrap_or(u32::MAX);
            let will_restart = recent < self.config.restart.max_restarts_per_minute;
            if !reported_exit {
                self.emit(TranscodeEvent::Exited { run: failed, status, will_restart }).await;
                reported_exit = true;
            }
            if !will_restart {
                warn!(restarts = recent, "ffmpeg keeps dying; giving up");
                self.emit(TranscodeEvent::GaveUp { restarts: recent }).await;
                return Err(TranscodeError::GaveUp(recent));
            }
            self.restarts.push_back(now);
            if !self.wait_observing(self.config.restart.delay(recent), input).await {
                return Ok(None);
            }
            number = number.saturating_add(1);
            match Run::spawn(&self.config, number, &self.events) {
                Ok(run) => return Ok(Some(run)),
                Err(error) => warn!(run = number, %error, "restarting ffmpeg failed"),
            }
        }
    }

    /// Waits `delay` while keeping the header cache current; `false` if the input ended.
    async fn wait_observing(&mut self, delay: Duration, input: &mut mpsc::Receiver<FlvTag>) -> bool {
        let deadline = sleep(delay);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return true,
                tag = input.recv() => match tag {
                    Some(tag) => { self.gate.observe(&tag); }
                    None => return false,
                },
            }
        }
    }

    async fn emit(&self, event: TranscodeEvent) {
        let _ = self.events.send(event).await;
    }
}

impl RunEnd {
    fn describe(&self) -> &'static str {
        match self {
            RunEnd::InputClosed => "input closed",
            RunEnd::PresetChanged => "preset changed",
            RunEnd::Exited => "ffmpeg exited",
            RunEnd::WriteFailed => "writing to ffmpeg failed",
            RunEnd::Stalled => "ffmpeg stopped reading its input",
        }
    }
}

/// Turns ffmpeg's `-progress` output into events (dropped when the channel is full).
async fn read_progress(run: u32, stdout: tokio::process::ChildStdout, events: mpsc::Sender<TranscodeEvent>) {
    let mut reader = BufReader::new(stdout);
    let mut parser = ProgressParser::new();
    let mut line = Vec::new();
    while let Ok(true) = read_bounded_line(&mut reader, &mut line, MAX_LINE_BYTES).await {
        if let Some(progress) = parser.push_line(&String::from_utf8_lossy(&line)) {
            let _ = events.try_send(TranscodeEvent::Progress { run, progress });
        }
    }
}

/// Logs ffmpeg's warnings and errors, a bounded number per run.
async fn log_stderr(run: u32, stderr: tokio::process::ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut count = 0usize;
    while let Ok(true) = read_bounded_line(&mut reader, &mut line, MAX_LINE_BYTES).await {
        count += 1;
        if count <= MAX_LOGGED_STDERR_LINES {
            warn!(run, "ffmpeg: {}", String::from_utf8_lossy(&line));
        }
    }
    if count > MAX_LOGGED_STDERR_LINES {
        warn!(run, suppressed = count - MAX_LOGGED_STDERR_LINES, "further ffmpeg output not logged");
    }
}

/// Longest wait for a rendition's output to end once ffmpeg has exited.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads one rendition's fMP4 stream from its socket and reports its pieces, until ffmpeg
/// closes it; then reports the end. A stream that is not fragmented MP4 ends the reading
/// (the socket closes and ffmpeg fails, to be restarted).
async fn read_fragments(
    run: u32,
    rendition: usize,
    listener: UnixListener,
    events: mpsc::Sender<TranscodeEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let mut stream = tokio::select! {
        accepted = listener.accept() => match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                warn!(run, rendition, %error, "cannot accept ffmpeg's output connection");
                return;
            }
        },
        _ = stop.wait_for(|stop| *stop) => return,
    };
    drop(listener);
    let mut reader = FragmentReader::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = stream.read(&mut buffer) => read,
            // ffmpeg exited but a child of its own may hold the socket: do not wait forever.
            _ = async {
                let _ = stop.wait_for(|stop| *stop).await;
                sleep(OUTPUT_DRAIN_TIMEOUT).await;
            } => break,
        };
        let count = match read {
            Ok(0) => break,
            Ok(count) => count,
            Err(error) => {
                warn!(run, rendition, %error, "reading ffmpeg's output failed");
                break;
            }
        };
        reader.push(&buffer[..count]);
        loop {
            let event = match reader.next_piece() {
                Ok(Some(Piece::Init(init))) => TranscodeEvent::Init { run, rendition, init },
                Ok(Some(Piece::Fragment(fragment))) => TranscodeEvent::Fragment { run, rendition, fragment },
                Ok(None) => break,
                Err(error) => {
                    warn!(run, rendition, %error, "ffmpeg's output is not fragmented MP4 as expected; closing it");
                    let _ = events.send(TranscodeEvent::OutputEnded { run, rendition }).await;
                    return;
                }
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
    }
    if reader.buffered() > 0 {
        warn!(run, rendition, bytes = reader.buffered(), "ffmpeg's output ended inside a fragment");
    }
    let _ = events.send(TranscodeEvent::OutputEnded { run, rendition }).await;
}

/// Polls each rendition's local playlist and reports new segments, until told to stop;
/// then checks once more so the last segments of the run are reported.
async fn watch_segments(
    run: u32,
    renditions: Vec<(String, PathBuf)>,
    events: mpsc::Sender<TranscodeEvent>,
    mut stop: watch::Receiver<bool>,
    poll_interval: Duration,
) {
    let mut cursors = vec![SegmentCursor::new(); renditions.len()];
    loop {
        let stopping = tokio::select! {
            _ = sleep(poll_interval) => false,
            _ = stop.wait_for(|stop| *stop) => true,
        };
        for ((rendition, folder), cursor) in renditions.iter().zip(cursors.iter_mut()) {
            let text = match tokio::fs::read_to_string(folder.join(LOCAL_PLAYLIST)).await {
                Ok(text) => text,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => {
                    warn!(run, rendition, %error, "cannot read ffmpeg's playlist");
                    continue;
                }
            };
            let playlist = match parse_local_playlist(&text) {
                Ok(playlist) => playlist,
                Err(error) => {
                    warn!(run, rendition, %error, "cannot parse ffmpeg's playlist");
                    continue;
                }
            };
            let fresh = cursor.advance(&playlist);
            if fresh.missed > 0 {
                warn!(run, rendition, missed = fresh.missed, "segments scrolled off ffmpeg's playlist unseen");
            }
            let init = playlist.init_file_name.as_ref().map(|name| folder.join(name));
            for (index, segment) in fresh.segments.into_iter().enumerate() {
                let ready = SegmentReady {
                    run,
                    rendition: rendition.clone(),
                    path: folder.join(&segment.file_name),
                    duration: segment.duration,
                    init: init.clone(),
                    after_gap: index == 0 && fresh.missed > 0,
                };
                if events.send(TranscodeEvent::Segment(ready)).await.is_err() {
                    return;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_limit() {
        let policy = RestartPolicy {
            max_restarts_per_minute: 5,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(2)),
        };
        assert_eq!(policy.delay(0), Duration::from_millis(250));
        assert_eq!(policy.delay(2), Duration::from_secs(1));
        assert_eq!(policy.delay(3), Duration::from_secs(2));
        assert_eq!(policy.delay(40), Duration::from_secs(2));
    }

    #[test]
    fn run_folders_are_numbered() {
        assert_eq!(run_dir(Path::new("/scratch"), 3), PathBuf::from("/scratch/run-3"));
    }
}
