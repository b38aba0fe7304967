// The annotator's player: fetches a clip through a short-lived playback grant, keeps it
// in memory only, and plays it through the Web Audio graph.
//
// No URL of the audio ever appears in the DOM: the grant URL lives in a local variable
// for the few seconds the range requests take, and the media element that plays the
// in-memory bytes (for pitch-preserving speed changes) is never attached to the page.
// The page reports what was heard to the server, which decides whether the whole clip
// was played before accepting a submission.

const CHUNK_BYTES = 256 * 1024;
const SEEK_SECONDS = 2;
const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2];
const PROGRESS_EVERY_MS = 5000;

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
    body: JSON.stringify(body || {}),
  });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (payload.error && payload.error.message) || `The server refused (${response.status}).`;
    throw new Error(message);
  }
  return payload;
}

async function fetchInRanges(url) {
  const parts = [];
  let start = 0;
  let total = null;
  while (total === null || start < total) {
    const end = start + CHUNK_BYTES - 1;
    const response = await fetch(url, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Range: `bytes=${start}-${end}` },
    });
    if (response.status !== 206 && response.status !== 200) {
      throw new Error("The audio could not be loaded. Your lease may have ended.");
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    parts.push(bytes);
    if (response.status === 200) {
      total = bytes.length;
    } else {
      const range = response.headers.get("Content-Range") || "";
      total = Number(range.split("/")[1]);
    }
    start += bytes.length;
    if (bytes.length === 0) break;
  }
  const all = new Uint8Array(start);
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

function formatTime(seconds) {
  const s = Math.max(0, seconds);
  const minutes = Math.floor(s / 60);
  const rest = (s - minutes * 60).toFixed(1).padStart(4, "0");
  return `${minutes}:${rest}`;
}

// Intervals of the clip that were heard, merged, in seconds.
class Coverage {
  constructor() {
    this.intervals = [];
  }
  add(start, end) {
    if (end <= start) return;
    this.intervals.push([start, end]);
    this.intervals.sort((a, b) => a[0] - b[0]);
    const merged = [];
    for (const [s, e] of this.intervals) {
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

class Waveform {
  constructor(canvas, buffer) {
    this.canvas = canvas;
    this.buffer = buffer;
    this.peaks = null;
    this.selection = null;
  }
  computePeaks(width) {
    const data = this.buffer.getChannelData(0);
    const step = Math.max(1, Math.floor(data.length / width));
    const peaks = new Float32Array(width * 2);
    for (let x = 0; x < width; x++) {
      let min = 1;
      let max = -1;
      const from = x * step;
      const to = Math.min(data.length, from + step);
      for (let i = from; i < to; i++) {
        const v = data[i];
        if (v < min) min = v;
        if (v > max) max = v;
      }
      peaks[2 * x] = min;
      peaks[2 * x + 1] = max;
    }
    return peaks;
  }
  draw(position) {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.floor(canvas.clientWidth * ratio);
    const height = Math.floor(canvas.clientHeight * ratio);
    if (canvas.width !== width || canvas.height !== height || !this.peaks) {
      canvas.width = width;
      canvas.height = height;
      this.peaks = this.computePeaks(width);
    }
    const ctx = canvas.getContext("2d");
    const styles = getComputedStyle(canvas);
    ctx.clearRect(0, 0, width, height);
    const duration = this.buffer.duration;
    if (this.selection) {
      const [s, e] = this.selection;
      ctx.fillStyle = styles.getPropertyValue("--selection").trim() || "#dbe9e8";
      ctx.fillRect((s / duration) * width, 0, ((e - s) / duration) * width, height);
    }
    const playedX = (position / duration) * width;
    const middle = height / 2;
    for (let x = 0; x < width; x++) {
      ctx.fillStyle = x < playedX ? styles.getPropertyValue("--played").trim() || "#2f6f73" : styles.getPropertyValue("--wave").trim() || "#9fb3b4";
      const min = this.peaks[2 * x];
      const max = this.peaks[2 * x + 1];
      ctx.fillRect(x, middle - max * middle, 1, Math.max(1, (max - min) * middle));
    }
    ctx.fillStyle = styles.getPropertyValue("--cursor").trim() || "#1d2733";
    ctx.fillRect(playedX, 0, Math.max(1, ratio), height);
  }
  timeAt(clientX) {
    const rect = this.canvas.getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (clientX - rect.left) / rect.width));
    return fraction * this.buffer.duration;
  }
}

class Player {
  constructor(root) {
    this.root = root;
    this.urls = {
      grant: root.dataset.grantUrl,
      progress: root.dataset.progressUrl,
    };
    this.el = (id) => root.querySelector(`#${id}`);
    this.coverage = new Coverage();
    this.speedIndex = SPEEDS.indexOf(1);
    this.loop = false;
    this.segmentStart = null;
    this.lastReport = 0;
  }

  status(message, kind = "info") {
    const box = this.el("player-status");
    box.textContent = message;
    box.dataset.kind = kind;
  }

  async load() {
    this.status("Loading the clip…");
    const grant = await postJson(this.urls.grant);
    const bytes = await fetchInRanges(grant.url);
    this.context = new AudioContext();
    this.buffer = await this.context.decodeAudioData(bytes.buffer.slice(0));
    this.media = new Audio();
    this.media.preservesPitch = true;
    this.objectUrl = URL.createObjectURL(new Blob([bytes], { type: grant.content_type || "audio/flac" }));
    this.media.src = this.objectUrl;
    this.context.createMediaElementSource(this.media).connect(this.context.destination);
    this.waveform = new Waveform(this.el("waveform"), this.buffer);
    this.bind();
    this.el("duration").textContent = formatTime(this.buffer.duration);
    this.root.classList.add("ready");
    this.status("Ready. Press Esc to play.");
    this.render();
  }

