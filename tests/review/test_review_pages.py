"""The review queue, the review page and the decision: vendor scoping, flows, refusals."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from portal.auth.models import Role, User
from portal.clips.services import erase_subject
from portal.clock import utcnow
from portal.config import PROJECT_ROOT
from portal.extensions import db
from portal.outbox.models import OutboxEntry
from portal.review.services import Decision, decide_submission, word_diff
from portal.tasks.models import Submission, SubmissionStatus, Task, TaskStatus
from tests.auth.helpers import audit_events, details
from tests.conftest import TEST_ACTOR, csrf_token
from tests.review.helpers import ACME, GLOBEX, outbox_positions, row, run_together


@pytest.fixture
def team(app, create_user, work):
    """Two vendors sharing one clip pool, an annotator and a supervisor each, an internal supervisor."""
    people = {
        "acme_annotator": create_user(Role.ANNOTATOR, vendor=ACME),
        "globex_annotator": create_user(Role.ANNOTATOR, vendor=GLOBEX),
        "acme_supervisor": create_user(Role.SUPERVISOR, vendor=ACME),
        "globex_supervisor": create_user(Role.SUPERVISOR, vendor=GLOBEX),
        "internal_supervisor": create_user(Role.SUPERVISOR, vendor=None),
    }
    clip = work.clip(vendors=(ACME, GLOBEX), passes=2)
    people["acme_submission"] = work.submit(
        clip.task_ids[0], people["acme_annotator"], "please call me at home"
    )
    people["globex_submission"] = work.submit(
        clip.task_ids[1], people["globex_annotator"], "call me back home"
    )
    people["clip"] = clip
    return people


def _queue_ids(client) -> list[int]:
    response = client.get("/review")
    assert response.status_code == 200
    return [int(n) for n in re.findall(r'href="/review/(\d+)"', response.get_data(as_text=True))]


def _decide(client, submission_id: int, decision: str, feedback: str = ""):
    token = csrf_token(client, f"/review/{submission_id}")
    return client.post(
        f"/review/{submission_id}", data={"csrf_token": token, "decision": decision, "feedback": feedback}
    )


def test_queue_is_scoped_to_the_supervisors_vendor(app, client, login_as, team):
    login_as(client, team["acme_supervisor"])
    assert _queue_ids(client) == [team["acme_submission"]]
    login_as(client, team["globex_supervisor"])
    assert _queue_ids(client) == [team["globex_submission"]]
    login_as(client, team["internal_supervisor"])
    assert _queue_ids(client) == [team["acme_submission"], team["globex_submission"]]
    page = client.get("/review").get_data(as_text=True)
    assert ACME in page and GLOBEX in page  # internal staff see which vendor did the work


def test_other_vendors_supervisor_is_refused_and_audited(app, client, login_as, team):
    login_as(client, team["acme_supervisor"])
    globex = team["globex_submission"]
    before = len(audit_events(app, "access.denied"))
    assert client.get(f"/review/{globex}").status_code == 403
    token = csrf_token(client, "/review")
    response = client.post(f"/review/{globex}", data={"csrf_token": token, "decision": "accept"})
    assert response.status_code == 403
    denied = audit_events(app, "access.denied")[before:]
    assert [(event.actor_id, event.target, details(event)["path"]) for event in denied] == [
        (team["acme_supervisor"].id, f"submission:{globex}", f"/review/{globex}"),
        (team["acme_supervisor"].id, f"submission:{globex}", f"/review/{globex}"),
    ]
    assert row(app, Submission, globex).status is SubmissionStatus.PENDING_REVIEW
    assert client.get("/review/999999").status_code == 404


def test_annotators_cannot_review(app, client, login_as, team):
    login_as(client, team["acme_annotator"])
    submission_id = team["acme_submission"]
    assert client.get("/review").status_code == 403
    assert client.get(f"/review/{submission_id}").status_code == 403
    token = csrf_token(client, "/login")
    assert (
        client.post(f"/review/{submission_id}", data={"csrf_token": token, "decision": "accept"}).status_code
        == 403
    )
    assert client.get("/supervisor/leases").status_code == 403
    assert row(app, Submission, submission_id).status is SubmissionStatus.PENDING_REVIEW


def test_review_page_shows_the_diff_and_the_player_contract(app, client, login_as, team):
    login_as(client, team["acme_supervisor"])
    submission_id = team["acme_submission"]
    response = client.get(f"/review/{submission_id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    # Machine "please call me back at home tomorrow" → "please call me at home".
    assert '<del class="diff-delete">back</del>' in html
    assert '<del class="diff-delete">tomorrow</del>' in html
    assert '<span class="diff-equal">please call me</span>' in html
    assert f'data-grant-url="/review/{submission_id}/playback"' in html
    for element in ('id="workspace"', 'canvas id="waveform"', 'id="play"', 'id="player-status"'):
        assert element in html
    assert "<audio" not in html and "/media/" not in html
    assert "style=" not in html and "<script>" not in html
    assert 'src="/static/js/review.js"' in html


def test_diff_marks_insertions_and_replacements(app, client, login_as, team, work):
    clip = work.clip(transcript="the cat sat")
    submission_id = work.submit(clip.task_ids[0], team["acme_annotator"], "the black cat sat down")
    login_as(client, team["acme_supervisor"])
    html = client.get(f"/review/{submission_id}").get_data(as_text=True)
    assert '<ins class="diff-insert">black</ins>' in html and '<ins class="diff-insert">down</ins>' in html


def test_accept_puts_the_correction_in_the_outbox(app, client, login_as, team):
    login_as(client, team["acme_supervisor"])
    submission_id = team["acme_submission"]
    response = _decide(client, submission_id, "accept")
    assert response.status_code == 303 and response.headers["Location"] == "/review"
    submission = row(app, Submission, submission_id)
    assert submission.status is SubmissionStatus.ACCEPTED
    assert submission.reviewer_id == team["acme_supervisor"].id and submission.reviewed_at is not None
    assert row(app, Task, submission.task_id).status is TaskStatus.ACCEPTED
    with app.app_context():
        (entry,) = db.session.scalars(sa.select(OutboxEntry)).all()
    assert entry.submission_id == submission_id and entry.transcript == "please call me at home"
    (event,) = audit_events(app, "review.accepted")
    assert event.actor_id == team["acme_supervisor"].id
    assert details(event) == {
        "submission": submission_id,
        "annotator": team["acme_annotator"].id,
        "outbox_position": 1,
    }
    assert _queue_ids(client) == []


def test_reject_needs_feedback_and_sends_the_task_back(app, client, login_as, team):
    login_as(client, team["acme_supervisor"])
    submission_id = team["acme_submission"]
    response = _decide(client, submission_id, "reject", "   ")
    assert response.status_code == 400
    assert "feedback is required" in response.get_data(as_text=True)
    assert row(app, Submission, submission_id).status is SubmissionStatus.PENDING_REVIEW

    response = _decide(client, submission_id, "reject", "You dropped 'back' and 'tomorrow'.")
    assert response.status_code == 303
    submission = row(app, Submission, submission_id)
    assert submission.status is SubmissionStatus.REJECTED
    assert submission.feedback == "You dropped 'back' and 'tomorrow'."
    task = row(app, Task, submission.task_id)
    assert task.status is TaskStatus.QUEUED and task.current_lease_id is None
    assert task.rejections == 1
    assert outbox_positions(app) == []
    (event,) = audit_events(app, "review.rejected")
    assert details(event)["feedback_chars"] == len(submission.feedback)


def test_decision_field_is_required(app, client, login_as, team):
    login_as(client, team["acme_supervisor"])
    response = _decide(client, team["acme_submission"], "maybe")
    assert response.status_code == 400
    assert row(app, Submission, team["acme_submission"]).status is SubmissionStatus.PENDING_REVIEW


def test_a_decided_submission_cannot_be_decided_again(app, client, login_as, team):
    login_as(client, team["internal_supervisor"])
    submission_id = team["acme_submission"]
    assert _decide(client, submission_id, "accept").status_code == 303
    for decision, feedback in (("accept", ""), ("reject", "changed my mind")):
        response = _decide(client, submission_id, decision, feedback)
        assert response.status_code == 409
        assert "already decided (accepted)" in response.get_data(as_text=True)
    assert row(app, Submission, submission_id).status is SubmissionStatus.ACCEPTED
    assert outbox_positions(app) == [1]
    # The page of a decided submission offers neither a decision nor a player.
    html = client.get(f"/review/{submission_id}").get_data(as_text=True)
    assert 'name="decision"' not in html and "data-grant-url" not in html
    # JSON clients get the refusal as JSON.
    token = csrf_token(client, "/review")
    response = client.post(
        f"/review/{submission_id}",
        data={"csrf_token": token, "decision": "accept"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "already_decided"


def test_concurrent_decisions_make_exactly_one(app, team):
    submission_id = team["acme_submission"]
    supervisor_ids = [team["acme_supervisor"].id, team["internal_supervisor"].id] * 3

    def decide(user_id: int, decision: Decision):
        def call() -> str:
            with app.app_context():
                supervisor = db.session.get_one(User, user_id)
                try:
                    decide_submission(supervisor, submission_id, decision, "not good", TEST_ACTOR, utcnow())
                    db.session.commit()
                    return decision.value
                except Exception as error:
                    db.session.rollback()
                    return getattr(error, "code", repr(error))

        return call

    calls = [
        decide(user_id, (Decision.ACCEPT, Decision.REJECT)[i % 2]) for i, user_id in enumerate(supervisor_ids)
    ]
    results = run_together(calls)
    winners = [result for result in results if result in ("accept", "reject")]
    assert len(winners) == 1, results
    assert sorted(r for r in results if r not in winners) == ["already_decided"] * 5
    submission = row(app, Submission, submission_id)
    assert submission.status.value == {"accept": "accepted", "reject": "rejected"}[winners[0]]
    assert outbox_positions(app) == ([1] if winners == ["accept"] else [])


def test_erased_clip_leaves_the_queue_and_cannot_be_decided(app, client, login_as, team):
    with app.app_context():
        erase_subject("subject-1", TEST_ACTOR, utcnow())
        db.session.commit()
    login_as(client, team["internal_supervisor"])
    assert _queue_ids(client) == []
    submission = row(app, Submission, team["acme_submission"])
    assert submission.status is SubmissionStatus.WITHDRAWN and submission.transcript == ""
    response = _decide(client, team["acme_submission"], "accept")
    assert response.status_code == 409
    assert outbox_positions(app) == []


def test_word_diff_counts_what_wer_counts():
    """Case and punctuation are not changes (as for WER); the correction's spelling is shown."""
    pieces = word_diff("hi it's sam please call me to [ADDRESS]", "Hi, it's Sam. Please call me [ADDRESS].")
    assert [(piece.kind, piece.text) for piece in pieces] == [
        ("equal", "Hi, it's Sam. Please call me"),
        ("delete", "to"),
        ("equal", "[ADDRESS]."),
    ]
    assert [(p.kind, p.text) for p in word_diff("a b c", "a x c")] == [
        ("equal", "a"),
        ("delete", "b"),
        ("insert", "x"),
        ("equal", "c"),
    ]
    assert word_diff("", "") == []


def test_migration_0009_counts_the_rejections_already_made(app, team, database_url):
    """Down to 0008 and up again: the new column is filled from the rejected submissions."""
    with app.app_context():
        decide_submission(
            db.session.get_one(User, team["acme_supervisor"].id),
            team["acme_submission"],
            Decision.REJECT,
            "Listen again.",
            TEST_ACTOR,
            utcnow(),
        )
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["url"] = database_url
    config.attributes["configure_logging"] = False
    command.downgrade(config, "0008")
    command.upgrade(config, "head")

    rejected = row(app, Submission, team["acme_submission"]).task_id
    kept = row(app, Submission, team["globex_submission"]).task_id
    assert (row(app, Task, rejected).rejections, row(app, Task, kept).rejections) == (1, 0)
