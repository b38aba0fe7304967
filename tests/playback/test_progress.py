"""Progress reports: merged into the lease's heard intervals, audited, and what "fully heard" means."""

from __future__ import annotations

import json

import pytest

from portal.auth.models import Role, User
from portal.clips.models import Clip
from portal.clock import utcnow
from portal.extensions import db
from portal.playback.services import listening_state, merge_intervals
from portal.tasks.models import TaskLease
from portal.tasks.services import NotFullyHeard, submit_correction
from tests.auth.helpers import audit_events, details
from tests.clips.helpers import clip_row
from tests.conftest import TEST_ACTOR
from tests.playback.conftest import CLIP_SECONDS, fetch, live_session, post_json


def report(holding, heard, position=0.0, speed=1.0, final=False, client=None):
    response = holding.progress(
        {"position": position, "speed": speed, "heard": heard, "final": final}, client
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def heard(holding) -> list[list[float]]:
    return json.loads(holding.lease().heard_intervals)


def serve_everything(holding) -> None:
    assert fetch(holding.client, holding.grant(), "bytes=0-").status_code == 206


def test_reports_are_merged_into_the_lease(holding):
    assert report(holding, [[0, 0.5]]) == {"heard_share": 0.25, "fully_heard": False}
    report(holding, [[0.4, 1.0]])
    report(holding, [[1.5, 1.8]])
    assert heard(holding) == [[0, 1.0], [1.5, 1.8]]
    # A report overlapping both, and one that only repeats what is known.
    assert report(holding, [[0.9, 1.6], [0, 0.2]])["heard_share"] == 0.9
    assert heard(holding) == [[0, 1.8]]


def test_tiny_gaps_between_reports_do_not_count_as_unheard(holding):
    report(holding, [[0, 1.0], [1.04, 2.0]])
    assert heard(holding) == [[0, 2.0]]


def test_intervals_are_clipped_to_the_clip(holding):
    assert report(holding, [[1.5, 500]])["heard_share"] == 0.25
    assert heard(holding) == [[1.5, CLIP_SECONDS]]


def test_fully_heard_needs_every_byte_served_as_well_as_97_percent_played(holding):
    # Claiming to have played everything without ever fetching the audio is not listening.
    assert report(holding, [[0, CLIP_SECONDS]], final=True) == {"heard_share": 1.0, "fully_heard": False}

    serve_everything(holding)
    assert report(holding, [], final=True) == {"heard_share": 1.0, "fully_heard": True}


def test_fully_heard_threshold_is_97_percent(holding):
    serve_everything(holding)
    assert report(holding, [[0, 0.96 * CLIP_SECONDS]]) == {"heard_share": 0.96, "fully_heard": False}
    assert report(holding, [[0, 0.97 * CLIP_SECONDS]]) == {"heard_share": 0.97, "fully_heard": True}


def test_partly_served_bytes_are_not_enough(holding):
    url = holding.grant()
    plain = holding.plain_audio()
    fetch(holding.client, url, f"bytes=0-{len(plain) - 2}")
    assert report(holding, [[0, CLIP_SECONDS]])["fully_heard"] is False
    fetch(holding.client, url, "bytes=-1")
    assert report(holding, [])["fully_heard"] is True


def test_listening_state_reads_the_lease(app, holding):
    plain = holding.plain_audio()
    with app.app_context():
        clip = db.session.get_one(Clip, clip_row(app, holding.clip_public_id).id)
        lease = db.session.get_one(TaskLease, holding.lease_id)
        assert listening_state(lease, clip).as_json() == {"heard_share": 0.0, "fully_heard": False}
        lease.heard_intervals = json.dumps([[0, 1], [1, 2]])
        lease.served_ranges = json.dumps({"size": len(plain), "ranges": [[0, len(plain)]]})
        assert listening_state(lease, clip).fully_heard is True
        lease.served_ranges = json.dumps({"size": len(plain), "ranges": [[1, len(plain)]]})
        assert listening_state(lease, clip).fully_heard is False


def test_progress_is_audited_at_most_every_five_seconds_plus_final_reports(app, holding, clock):
    report(holding, [[0, 0.2]], position=0.2, speed=1.5)
    report(holding, [[0, 0.5]], position=0.5, speed=1.5)
    clock.advance(seconds=4)
    report(holding, [[0, 0.9]], position=0.9, speed=1.5)
    report(holding, [[0, 1.0]], position=1.0, speed=2, final=True)
    clock.advance(seconds=5)
    report(holding, [[0, 1.5]], position=1.5, speed=2)

    events = audit_events(app, "playback.progress")
    assert [(details(e)["position"], details(e)["speed"], details(e)["final"]) for e in events] == [
        (0.2, 1.5, False),
        (1.0, 2, True),
        (1.5, 2, False),
    ]
    assert details(events[1])["heard_share"] == 0.5
    assert {event.target for event in events} == {f"clip:{holding.clip_public_id}"}
    assert {(details(event)["task"], details(event)["lease"]) for event in events} == {
        (holding.task_id, holding.lease_id)
    }
    # Every report was merged, audited or not.
    assert heard(holding) == [[0, 1.5]]


INVALID_BODIES = [
    [],
    {"speed": 3},
    {"speed": 0.25},
    {"speed": True},
    {"position": -1},
    {"position": "1"},
    {"heard": "0-1"},
    {"heard": [[0]]},
    {"heard": [[1, 0]]},
    {"heard": [[-1, 0.5]]},
    {"heard": [[0, None]]},
    {"heard": [[False, 1]]},
    {"heard": [[0, 0.1]] * 1001},
    {"final": "yes"},
]
# Python's JSON parser takes NaN and Infinity; the report must not.
INVALID_RAW = ["NaN", '{"position": NaN}', '{"heard": [[0, Infinity]]}', "not json"]


def test_invalid_reports_are_refused_without_changing_anything(app, holding, subtests):
    for body in INVALID_BODIES:
        with subtests.test(msg=json.dumps(body)[:60]):
            response = holding.progress(body)
            assert response.status_code == 400
            assert response.get_json()["error"]["code"] == "invalid_progress"
    for raw in INVALID_RAW:
        with subtests.test(msg=raw):
            response = post_json(holding.client, f"/tasks/{holding.task_id}/progress", raw=raw)
            assert response.status_code == 400
    assert heard(holding) == []
    assert audit_events(app, "playback.progress") == []


def test_only_the_holder_in_this_session_reports_progress(app, holding, create_user, login_as):
    other = app.test_client()
    login_as(other, create_user(Role.ANNOTATOR))
    second = app.test_client()
    login_as(second, holding.person)

    for client in (other, second):
        response = post_json(client, f"/tasks/{holding.task_id}/progress", {"heard": [[0, 2]]})
        assert response.status_code == 403
    assert heard(holding) == []
    assert len(audit_events(app, "access.denied")) == 2


def test_submission_waits_for_a_full_listen(app, holding):
    def submit():
        with app.app_context():
            result = submit_correction(
                holding.task_id,
                holding.lease_id,
                db.session.get_one(User, holding.person.id),
                live_session(app, holding.person.id),
                "hello there",
                TEST_ACTOR,
                utcnow(),
            )
            db.session.commit()
            return result.submission

    report(holding, [[0, 1.9]])
    with pytest.raises(NotFullyHeard):
        submit()
    serve_everything(holding)
    report(holding, [[1.9, 2.0]], final=True)

    submission = submit()
    assert submission.fully_heard is True
    assert submission.heard_share == 1.0


def test_merge_intervals():
    assert merge_intervals([]) == []
    assert merge_intervals([[3, 4], [0, 1], [1, 2]]) == [[0, 2], [3, 4]]
    assert merge_intervals([[0, 1], [1.05, 2]], gap=0.05) == [[0, 2]]
    assert merge_intervals([[0, 1], [1.2, 2]], gap=0.05) == [[0, 1], [1.2, 2]]
    assert merge_intervals([[2, 2], [0, 5], [1, 3]]) == [[0, 5]]
