"""Commit order under real concurrency: many accepting transactions, one polling reader.

Supervisors accept pending submissions while annotators' submissions are auto-accepted,
all released at once by a barrier, each lingering a little right after appending: the
window in which a position allocated without holding the head to the commit (a sequence,
say) would let a later position commit first. A reader polls the API with its cursor the
whole time. It must see every position exactly once, in order: nothing is skipped
(at-least-once) and, with commit-order positions, nothing comes twice either.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime

import pytest
import sqlalchemy as sa

from portal.audit.models import AuditEvent
from portal.audit.services import record_event
from portal.auth.models import Role, User
from portal.clock import utcnow
from portal.extensions import db
from portal.outbox.models import OutboxEntry
from portal.outbox.services import append_correction
from portal.review import services as review
from portal.tasks.models import Submission, SubmissionStatus
from tests.conftest import TEST_ACTOR
from tests.review.helpers import ACME, outbox_positions, run_together, submit_on_lease

REVIEWED = 12
AUTO = 12


def test_many_writers_and_a_polling_reader(app, work, create_user, make_api_key, monkeypatch):
    annotators = [create_user(Role.ANNOTATOR, vendor=ACME) for _ in range(4)]
    supervisor = create_user(Role.SUPERVISOR, vendor=ACME)
    app.config["REVIEW_SAMPLE_RATE"] = 1.0
    clips = [work.clip(passes=2) for _ in range((REVIEWED + AUTO) // 2)]
    tasks = [task_id for clip in clips for task_id in clip.task_ids]
    pending = [work.submit(task_id, annotators[i % 4]) for i, task_id in enumerate(tasks[:REVIEWED])]
    app.config["REVIEW_SAMPLE_RATE"] = 0.0
    leases = [work.lease(task_id, annotators[i % 4]) for i, task_id in enumerate(tasks[REVIEWED:])]
    token = make_api_key("outbox", "speech-team")

    done = threading.Event()
    seen: list[int] = []
    polls = 0

    def read() -> None:
        nonlocal polls
        client = app.test_client()
        cursor = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            finished = done.is_set()
            response = client.get(
                f"/api/v1/corrections?after={cursor}&limit=3", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.get_data(as_text=True)
            body = response.get_json()
            polls += 1
            seen.extend(item["cursor"] for item in body["items"])
            cursor = body["next_cursor"]
            if finished and not body["items"]:
                return

    def lingering_append(submission: Submission, now: datetime) -> int:
        position = append_correction(submission, now)
        time.sleep(random.uniform(0, 0.02))
        return position

    monkeypatch.setattr(review, "append_correction", lingering_append)

    def accept(submission_id: int):
        def call() -> int:
            with app.app_context():
                user = db.session.get_one(User, supervisor.id)
                review.decide_submission(
                    user, submission_id, review.Decision.ACCEPT, "", TEST_ACTOR, utcnow()
                )
                db.session.commit()
                return submission_id

        return call

    def auto_accept(lease_id: int):
        def call() -> int:
            with app.app_context():
                return submit_on_lease(lease_id, "auto accepted correction")

        return call

    reader = threading.Thread(target=read)
    reader.start()
    calls = [accept(s) for s in pending] + [auto_accept(lease) for lease in leases]
    random.shuffle(calls)
    results = run_together(calls)
    done.set()
    reader.join(90)
    assert not reader.is_alive()
    errors = [result for result in results if isinstance(result, BaseException)]
    assert errors == []

    total = REVIEWED + AUTO
    assert outbox_positions(app) == list(range(1, total + 1))
    assert seen == list(range(1, total + 1)), f"reader saw {seen} in {polls} polls"
    with app.app_context():
        entries = db.session.scalars(sa.select(OutboxEntry.submission_id)).all()
        assert len(set(entries)) == total
        statuses = db.session.scalars(sa.select(Submission.status)).all()
        assert sorted(statuses) == sorted(
            [SubmissionStatus.ACCEPTED] * REVIEWED + [SubmissionStatus.AUTO_ACCEPTED] * AUTO
        )


def test_an_open_outbox_append_leaves_the_audit_chain_to_others(app, work, create_user, monkeypatch):
    """Only the commit takes the audit head: an accepting transaction that has appended to
    the outbox and not committed yet does not hold up another request's audit event.
    """
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("on SQLite every transaction holds the database's one write lock")
    annotator = create_user(Role.ANNOTATOR, vendor=ACME)
    app.config["REVIEW_SAMPLE_RATE"] = 0.0
    lease_id = work.lease(work.clip().task_ids[0], annotator)
    appended, finish = threading.Event(), threading.Event()

    def waiting_append(submission: Submission, now: datetime) -> int:
        position = append_correction(submission, now)
        appended.set()
        assert finish.wait(30)
        return position

    monkeypatch.setattr(review, "append_correction", waiting_append)

    def accept() -> int:
        with app.app_context():
            return submit_on_lease(lease_id, "auto accepted correction")

    accepting = threading.Thread(target=accept)
    accepting.start()
    try:
        assert appended.wait(30)
        with app.app_context():
            db.session.execute(sa.text("SET LOCAL lock_timeout = '3s'"))
            record_event(TEST_ACTOR, "test.meanwhile")
            db.session.commit()
    finally:
        finish.set()
        accepting.join(30)
    assert outbox_positions(app) == [1]
    with app.app_context():
        actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions[-2:] == ["test.meanwhile", "review.auto_accepted"]
