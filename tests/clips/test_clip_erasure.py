"""Erasure of a data subject and retention expiry: keys, files, transcripts, tasks."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from portal.auth.models import Role
from portal.clips import crypto
from portal.clips.models import Clip, ClipStatus
from portal.extensions import db
from portal.keys import portal_keys
from portal.tasks.models import Task, TaskStatus
from tests.clips import helpers
from tests.clips.helpers import RAW_SUBJECT, metadata, post_clip
from tests.conftest import post_form


def _ingest(app, client, token, **overrides) -> Clip:
    response = post_clip(client, token, helpers.wav(1.0), metadata(**overrides))
    assert response.status_code == 201, response.get_json()
    return helpers.clip_row(app, response.get_json()["clip_id"])


def _tasks(app, clip: Clip) -> set[TaskStatus]:
    with app.app_context():
        return set(db.session.scalars(sa.select(Task.status).where(Task.clip_id == clip.id)))


def _assert_shredded(app, clip: Clip, status: ClipStatus) -> None:
    row = helpers.clip_row(app, clip.public_id)
    assert row.status is status
    assert row.wrapped_key is None and row.storage_name is None
    assert row.transcript == "" and row.words is None and row.device_pseudonym is None
    assert row.erased_at is not None
    assert _tasks(app, clip) == {TaskStatus.CANCELLED}


def test_erase_subject_destroys_keys_files_and_tasks(app, client, ingest_token, runner):
    first = _ingest(app, client, ingest_token, words=[{"word": "email", "start": 0.0, "end": 0.5}])
    second = _ingest(app, client, ingest_token)
    bystander = _ingest(app, client, ingest_token, source_user_id="someone-else")
    copies = {clip.public_id: helpers.stored_blob(app, clip) for clip in (first, second)}
    wrapped = {clip.public_id: clip.wrapped_key for clip in (first, second)}
    assert len(helpers.stored_objects(app)) == 3

    result = runner.invoke(args=["subjects", "erase", "--source-user-id", RAW_SUBJECT])
    assert result.exit_code == 0, result.output
    assert "2 clip(s) erased" in result.output

    for clip in (first, second):
        _assert_shredded(app, clip, ClipStatus.ERASED)
    assert [path.name for path in helpers.stored_objects(app)] == [bystander.storage_name]
    assert helpers.clip_row(app, bystander.public_id).status is ClipStatus.ACTIVE
    assert _tasks(app, bystander) == {TaskStatus.QUEUED}

    # A copy of the stored object taken before erasure (a backup, a replica) is now noise:
    # the only key that opened it was the wrapped key, and no row holds it any more.
    with app.app_context():
        master_key = portal_keys().master_key
        for public_id, blob in copies.items():
            assert crypto.open_sealed(blob, public_id, wrapped[public_id], master_key).startswith(b"fLaC")
    database = helpers.database_text(app).encode("latin-1")
    for public_id, key in wrapped.items():
        assert key is not None and key not in database
        assert helpers.clip_row(app, public_id).wrapped_key is None

    (summary,) = helpers.audit_rows(app, "subjects.erased")
    assert summary["target"] == f"subject:{first.subject_pseudonym}"
    assert summary["details"] == {"clips": 2}
    erased = helpers.audit_rows(app, "clips.erased")
    assert sorted(event["target"] for event in erased) == sorted(
        f"clip:{c.public_id}" for c in (first, second)
    )
    assert all(
        event["details"] == {"subject": first.subject_pseudonym, "tasks_cancelled": 2} for event in erased
    )
    assert RAW_SUBJECT not in json.dumps(helpers.audit_rows(app))
    assert RAW_SUBJECT not in helpers.database_text(app)


def test_erasing_an_unknown_subject_is_recorded_too(app, runner):
    result = runner.invoke(args=["subjects", "erase", "--source-user-id", "-"], input="never-seen\n")
    assert result.exit_code == 0, result.output
    assert "0 clip(s) erased" in result.output
    (event,) = helpers.audit_rows(app, "subjects.erased")
    assert event["details"] == {"clips": 0}
    assert "never-seen" not in json.dumps(event)


def test_erasure_that_fails_keeps_the_clips_whole(app, client, ingest_token, monkeypatch):
    from portal.clips import services

    clip = _ingest(app, client, ingest_token)
    real = services.record_event

    def failing(actor, action, **kwargs):
        if action == "subjects.erased":
            raise RuntimeError("injected: audit write failed")
        return real(actor, action, **kwargs)

    monkeypatch.setattr(services, "record_event", failing)
    with app.app_context():
        with pytest.raises(RuntimeError):
            services.erase_subject(RAW_SUBJECT, helpers.TEST_ACTOR, helpers.utcnow())
        db.session.rollback()
    assert helpers.clip_row(app, clip.public_id).status is ClipStatus.ACTIVE
    assert helpers.decrypt_stored(app, helpers.clip_row(app, clip.public_id)).startswith(b"fLaC")


def test_retention_purge_expires_old_clips_only(app_env, request, clock):
    app_env["PORTAL_RETENTION_DAYS"] = "30"
    app = request.getfixturevalue("app")
    token = request.getfixturevalue("ingest_token")
    client = app.test_client()
    old = _ingest(app, client, token)
    clock.advance(days=20)
    young = _ingest(app, client, token)
    runner = app.test_cli_runner()

    assert "0 expired clip(s) purged" in runner.invoke(args=["clips", "purge-expired"]).output
    clock.advance(days=11)
    result = runner.invoke(args=["clips", "purge-expired"])
    assert result.exit_code == 0 and "1 expired clip(s) purged" in result.output

    _assert_shredded(app, old, ClipStatus.EXPIRED)
    assert helpers.clip_row(app, young.public_id).status is ClipStatus.ACTIVE
    assert [path.name for path in helpers.stored_objects(app)] == [young.storage_name]
    assert [event["target"] for event in helpers.audit_rows(app, "clips.expired")] == [
        f"clip:{old.public_id}"
    ]
    assert helpers.audit_rows(app, "clips.purged")[0]["details"] == {"clips": 1}


def test_admin_erases_through_the_page(app, client, ingest_token, create_user, login_as, publish):
    publish()
    clip = _ingest(app, client, ingest_token)
    admin = create_user(Role.ADMIN)
    browser = app.test_client()
    login_as(browser, admin)
    refused = post_form(
        browser, "/admin/clips/erase", {"source_user_id": RAW_SUBJECT}, form_page="/admin/clips/"
    )
    assert refused.status_code == 400, "the confirmation box is required"
    assert helpers.clip_row(app, clip.public_id).status is ClipStatus.ACTIVE

    response = post_form(
        browser,
        "/admin/clips/erase",
        {"source_user_id": RAW_SUBJECT, "confirm": "y"},
        form_page="/admin/clips/",
    )
    assert response.status_code == 302
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "1 clip(s) erased" in page
    assert RAW_SUBJECT not in page
    _assert_shredded(app, clip, ClipStatus.ERASED)
    (event,) = helpers.audit_rows(app, "subjects.erased")
    assert event["actor"] == admin.email
