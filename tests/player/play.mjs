// Plays one HLS stream in headless Chromium and prints a JSON report on stdout: hls.js (the
// pinned npm copy, served from a local page) playing a master playlist, or any page that
// plays a stream itself (the watch page of `livestream serve`).
//
//   node play.mjs --url=MASTER.m3u8 [--low-latency] [--catch-up=RATE] [--duration=S]
//                 [--switch-at=S] [--until-ended] [--start-timeout=S] [--debug] [--profile=DIR]
//                 [--report=FILE] [--chromium=PATH]
//   node play.mjs --page=URL ...      (the page sets window.livestreamPlayer = {video, hls, Hls})
//
// The npm packages come from LIVESTREAM_PLAYER_DIR (the directory whose node_modules
// scripts/testenv.sh installed from package-lock.json); Chromium from --chromium or
// /usr/bin/chromium. See measure.js for what the report holds.
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const options = {
    url: null,
    page: null,
    lowLatency: false,
    catchUp: 1,
    duration: 30,
    switchAt: null,
    untilEnded: false,
    startTimeout: 20,
    debug: false,
    profile: null,
    report: null,
    chromium: '/usr/bin/chromium',
  };
  for (const arg of argv) {
    const [key, value] = arg.replace(/^--/, '').split(/=(.*)/s);
    switch (key) {
      case 'url': options.url = value; break;
      case 'page': options.page = value; break;
      case 'low-latency': options.lowLatency = value !== 'false'; break;
      case 'catch-up': options.catchUp = Number(value); break;
      case 'duration': options.duration = Number(value); break;
      case 'switch-at': options.switchAt = Number(value); break;
      case 'until-ended': options.untilEnded = true; break;
      case 'start-timeout': options.startTimeout = Number(value); break;
      case 'debug': options.debug = true; break;
      case 'profile': options.profile = value; break;
      case 'report': options.report = value; break;
      case 'chromium': options.chromium = value; break;
      default: throw new Error(`unknown option ${arg}`);
    }
  }
  if (!options.url === !options.page) throw new Error('give exactly one of --url and --page');
  if (!(options.catchUp >= 1 && options.catchUp <= 2)) throw new Error('--catch-up must be a rate from 1 to 2');
  if (!(options.duration > 0)) throw new Error('--duration must be a positive number of seconds');
  return options;
}

const HARNESS = `<!doctype html>
<html><head><meta charset="utf-8"><title>hls.js</title>
<script src="/hls.js"></script><script src="/measure.js"></script></head>
<body style="margin:0;background:#000"><video muted playsinline style="width:640px"></video>
<script>
window.startPlayer = (o) => {
  const video = document.querySelector('video');
  __measure.state.player = 'hls.js';
  __measure.watchVideo(video);
  const hls = new Hls({ lowLatencyMode: o.lowLatency, maxLiveSyncPlaybackRate: o.catchUp, debug: o.debug });
  __measure.watchHls(hls, Hls);
  hls.loadSource(o.url);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch((e) => console.warn('play: ' + e)));
  if (o.switchAt != null) __measure.forceSwitchAfter(o.switchAt);
  window.livestreamPlayer = { video, hls, Hls };
};
</script></body></html>`;

/// Serves the harness page, measure.js and the pinned hls.js on a loopback port.
function startHarnessServer(hlsFile) {
  const files = {
    '/': ['text/html', Buffer.from(HARNESS)],
    '/measure.js': ['text/javascript', readFileSync(path.join(here, 'measure.js'))],
    '/hls.js': ['text/javascript', readFileSync(hlsFile)],
    '/favicon.ico': ['image/x-icon', Buffer.alloc(0)],
  };
  const server = http.createServer((req, res) => {
    const file = files[req.url.split('?')[0]];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file[0], 'cache-control': 'no-store' }).end(file[1]);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const moduleDir = process.env.LIVESTREAM_PLAYER_DIR || here;
  const require = createRequire(path.join(moduleDir, 'package.json'));
  const puppeteer = require('puppeteer-core');
  const hlsFile = require.resolve(options.debug ? 'hls.js/dist/hls.js' : 'hls.js/dist/hls.min.js');
  const ownProfile = !options.profile;
  const profile = options.profile || mkdtempSync(path.join(os.tmpdir(), 'livestream-chromium-'));

  const server = await startHarnessServer(hlsFile);
  const harnessUrl = `http://127.0.0.1:${server.address().port}/`;
  const browser = await puppeteer.launch({
    executablePath: options.chromium,
    headless: true,
    pipe: true,
    userDataDir: profile,
    protocolTimeout: 30_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      '--mute-audio',
    ],
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await browser.close().catch(() => {});
    server.close();
    if (ownProfile) rmSync(profile, { recursive: true, force: true });
  };
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => stop().then(() => process.exit(143)));
  }

  try {
    const page = await browser.newPage();
    page.on('console', (message) => {
      const type = message.type();
      if (options.debug || type === 'error' || type === 'warn') {
        process.stderr.write(`[page ${type}] ${message.text()}\n`);
      }
    });
    page.on('pageerror', (error) => process.stderr.write(`[page exception] ${error.message}\n`));
    const started = Date.now();
    if (options.url) {
      await page.goto(harnessUrl, { waitUntil: 'load' });
      await page.evaluate((o) => window.startPlayer(o), {
        url: options.url,
        lowLatency: options.lowLatency,
        catchUp: options.catchUp,
        debug: options.debug,
        switchAt: options.switchAt,
      });
    } else {
      await page.evaluateOnNewDocument(readFileSync(path.join(here, 'measure.js'), 'utf8'));
      await page.goto(options.page, { waitUntil: 'load' });
      await page.waitForFunction(() => window.livestreamPlayer && window.livestreamPlayer.video, {
        timeout: options.startTimeout * 1000,
      });
      await page.evaluate((o) => {
        const { video, hls, Hls } = window.livestreamPlayer;
        __measure.state.player = hls ? 'hls.js' : 'native';
        __measure.watchVideo(video);
        if (hls) __measure.watchHls(hls, Hls);
        if (o.switchAt != null) __measure.forceSwitchAfter(o.switchAt);
      }, { switchAt: options.switchAt });
    }

    // Plays until the duration is over, the stream has ended (with --until-ended), the
    // first frame is overdue, or hls.js gave up.
    const deadline = started + options.duration * 1000;
    let outcome = 'duration';
    for (;;) {
      await sleep(250);
      const s = await page.evaluate(() => {
        const st = window.__measure.state;
        return {
          first: st.firstFrameAt,
          ended: st.endedAt != null,
          fatal: st.errors.some((e) => e.fatal),
          elapsed: (performance.now() - st.startedAt) / 1000,
        };
      });
      if (s.fatal) { outcome = 'fatal-error'; break; }
      if (s.first == null && s.elapsed > options.startTimeout) { outcome = 'no-first-frame'; break; }
      if (options.untilEnded && s.ended) { outcome = 'ended'; break; }
      if (Date.now() >= deadline) break;
    }
    const report = await page.evaluate(() => window.__measure.report());
    report.outcome = outcome;
    report.lowLatencyMode = options.lowLatency;
    if (options.url) report.catchUp = options.catchUp;
    report.browser = await browser.version();
    report.source = options.url || options.page;
    report.pageText = await page.evaluate(() => document.body.innerText);
    const json = `${JSON.stringify(report)}\n`;
    if (options.report) writeFileSync(options.report, json);
    else process.stdout.write(json);
  } finally {
    await stop();
  }
}

main().catch((error) => {
  process.stderr.write(`play.mjs: ${error.stack || error}\n`);
  process.exit(1);
});
