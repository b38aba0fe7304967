"""`flask audit trace`: a leaked, re-encoded excerpt leads back to its clip and its listeners."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import lameenc
import numpy as np
import pytest
import soundfile
import soxr
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from portal.audit.models import AuditEvent
from portal.auth.models import Role
from portal.clips.services import erase_clip, ingest_clip, quarantine_clip
from portal.clock import utcnow
from portal.extensions import db
from tests.clips.helpers import ACME, clip_row, metadata, vendor
from tests.conftest import TEST_ACTOR, Person
from tests.playback.conftest import claim, fetch, post_json

__all__ = ["vendor"]

RATE = 16_000
SECONDS = 8.0


def speech(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    """Syllables of random length, pitch and brightness with pauses: each seed a different 'voice'."""
    rng = np.random.default_rng(seed)
    count = int(seconds * rate)
    envelope, pitch, brightness = np.zeros(count), np.full(count, 150.0), np.zeros(count)
    position = 0
    while position < count:
        length = int(rng.uniform(0.08, 0.3) * rate)
        span = slice(position, min(count, position + length))
        size = span.stop - span.start
        envelope[span] = np.sin(np.pi * np.arange(size) / size) * rng.uniform(0.3, 1.0)
        pitch[span], brightness[span] = rng.uniform(100, 240), rng.uniform(0.3, 0.9)
        position += length + int(rng.uniform(0.02, 0.2) * rate)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) * brightness**k for k in range(1, 12))
    return (0.2 * voiced * envelope + 0.005 * rng.standard_normal(count)).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def mp3_bytes(samples: np.ndarray, rate: int = RATE, kbps: int = 32) -> bytes:
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_quality(5)
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    return bytes(encoder.encode(pcm) + encoder.flush())


@dataclass
class Library:
    """Three ingested clips, the audio each was made from, and who streamed clip 2."""

    public_ids: list[str]
    sources: list[np.ndarray]
    listeners: list[Person]


@pytest.fixture
def library(app: Flask, vendor: str, create_user, login_as, clock) -> Library:
    sources = [speech(SECONDS, seed) for seed in (1, 2, 3)]
    public_ids = []
    with app.app_context():
        for number, samples in enumerate(sources, start=1):
            # Clip 2 comes first in the queue, with two passes: two annotators stream it.
            meta = metadata(
                source_user_id=f"subject-{number}",
                transcript="hello there",
                priority=9 if number == 2 else 1,
                passes=2 if number == 2 else 1,
            )
            result = ingest_clip(io.BytesIO(wav_bytes(samples)), meta, TEST_ACTOR, utcnow())
            db.session.commit()
            public_ids.append(result.clip.public_id)
    listeners = [create_user(Role.ANNOTATOR, ACME, email=f"listener{n}@acme.example") for n in (1, 2)]
    for person in listeners:
        client: FlaskClient = app.test_client()
        login_as(client, person)
        task_id, _ = claim(app, person)
        response = post_json(client, f"/tasks/{task_id}/playback")
        assert response.status_code == 200, response.get_data(as_text=True)
        assert fetch(client, response.get_json()["url"]).status_code == 206
    return Library(public_ids, sources, listeners)


def leaked_excerpt(library: Library, tmp_path: Path) -> Path:
    """Clip 2, 1.37 s to 6.2 s, at 40 % volume, resampled to 44.1 kHz, as a 32 kbit/s MP3."""
    excerpt = 0.4 * library.sources[1][int(1.37 * RATE) : int(6.2 * RATE)]
    path = tmp_path / "leak.mp3"
    path.write_bytes(mp3_bytes(soxr.resample(excerpt, RATE, 44_100).astype(np.float32), 44_100))
    return path


def traced_events(app: Flask) -> list[dict]:
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "audit.traced"))
        return [{"target": row.target, "actor": row.actor, **json.loads(row.details)} for row in rows]


def test_a_trimmed_quieter_mp3_leads_back_to_its_clip_and_who_streamed_it(app, runner, library, tmp_path):
    leak = leaked_excerpt(library, tmp_path)
    result = runner.invoke(args=["audit", "trace", str(leak)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("searched 3 clip(s)")
    matches = [line for line in lines if line.startswith("  clip ")]
    assert len(matches) == 1 and library.public_ids[1] in matches[0]
    score = float(matches[0].split("score ")[1].split()[0])
    assert score > 0.9
    offset = float(matches[0].split("starts at ")[1].split()[0])
    assert abs(offset - 1.37) < 0.15  # MP3 adds a little priming delay
    for person in library.listeners:
        row = next(line for line in lines if person.email in line)
        assert "vendor Acme Transcription" in row and "grants 1" in row and "in 1 range(s)" in row
        assert "bytes served 0 " not in row
    events = traced_events(app)
    assert len(events) == 1
    assert events[0]["target"] == f"clip:{library.public_ids[1]}"
    assert events[0]["match"] == library.public_ids[1] and events[0]["score"] == score
    assert events[0]["actor"].startswith("cli:")
    assert set(events[0]) == {"target", "actor", "match", "score", "searched", "not_searchable", "sha256"}


def test_a_quarantined_clip_can_still_be_traced(app, runner, library, tmp_path):
    with app.app_context():
        clip = db.session.merge(clip_row(app, library.public_ids[1]))
        quarantine_clip(clip, "integrity", TEST_ACTOR, utcnow())
        db.session.commit()
    result = runner.invoke(args=["audit", "trace", str(leaked_excerpt(library, tmp_path))])
    assert result.exit_code == 0, result.output
    assert f"clip {library.public_ids[1]} [quarantined]" in result.output


def test_unrelated_audio_matches_nothing(app, runner, library, tmp_path):
    leak = tmp_path / "other.mp3"
    leak.write_bytes(mp3_bytes(speech(5.0, seed=99)))
    result = runner.invoke(args=["audit", "trace", str(leak), "--top", "5"])
    assert result.exit_code == 1, result.output
    assert "no clip matches above the threshold" in result.output
    assert "who was served" not in result.output
    best = float(result.output.split("best score ")[1].rstrip(")\n"))
    assert best < 0.5
    assert traced_events(app)[0]["match"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not audio at all " * 100, "must be WAV, FLAC, Ogg/Opus or MP3"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10, "could not be decoded"),
        (wav_bytes(speech(0.5, seed=4)), "at least 1.5 s are needed"),
    ],
)
def test_an_unreadable_file_exits_2_and_says_why(app, runner, library, tmp_path, content, message):
    leak = tmp_path / "leak.bin"
    leak.write_bytes(content)
    result = runner.invoke(args=["audit", "trace", str(leak)])
    assert result.exit_code == 2, result.output
    assert f"cannot trace {leak}" in result.output and message in result.output
    assert traced_events(app) == []


def test_a_missing_file_exits_2(runner, tmp_path):
    result = runner.invoke(args=["audit", "trace", str(tmp_path / "absent.mp3")])
    assert result.exit_code == 2
    assert "cannot trace" in result.output


def test_an_erased_clip_cannot_be_matched_and_the_output_says_so(app, runner, library, tmp_path):
    with app.app_context():
        clip = db.session.merge(clip_row(app, library.public_ids[1]))
        erase_clip(clip, TEST_ACTOR, utcnow())
        db.session.commit()
    result = runner.invoke(args=["audit", "trace", str(leaked_excerpt(library, tmp_path))])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("searched 2 clip(s)")
    assert "1 erased or expired clip(s) are not searchable" in result.output
    assert library.public_ids[1] not in result.output
    assert traced_events(app)[0]["not_searchable"] == 1
