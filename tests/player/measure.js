// Runs in the browser: watches a <video> (and the hls.js instance playing it, when there is
// one) and collects what a viewer would notice: time to the first frame, stalls, the
// rendition on screen, the latency behind the wall clock and the distance from the live
// edge, errors, and the end of the stream. play.mjs injects it into every page it opens
// and reads `window.__measure.report()` at the end.
(() => {
  const SAMPLE_MS = 250;
  // A picture that does not move for this long while playing counts as a stall even
  // without a `waiting` event.
  const FROZEN_MS = 500;

  const state = {
    startedAt: performance.now(),
    firstFrameAt: null,
    atFirstFrame: null,
    samples: [],
    stalls: [],
    openStall: null,
    switches: [],
    forcedSwitch: null,
    errors: [],
    events: [],
    endedAt: null,
    bufferEosAt: null,
    video: null,
    hls: null,
    player: null,
    lastAdvance: null,
  };

  const now = () => (performance.now() - state.startedAt) / 1000;
  const round = (x, digits = 3) => (x == null || !Number.isFinite(x) ? x : Number(x.toFixed(digits)));
  const ranges = (r) => {
    const out = [];
    for (let i = 0; r && i < r.length; i += 1) out.push([round(r.start(i)), round(r.end(i))]);
    return out;
  };
  const note = (kind, detail) => {
    if (state.events.length < 2000) state.events.push({ t: round(now()), kind, ...detail });
  };

  // PROGRAM-DATE-TIME of the frame on screen: hls.js maps it for us; a native player
  // exposes the date of the start of the timeline (Safari's getStartDate).
  function playingDate() {
    const { hls, video } = state;
    if (hls) return hls.playingDate ? hls.playingDate.getTime() : null;
    if (video && typeof video.getStartDate === 'function') {
      const start = video.getStartDate().getTime();
      return Number.isFinite(start) ? start + video.currentTime * 1000 : null;
    }
    return null;
  }

  function heightOf(level) {
    const levels = state.hls ? state.hls.levels : null;
    return levels && levels[level] ? levels[level].height : null;
  }

  function liveFigures() {
    const { hls, video } = state;
    if (!hls) {
      const seekable = video.seekable;
      const edge = seekable && seekable.length ? seekable.end(seekable.length - 1) : null;
      return { hlsLatency: null, targetLatency: null, liveSync: null, edgeDistance: edge == null ? null : edge - video.currentTime };
    }
    const liveSync = hls.liveSyncPosition;
    return {
      hlsLatency: hls.latency,
      targetLatency: hls.targetLatency,
      liveSync,
      edgeDistance: liveSync == null ? null : liveSync - video.currentTime,
    };
  }

  function startStall(at, cause) {
    if (state.openStall || state.firstFrameAt == null || state.endedAt != null) return;
    const v = state.video;
    state.openStall = {
      at: round(at),
      cause,
      currentTime: round(v.currentTime),
      buffered: ranges(v.buffered),
    };
  }

  function endStall(at) {
    const stall = state.openStall;
    if (!stall) return;
    stall.seconds = round(at - stall.at);
    state.stalls.push(stall);
    state.openStall = null;
  }

  function sample() {
    const { video, hls } = state;
    if (!video) return;
    const t = now();
    const pdt = playingDate();
    const live = liveFigures();
    const currentTime = video.currentTime;
    const moving = state.lastAdvance == null || currentTime - state.lastAdvance.currentTime > 0.01;
    if (moving) {
      if (state.openStall && state.lastAdvance && currentTime > state.openStall.currentTime + 0.01) endStall(t);
      state.lastAdvance = { t, currentTime };
    } else if (!video.paused && !video.ended && t - state.lastAdvance.t >= FROZEN_MS / 1000) {
      startStall(state.lastAdvance.t, 'frozen');
    }
    if (state.firstFrameAt == null || state.samples.length >= 4 * 60 * 30) return;
    state.samples.push({
      t: round(t),
      wall: Date.now(),
      latency: pdt == null ? null : round((Date.now() - pdt) / 1000),
      hlsLatency: round(live.hlsLatency),
      targetLatency: round(live.targetLatency),
      edgeDistance: round(live.edgeDistance),
      currentTime: round(currentTime),
      bufferedAhead: round(bufferedAhead(video)),
      level: hls ? hls.currentLevel : null,
      height: hls ? heightOf(hls.currentLevel) : video.videoHeight || null,
      rate: video.playbackRate,
    });
  }

  function bufferedAhead(video) {
    const b = video.buffered;
    for (let i = 0; i < b.length; i += 1) {
      if (b.start(i) <= video.currentTime + 0.1 && video.currentTime <= b.end(i)) return b.end(i) - video.currentTime;
    }
    return 0;
  }

  function onFirstFrame() {
    if (state.firstFrameAt != null) return;
    state.firstFrameAt = now();
    const pdt = playingDate();
    const live = liveFigures();
    state.atFirstFrame = {
      latency: pdt == null ? null : round((Date.now() - pdt) / 1000),
      hlsLatency: round(live.hlsLatency),
      targetLatency: round(live.targetLatency),
      edgeDistance: round(live.edgeDistance),
      currentTime: round(state.video.currentTime),
      buffered: ranges(state.video.buffered),
      height: state.hls ? heightOf(state.hls.currentLevel) : state.video.videoHeight,
    };
    note('first-frame', {});
  }

  function watchVideo(video) {
    state.video = video;
    for (const kind of ['waiting', 'stalled']) {
      video.addEventListener(kind, () => {
        note(kind, { currentTime: round(video.currentTime), buffered: ranges(video.buffered) });
        startStall(now(), kind);
      });
    }
    for (const kind of ['playing', 'pause', 'seeking', 'seeked', 'durationchange', 'emptied', 'error']) {
      video.addEventListener(kind, () =>
        note(kind, { currentTime: round(video.currentTime), duration: round(video.duration) }),
      );
    }
    video.addEventListener('ended', () => {
      state.endedAt = now();
      endStall(now());
      note('ended', { currentTime: round(video.currentTime), duration: round(video.duration) });
    });
    // The first frame presented, where the browser says so; `playing` with a moving clock
    // otherwise.
    if (typeof video.requestVideoFrameCallback === 'function') {
      video.requestVideoFrameCallback(() => onFirstFrame());
      // A stream without video presents no frame: its clock moving is the start.
      video.addEventListener('timeupdate', () => video.currentTime > 0 && video.videoWidth === 0 && onFirstFrame());
    } else {
      video.addEventListener('timeupdate', () => video.currentTime > 0 && onFirstFrame());
    }
    setInterval(sample, SAMPLE_MS);
  }

  function watchHls(hls, Hls) {
    state.hls = hls;
    const E = Hls.Events;
    hls.on(E.LEVEL_SWITCHED, (_, data) => {
      state.switches.push({ t: round(now()), level: data.level, height: heightOf(data.level) });
      const forced = state.forcedSwitch;
      if (forced && forced.switchedAt == null && data.level === forced.toLevel) forced.switchedAt = round(now());
    });
    hls.on(E.ERROR, (_, data) => {
      if (state.errors.length < 200) {
        state.errors.push({
          t: round(now()),
          type: data.type,
          details: data.details,
          fatal: !!data.fatal,
          url: data.frag ? data.frag.url : data.url || null,
          reason: data.reason || (data.error ? String(data.error) : null),
        });
      }
    });
    hls.on(E.BUFFER_EOS, () => {
      state.bufferEosAt = round(now());
      note('buffer-eos', { duration: round(state.video.duration), buffered: ranges(state.video.buffered) });
    });
    hls.on(E.LEVEL_UPDATED, (_, data) => {
      const d = data.details;
      if (d && !d.live) note('level-ended', { level: data.level, totalduration: round(d.totalduration) });
    });
    hls.on(E.FRAG_CHANGED, (_, data) => {
      const f = data.frag;
      note('frag-changed', { sn: f.sn, level: f.level, start: round(f.start), duration: round(f.duration) });
    });
  }

  // Switches to another rendition `afterSeconds` after the first frame, as a viewer's
  // quality menu does: the lowest, or the highest when the lowest is already playing.
  function forceSwitchAfter(afterSeconds) {
    const check = setInterval(() => {
      const { hls } = state;
      if (!hls || state.firstFrameAt == null || now() - state.firstFrameAt < afterSeconds) return;
      clearInterval(check);
      const from = hls.currentLevel;
      const lowest = 0;
      const highest = hls.levels.length - 1;
      const lowestHeight = Math.min(...hls.levels.map((l) => l.height));
      const toLevel = hls.levels.findIndex((l) => l.height === lowestHeight);
      const target = from === toLevel ? (toLevel === lowest ? highest : lowest) : toLevel;
      state.forcedSwitch = {
        requestedAt: round(now()),
        fromLevel: from,
        fromHeight: heightOf(from),
        toLevel: target,
        toHeight: heightOf(target),
        switchedAt: null,
      };
      hls.nextLevel = target;
    }, 100);
  }

  function report() {
    const { video, hls } = state;
    const t = now();
    if (state.openStall) state.openStall.seconds = round(t - state.openStall.at);
    return {
      player: state.player,
      hlsVersion: hls && hls.constructor ? hls.constructor.version : null,
      elapsed: round(t),
      firstFrame: round(state.firstFrameAt),
      atFirstFrame: state.atFirstFrame,
      samples: state.samples,
      stalls: state.stalls,
      openStall: state.openStall,
      switches: state.switches,
      forcedSwitch: state.forcedSwitch,
      errors: state.errors,
      ended: state.endedAt != null,
      endedAt: round(state.endedAt),
      bufferEosAt: state.bufferEosAt,
      final: video
        ? {
            currentTime: round(video.currentTime),
            duration: round(video.duration),
            buffered: ranges(video.buffered),
            readyState: video.readyState,
            networkState: video.networkState,
            paused: video.paused,
            ended: video.ended,
            videoHeight: video.videoHeight,
          }
        : null,
      levels: hls ? hls.levels.map((l) => ({ height: l.height, bitrate: l.bitrate, codecs: l.attrs.CODECS })) : null,
      events: state.events,
    };
  }

  window.__measure = { watchVideo, watchHls, forceSwitchAfter, report, state };
})();
