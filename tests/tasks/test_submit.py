"""Submitting: only after the whole clip was heard, once per lease, with the quality figures;
and what happens when a reviewer sends the work back."""

from __future__ import annotations

import pytest

from portal.auth.models import Role
from portal.tasks.models import SubmissionStatus, TaskStatus
from portal.tasks.quality import error_rates
from tests.auth.helpers import audit_events, details
from tests.tasks.helpers import leases, submissions, task_row

# What ingest makes of conftest.MACHINE: the redactor replaced the email and the number.
REDACTED = "email me at [EMAIL] or call [PHONE]"
CORRECTION = "Email me at [EMAIL], or call [PHONE] please."


def test_submission_is_refused_until_the_whole_clip_was_heard(app, worker, ingest):
    ingest()
    annotator = worker()
    task_id = annotator.claim()
    page = annotator.client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert 'id="submit" class="button primary" disabled' in page

    response = annotator.submit(task_id, CORRECTION)
    assert response.status_code == 409
    assert "Listen to the whole clip before submitting" in response.get_data(as_text=True)
    assert CORRECTION in response.get_data(as_text=True), "the typed text is kept on the page"

    # All bytes fetched but only half of it played: still refused.
    assert annotator.listen(task_id, heard=[[0, 0.5]])["fully_heard"] is False
    assert annotator.submit(task_id, CORRECTION).status_code == 409
    assert submissions(app) == []
    assert leases(app)[0].ended_at is None

    assert annotator.listen(task_id)["fully_heard"] is True
    page = annotator.client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert 'id="submit" class="button primary">' in page
    assert annotator.submit(task_id, CORRECTION).status_code == 303
    assert len(submissions(app)) == 1


def test_submission_stores_text_quality_time_and_listening(app, worker, ingest, clock):
    clip = ingest()
    annotator = worker()
    task_id = annotator.claim()
    claimed_at = clock.now
    annotator.listen(task_id)
    clock.advance(seconds=95)

    response = annotator.submit(task_id, f"  {CORRECTION}\n")
    assert response.status_code == 303 and response.headers["Location"] == "/tasks"

    (submission,) = submissions(app)
    assert submission.transcript == CORRECTION
    # The recogniser missed "please": one deleted word of eight; " please" is 7 of 42 characters.
    assert submission.wer == pytest.approx(1 / 8)
    assert submission.cer == pytest.approx(7 / 42)
    assert submission.edit_distance == 7
    assert (submission.wer, submission.cer) == pytest.approx(
        (error_rates(CORRECTION, REDACTED).wer, error_rates(CORRECTION, REDACTED).cer)
    )
    assert submission.time_on_task_ms == 95_000
    assert (submission.fully_heard, submission.heard_share) == (True, 1.0)
    assert (submission.user_id, submission.task_id) == (annotator.person.id, clip.task_ids[0])
    assert submission.created_at == clock.now and claimed_at < clock.now
    # Sampling rate 1.0 (the default): every submission waits for a supervisor.
    assert submission.status is SubmissionStatus.PENDING_REVIEW
    assert task_row(app, task_id).status is TaskStatus.SUBMITTED
    (lease,) = leases(app)
    assert (lease.end_reason, lease.ended_at) == ("submitted", clock.now)
    (event,) = audit_events(app, "task.submitted")
    assert details(event)["submission"] == submission.id
    assert details(event)["time_on_task_ms"] == 95_000


def test_resubmitting_returns_the_same_submission(app, worker, ingest):
    ingest()
    annotator = worker()
    task_id = annotator.claim()
    annotator.listen(task_id)
    lease_id = annotator.lease_id(task_id)
    assert annotator.submit(task_id, "first text", lease_id).status_code == 303
    again = annotator.submit(task_id, "second text", lease_id)
    assert again.status_code == 303 and again.headers["Location"] == "/tasks"
    (submission,) = submissions(app)
    assert submission.transcript == "first text"
    assert len(audit_events(app, "task.submitted")) == 1
    assert "already submitted" in annotator.client.get("/tasks").get_data(as_text=True)


def test_submission_for_another_lease_or_without_text_is_refused(app, worker, ingest):
    ingest()
    annotator = worker()
    task_id = annotator.claim()
    annotator.listen(task_id)
    lease_id = annotator.lease_id(task_id)
    assert annotator.submit(task_id, "text", lease_id + 1).status_code == 403
    assert annotator.submit(task_id, "   ", lease_id).status_code == 400
    assert annotator.submit(task_id, "x" * 20_001, lease_id).status_code == 400
    assert submissions(app) == []


def test_a_submission_not_sampled_is_accepted_into_the_outbox(app, worker, ingest):
    app.config["REVIEW_SAMPLE_RATE"] = 0.0
    ingest()
    annotator = worker()
    task_id = annotator.claim()
    annotator.listen(task_id)
    annotator.submit(task_id, CORRECTION)
    (submission,) = submissions(app)
    assert submission.status is SubmissionStatus.AUTO_ACCEPTED
    assert task_row(app, task_id).status is TaskStatus.ACCEPTED


def test_rejected_work_goes_to_someone_else_with_the_feedback(app, worker, ingest):
    clip = ingest()
    first = worker()
    second = worker()
    supervisor = worker(Role.SUPERVISOR)
    task_id = first.claim()
    first.listen(task_id)
    first.submit(task_id, "a careless transcript")
    (submission,) = submissions(app)

    feedback = "You left out the last sentence; listen to the end."
    response = supervisor.form(f"/review/{submission.id}", {"decision": "reject", "feedback": feedback})
    assert response.status_code == 303
    assert task_row(app, task_id).status is TaskStatus.QUEUED

    # The rejected annotator sees the feedback at home and never gets the clip again.
    home = first.client.get("/tasks").get_data(as_text=True)
    assert feedback in home and "Returned" in home
    assert first.claim() is None

    assert second.claim() == clip.task_ids[0]
    page = second.client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "A reviewer returned an earlier pass of this task" in page
    assert feedback in page
    assert "a careless transcript" not in page, "the previous annotator's text is not shown"
    assert first.person.email not in page
    second.listen(task_id)
    assert second.submit(task_id, CORRECTION).status_code == 303
    assert [s.user_id for s in submissions(app)] == [first.person.id, second.person.id]
