"""Attacks on `GET /media/<token>`: every one is refused with 403 JSON and audited.

Each test first shows the same request succeeding for the holder where that makes the
refusal meaningful, then makes the one change that must get it refused, and checks the
`playback.denied` event: who, which grant, and the reason.
"""

from __future__ import annotations

import sqlalchemy as sa

from portal.auth.models import Role, User
from portal.clips.models import Clip
from portal.clips.services import erase_subject, quarantine_clip
from portal.clock import utcnow
from portal.extensions import db
from portal.playback.models import PlaybackGrant
from portal.tasks.models import ProblemKind
from portal.tasks.services import SkipReason, report_problem, skip_task, submit_correction
from tests.auth.helpers import AUTH_COOKIE, audit_events, dump_database, run_concurrently
from tests.clips.helpers import clip_row
from tests.conftest import TEST_ACTOR
from tests.playback.conftest import denials, fetch, listen_fully, live_session, post_json

MEDIA_HEADERS = {
    "Cache-Control": "no-store, private",
    "Content-Disposition": "inline",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def assert_refused(app, response, reason: str, actor_id: int | None, grant_user: int | None = None) -> dict:
    """The response is the generic 403 JSON with the media headers; the last denial says why."""
    assert response.status_code == 403, response.get_data(as_text=True)[:500]
    assert response.get_json() == {
        "error": {"code": "playback_refused", "message": "This audio cannot be played here."}
    }
    assert response.mimetype == "application/json"
    for name, value in MEDIA_HEADERS.items():
        assert response.headers[name] == value
    assert not response.headers.get("Content-Range")
    event = denials(app)[-1]
    assert event["reason"] == reason
    assert event["actor_id"] == actor_id
    if grant_user is not None:
        assert event["grant_user"] == grant_user
        assert "path" not in event  # the path holds the token
    return event


def _user(app, person) -> User:
    with app.app_context():
        return db.session.get_one(User, person.id)


def test_another_annotators_token_is_refused(app, holding, create_user, login_as):
    url = holding.grant()
    thief = create_user(Role.ANNOTATOR)
    other = app.test_client()
    login_as(other, thief)

    event = assert_refused(app, fetch(other, url), "other_user", thief.id, holding.person.id)
    assert event["target"] == f"clip:{holding.clip_public_id}"
    assert (event["task"], event["lease"]) == (holding.task_id, holding.lease_id)
    assert audit_events(app, "playback.range") == []
    assert fetch(holding.client, url).status_code == 206


def test_a_token_replayed_after_expiry_is_refused(app, holding, clock):
    url = holding.grant()
    assert fetch(holding.client, url, "bytes=0-9").status_code == 206
    clock.advance(seconds=59)
    assert fetch(holding.client, url, "bytes=10-19").status_code == 206
    clock.advance(seconds=1)

    assert_refused(app, fetch(holding.client, url, "bytes=20-29"), "expired", holding.person.id)


def test_a_token_used_from_a_second_session_of_the_same_user_is_refused(app, holding, login_as):
    url = holding.grant()
    second = app.test_client()
    login_as(second, holding.person)

    assert_refused(app, fetch(second, url), "other_session", holding.person.id, holding.person.id)


def test_a_request_without_the_session_cookie_is_refused(app, holding):
    url = holding.grant()
    anonymous = app.test_client()

    event = assert_refused(app, fetch(anonymous, url), "no_session", None, holding.person.id)
    assert event["target"] == f"clip:{holding.clip_public_id}"


def test_a_signed_out_holder_is_refused(app, holding):
    url = holding.grant()
    assert post_json(holding.client, "/logout").status_code == 302

    assert_refused(app, fetch(holding.client, url), "no_session", None, holding.person.id)


def test_the_url_opened_in_a_tab_is_refused(app, holding):
    url = holding.grant()
    navigation = {"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-User": "?1"}

    assert_refused(
        app, fetch(holding.client, url, None, **navigation), "opened_as_document", holding.person.id
    )
    # Even with the holder's cookie and within the grant's life: the tab never gets the bytes.
    assert audit_events(app, "playback.range") == []


def test_media_elements_embeds_and_cross_site_requests_are_refused(app, holding, subtests):
    url = holding.grant()
    for header, value, reason in [
        *(
            ("Sec-Fetch-Dest", dest, "not_a_fetch")
            for dest in ("audio", "video", "iframe", "embed", "object", "image")
        ),
        *(("Sec-Fetch-Site", site, "cross_site") for site in ("cross-site", "same-site", "none")),
        # curl, wget and download managers send no Fetch Metadata; every supported browser does.
        ("Sec-Fetch-Site", None, "fetch_metadata_missing"),
        ("Sec-Fetch-Dest", None, "fetch_metadata_missing"),
    ]:
        with subtests.test(msg=f"{header}: {value}"):
            event = assert_refused(
                app, fetch(holding.client, url, **{header: value}), reason, holding.person.id
            )
            if value is not None:
                assert event[header.lower().replace("sec-", "").replace("-", "_")] == value
    assert audit_events(app, "playback.range") == []


def test_an_unknown_token_is_refused_and_recorded_with_its_path(app, holding):
    event = assert_refused(
        app, fetch(holding.client, "/media/not-a-real-token"), "unknown_token", holding.person.id
    )
    assert event["path"] == "/media/not-a-real-token"
    assert event["target"] is None


def test_a_token_is_refused_after_the_task_is_submitted(app, holding):
    url = holding.grant()
    listen_fully(holding)
    with app.app_context():
        result = submit_correction(
            holding.task_id,
            holding.lease_id,
            _user(app, holding.person),
            live_session(app, holding.person.id),
            "hello there",
            TEST_ACTOR,
            utcnow(),
        )
        db.session.commit()
        assert result.replayed is False

    event = assert_refused(app, fetch(holding.client, url), "lease_ended", holding.person.id)
    assert event["end_reason"] == "submitted"


def test_a_token_is_refused_once_the_lease_is_given_up(app, holding):
    url = holding.grant()
    with app.app_context():
        skip_task(
            holding.task_id,
            _user(app, holding.person),
            live_session(app, holding.person.id),
            SkipReason.CANNOT_HEAR,
            TEST_ACTOR,
            utcnow(),
        )
        db.session.commit()

    event = assert_refused(app, fetch(holding.client, url), "lease_ended", holding.person.id)
    assert event["end_reason"] == "skipped"


def test_a_token_is_refused_after_the_lease_expired(app, holding, clock):
    app.config["GRANT_SECONDS"] = 3600  # outlives the lease, so that the lease is what stops it
    url = holding.grant()
    clock.advance(minutes=9)
    holding.client.get("/")  # the session stays alive (idle timeout 15 min)
    assert fetch(holding.client, url, "bytes=0-9").status_code == 206
    clock.advance(minutes=1)

    event = assert_refused(app, fetch(holding.client, url), "lease_ended", holding.person.id)
    assert event["end_reason"] == "expired"


def test_a_token_is_refused_once_the_clip_is_reported_and_quarantined(app, holding):
    url = holding.grant()
    with app.app_context():
        report_problem(
            holding.task_id,
            _user(app, holding.person),
            live_session(app, holding.person.id),
            ProblemKind.PII_MISSED,
            "a name at 0:02",
            TEST_ACTOR,
            utcnow(),
        )
        db.session.commit()

    event = assert_refused(app, fetch(holding.client, url), "clip_not_active", holding.person.id)
    assert event["clip_status"] == "quarantined"


def test_a_token_is_refused_when_the_integrity_check_quarantines_the_clip(app, holding):
    url = holding.grant()
    with app.app_context():
        clip = db.session.get_one(Clip, clip_row(app, holding.clip_public_id).id)
        quarantine_clip(clip, "integrity", TEST_ACTOR, utcnow())
        db.session.commit()

    assert_refused(app, fetch(holding.client, url), "clip_not_active", holding.person.id)


def test_a_token_is_refused_once_the_clip_is_erased(app, holding):
    url = holding.grant()
    with app.app_context():
        assert erase_subject("subject-1", TEST_ACTOR, utcnow()) == 1
        db.session.commit()

    event = assert_refused(app, fetch(holding.client, url), "clip_not_active", holding.person.id)
    assert event["clip_status"] == "erased"


def test_a_new_nda_stops_streaming_until_it_is_accepted(app, holding, publish):
    url = holding.grant()
    publish("Version two of the agreement.")

    assert_refused(app, fetch(holding.client, url), "gate_chain_incomplete", holding.person.id)


def test_a_grant_serves_one_playback_not_a_download_loop(app, holding):
    url = holding.grant()
    size = len(holding.plain_audio())
    assert fetch(holding.client, url, "bytes=0-").status_code == 206
    assert fetch(holding.client, url, "bytes=0-").status_code == 206  # one retry

    event = assert_refused(app, fetch(holding.client, url, "bytes=0-0"), "grant_used_up", holding.person.id)
    assert event["bytes_served"] == 2 * size


def test_parallel_fetches_cannot_stretch_a_grant_past_one_playback(app, holding):
    """Eight whole-file requests at once on one grant: the budget holds without a grant lock."""
    url = holding.grant()
    size = len(holding.plain_audio())
    session_cookie = holding.client.get_cookie(AUTH_COOKIE).value

    def whole_file():
        client = app.test_client()
        client.set_cookie(AUTH_COOKIE, session_cookie)
        return fetch(client, url, "bytes=0-")

    responses = run_concurrently(*[whole_file] * 8)

    assert sorted(response.status_code for response in responses) == [206, 206] + [403] * 6
    assert [event["reason"] for event in denials(app)] == ["grant_used_up"] * 6
    assert len(audit_events(app, "playback.range")) == 2
    with app.app_context():
        assert db.session.scalars(sa.select(PlaybackGrant.bytes_served)).all() == [2 * size]


def test_tokens_never_reach_the_audit_log(app, holding, create_user, login_as):
    url = holding.grant()
    fetch(holding.client, url)
    fetch(app.test_client(), url)
    fetch(holding.client, url, **{"Sec-Fetch-Dest": "document"})
    token = url.rsplit("/", 1)[1]

    assert len(denials(app)) == 2
    assert token not in dump_database(app)
