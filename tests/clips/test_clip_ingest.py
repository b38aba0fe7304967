"""Ingest through the API: what is stored, what is not, and what the client is told."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sqlalchemy as sa

from portal.clips.models import Clip, ClipStatus
from portal.extensions import db
from portal.tasks.models import ClipVendor, Task, TaskStatus
from tests.audit.conftest import refusing_audit_inserts
from tests.clips import helpers
from tests.clips.helpers import PLANTED, RAW_DEVICE, RAW_SUBJECT, metadata, post_clip


def test_ingest_creates_clip_tasks_and_audit(app, client, ingest_token):
    response = post_clip(client, ingest_token, helpers.wav(2.0), metadata())
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"clip_id", "tasks", "redactions"}
    assert body["tasks"] == 2
    assert body["redactions"] == {"EMAIL": 1, "PHONE": 1}

    clip = helpers.clip_row(app, body["clip_id"])
    assert clip.status is ClipStatus.ACTIVE
    assert clip.transcript == "email me at [EMAIL] or call [PHONE]"
    assert clip.duration_ms == 2000
    assert clip.consent_scope == "human_review"
    assert clip.wrapped_key is not None and clip.storage_name is not None
    assert clip.storage_name != clip.public_id
    with app.app_context():
        tasks = db.session.scalars(
            sa.select(Task).where(Task.clip_id == clip.id).order_by(Task.pass_number)
        ).all()
        assert [(t.pass_number, t.priority, t.status) for t in tasks] == [
            (1, 5, TaskStatus.QUEUED),
            (2, 5, TaskStatus.QUEUED),
        ]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ClipVendor)) == 1
    (stored,) = helpers.stored_objects(app)
    assert stored.name == clip.storage_name

    (event,) = helpers.audit_rows(app, "clips.ingested")
    assert event["target"] == f"clip:{body['clip_id']}"
    assert event["actor"] == "apikey:speech-pipeline"
    assert event["details"]["redactions"] == {"EMAIL": 1, "PHONE": 1}
    assert event["details"]["subject"] == clip.subject_pseudonym


def _ingested(app, client, token, audio: bytes, meta=None, filename="clip.wav") -> Clip:
    response = post_clip(client, token, audio, meta or metadata(), filename)
    assert response.status_code == 201, response.get_json()
    return helpers.clip_row(app, response.get_json()["clip_id"])


FORMATS = {
    "wav-16k-mono": (lambda: helpers.wav(1.5), "a.wav", 1.5),
    "wav-44k-stereo": (lambda: helpers.wav(1.5, rate=44_100, channels=2), "a.wav", 1.5),
    "wav-8k": (lambda: helpers.wav(1.5, rate=8_000), "a.wav", 1.5),
    "flac": (lambda: helpers.flac(1.5, rate=22_050), "a.flac", 1.5),
    "ogg-opus": (lambda: helpers.opus(1.5), "a.opus", 1.5),
    "mp3": (lambda: helpers.mp3(1.5), "a.mp3", 1.5),
}


@pytest.mark.parametrize("kind", FORMATS)
def test_every_accepted_format_is_stored_as_16k_mono_flac(app, client, ingest_token, kind):
    make, filename, seconds = FORMATS[kind]
    clip = _ingested(app, client, ingest_token, make(), filename=filename)
    plaintext = helpers.decrypt_stored(app, clip)
    assert plaintext.startswith(b"fLaC")
    samples, rate = helpers.decode_flac(plaintext)
    assert rate == 16_000 and samples.ndim == 1
    # MP3 and Opus encoders add a few tens of milliseconds of priming.
    assert abs(len(samples) / rate - seconds) < 0.1
    assert np.sqrt(np.mean(samples**2)) > 0.01


TAGGED = {
    "wav-riff-info": (lambda: helpers.wav(1.0, tags=PLANTED), "wav"),
    "mp3-id3v2-and-v1": (lambda: helpers.mp3(1.0, tags=PLANTED), "mp3"),
    "flac-vorbis-comment": (lambda: helpers.flac(1.0, tags=PLANTED), "flac"),
    "ogg-opus-tags": (lambda: helpers.opus(1.0, tags=PLANTED), "opus"),
}


@pytest.mark.parametrize("kind", TAGGED)
def test_container_metadata_does_not_survive_ingest(app, client, ingest_token, kind):
    make, extension = TAGGED[kind]
    upload = make()
    assert PLANTED.encode() in upload, "the test file must carry the planted identifier"
    clip = _ingested(app, client, ingest_token, upload, filename=f"{PLANTED}.{extension}")

    plaintext = helpers.decrypt_stored(app, clip)
    assert PLANTED.encode() not in plaintext
    assert PLANTED.encode() not in helpers.stored_blob(app, clip)
    samples, rate = helpers.decode_flac(plaintext)
    assert rate == 16_000 and len(samples) > 0
    assert PLANTED not in helpers.database_text(app)
    assert PLANTED not in json.dumps(helpers.audit_rows(app))


def test_raw_ids_are_stored_and_logged_nowhere(app, client, ingest_token, caplog):
    caplog.set_level("DEBUG")
    clip = _ingested(app, client, ingest_token, helpers.wav(1.0))
    refused = post_clip(client, ingest_token, helpers.wav(1.0), metadata(consent={"opt_in": False}))
    assert refused.status_code == 422

    everything = helpers.database_text(app)
    for raw in (RAW_SUBJECT, RAW_DEVICE):
        assert raw not in everything
        assert raw not in caplog.text
    refusal = helpers.audit_rows(app, "clips.ingest_refused")[0]
    assert refusal["details"] == {"code": "consent_missing", "subject": clip.subject_pseudonym}
    assert clip.subject_pseudonym != clip.device_pseudonym
    assert len(clip.subject_pseudonym) == 64


def test_pseudonyms_are_keyed_hmacs(app, client, ingest_token):
    import hashlib
    import hmac

    from portal.keys import portal_keys

    clip = _ingested(app, client, ingest_token, helpers.wav(1.0))
    with app.app_context():
        key = portal_keys().pseudonym_key
    expected = hmac.new(key, b"subject\x00" + RAW_SUBJECT.encode(), hashlib.sha256).hexdigest()
    assert clip.subject_pseudonym == expected
    assert clip.subject_pseudonym != hashlib.sha256(RAW_SUBJECT.encode()).hexdigest()


WORDS = [
    {"word": "email", "start": 0.1, "end": 0.4},
    {"word": "me", "start": 0.4, "end": 0.6},
    {"word": "at", "start": 0.6, "end": 0.8},
    {"word": "jordan.lee@example.com", "start": 1.0, "end": 2.0},
    {"word": "thanks", "start": 2.3, "end": 2.7},
]
TONED_TRANSCRIPT = "email me at jordan.lee@example.com thanks"


def _dominant_frequency(segment: np.ndarray, rate: int = 16_000) -> float:
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    return float(np.fft.rfftfreq(len(segment), 1 / rate)[np.argmax(spectrum)])


def test_tone_replaces_the_audio_under_redacted_words(app, client, ingest_token):
    source = helpers.speech_like(3.0)
    upload = helpers.encode(source, 16_000, "WAV", "PCM_16")
    clip = _ingested(app, client, ingest_token, upload, metadata(transcript=TONED_TRANSCRIPT, words=WORDS))
    assert clip.toned_spans == 1
    assert json.loads(clip.words or "[]")[3] == {"word": "[EMAIL]", "start": 1.0, "end": 2.0}

    samples, _ = helpers.decode_flac(helpers.decrypt_stored(app, clip))
    under = samples[16_000:32_000]
    assert _dominant_frequency(under) == pytest.approx(1000, abs=5)
    assert abs(np.corrcoef(under, source[16_000:32_000])[0, 1]) < 0.05
    # Outside the padded span the audio is the original (up to 16-bit rounding).
    assert np.max(np.abs(samples[:14_000] - source[:14_000])) < 1e-3
    assert np.max(np.abs(samples[34_000:] - source[34_000:])) < 1e-3


def test_toning_follows_the_vendor_policy(app, client, ingest_token, runner, create_user):
    assert runner.invoke(args=["clips", "tone", helpers.ACME, "off"]).exit_code == 0
    source = helpers.speech_like(3.0)
    upload = helpers.encode(source, 16_000, "WAV", "PCM_16")
    untoned = _ingested(app, client, ingest_token, upload, metadata(transcript=TONED_TRANSCRIPT, words=WORDS))
    assert untoned.toned_spans == 0
    samples, _ = helpers.decode_flac(helpers.decrypt_stored(app, untoned))
    assert np.max(np.abs(samples - source)) < 1e-3
    assert json.loads(untoned.words or "[]")[3]["word"] == "[EMAIL]", "the transcript is redacted regardless"

    # A clip shared with a vendor that keeps the default is toned: one copy serves both.
    create_user(vendor="Other Vendor")
    shared = _ingested(
        app,
        client,
        ingest_token,
        upload,
        metadata(transcript=TONED_TRANSCRIPT, words=WORDS, vendors=[helpers.ACME, "Other Vendor"]),
    )
    assert shared.toned_spans == 1
    assert helpers.audit_rows(app, "clips.vendor_tone_set")[0]["details"] == {"tone_over_redactions": False}


def test_idempotency_key_returns_the_first_answer(app, client, ingest_token):
    meta = metadata(idempotency_key="batch-7/clip-0001")
    first = post_clip(client, ingest_token, helpers.wav(1.0), meta)
    second = post_clip(client, ingest_token, helpers.flac(2.0), meta)
    assert first.status_code == second.status_code == 201
    assert second.get_json() == first.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert helpers.row_counts(app) == {"clips": 1, "tasks": 2, "clip_vendors": 1}
    assert len(helpers.stored_objects(app)) == 1
    assert [e["target"] for e in helpers.audit_rows(app, "clips.ingest_replayed")] == [
        f"clip:{first.get_json()['clip_id']}"
    ]
    assert "batch-7/clip-0001" not in helpers.database_text(app)

    other_subject = post_clip(
        client,
        ingest_token,
        helpers.wav(1.0),
        metadata(idempotency_key="batch-7/clip-0001", source_user_id="x"),
    )
    assert other_subject.status_code == 409
    assert other_subject.get_json()["error"]["code"] == "idempotency_key_conflict"
    assert helpers.row_counts(app)["clips"] == 1


def _fail_on_ingested_event(monkeypatch):
    from portal.clips import services

    real = services.record_event

    def failing(actor, action, **kwargs):
        if action == "clips.ingested":
            raise RuntimeError("injected: the audit event could not be written")
        return real(actor, action, **kwargs)

    monkeypatch.setattr(services, "record_event", failing)


def _fail_at_commit(monkeypatch):
    from portal.clips.services import DISCARD_ON_ROLLBACK

    def refuse_commit(session):
        if session.info.get(DISCARD_ON_ROLLBACK):
            raise RuntimeError("injected: the commit failed")

    sa.event.listen(db.session, "before_commit", refuse_commit)
    monkeypatch.setattr(_fail_at_commit, "listener", refuse_commit, raising=False)


@pytest.mark.parametrize("inject", [_fail_on_ingested_event, _fail_at_commit], ids=["audit-write", "commit"])
def test_a_failure_after_the_file_was_stored_leaves_nothing(app, client, ingest_token, monkeypatch, inject):
    inject(monkeypatch)
    try:
        response = post_clip(client, ingest_token, helpers.wav(1.0), metadata())
    finally:
        listener = getattr(_fail_at_commit, "listener", None)
        if listener is not None and sa.event.contains(db.session, "before_commit", listener):
            sa.event.remove(db.session, "before_commit", listener)
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert helpers.stored_objects(app) == []
    assert helpers.row_counts(app) == {"clips": 0, "tasks": 0, "clip_vendors": 0}
    assert helpers.audit_rows(app, "clips.ingested") == []


def test_a_database_refusing_the_audit_event_leaves_no_file(app, client, ingest_token):
    with refusing_audit_inserts(app, "clips.ingested"):
        response = post_clip(client, ingest_token, helpers.wav(1.0), metadata())
    assert response.status_code == 500
    assert helpers.stored_objects(app) == []
    assert helpers.row_counts(app) == {"clips": 0, "tasks": 0, "clip_vendors": 0}
    assert helpers.audit_rows(app, "clips.ingested") == []


def test_flipped_byte_in_a_stored_file_is_refused_and_quarantined(app, client, ingest_token, runner):
    from portal.clips.crypto import IntegrityError
    from portal.clips.services import read_clip_audio

    tampered = _ingested(app, client, ingest_token, helpers.wav(1.0))
    intact = _ingested(app, client, ingest_token, helpers.wav(1.0))
    with app.app_context():
        assert read_clip_audio(db.session.get_one(Clip, intact.id)).startswith(b"fLaC")
    path = next(p for p in helpers.stored_objects(app) if p.name == tampered.storage_name)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with app.app_context(), pytest.raises(IntegrityError):
        read_clip_audio(db.session.get_one(Clip, tampered.id))

    result = runner.invoke(args=["clips", "verify"])
    assert result.exit_code == 1
    assert f"clip {tampered.public_id}: failed its integrity check" in result.output
    assert helpers.clip_row(app, tampered.public_id).status is ClipStatus.QUARANTINED
    assert helpers.clip_row(app, intact.public_id).status is ClipStatus.ACTIVE
    with app.app_context():
        statuses = db.session.scalars(sa.select(Task.status).where(Task.clip_id == tampered.id)).all()
    assert set(statuses) == {TaskStatus.CANCELLED}
    (event,) = helpers.audit_rows(app, "clips.quarantined")
    assert event["outcome"] == "failed" and event["details"]["reason"] == "integrity"


def test_metadata_may_come_as_a_file_part(app, client, ingest_token):
    import io

    response = client.post(
        "/api/v1/clips",
        data={
            "audio": (io.BytesIO(helpers.wav(1.0)), "a.wav"),
            "metadata": (io.BytesIO(json.dumps(metadata()).encode()), "metadata.json"),
        },
        headers={"Authorization": f"Bearer {ingest_token}"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()


def test_retention_date_follows_configuration(app_env, app, client, ingest_token, clock):
    clip = _ingested(app, client, ingest_token, helpers.wav(1.0))
    assert (clip.retain_until - clip.ingested_at).days == app.config["RETENTION_DAYS"] == 90


def test_concurrent_duplicate_idempotency_key_gets_the_committed_answer(
    app, client, ingest_token, database_url, monkeypatch
):
    """Two requests with one key race past the lookup; the loser answers with the winner's clip.

    Only PostgreSQL can interleave them: SQLite serialises whole write transactions.
    """
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite takes the write lock at BEGIN; the race cannot happen")
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.orm import Session

    from portal.clips import services
    from portal.clips.pseudonyms import idempotency_digest, subject_pseudonym

    with app.app_context():
        digest, subject = idempotency_digest("race-1"), subject_pseudonym(RAW_SUBJECT)
    real_vendors = services._vendors

    def winner_commits_first(names):
        engine = sa.create_engine(database_url)
        now = datetime.now(UTC)
        with Session(engine) as other:
            other.add(
                Clip(
                    public_id="f" * 32,
                    subject_pseudonym=subject,
                    locale="en-US",
                    duration_ms=1000,
                    consent_opt_in=True,
                    consent_recorded_at=now,
                    consent_scope="human_review",
                    transcript="",
                    passes=1,
                    status=ClipStatus.ACTIVE,
                    idempotency_digest=digest,
                    ingested_at=now,
                    retain_until=now + timedelta(days=1),
                )
            )
            other.commit()
        engine.dispose()
        return real_vendors(names)

    monkeypatch.setattr(services, "_vendors", winner_commits_first)
    response = post_clip(client, ingest_token, helpers.wav(1.0), metadata(idempotency_key="race-1"))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["clip_id"] == "f" * 32
    assert response.headers["Idempotent-Replayed"] == "true"
    assert helpers.stored_objects(app) == []
    assert helpers.row_counts(app) == {"clips": 1, "tasks": 0, "clip_vendors": 0}
