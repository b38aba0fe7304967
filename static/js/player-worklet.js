// The player's audio engine, running on the audio rendering thread (AudioWorklet).
//
// It holds the decoded clip as samples in memory and plays them at 0.5×–2× without
// changing the pitch, by WSOLA (waveform-similarity overlap-add): the output is built from
// Hann-windowed frames overlapping by half; for each frame the source is read near the
// position the speed asks for, shifted by up to ±10 ms to the place whose waveform best
// continues the previous frame, so voices stay smooth instead of chipmunk-like. At 1× the
// frames are consecutive and the output is the clip itself, sample for sample.
//
// It tells the page where it is and which stretch of the clip it just played (source
// seconds), so the page can report what was heard. Messages in: load, play, pause, seek,
// speed, loop, unload. Messages out: {type: "state", position, running, segment, ended}.

const FRAME = 2 * Math.round((0.032 * sampleRate) / 2); // 32 ms: a few pitch periods
const HOP = FRAME / 2;
const TOLERANCE = Math.round(0.01 * sampleRate); // ±10 ms covers a low voice's period
const STRIDE = Math.max(1, Math.round(sampleRate / 8000)); // correlate at about 8 kHz
const FADE = Math.round(0.005 * sampleRate); // 5 ms ramps: no click at pause or play
const REPORT_EVERY = Math.round(0.04 * sampleRate);

function hann(length) {
  const window = new Float32Array(length);
  for (let i = 0; i < length; i++) window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / length);
  return window; // periodic: two windows half a frame apart sum to exactly one
}

class WsolaPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.window = hann(FRAME);
    this.ola = new Float32Array(FRAME);
    this.pending = new Float32Array(HOP);
    this.samples = null;
    this.length = 0;
    this.speed = 1;
    this.loop = null;
    this.running = false;
    this.gain = 0;
    this.target = 0;
    this.alive = true;
    this.sinceReport = 0;
    this.reset(0);
    this.port.onmessage = (event) => this.command(event.data);
  }

  // Start reading afresh at `position` (samples): after a seek, a loop jump, a load.
  reset(position) {
    this.pos = position;
    this.played = position;
    this.previous = -1;
    this.ola.fill(0);
    this.pendingRead = HOP;
    this.pendingStart = position;
    this.pendingSpeed = this.speed;
    this.segmentStart = this.running ? position : null;
  }

  sample(index) {
    return index >= 0 && index < this.length ? this.samples[index] : 0;
  }

  // The candidate start near `nominal` whose frame best continues the one at `natural`.
  bestMatch(natural, nominal) {
    const samples = this.samples;
    const length = this.length;
    let best = nominal;
    let bestScore = -Infinity;
    const low = Math.max(0, nominal - TOLERANCE);
    const high = Math.min(length - 1, nominal + TOLERANCE);
    for (let candidate = low; candidate <= high; candidate++) {
      let dot = 0;
      let energy = 1e-9;
      const end = Math.min(FRAME, length - candidate, length - natural);
      for (let i = 0; i < end; i += STRIDE) {
        const x = samples[candidate + i];
        dot += x * samples[natural + i];
        energy += x * x;
      }
      const score = dot / Math.sqrt(energy);
      if (score > bestScore) {
        bestScore = score;
        best = candidate;
      }
    }
    return best;
  }

  nextHop() {
    const nominal = Math.round(this.pos);
    let chosen = nominal;
    if (this.previous >= 0) {
      const natural = this.previous + HOP;
      if (this.speed === 1) {
        chosen = natural;
        this.pos = natural;
      } else if (natural < this.length) {
        chosen = this.bestMatch(natural, nominal);
      }
    }
    for (let i = 0; i < FRAME; i++) this.ola[i] += this.window[i] * this.sample(chosen + i);
    this.pending.set(this.ola.subarray(0, HOP));
    this.ola.copyWithin(0, HOP);
    this.ola.fill(0, FRAME - HOP);
    this.pendingRead = 0;
    this.pendingStart = this.pos;
    this.pendingSpeed = this.speed;
    this.previous = chosen;
    this.pos += this.speed * HOP;
  }

  post(extra = {}) {
    const segment = this.segmentStart === null ? null : [this.segmentStart / sampleRate, this.played / sampleRate];
    this.port.postMessage({
      type: "state",
      position: this.played / sampleRate,
      running: this.running,
      segment,
      ended: false,
      ...extra,
    });
    this.sinceReport = 0;
  }

  // Report the stretch played since the segment began, then start a new one (or none).
  closeSegment(next) {
    this.post();
    this.segmentStart = next;
  }

  stop(ended) {
    if (ended) this.played = this.length;
    this.running = false;
    this.gain = 0;
    this.target = 0;
    this.closeSegment(null);
    if (ended) this.post({ ended: true });
  }

  command(message) {
    switch (message.type) {
      case "load":
        this.samples = message.samples;
        this.length = this.samples.length;
        this.running = false;
        this.reset(0);
        this.post();
        break;
      case "play":
        if (!this.samples) return;
        if (this.played >= this.length - 1) this.reset(this.loop ? this.loop[0] : 0);
        if (!this.running) this.segmentStart = this.played;
        this.running = true;
        this.target = 1;
        this.post();
        break;
      case "pause":
        this.target = 0;
        break;
      case "seek": {
        const position = Math.min(Math.max(0, Math.round(message.position * sampleRate)), this.length);
        if (this.running) this.closeSegment(null);
        this.reset(position);
        this.post();
        break;
      }
      case "speed":
        this.speed = message.value;
        break;
      case "loop":
        this.loop = message.region
          ? [Math.round(message.region[0] * sampleRate), Math.round(message.region[1] * sampleRate)]
          : null;
        break;
      case "unload":
        this.samples = null;
        this.length = 0;
        this.running = false;
        this.alive = false;
        break;
      default:
        break;
    }
  }

  process(inputs, outputs) {
    const channels = outputs[0];
    const out = channels[0];
    if (!this.samples || !this.running) {
      out.fill(0);
    } else {
      for (let i = 0; i < out.length; i++) {
        if (!this.running) {
          out[i] = 0;
          continue;
        }
        if (this.pendingRead >= HOP) {
          if (this.loop && this.pos >= this.loop[1]) {
            this.closeSegment(null);
            this.reset(this.loop[0]);
          } else if (this.pos >= this.length) {
            this.stop(true);
            out[i] = 0;
            continue;
          }
          this.nextHop();
        }
        this.played = Math.min(this.length, this.pendingStart + this.pendingRead * this.pendingSpeed);
        const value = this.pending[this.pendingRead++];
        if (this.gain !== this.target) {
          this.gain = this.gain < this.target ? Math.min(this.target, this.gain + 1 / FADE) : Math.max(0, this.gain - 1 / FADE);
        }
        out[i] = value * this.gain;
        if (this.gain === 0 && this.target === 0) this.stop(false);
      }
      this.sinceReport += out.length;
      if (this.running && this.sinceReport >= REPORT_EVERY) this.post();
    }
    for (let c = 1; c < channels.length; c++) channels[c].set(out);
    return this.alive;
  }
}

registerProcessor("wsola-player", WsolaPlayer);
