// The annotator's (and the reviewer's) player: fetches a clip through a short-lived
// playback grant, keeps it in memory only, and plays it through the Web Audio API.
//
// No URL of the audio ever reaches the DOM: the grant URL lives in a local variable for
// the few requests that fetch the bytes, and is dropped. There is no <audio> element, no
// media element at all and no object URL: the bytes are decoded into samples, which an
// AudioWorklet (player-worklet.js) plays at 0.5×–2× without changing the pitch. Nothing
// on the page can be right-clicked and saved.
//
// The page reports what was played to the server, which decides whether the whole clip
// was heard before it accepts a submission. Each answer is dispatched on the root element
// as a `listening` CustomEvent (detail: {heard_share, fully_heard}).
//
// Keys (they work while typing in the transcript box):
//   Esc or Ctrl+Space  play / pause
//   F1 or Ctrl+,       back 2 s
//   F2 or Ctrl+.       forward 2 s
//   F3 / F4            slower / faster (0.5×–2×)
//   F6                 loop the selected region (the whole clip if none is selected)

const CHUNK_BYTES = 1024 * 1024;
const SEEK_SECONDS = 2;
const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2];
const PROGRESS_EVERY_MS = 5000;
const SAMPLE_RATE = 16000; // the portal stores every clip as 16 kHz mono FLAC
const PEAK_BUCKETS = 4096;
const WORKLET_URL = new URL("./player-worklet.js", import.meta.url);
const CONTROLS = ["play", "back", "forward", "slower", "faster", "loop"];

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

class Refused extends Error {}

async function postJson(url, body, keepalive = false) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    keepalive,
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body: JSON.stringify(body || {}),
  });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (payload.error && payload.error.message) || `The server refused (${response.status}).`;
    throw response.status === 403 ? new Refused(message) : new Error(message);
  }
  return payload;
}

// Fetch the whole clip in byte ranges under a grant; one fresh grant if it runs out midway.
async function fetchClip(grantUrl) {
  let grant = await postJson(grantUrl);
  const parts = [];
  let start = 0;
  let total = null;
  let renewed = false;
  while (total === null || start < total) {
    const response = await fetch(grant.url, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Range: `bytes=${start}-${start + CHUNK_BYTES - 1}` },
    });
    if (response.status === 403 && !renewed) {
      renewed = true;
      grant = await postJson(grantUrl);
      continue;
    }
    if (response.status !== 206 && response.status !== 200) {
      throw new Refused("The audio could not be loaded. Your lease may have ended.");
    }
    renewed = false;
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (response.status === 200) {
      parts.length = 0;
      parts.push(bytes);
      start = total = bytes.length;
      break;
    }
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(response.headers.get("Content-Range") || "");
    if (!range || Number(range[1]) !== start || bytes.length === 0) {
      throw new Error("The audio arrived incomplete. Reload the page to try again.");
    }
    total = Number(range[3]);
    parts.push(bytes);
    start += bytes.length;
  }
  grant = null;
  const all = new Uint8Array(start);
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

function createContext() {
  try {
    return new AudioContext({ sampleRate: SAMPLE_RATE, latencyHint: "interactive" });
  } catch {
    return new AudioContext({ latencyHint: "interactive" });
  }
}

function monoSamples(buffer) {
  const mono = new Float32Array(buffer.length);
  for (let c = 0; c < buffer.numberOfChannels; c++) {
    const data = buffer.getChannelData(c);
    for (let i = 0; i < data.length; i++) mono[i] += data[i] / buffer.numberOfChannels;
  }
  return mono;
}

function formatTime(seconds) {
  const s = Math.max(0, seconds);
  const minutes = Math.floor(s / 60);
  const rest = (s - minutes * 60).toFixed(1).padStart(4, "0");
  return `${minutes}:${rest}`;
}

// Intervals of the clip that were played, merged, in seconds.
class Coverage {
  constructor() {
    this.intervals = [];
  }
  add(start, end) {
    if (!(end > start)) return;
    const all = [...this.intervals, [start, end]].sort((a, b) => a[0] - b[0]);
    const merged = [];
    for (const [s, e] of all) {
      const last = merged[merged.length - 1];
      if (last && s <= last[1] + 0.05) last[1] = Math.max(last[1], e);
      else merged.push([s, e]);
    }
    this.intervals = merged;
  }
  heard() {
    return this.intervals.reduce((sum, [s, e]) => sum + (e - s), 0);
  }
}

