"""Real concurrency: many annotators (threads, each with its own client, session and database
connection) claiming, skipping and submitting at the same moment, on both databases.
"""

from __future__ import annotations

import json
from collections import Counter

import sqlalchemy as sa

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.tasks.models import TaskStatus
from tests.auth.helpers import audit_events, run_concurrently
from tests.tasks.helpers import clone, leases, submissions, task_row

ANNOTATORS = 10
CLIPS = 6
ROUNDS = 4


def test_simultaneous_claims_never_share_a_task(app, worker, ingest):
    clips = [ingest(priority=index % 3) for index in range(CLIPS)]
    workers = [worker() for _ in range(ANNOTATORS)]

    claimed = run_concurrently(*(w.claim for w in workers))

    got = [task_id for task_id in claimed if task_id is not None]
    assert len(got) == CLIPS, claimed
    assert len(set(got)) == CLIPS, f"a task was given twice: {Counter(got)}"
    assert set(got) == {clip.task_ids[0] for clip in clips}
    live = leases(app, ended_at=None)
    assert len(live) == CLIPS
    assert len({lease.task_id for lease in live}) == CLIPS
    assert len({lease.user_id for lease in live}) == CLIPS
    for lease in live:
        assert task_row(app, lease.task_id).current_lease_id == lease.id
    assert len(audit_events(app, "task.queue_empty")) == ANNOTATORS - CLIPS


def test_claims_and_skips_racing_never_double_assign(app, worker, ingest):
    """Each annotator claims and skips in a loop; the audit chain (commit order) is replayed
    to check that no task was ever claimed while someone else held it."""
    for index in range(CLIPS):
        ingest(priority=index % 2, passes=2 if index < 2 else 1)
    workers = [worker() for _ in range(ANNOTATORS - 2)]

    def work(w):
        taken = []
        for _ in range(ROUNDS):
            task_id = w.claim()
            if task_id is None:
                break
            taken.append(task_id)
            assert w.skip(task_id, "other").status_code == 303
        return taken

    results = run_concurrently(*(lambda w=w: work(w) for w in workers))
    assert sum(len(taken) for taken in results) > ANNOTATORS

    holder: dict[str, int] = {}
    with app.app_context():
        events = db.session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action.in_(("task.claimed", "task.skipped")))
            .order_by(AuditEvent.seq)
        ).all()
        for event in events:
            if event.action == "task.claimed":
                assert event.target not in holder, (
                    f"{event.target} claimed while held by {holder[event.target]}"
                )
                holder[event.target] = event.actor_id
            else:
                assert holder.pop(event.target) == event.actor_id
    assert holder == {}
    # Nobody ever held two passes of one clip, nor the same clip twice.
    pairs = [(lease.user_id, lease.clip_id) for lease in leases(app)]
    assert len(pairs) == len(set(pairs))
    assert all(lease.end_reason == "skipped" for lease in leases(app))


def test_double_click_on_claim_gives_one_lease(app, worker, ingest):
    for _ in range(3):
        ingest()
    annotator = worker()
    tabs = [annotator] + [
        type(annotator)(app, clone(app, annotator.client), annotator.person) for _ in range(3)
    ]

    claimed = run_concurrently(*(tab.claim for tab in tabs))

    assert len(set(claimed)) == 1 and claimed[0] is not None
    assert len(leases(app)) == 1
    assert len(audit_events(app, "task.claimed")) == 1


def test_double_submit_stores_one_submission(app, worker, ingest):
    ingest()
    annotator = worker()
    task_id = annotator.claim()
    annotator.listen(task_id)
    lease_id = annotator.lease_id(task_id)
    tabs = [annotator] + [
        type(annotator)(app, clone(app, annotator.client), annotator.person) for _ in range(3)
    ]

    responses = run_concurrently(*(lambda t=t: t.submit(task_id, "Corrected text.", lease_id) for t in tabs))

    assert [response.status_code for response in responses] == [303] * len(tabs)
    assert {response.headers["Location"] for response in responses} == {"/tasks"}
    (submission,) = submissions(app)
    assert submission.lease_id == lease_id
    assert len(audit_events(app, "task.submitted")) == 1
    assert task_row(app, task_id).status is TaskStatus.SUBMITTED
    (event,) = audit_events(app, "task.submitted")
    assert json.loads(event.details)["submission"] == submission.id
