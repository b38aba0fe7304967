"""Claiming: which task comes next, for whom, and the one-task-at-a-time rule."""

from __future__ import annotations

import sqlalchemy as sa

from portal.auth.models import Role
from portal.clips.models import Clip
from portal.clips.services import erase_clip
from portal.clock import utcnow
from portal.extensions import db
from portal.tasks.models import TaskStatus
from tests.auth.helpers import audit_events, details
from tests.conftest import TEST_ACTOR
from tests.tasks.helpers import leases, task_row


def test_highest_priority_first_then_oldest(worker, ingest, clock):
    low = ingest(priority=1)
    clock.advance(seconds=1)
    urgent_old = ingest(priority=5)
    clock.advance(seconds=1)
    urgent_new = ingest(priority=5)
    clock.advance(seconds=1)
    middle = ingest(priority=3)
    annotator = worker()

    order = []
    for _ in range(4):
        task_id = annotator.claim()
        assert task_id is not None
        order.append(task_id)
        assert annotator.skip(task_id).status_code == 303
    assert order == [urgent_old.task_ids[0], urgent_new.task_ids[0], middle.task_ids[0], low.task_ids[0]]
    assert annotator.claim() is None


def test_empty_queue_says_so_plainly(app, worker):
    annotator = worker()
    response = annotator.form("/tasks/claim")
    assert response.status_code == 303
    assert response.headers["Location"] == "/tasks"
    page = annotator.client.get("/tasks").get_data(as_text=True)
    assert "The queue is empty: there is no task for you right now." in page
    assert leases(app) == []
    (event,) = audit_events(app, "task.queue_empty")
    assert event.actor_id == annotator.person.id


def test_claim_leases_the_task_and_audits_it(app, worker, ingest, clock):
    clip = ingest(passes=1)
    annotator = worker()
    task_id = annotator.claim()
    assert task_id == clip.task_ids[0]
    (lease,) = leases(app)
    assert (lease.user_id, lease.task_id, lease.ended_at) == (annotator.person.id, task_id, None)
    assert lease.leased_at == clock.now
    assert (lease.expires_at - lease.leased_at).total_seconds() == 600
    task = task_row(app, task_id)
    assert (task.status, task.current_lease_id, task.lease_expires_at) == (
        TaskStatus.LEASED,
        lease.id,
        lease.expires_at,
    )
    (event,) = audit_events(app, "task.claimed")
    assert event.target == f"task:{task_id}"
    assert details(event)["lease"] == lease.id and details(event)["clip"] == clip.public_id


def test_lease_minutes_come_from_the_configuration(app, worker, ingest):
    app.config["LEASE_MINUTES"] = 3
    ingest()
    annotator = worker()
    annotator.claim()
    (lease,) = leases(app)
    assert (lease.expires_at - lease.leased_at).total_seconds() == 180


def test_one_task_at_a_time(app, worker, ingest):
    ingest()
    ingest()
    annotator = worker()
    first = annotator.claim()
    assert annotator.claim() == first
    assert len(leases(app)) == 1
    assert len(audit_events(app, "task.claimed")) == 1


def test_other_vendors_tasks_are_never_offered(app, worker, ingest):
    theirs = ingest(vendors=("Other Vendor",), priority=9)
    shared = ingest(vendors=("Other Vendor", "Acme Transcription"), priority=1)
    acme = worker()
    assert acme.claim() == shared.task_ids[0]
    acme.skip(shared.task_ids[0])
    assert acme.claim() is None
    other = worker(vendor="Other Vendor")
    assert other.claim() == theirs.task_ids[0]


def test_no_second_pass_of_a_clip_after_a_skip(app, worker, ingest):
    clip = ingest(passes=2)
    first = worker()
    assert first.claim() == clip.task_ids[0]
    assert first.skip(clip.task_ids[0], "know_speaker").status_code == 303
    # Both passes are queued again, but this annotator held the clip: neither comes back.
    assert {task_row(app, t).status for t in clip.task_ids} == {TaskStatus.QUEUED}
    assert first.claim() is None
    second = worker()
    assert second.claim() == clip.task_ids[0]
    third = worker()
    assert third.claim() == clip.task_ids[1]
    assert worker().claim() is None


def test_claim_from_another_session_moves_the_lease(app, worker, ingest):
    ingest()
    here = worker()
    task_id = here.claim()
    there = worker(person=here.person)
    assert there.claim() == task_id
    assert there.client.get(f"/tasks/{task_id}").status_code == 200
    assert here.client.get(f"/tasks/{task_id}").status_code == 403
    (resumed,) = audit_events(app, "task.lease_resumed")
    assert details(resumed)["lease"] == leases(app)[0].id
    assert len(leases(app)) == 1


def test_supervisor_cannot_claim(app, worker, ingest):
    ingest()
    supervisor = worker(Role.SUPERVISOR)
    assert supervisor.form("/tasks/claim").status_code == 403
    assert supervisor.client.get("/tasks").status_code == 403
    assert leases(app) == []


def test_a_lease_on_an_erased_clip_does_not_block_the_next_claim(app, worker, ingest):
    erased = ingest(priority=5)
    other = ingest(priority=1)
    annotator = worker()
    task_id = annotator.claim()
    assert task_id == erased.task_ids[0]
    with app.app_context():
        clip = db.session.scalar(sa.select(Clip).where(Clip.public_id == erased.public_id))
        erase_clip(clip, TEST_ACTOR, utcnow())
        db.session.commit()
    assert task_row(app, task_id).status is TaskStatus.CANCELLED
    assert annotator.client.get(f"/tasks/{task_id}").status_code == 403

    assert annotator.claim() == other.task_ids[0]
    stale, fresh = leases(app)
    assert (stale.task_id, stale.end_reason) == (task_id, "cancelled")
    assert fresh.ended_at is None
    (event,) = audit_events(app, "task.lease_cancelled")
    assert details(event)["lease"] == stale.id
