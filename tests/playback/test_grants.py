"""Playback grants: only the live lease holder (or a scoped supervisor reviewing) gets one."""

from __future__ import annotations

import re

from portal.auth.models import Role, User
from portal.clips.models import Clip
from portal.clips.services import quarantine_clip
from portal.clock import utcnow
from portal.config import load_config
from portal.extensions import db
from portal.playback.models import PlaybackGrant
from portal.review.services import Decision, decide_submission
from portal.tasks.services import submit_correction
from tests.auth.helpers import audit_events, details, dump_database
from tests.clips.helpers import clip_row
from tests.conftest import TEST_ACTOR
from tests.playback.conftest import denials, fetch, listen_fully, live_session, post_json

TOKEN_URL = re.compile(r"^/media/([A-Za-z0-9_-]{43})$")


def test_the_holder_gets_a_short_lived_grant_stored_only_as_a_hash(app, holding):
    response = post_json(holding.client, f"/tasks/{holding.task_id}/playback")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    answer = response.get_json()
    assert answer["expires_in"] == 60
    assert answer["content_type"] == "audio/flac"
    token = TOKEN_URL.match(answer["url"]).group(1)
    with app.app_context():
        grant = db.session.query(PlaybackGrant).one()
        assert (grant.user_id, grant.task_id, grant.lease_id, grant.submission_id) == (
            holding.person.id,
            holding.task_id,
            holding.lease_id,
            None,
        )
        assert grant.session_id == live_session(app, holding.person.id).id
        assert (grant.expires_at - grant.created_at).total_seconds() == 60
    assert token not in dump_database(app)
    (event,) = audit_events(app, "playback.granted")
    assert event.actor_id == holding.person.id
    assert event.target == f"clip:{holding.clip_public_id}"
    assert details(event) == {
        "grant": grant.id,
        "task": holding.task_id,
        "lease": holding.lease_id,
        "submission": None,
        "expires_in": 60,
    }


def test_grant_lifetime_follows_the_setting(app, holding):
    assert load_config({"PORTAL_GRANT_SECONDS": "15"})["GRANT_SECONDS"] == 15
    app.config["GRANT_SECONDS"] = 15
    assert post_json(holding.client, f"/tasks/{holding.task_id}/playback").get_json()["expires_in"] == 15


def test_another_annotator_gets_no_grant_for_the_task(app, holding, create_user, login_as):
    other = create_user(Role.ANNOTATOR)
    intruder = app.test_client()
    login_as(intruder, other)

    response = post_json(intruder, f"/tasks/{holding.task_id}/playback")

    assert response.status_code == 403
    assert audit_events(app, "playback.granted") == []
    (event,) = audit_events(app, "access.denied")
    assert event.actor_id == other.id
    assert "not the holder" in details(event)["reason"]


def test_the_holder_in_a_second_session_gets_no_grant(app, holding, login_as):
    second = app.test_client()
    login_as(second, holding.person)

    assert post_json(second, f"/tasks/{holding.task_id}/playback").status_code == 403
    (event,) = audit_events(app, "access.denied")
    assert "another session" in details(event)["reason"]


def test_no_grant_once_the_clip_is_quarantined(app, holding):
    with app.app_context():
        clip = db.session.get_one(Clip, clip_row(app, holding.clip_public_id).id)
        quarantine_clip(clip, "integrity", TEST_ACTOR, utcnow())
        db.session.commit()

    assert post_json(holding.client, f"/tasks/{holding.task_id}/playback").status_code == 403
    assert audit_events(app, "playback.granted") == []


def _submit(app, holding) -> int:
    listen_fully(holding)
    with app.app_context():
        user = db.session.get_one(User, holding.person.id)
        session = live_session(app, holding.person.id)
        result = submit_correction(
            holding.task_id, holding.lease_id, user, session, "hello there", TEST_ACTOR, utcnow()
        )
        db.session.commit()
        return result.submission.id


def test_a_supervisor_of_the_vendor_streams_a_pending_submission_until_it_is_decided(
    app, holding, create_user, login_as
):
    submission_id = _submit(app, holding)
    supervisor = create_user(Role.SUPERVISOR)
    reviewer = app.test_client()
    login_as(reviewer, supervisor)

    response = post_json(reviewer, f"/review/{submission_id}/playback")
    assert response.status_code == 200, response.get_data(as_text=True)
    url = response.get_json()["url"]
    media = fetch(reviewer, url, "bytes=0-")
    assert media.status_code == 206
    assert media.data == holding.plain_audio()
    event = audit_events(app, "playback.granted")[-1]
    assert event.actor_id == supervisor.id
    assert details(event)["submission"] == submission_id
    assert details(event)["lease"] is None

    with app.app_context():
        decide_submission(
            db.session.get_one(User, supervisor.id), submission_id, Decision.ACCEPT, "", TEST_ACTOR, utcnow()
        )
        db.session.commit()

    assert fetch(reviewer, url).status_code == 403
    assert post_json(reviewer, f"/review/{submission_id}/playback").status_code == 403
    reasons = [denial["reason"] for denial in denials(app)]
    assert reasons == ["review_decided", "review_decided"]


def test_supervisors_of_another_vendor_and_annotators_get_no_review_grant(
    app, holding, create_user, login_as
):
    submission_id = _submit(app, holding)
    outsider = create_user(Role.SUPERVISOR, "Globex Voice")
    client = app.test_client()
    login_as(client, outsider)
    assert post_json(client, f"/review/{submission_id}/playback").status_code == 403
    assert post_json(client, "/review/999999/playback").status_code == 404
    # The annotator who wrote it is no supervisor at all.
    assert post_json(holding.client, f"/review/{submission_id}/playback").status_code == 403
    assert audit_events(app, "playback.granted")[-1].actor_id == holding.person.id
    assert [details(event)["path"] for event in audit_events(app, "access.denied")] == [
        f"/review/{submission_id}/playback",
        f"/review/{submission_id}/playback",
    ]


def test_no_review_grant_once_the_clip_is_out_of_service(app, holding, create_user, login_as):
    submission_id = _submit(app, holding)
    reviewer = app.test_client()
    login_as(reviewer, create_user(Role.SUPERVISOR))
    url = post_json(reviewer, f"/review/{submission_id}/playback").get_json()["url"]
    with app.app_context():
        clip = db.session.get_one(Clip, clip_row(app, holding.clip_public_id).id)
        quarantine_clip(clip, "integrity", TEST_ACTOR, utcnow())
        db.session.commit()

    assert post_json(reviewer, f"/review/{submission_id}/playback").status_code == 403
    assert fetch(reviewer, url).status_code == 403
    assert [denial["reason"] for denial in denials(app)] == ["clip_not_active", "clip_not_active"]
