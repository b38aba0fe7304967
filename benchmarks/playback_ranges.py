"""What serving one byte range costs when the clip is decrypted for every request.

The media endpoint keeps no plaintext between requests: each `GET /media/<token>` reads
the sealed object, unwraps the clip key, decrypts the whole FLAC with AES-256-GCM and cuts
the range out. This script measures, for clips of several lengths:

* `decrypt`: `read_clip_audio` alone (local storage read + key unwrap + decrypt);
* `range`: one whole `GET /media/<token>` through the WSGI app (session cookie lookup,
  grant/lease/task/clip checks with their row locks, decrypt, audit event, commit), for the
  player's 1 MiB chunks, over the Flask test client (no network, no server);
* the plaintext bytes held per request (= the clip's FLAC size), which is what 32
  concurrent annotators multiply.

    .venv/bin/python benchmarks/playback_ranges.py                     # SQLite in a temp dir
    .venv/bin/python benchmarks/playback_ranges.py --wipe \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test_stream

PostgreSQL runs need --wipe: the script drops and recreates the database's public schema.
"""

from __future__ import annotations

import argparse
import io
import secrets
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fresh_database import migrate, wipe_postgres
from portal import create_app
from portal.admin.services import create_user, create_vendor
from portal.audit.services import Actor
from portal.auth.models import Role, UserSession
from portal.auth.sessions import hash_token
from portal.clips.models import Clip
from portal.clips.services import ingest_clip, read_clip_audio
from portal.clock import utcnow
from portal.extensions import db
from portal.tasks.services import claim_next_task

ACTOR = Actor(label="benchmark")
CHUNK = 1024 * 1024
FETCH = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"}


def speech_like(seconds: float, rate: int = 16_000) -> bytes:
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.7 * t)) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    samples = (0.15 * voiced + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def prepare(url: str, wipe: bool) -> None:
    if url.startswith("postgresql"):
        if not wipe:
            sys.exit("PostgreSQL runs need --wipe (the public schema is dropped and recreated).")
        wipe_postgres(url)
    migrate(url)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url")
    parser.add_argument("--wipe", action="store_true")
    parser.add_argument("--seconds", type=float, nargs="+", default=[3, 30, 120, 600])
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()

    instance = Path(tempfile.mkdtemp(prefix="playback-bench-"))
    url = args.database_url or f"sqlite:///{instance / 'portal.sqlite3'}"
    prepare(url, args.wipe)
    app = create_app(
        {
            "PORTAL_ENV": "testing",
            "PORTAL_INSTANCE_PATH": str(instance),
            "PORTAL_DATABASE_URL": url,
            "PORTAL_LOG_LEVEL": "WARNING",
            "PORTAL_ARGON2_TIME_COST": "1",
            "PORTAL_ARGON2_MEMORY_COST": "1024",
            "PORTAL_ARGON2_PARALLELISM": "1",
            "PORTAL_GRANT_SECONDS": "3600",
            "PORTAL_MAX_CLIP_BYTES": str(200 * 1024 * 1024),
        }
    )
    print(f"database: {url.split('://')[0]}; chunk {CHUNK // 1024} KiB; {args.repeat} requests per row")
    print(
        "| clip | FLAC bytes | decrypt p50 | decrypt p95 | 1 MiB range p50 | range p95 "
        "| ranges per playback |"
    )
    print("|---|---|---|---|---|---|---|")
    with app.app_context():
        vendor = create_vendor("Bench Vendor", ACTOR)
        db.session.commit()
    for index, seconds in enumerate(args.seconds):
        token = secrets.token_urlsafe(32)
        with app.app_context():
            password = secrets.token_urlsafe(18)
            user = create_user(f"bench{index}@example.com", Role.ANNOTATOR, vendor, password, ACTOR)
            now = utcnow()
            user_session = UserSession(
                token_hash=hash_token(token),
                ref=hash_token("ref:" + token)[:32],
                user_id=user.id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=2),
                mfa_verified_at=now,
            )
            db.session.add(user_session)
            meta = {
                "source_user_id": f"bench-{index}",
                "device_id": "bench",
                "consent": {"opt_in": True, "recorded_at": "2026-01-01T00:00:00Z", "scope": ["human_review"]},
                "locale": "en-US",
                "transcript": "benchmark",
                "vendors": ["Bench Vendor"],
            }
            result = ingest_clip(io.BytesIO(speech_like(seconds)), meta, ACTOR, now)
            lease = claim_next_task(user, user_session, now)
            assert lease is not None
            task_id = lease.task_id
            db.session.commit()
            clip = db.session.get_one(Clip, result.clip.id)
            decrypt = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                size = len(read_clip_audio(clip))
                decrypt.append(time.perf_counter() - started)
        client = app.test_client()
        client.set_cookie(app.config["AUTH_COOKIE_NAME"], token)
        csrf = client.get("/").get_data(as_text=True).split('name="csrf-token" content="')[1].split('"')[0]
        ranges = []
        for _ in range(args.repeat):
            media = client.post(
                f"/tasks/{task_id}/playback", headers={"X-CSRFToken": csrf, "Accept": "application/json"}
            ).get_json()["url"]
            started = time.perf_counter()
            response = client.get(media, headers={**FETCH, "Range": f"bytes=0-{CHUNK - 1}"})
            ranges.append(time.perf_counter() - started)
            assert response.status_code == 206, response.status_code
        chunks = -(-size // CHUNK)
        print(
            f"| {seconds:g} s | {size:,} | {statistics.median(decrypt) * 1000:.2f} ms "
            f"| {percentile(decrypt, 0.95) * 1000:.2f} ms | {statistics.median(ranges) * 1000:.2f} ms "
            f"| {percentile(ranges, 0.95) * 1000:.2f} ms | {chunks} |"
        )


if __name__ == "__main__":
    main()
