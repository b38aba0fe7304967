"""Ingest throughput: de-identify + encrypt + store, single-threaded, in CPU time.

Generates speech-like 16 kHz audio (default: 30 minutes in 30-second clips, split evenly
between WAV, FLAC and MP3 inputs), then ingests every clip through the real service
(`portal.clips.services.ingest_clip`: consent, pseudonyms, decode, re-encode to FLAC,
transcript and word-timing redaction, tone over redacted words, AES-256-GCM, local
storage, clip/task/audit rows on SQLite, one commit per clip) and reports:

* × real time per core: seconds of audio per second of process CPU time (the target is
  ≥ 100×: an hour of audio in at most 36 s of one core);
* the same per input format;
* peak resident memory (ru_maxrss) and current RSS after increasing numbers of clips,
  which must not grow with the number of clips.

Input generation is not timed. Run:

    .venv/bin/python benchmarks/ingest_throughput.py [--minutes 30] [--clip-seconds 30]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import lameenc
import numpy as np
import soundfile
from alembic import command
from alembic.config import Config as AlembicConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal import create_app
from portal.admin.services import create_vendor
from portal.audit.services import Actor
from portal.clips.services import ingest_clip
from portal.clock import utcnow
from portal.config import PROJECT_ROOT
from portal.extensions import db

RATE = 16_000
FORMATS = ("wav", "flac", "mp3")
ACTOR = Actor(label="benchmark", role="operator", ip="local")
TRANSCRIPT = (
    "hi it's Sam, my email is sam.jones@example.com and my number is 415 555 0134, "
    "the card is 4111 1111 1111 1111 and the IBAN is GB82 WEST 1234 5698 7654 32, "
    "I was born on March 3rd, 1985 and live at 221 Baker Street"
)


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Voiced harmonics with a wandering pitch, syllable-rate bursts, pauses and noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    pitch = rng.uniform(100, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voiced = sum(np.sin(k * phase) * rng.uniform(0.3, 1.0) / k for k in range(1, 10))
    syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t), 0, None) ** 2
    pauses = np.repeat(rng.random(n // RATE + 1) > 0.15, RATE)[:n]
    signal = 0.2 * voiced * syllables * pauses + 0.01 * rng.standard_normal(n)
    return signal.astype(np.float32)


def encode(samples: np.ndarray, fmt: str) -> bytes:
    if fmt == "mp3":
        encoder = lameenc.Encoder()
        encoder.set_bit_rate(64)
        encoder.set_in_sample_rate(RATE)
        encoder.set_channels(1)
        encoder.set_quality(5)
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        return bytes(encoder.encode(pcm) + encoder.flush())
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, RATE, format=fmt.upper(), subtype="PCM_16")
    return buffer.getvalue()


def words_for(seconds: float) -> list[dict[str, object]]:
    """Word timings spread over the clip (the transcript's words, evenly spaced)."""
    tokens = TRANSCRIPT.split()
    step = seconds / len(tokens)
    return [{"word": word, "start": i * step, "end": (i + 0.9) * step} for i, word in enumerate(tokens)]


def metadata(index: int, seconds: float) -> dict[str, object]:
    return {
        "source_user_id": f"bench-user-{index % 50}",
        "device_id": f"bench-device-{index}",
        "consent": {"opt_in": True, "recorded_at": "2026-01-01T00:00:00Z", "scope": ["human_review"]},
        "locale": "en-US",
        "transcript": TRANSCRIPT,
        "words": words_for(seconds),
        "passes": 2,
        "vendors": ["Bench Vendor"],
    }


def reset_peak_rss() -> bool:
    """Start peak-RSS accounting afresh (Linux ≥ 4.0), so input generation does not count."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def rss_mib() -> tuple[float, float]:
    """(peak since the reset, current) resident set size in MiB."""
    status = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    if "VmHWM" in status:
        return int(status["VmHWM"].split()[0]) / 1024, int(status["VmRSS"].split()[0]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return peak, current


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="total audio to ingest")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="length of each clip")
    args = parser.parse_args()
    count = max(len(FORMATS), round(args.minutes * 60 / args.clip_seconds))

    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as scratch:
        root = Path(scratch)
        inputs = root / "inputs"
        inputs.mkdir()
        minutes = count * args.clip_seconds / 60
        print(f"generating {count} clips of {args.clip_seconds:.0f} s ({minutes:.1f} min)…")
        files = []
        for index in range(count):
            fmt = FORMATS[index % len(FORMATS)]
            path = inputs / f"clip-{index:04d}.{fmt}"
            path.write_bytes(encode(speech_like(args.clip_seconds, index), fmt))
            files.append((path, fmt))

        database = root / "portal.sqlite3"
        alembic = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
        alembic.attributes["url"] = f"sqlite:///{database}"
        alembic.attributes["configure_logging"] = False
        command.upgrade(alembic, "head")
        app = create_app(
            {
                "PORTAL_ENV": "testing",
                "PORTAL_INSTANCE_PATH": str(root / "instance"),
                "PORTAL_DATABASE_URL": f"sqlite:///{database}",
                "PORTAL_LOG_LEVEL": "WARNING",
            }
        )
        with app.app_context():
            create_vendor("Bench Vendor", ACTOR)
            db.session.commit()

            checkpoints = sorted({max(1, count * share // 16) for share in (1, 2, 4, 8, 16)})
            memory = []
            cpu_by_format: dict[str, float] = defaultdict(float)
            audio_by_format: dict[str, float] = defaultdict(float)
            audio_seconds = 0.0
            peak_reset = reset_peak_rss()
            memory.append((0, *rss_mib()))
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            for index, (path, fmt) in enumerate(files, 1):
                clip_cpu = time.process_time()
                with path.open("rb") as stream:
                    result = ingest_clip(stream, metadata(index, args.clip_seconds), ACTOR, utcnow())
                db.session.commit()
                cpu_by_format[fmt] += time.process_time() - clip_cpu
                seconds = result.clip.duration_ms / 1000
                audio_by_format[fmt] += seconds
                audio_seconds += seconds
                del result
                db.session.remove()
                if index in checkpoints:
                    memory.append((index, *rss_mib()))
            cpu = time.process_time() - cpu_start
            wall = time.perf_counter() - wall_start
            stored = sum(p.stat().st_size for p in (root / "instance" / "clips").rglob("*") if p.is_file())

    print()
    print(f"clips ingested          {count} ({audio_seconds / 60:.1f} min of 16 kHz audio)")
    print(f"CPU time                {cpu:.2f} s   (wall {wall:.2f} s)")
    print(f"× real time per core    {audio_seconds / cpu:.0f}×   (target ≥ 100×)")
    print(f"one hour of audio       {3600 * cpu / audio_seconds:.1f} s of one core")
    for fmt in FORMATS:
        print(f"  {fmt:<5} inputs         {audio_by_format[fmt] / cpu_by_format[fmt]:.0f}× real time")
    print(f"stored (encrypted FLAC) {stored / 2**20:.1f} MiB")
    since = "since ingest began" if peak_reset else "of the process"
    print(f"memory after N clips    N      peak RSS MiB ({since})   current RSS MiB")
    for index, peak, current in memory:
        print(f"                        {index:<6} {peak:>10.1f}   {current:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