// The clip's outline on a canvas: peaks, the played part, the selection, what was heard.
class Waveform {
  constructor(canvas, samples, duration) {
    this.canvas = canvas;
    this.duration = duration;
    this.selection = null;
    this.peaks = Waveform.peaks(samples);
  }

  static peaks(samples) {
    const buckets = Math.min(PEAK_BUCKETS, Math.max(1, samples.length));
    const peaks = new Float32Array(buckets * 2);
    const step = samples.length / buckets;
    for (let b = 0; b < buckets; b++) {
      let min = 0;
      let max = 0;
      for (let i = Math.floor(b * step); i < Math.floor((b + 1) * step); i++) {
        const v = samples[i];
        if (v < min) min = v;
        if (v > max) max = v;
      }
      peaks[2 * b] = min;
      peaks[2 * b + 1] = max;
    }
    return peaks;
  }

  color(styles, name, fallback) {
    return styles.getPropertyValue(name).trim() || fallback;
  }

  draw(position, heard) {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.floor(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.floor(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    const styles = getComputedStyle(canvas);
    const x = (seconds) => (seconds / this.duration) * width;
    ctx.clearRect(0, 0, width, height);
    if (this.selection) {
      const [s, e] = this.selection;
      ctx.fillStyle = this.color(styles, "--selection", "#dbe9e8");
      ctx.fillRect(x(s), 0, Math.max(1, x(e) - x(s)), height);
    }
    const band = Math.max(2, Math.round(3 * ratio));
    const middle = (height - band) / 2;
    const buckets = this.peaks.length / 2;
    const played = x(position);
    const wave = this.color(styles, "--wave", "#9fb3b4");
    const playedColor = this.color(styles, "--played", "#2f6f73");
    for (let px = 0; px < width; px++) {
      const from = Math.floor((px / width) * buckets);
      const to = Math.max(from + 1, Math.floor(((px + 1) / width) * buckets));
      let min = 0;
      let max = 0;
      for (let b = from; b < to && b < buckets; b++) {
        min = Math.min(min, this.peaks[2 * b]);
        max = Math.max(max, this.peaks[2 * b + 1]);
      }
      ctx.fillStyle = px < played ? playedColor : wave;
      ctx.fillRect(px, middle - max * middle, 1, Math.max(1, (max - min) * middle));
    }
    ctx.fillStyle = this.color(styles, "--heard", "#2a7148");
    for (const [s, e] of heard) ctx.fillRect(x(s), height - band, Math.max(1, x(e) - x(s)), band);
    ctx.fillStyle = this.color(styles, "--cursor", "#1d2733");
    ctx.fillRect(Math.min(played, width - ratio), 0, Math.max(1, ratio), height - band);
  }

  timeAt(clientX) {
    const rect = this.canvas.getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (clientX - rect.left) / rect.width));
    return fraction * this.duration;
  }
}

class Player {
  constructor(root) {
    this.root = root;
    this.urls = { grant: root.dataset.grantUrl, progress: root.dataset.progressUrl || null };
    this.el = (id) => root.querySelector(`#${id}`);
    this.text = (id, value) => {
      const element = this.el(id);
      if (element) element.textContent = value;
    };
    this.coverage = new Coverage();
    this.speedIndex = SPEEDS.indexOf(1);
    this.loop = false;
    this.position = 0;
    this.running = false;
    this.lastReport = 0;
    this.serverShare = 0;
    this.reporting = Promise.resolve();
    this.listeners = [];
    this.setEnabled(false);
    if (root.dataset.duration) this.text("duration", formatTime(Number(root.dataset.duration)));
  }

  setEnabled(enabled) {
    for (const id of CONTROLS) {
      const button = this.el(id);
      if (button) button.disabled = !enabled;
    }
  }

  status(message, kind = "info") {
    const box = this.el("player-status");
    if (!box) return;
    box.textContent = message;
    box.dataset.kind = kind;
  }

