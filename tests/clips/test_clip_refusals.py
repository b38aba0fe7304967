"""Every way a clip is refused: the status, the stable code, the audit event, and nothing left.

Each case goes through the API; a refused clip must leave no stored file, no clip row,
no task, and one `clips.ingest_refused` event naming the code.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from portal.auth.models import Vendor
from portal.extensions import db
from tests.clips import helpers
from tests.clips.helpers import metadata, post_clip


def _truncated_flac() -> bytes:
    data = helpers.flac(2.0)
    return data[: len(data) // 2]


def _garbled_flac() -> bytes:
    data = bytearray(helpers.flac(2.0))
    data[400:] = os.urandom(len(data) - 400)
    return bytes(data)


def _riff_garbage() -> bytes:
    return b"RIFF" + (10_000).to_bytes(4, "little") + b"WAVE" + os.urandom(2_000)


def _mp3_garbage() -> bytes:
    return b"\xff\xfb\x90\x00" + os.urandom(4_000)


# id: (audio, metadata (dict, raw string or None), env overrides, status, code)
CASES = {
    "consent-record-absent": (helpers.wav, metadata(consent=None), {}, 422, "consent_missing"),
    "consent-opt-in-false": (
        helpers.wav,
        metadata(consent={"opt_in": False, "recorded_at": "2026-11-01T10:00:00Z", "scope": ["human_review"]}),
        {},
        422,
        "consent_missing",
    ),
    "consent-opt-in-not-boolean": (
        helpers.wav,
        metadata(consent={"opt_in": "yes", "recorded_at": "2026-11-01T10:00:00Z", "scope": ["human_review"]}),
        {},
        422,
        "consent_missing",
    ),
    "consent-scope-without-human-review": (
        helpers.wav,
        metadata(
            consent={"opt_in": True, "recorded_at": "2026-11-01T10:00:00Z", "scope": ["model_training"]}
        ),
        {},
        422,
        "consent_scope_insufficient",
    ),
    "consent-time-unreadable": (
        helpers.wav,
        metadata(consent={"opt_in": True, "recorded_at": "yesterday", "scope": ["human_review"]}),
        {},
        422,
        "consent_invalid",
    ),
    "consent-time-in-the-future": (
        helpers.wav,
        metadata(
            consent={"opt_in": True, "recorded_at": "2999-01-01T00:00:00+00:00", "scope": ["human_review"]}
        ),
        {},
        422,
        "consent_invalid",
    ),
    "consent-scope-not-a-list": (
        helpers.wav,
        metadata(consent={"opt_in": True, "recorded_at": "2026-11-01T10:00:00Z", "scope": "human_review"}),
        {},
        422,
        "consent_invalid",
    ),
    # Consent is checked first: before the audio (corrupt here) and the vendors (unknown here).
    "consent-checked-before-anything": (
        _riff_garbage,
        metadata(consent=None, vendors=["Nobody Inc"], locale="??"),
        {},
        422,
        "consent_missing",
    ),
    "metadata-not-json": (helpers.wav, '{"source_user_id": ', {}, 400, "metadata_invalid"),
    "metadata-not-an-object": (helpers.wav, "[1, 2, 3]", {}, 400, "metadata_invalid"),
    "metadata-part-absent": (helpers.wav, None, {}, 400, "metadata_invalid"),
    "source-user-id-missing": (helpers.wav, metadata(source_user_id=None), {}, 400, "metadata_invalid"),
    "device-id-missing": (helpers.wav, metadata(device_id=None), {}, 400, "metadata_invalid"),
    "locale-missing": (helpers.wav, metadata(locale=None), {}, 400, "metadata_invalid"),
    "locale-malformed": (helpers.wav, metadata(locale="english please"), {}, 400, "metadata_invalid"),
    "transcript-missing": (helpers.wav, metadata(transcript=None), {}, 400, "metadata_invalid"),
    "vendors-missing": (helpers.wav, metadata(vendors=None), {}, 400, "metadata_invalid"),
    "vendors-empty": (helpers.wav, metadata(vendors=[]), {}, 400, "metadata_invalid"),
    "passes-zero": (helpers.wav, metadata(passes=0), {}, 400, "metadata_invalid"),
    "passes-not-an-integer": (helpers.wav, metadata(passes="2"), {}, 400, "metadata_invalid"),
    "priority-boolean": (helpers.wav, metadata(priority=True), {}, 400, "metadata_invalid"),
    "words-end-before-start": (
        helpers.wav,
        metadata(words=[{"word": "hi", "start": 1.0, "end": 0.5}]),
        {},
        400,
        "metadata_invalid",
    ),
    "unknown-field": (helpers.wav, metadata(email="someone@example.com"), {}, 400, "metadata_invalid"),
    "vendor-unknown": (helpers.wav, metadata(vendors=["Nobody Inc"]), {}, 422, "vendor_unknown"),
    "audio-part-absent": (None, metadata(), {}, 400, "audio_missing"),
    "audio-empty": (lambda: b"", metadata(), {}, 422, "audio_empty"),
    "aiff-unsupported": (
        lambda: helpers.encode(helpers.speech_like(1.0), 16_000, "AIFF", "PCM_16"),
        metadata(),
        {},
        415,
        "audio_unsupported_format",
    ),
    "ogg-vorbis-unsupported": (
        lambda: helpers.encode(helpers.speech_like(1.0), 16_000, "OGG", "VORBIS"),
        metadata(),
        {},
        415,
        "audio_unsupported_format",
    ),
    "text-file": (
        lambda: b"this is not audio at all\n" * 20,
        metadata(),
        {},
        415,
        "audio_unsupported_format",
    ),
    "png-image": (
        lambda: b"\x89PNG\r\n\x1a\n" + os.urandom(500),
        metadata(),
        {},
        415,
        "audio_unsupported_format",
    ),
    "wav-garbage-body": (_riff_garbage, metadata(), {}, 422, "audio_corrupt"),
    "flac-truncated": (_truncated_flac, metadata(), {}, 422, "audio_corrupt"),
    "flac-garbled": (_garbled_flac, metadata(), {}, 422, "audio_corrupt"),
    "mp3-garbage": (_mp3_garbage, metadata(), {}, 422, "audio_corrupt"),
    "too-big": (helpers.wav, metadata(), {"PORTAL_MAX_CLIP_BYTES": "10000"}, 413, "audio_too_large"),
    "wav-too-long": (
        lambda: helpers.wav(3.0),
        metadata(),
        {"PORTAL_MAX_CLIP_SECONDS": "2"},
        422,
        "audio_too_long",
    ),
    "mp3-too-long": (
        lambda: helpers.mp3(3.0),
        metadata(),
        {"PORTAL_MAX_CLIP_SECONDS": "2"},
        422,
        "audio_too_long",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_refused_clip_leaves_nothing_behind(request, app_env, case):
    make_audio, meta, overrides, status, code = CASES[case]
    app_env.update(overrides)
    app = request.getfixturevalue("app")
    token = request.getfixturevalue("ingest_token")
    client = app.test_client()

    response = post_clip(client, token, make_audio() if make_audio else None, meta)

    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert helpers.stored_objects(app) == []
    assert helpers.row_counts(app) == {"clips": 0, "tasks": 0, "clip_vendors": 0}
    (event,) = helpers.audit_rows(app, "clips.ingest_refused")
    assert event["outcome"] == "denied"
    assert event["details"]["code"] == code
    assert event["actor"] == "apikey:speech-pipeline"


def test_inactive_vendor_is_refused(app, client, ingest_token):
    with app.app_context():
        db.session.execute(sa.update(Vendor).values(active=False))
        db.session.commit()
    response = post_clip(client, ingest_token, helpers.wav(), metadata())
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "vendor_inactive"
    assert helpers.row_counts(app)["clips"] == 0


def test_request_over_the_upload_limit_is_refused_as_json(request, app_env):
    app_env["PORTAL_MAX_REQUEST_BYTES"] = "20000"
    app = request.getfixturevalue("app")
    token = request.getfixturevalue("ingest_token")
    response = post_clip(app.test_client(), token, helpers.wav(2.0), metadata())
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"
    assert helpers.stored_objects(app) == []