  bind() {
    const media = this.media;
    this.el("play").addEventListener("click", () => this.toggle());
    this.el("back").addEventListener("click", () => this.seekBy(-SEEK_SECONDS));
    this.el("forward").addEventListener("click", () => this.seekBy(SEEK_SECONDS));
    this.el("slower").addEventListener("click", () => this.changeSpeed(-1));
    this.el("faster").addEventListener("click", () => this.changeSpeed(1));
    this.el("loop").addEventListener("click", () => this.toggleLoop());
    media.addEventListener("play", () => this.onPlay());
    media.addEventListener("pause", () => this.onStop());
    media.addEventListener("ended", () => this.onStop());
    media.addEventListener("timeupdate", () => this.onTime());
    const canvas = this.el("waveform");
    let dragFrom = null;
    canvas.addEventListener("pointerdown", (event) => {
      dragFrom = this.waveform.timeAt(event.clientX);
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (dragFrom === null) return;
      const to = this.waveform.timeAt(event.clientX);
      this.waveform.selection = [Math.min(dragFrom, to), Math.max(dragFrom, to)];
      this.render();
    });
    canvas.addEventListener("pointerup", (event) => {
      const to = this.waveform.timeAt(event.clientX);
      if (Math.abs(to - dragFrom) < 0.1) {
        this.waveform.selection = null;
        this.seekTo(to);
      } else {
        this.seekTo(this.waveform.selection[0]);
      }
      dragFrom = null;
      this.render();
    });
    this.root.addEventListener("contextmenu", (event) => {
      if (event.target.closest(".player")) event.preventDefault();
    });
    document.addEventListener("keydown", (event) => this.onKey(event));
    window.addEventListener("resize", () => {
      this.waveform.peaks = null;
      this.render();
    });
    window.addEventListener("pagehide", () => this.report(true));
  }

  onKey(event) {
    const ctrl = event.ctrlKey || event.metaKey;
    const actions = {
      Escape: () => this.toggle(),
      F1: () => this.seekBy(-SEEK_SECONDS),
      F2: () => this.seekBy(SEEK_SECONDS),
      F3: () => this.changeSpeed(-1),
      F4: () => this.changeSpeed(1),
      F6: () => this.toggleLoop(),
    };
    let action = actions[event.key];
    if (ctrl && event.code === "Space") action = () => this.toggle();
    if (ctrl && event.key === ",") action = () => this.seekBy(-SEEK_SECONDS);
    if (ctrl && event.key === ".") action = () => this.seekBy(SEEK_SECONDS);
    if (!action || !this.media) return;
    event.preventDefault();
    action();
  }

  toggle() {
    if (this.context.state === "suspended") this.context.resume();
    if (this.media.paused) this.media.play();
    else this.media.pause();
  }

  seekTo(seconds) {
    this.closeSegment();
    this.media.currentTime = Math.min(Math.max(0, seconds), this.buffer.duration);
    if (!this.media.paused) this.segmentStart = this.media.currentTime;
    this.render();
  }

  seekBy(delta) {
    this.seekTo(this.media.currentTime + delta);
  }

  changeSpeed(direction) {
    this.speedIndex = Math.min(SPEEDS.length - 1, Math.max(0, this.speedIndex + direction));
    this.media.playbackRate = SPEEDS[this.speedIndex];
    this.el("speed").textContent = `${SPEEDS[this.speedIndex]}×`;
  }

  toggleLoop() {
    this.loop = !this.loop;
    this.el("loop").setAttribute("aria-pressed", String(this.loop));
  }

  onPlay() {
    this.segmentStart = this.media.currentTime;
    this.el("play").textContent = "Pause";
    this.el("play").setAttribute("aria-pressed", "true");
    const tick = () => {
      if (this.media.paused) return;
      this.render();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  onStop() {
    this.closeSegment();
    this.el("play").textContent = "Play";
    this.el("play").setAttribute("aria-pressed", "false");
    this.render();
    this.report(true);
  }

  onTime() {
    const selection = this.waveform.selection;
    if (this.loop && selection && this.media.currentTime >= selection[1]) {
      this.seekTo(selection[0]);
    }
    if (Date.now() - this.lastReport > PROGRESS_EVERY_MS) this.report(false);
  }

  closeSegment() {
    if (this.segmentStart === null) return;
    this.coverage.add(this.segmentStart, this.media.currentTime);
    this.segmentStart = this.media.paused ? null : this.media.currentTime;
  }

  async report(final) {
    if (!this.media) return;
    this.closeSegment();
    this.lastReport = Date.now();
    const body = {
      position: Number(this.media.currentTime.toFixed(2)),
      speed: SPEEDS[this.speedIndex],
      heard: this.coverage.intervals.map(([s, e]) => [Number(s.toFixed(2)), Number(e.toFixed(2))]),
      final,
    };
    try {
      const answer = await postJson(this.urls.progress, body);
      this.root.dispatchEvent(new CustomEvent("listening", { detail: answer }));
    } catch (error) {
      this.status(error.message, "error");
    }
  }

  render() {
    if (!this.waveform) return;
    const position = this.media.currentTime;
    this.waveform.draw(position);
    this.el("position").textContent = formatTime(position);
    const share = Math.min(100, Math.round((this.coverage.heard() / this.buffer.duration) * 100));
    this.el("heard").textContent = `${share}% heard`;
  }
}

export async function startPlayer(root) {
  const player = new Player(root);
  try {
    await player.load();
  } catch (error) {
    player.status(error.message || "The clip could not be loaded.", "error");
  }
  return player;
}