  async load() {
    this.status("Loading the clip…");
    const bytes = await fetchClip(this.urls.grant);
    this.context = createContext();
    if (!this.context.audioWorklet) {
      throw new Error("This browser cannot play the clip here: use a current browser over HTTPS.");
    }
    const buffer = await this.context.decodeAudioData(bytes.buffer);
    const samples = monoSamples(buffer);
    this.duration = buffer.duration;
    this.waveform = new Waveform(this.el("waveform"), samples, this.duration);
    await this.context.audioWorklet.addModule(WORKLET_URL);
    this.node = new AudioWorkletNode(this.context, "wsola-player", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
    });
    this.node.port.onmessage = (event) => this.onState(event.data);
    this.node.connect(this.context.destination);
    this.node.port.postMessage({ type: "load", samples }, [samples.buffer]);
    this.bind();
    this.text("duration", formatTime(this.duration));
    this.root.classList.add("ready");
    this.el("player")?.classList.add("ready");
    this.setEnabled(true);
    this.status("Ready. Press Esc to play or pause.");
    this.render();
    if (this.urls.progress) this.report(false);
  }

  listen(target, type, handler, options) {
    target.addEventListener(type, handler, options);
    this.listeners.push(() => target.removeEventListener(type, handler, options));
  }

  bind() {
    this.listen(this.el("play"), "click", () => this.toggle());
    this.listen(this.el("back"), "click", () => this.seekBy(-SEEK_SECONDS));
    this.listen(this.el("forward"), "click", () => this.seekBy(SEEK_SECONDS));
    this.listen(this.el("slower"), "click", () => this.changeSpeed(-1));
    this.listen(this.el("faster"), "click", () => this.changeSpeed(1));
    this.listen(this.el("loop"), "click", () => this.toggleLoop());
    const canvas = this.el("waveform");
    let dragFrom = null;
    let dragged = false;
    this.listen(canvas, "pointerdown", (event) => {
      dragFrom = this.waveform.timeAt(event.clientX);
      dragged = false;
      canvas.setPointerCapture(event.pointerId);
    });
    this.listen(canvas, "pointermove", (event) => {
      if (dragFrom === null) return;
      const to = this.waveform.timeAt(event.clientX);
      if (!dragged && Math.abs(to - dragFrom) < 0.05) return;
      dragged = true;
      this.waveform.selection = [Math.min(dragFrom, to), Math.max(dragFrom, to)];
      this.render();
    });
    this.listen(canvas, "pointerup", (event) => {
      if (dragFrom === null) return;
      const to = this.waveform.timeAt(event.clientX);
      dragFrom = null;
      if (!dragged) {
        this.waveform.selection = null;
        this.sendLoop();
        this.seekTo(to);
        return;
      }
      this.sendLoop();
      this.seekTo(this.waveform.selection[0]);
    });
    this.listen(this.root, "contextmenu", (event) => {
      if (event.target.closest(".player")) event.preventDefault();
    });
    this.listen(document, "keydown", (event) => this.onKey(event));
    this.listen(window, "resize", () => this.render());
    this.listen(window, "pagehide", () => {
      this.report(true, true);
      this.destroy();
    });
  }

  onKey(event) {
    if (!this.node) return;
    const ctrl = event.ctrlKey || event.metaKey;
    const actions = {
      Escape: () => this.toggle(),
      F1: () => this.seekBy(-SEEK_SECONDS),
      F2: () => this.seekBy(SEEK_SECONDS),
      F3: () => this.changeSpeed(-1),
      F4: () => this.changeSpeed(1),
      F6: () => this.toggleLoop(),
    };
    let action = event.altKey ? null : actions[event.key];
    if (ctrl && event.code === "Space") action = () => this.toggle();
    if (ctrl && event.key === ",") action = () => this.seekBy(-SEEK_SECONDS);
    if (ctrl && event.key === ".") action = () => this.seekBy(SEEK_SECONDS);
    if (!action) return;
    event.preventDefault();
    action();
  }

  send(message) {
    if (this.node) this.node.port.postMessage(message);
  }

  toggle() {
    if (!this.node) return;
    if (this.context.state === "suspended") this.context.resume();
    this.send({ type: this.running ? "pause" : "play" });
  }

  seekTo(seconds) {
    this.send({ type: "seek", position: Math.min(Math.max(0, seconds), this.duration) });
  }

  seekBy(delta) {
    this.seekTo(this.position + delta);
  }

  changeSpeed(direction) {
    this.speedIndex = Math.min(SPEEDS.length - 1, Math.max(0, this.speedIndex + direction));
    const speed = SPEEDS[this.speedIndex];
    this.send({ type: "speed", value: speed });
    this.text("speed", `${speed}×`);
  }

  loopRegion() {
    return this.waveform.selection || [0, this.duration];
  }

  sendLoop() {
    this.send({ type: "loop", region: this.loop ? this.loopRegion() : null });
  }

  toggleLoop() {
    this.loop = !this.loop;
    this.el("loop").setAttribute("aria-pressed", String(this.loop));
    this.sendLoop();
    const [start, end] = this.loopRegion();
    if (this.loop && (this.position < start || this.position >= end)) this.seekTo(start);
  }

  onState(state) {
    if (state.type !== "state") return;
    this.position = Math.min(state.position, this.duration);
    if (state.segment) this.coverage.add(state.segment[0], Math.min(state.segment[1], this.duration));
    if (state.running !== this.running) {
      this.running = state.running;
      const play = this.el("play");
      play.textContent = this.running ? "Pause" : "Play";
      play.setAttribute("aria-pressed", String(this.running));
      if (this.running) this.status(`Playing at ${SPEEDS[this.speedIndex]}×.`);
      else this.report(true);
    }
    if (state.ended) this.status("End of the clip. Press Esc to play it again.");
    else if (!state.running && state.segment) this.status("Paused.");
    if (this.running && Date.now() - this.lastReport >= PROGRESS_EVERY_MS) this.report(false);
    this.render();
  }

  // Tell the server what was played; reports are sent one after the other, never overlapping.
  report(final, keepalive = false) {
    if (!this.urls.progress || !this.node) return this.reporting;
    this.lastReport = Date.now();
    const body = {
      position: Number(this.position.toFixed(3)),
      speed: SPEEDS[this.speedIndex],
      heard: this.coverage.intervals.map(([s, e]) => [Number(s.toFixed(3)), Number(e.toFixed(3))]),
      final,
    };
    const send = async () => {
      try {
        const answer = await postJson(this.urls.progress, body, keepalive);
        this.serverShare = answer.heard_share;
        this.render();
        this.root.dispatchEvent(new CustomEvent("listening", { detail: answer }));
      } catch (error) {
        if (error instanceof Refused) {
          this.status("Your lease has ended: the audio was removed from this page.", "error");
          this.destroy();
        } else {
          this.status(error.message, "error");
        }
      }
    };
    this.reporting = keepalive ? send() : this.reporting.then(send);
    return this.reporting;
  }

  render() {
    if (!this.waveform) return;
    this.waveform.draw(this.position, this.coverage.intervals);
    this.text("position", formatTime(this.position));
    const local = this.coverage.heard() / this.duration;
    const share = Math.min(100, Math.floor(Math.max(local, this.serverShare) * 100));
    this.text("heard", `${share}% heard`);
  }

  // The page is about to end the lease (submit, skip, report a problem): report what was
  // heard while the lease is still live, then drop the audio, so that nothing is reported
  // after it ends (the server would refuse that report and record a denied attempt).
  async finish() {
    try {
      await this.report(true);
    } finally {
      this.destroy();
    }
  }

  // Drop the audio: the worklet's samples, the audio graph, the listeners.
  destroy() {
    if (this.node) {
      this.node.port.postMessage({ type: "unload" });
      this.node.port.onmessage = null;
      this.node.disconnect();
      this.node = null;
    }
    if (this.context) {
      this.context.close();
      this.context = null;
    }
    for (const remove of this.listeners) remove();
    this.listeners = [];
    this.running = false;
    this.setEnabled(false);
  }
}

export async function startPlayer(root) {
  const player = new Player(root);
  try {
    await player.load();
  } catch (error) {
    player.destroy();
    player.status(error.message || "The clip could not be loaded.", "error");
  }
  return player;
}
