"""Clip test helpers: audio files (tagged ones too), metadata, API keys, and database dumps.

Fixtures defined here are imported by the conftest of tests/clips and tests/api.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lameenc
import numpy as np
import pytest
import soundfile
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from portal.admin.services import create_vendor, find_vendor
from portal.api.keys import create_api_key
from portal.api.models import ApiScope
from portal.audit.models import AuditEvent
from portal.clips import crypto
from portal.clips.models import Clip
from portal.clips.storage import clip_storage
from portal.clock import utcnow
from portal.db import Base
from portal.extensions import db
from portal.keys import portal_keys
from portal.tasks.models import ClipVendor, Task
from tests.conftest import TEST_ACTOR

ACME = "Acme Transcription"
# Raw ids chosen to be easy to search for in every table and in the audit log.
RAW_SUBJECT = "raw-subject-id-7c41d9"
RAW_DEVICE = "raw-device-id-03be55"
PLANTED = "SUBJECT-4711-SECRET"


# --- audio ------------------------------------------------------------------------------


def speech_like(seconds: float, rate: int = 16_000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-modulated signal with noise: speech-shaped, not silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    mono = (0.15 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


def encode(samples: np.ndarray, rate: int, fmt: str, subtype: str, tags: str | None = None) -> bytes:
    """Write `samples` with libsndfile; `tags` goes into title, artist and comment."""
    buffer = io.BytesIO()
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with soundfile.SoundFile(buffer, "w", rate, channels, subtype, format=fmt) as handle:
        if tags:
            handle.title = f"{tags} title"
            handle.artist = tags
            handle.comment = f"recorded by {tags}"
        handle.write(samples)
    return buffer.getvalue()


def wav(seconds: float = 1.0, rate: int = 16_000, channels: int = 1, tags: str | None = None) -> bytes:
    """WAV; with `tags`, a RIFF LIST/INFO chunk carries them."""
    return encode(speech_like(seconds, rate, channels), rate, "WAV", "PCM_16", tags)


def flac(seconds: float = 1.0, rate: int = 16_000, tags: str | None = None) -> bytes:
    """FLAC; with `tags`, a Vorbis comment block carries them."""
    return encode(speech_like(seconds, rate), rate, "FLAC", "PCM_16", tags)


def opus(seconds: float = 1.0, rate: int = 48_000, tags: str | None = None) -> bytes:
    """Ogg/Opus; with `tags`, the OpusTags (Vorbis comment) packet carries them."""
    return encode(speech_like(seconds, rate), rate, "OGG", "OPUS", tags)


def _id3v2(text: str) -> bytes:
    def frame(frame_id: bytes, body: bytes) -> bytes:
        return frame_id + struct.pack(">I", len(body)) + b"\x00\x00" + body

    frames = (
        frame(b"TIT2", b"\x00" + text.encode())
        + frame(b"TPE1", b"\x00" + text.encode())
        + frame(b"COMM", b"\x00eng\x00" + f"owner {text}".encode())
        + frame(b"TXXX", b"\x00user_id\x00" + text.encode())
    )
    size = len(frames)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frames


def _id3v1(text: str) -> bytes:
    field = text.encode()[:30].ljust(30, b"\x00")
    return b"TAG" + field + field + field + b"2026" + field + b"\x00"


def mp3(seconds: float = 1.0, rate: int = 16_000, tags: str | None = None) -> bytes:
    """MP3 (LAME); with `tags`, an ID3v2.3 tag in front and an ID3v1 tag at the end."""
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(64)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_quality(5)
    pcm = (np.clip(speech_like(seconds, rate), -1, 1) * 32767).astype("<i2").tobytes()
    body = bytes(encoder.encode(pcm) + encoder.flush())
    return _id3v2(tags) + body + _id3v1(tags) if tags else body


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    return samples, rate


# --- metadata and requests --------------------------------------------------------------


def metadata(**overrides: Any) -> dict[str, Any]:
    """Valid clip metadata; keyword arguments replace fields (None removes one)."""
    data: dict[str, Any] = {
        "source_user_id": RAW_SUBJECT,
        "device_id": RAW_DEVICE,
        "consent": {"opt_in": True, "recorded_at": "2026-11-01T10:00:00Z", "scope": ["human_review"]},
        "locale": "en-US",
        "transcript": "email me at jordan.lee@example.com or call 415 555 0134",
        "passes": 2,
        "priority": 5,
        "vendors": [ACME],
    }
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def post_clip(
    client: FlaskClient,
    token: str | None,
    audio: bytes | None,
    meta: dict[str, Any] | str | None,
    filename: str = "clip.wav",
) -> Any:
    """POST /api/v1/clips the way a service client does (multipart)."""
    form: dict[str, Any] = {}
    if meta is not None:
        form["metadata"] = meta if isinstance(meta, str) else json.dumps(meta)
    if audio is not None:
        form["audio"] = (io.BytesIO(audio), filename)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/v1/clips", data=form, headers=headers, content_type="multipart/form-data")


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def vendor(app: Flask) -> str:
    """The vendor clips are sent to."""
    with app.app_context():
        if find_vendor(ACME) is None:
            create_vendor(ACME, TEST_ACTOR)
            db.session.commit()
    return ACME


@pytest.fixture
def make_api_key(app: Flask) -> Callable[..., str]:
    """Factory: make_api_key(scope="ingest", name=...) → the token."""
    counter = iter(range(1, 1000))

    def factory(scope: str = "ingest", name: str | None = None) -> str:
        with app.app_context():
            _, token = create_api_key(
                name or f"client-{next(counter)}", ApiScope(scope), TEST_ACTOR, utcnow()
            )
            db.session.commit()
        return token

    return factory


@pytest.fixture
def ingest_token(vendor: str, make_api_key: Callable[..., str]) -> str:
    return make_api_key("ingest", "speech-pipeline")


# --- looking at what was kept -------------------------------------------------------------


def stored_objects(app: Flask) -> list[Path]:
    """Every file of the local clip store (temporary files included)."""
    root = Path(app.config["CLIP_STORAGE_PATH"])
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def row_counts(app: Flask) -> dict[str, int]:
    """How many clips, tasks and allowed-vendor rows exist."""
    with app.app_context():
        return {
            model.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
            for model in (Clip, Task, ClipVendor)
        }


def database_text(app: Flask) -> str:
    """Every value of every column of every table, as one string (bytes decoded as Latin-1)."""
    pieces = []
    with app.app_context():
        for table in Base.metadata.sorted_tables:
            for row in db.session.execute(sa.select(table)):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        pieces.append(bytes(value).decode("latin-1"))
                    elif value is not None:
                        pieces.append(str(value))
    return "\n".join(pieces)


def clip_row(app: Flask, public_id: str) -> Clip:
    with app.app_context():
        clip = db.session.scalar(sa.select(Clip).where(Clip.public_id == public_id))
        assert clip is not None
        return clip


def stored_blob(app: Flask, clip: Clip) -> bytes:
    with app.app_context():
        assert clip.storage_name is not None
        with clip_storage().open(clip.storage_name) as handle:
            return handle.read()


def decrypt_stored(app: Flask, clip: Clip) -> bytes:
    """The plaintext FLAC of a stored clip, decrypted with the app's master key."""
    blob = stored_blob(app, clip)
    with app.app_context():
        assert clip.wrapped_key is not None
        return crypto.open_sealed(blob, clip.public_id, clip.wrapped_key, portal_keys().master_key)


def audit_rows(app: Flask, action: str | None = None) -> list[dict[str, Any]]:
    """Audit events (optionally of one action) as dicts with parsed details."""
    with app.app_context():
        query = sa.select(AuditEvent).order_by(AuditEvent.seq)
        if action:
            query = query.where(AuditEvent.action == action)
        return [
            {
                "action": event.action,
                "outcome": event.outcome,
                "actor": event.actor,
                "target": event.target,
                "details": json.loads(event.details),
            }
            for event in db.session.scalars(query)
        ]


def consent_at(moment: datetime) -> dict[str, Any]:
    return {"opt_in": True, "recorded_at": moment.astimezone(UTC).isoformat(), "scope": ["human_review"]}


# --- S3 -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Any:
    """An S3-compatible server (moto) on 127.0.0.1, for the whole test run."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh bucket; boto3 reads the credentials from the standard AWS variables."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    name = f"clips-{abs(hash(request.node.nodeid)) % 10**12}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {
        "PORTAL_STORAGE": "s3",
        "PORTAL_S3_BUCKET": bucket,
        "PORTAL_S3_ENDPOINT_URL": endpoint,
        "PORTAL_S3_REGION": "us-east-1",
    }


def s3_keys(endpoint: str, bucket: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", []))
