"""Where a submission goes: gold scoring, deterministic sampling, auto-acceptance."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from portal import create_app
from portal.auth.models import Role
from portal.clips.models import Clip
from portal.clips.refusals import IngestRefused
from portal.config import ConfigError
from portal.extensions import db
from portal.outbox.models import OutboxEntry
from portal.review.services import is_sampled
from portal.tasks.models import Submission, SubmissionStatus, Task, TaskStatus
from tests.clips.helpers import audit_rows
from tests.review.helpers import ACME, outbox_positions, row

KEY = bytes(range(32))


def test_sampling_is_deterministic_and_follows_the_rate():
    assert not any(is_sampled(i, 0.0, KEY) for i in range(1, 2000))
    assert all(is_sampled(i, 1.0, KEY) for i in range(1, 2000))
    picks = [is_sampled(i, 0.3, KEY) for i in range(1, 5001)]
    assert picks == [is_sampled(i, 0.3, KEY) for i in range(1, 5001)]
    assert 0.27 < sum(picks) / len(picks) < 0.33
    # A higher rate samples a superset: raising the rate never un-samples a submission.
    assert all(is_sampled(i, 0.6, KEY) for i in range(1, 5001) if is_sampled(i, 0.3, KEY))


def test_an_annotator_cannot_tell_from_the_lease_id_which_work_is_reviewed():
    """The lease id is on the work page; without the portal's key it predicts nothing."""
    leases = range(1, 5001)
    picks = [is_sampled(i, 0.5, KEY) for i in leases]
    other_key = [is_sampled(i, 0.5, bytes(32)) for i in leases]
    unkeyed = [
        int.from_bytes(hashlib.sha256(f"review-sample:{i}".encode()).digest()[:8], "big") / 2**64 < 0.5
        for i in leases
    ]
    for guess in (other_key, unkeyed):
        agreement = sum(a == b for a, b in zip(picks, guess, strict=True)) / len(picks)
        assert 0.46 < agreement < 0.54  # a coin toss


@pytest.mark.parametrize("raw", ["1.5", "-0.1", "half", "nan"])
def test_sample_rate_must_be_a_share(raw, tmp_path):
    with pytest.raises(ConfigError, match="PORTAL_REVIEW_SAMPLE_RATE"):
        create_app(
            {"PORTAL_ENV": "testing", "PORTAL_INSTANCE_PATH": str(tmp_path), "PORTAL_REVIEW_SAMPLE_RATE": raw}
        )


def test_rate_one_sends_every_submission_to_review(sample_all, app, work, create_user):
    annotator = create_user(Role.ANNOTATOR, vendor=ACME)
    clip = work.clip(passes=2)
    ids = [work.submit(task_id, annotator) for task_id in clip.task_ids]
    for submission_id, task_id in zip(ids, clip.task_ids, strict=True):
        assert row(app, Submission, submission_id).status is SubmissionStatus.PENDING_REVIEW
        assert row(app, Task, task_id).status is TaskStatus.SUBMITTED
    assert outbox_positions(app) == []
    assert [event["target"] for event in audit_rows(app, "review.sampled")] == [
        f"task:{t}" for t in clip.task_ids
    ]


def test_rate_zero_accepts_into_the_outbox_at_once(sample_none, app, work, create_user):
    annotator = create_user(Role.ANNOTATOR, vendor=ACME)
    clip = work.clip()
    submission_id = work.submit(clip.task_ids[0], annotator, "Please call me back tomorrow.")
    submission = row(app, Submission, submission_id)
    assert submission.status is SubmissionStatus.AUTO_ACCEPTED
    assert row(app, Task, clip.task_ids[0]).status is TaskStatus.ACCEPTED
    with app.app_context():
        (entry,) = db.session.scalars(sa.select(OutboxEntry)).all()
    assert entry.position == 1 and entry.submission_id == submission_id
    assert entry.clip_public_id == clip.public_id
    assert entry.transcript == "Please call me back tomorrow."
    assert entry.machine_transcript == row(app, Clip, clip.id).transcript
    # The speech team gets a pseudonym: not the user id, not the email.
    assert len(entry.annotator) == 64 and str(annotator.id) != entry.annotator
    assert annotator.email not in str(vars(entry))
    (event,) = audit_rows(app, "review.auto_accepted")
    assert event["details"] == {"submission": submission_id, "outbox_position": 1}


def test_gold_task_is_scored_silently_and_never_reviewed(
    sample_none, app, work, create_user, client, login_as
):
    annotator = create_user(Role.ANNOTATOR, vendor=ACME)
    supervisor = create_user(Role.SUPERVISOR, vendor=ACME)
    clip = work.clip(gold_transcript="Please call me back at home tomorrow, jo@example.com")
    task = row(app, Task, clip.task_ids[0])
    assert task.is_gold
    # The gold transcript is redacted like the machine one.
    assert task.gold_transcript == "Please call me back at home tomorrow, [EMAIL]"

    submission_id = work.submit(task.id, annotator, "please call me back at home tomorrow [EMAIL]")
    submission = row(app, Submission, submission_id)
    assert submission.status is SubmissionStatus.SCORED
    assert submission.gold_wer == 0.0 and submission.gold_cer == 0.0
    assert row(app, Task, task.id).status is TaskStatus.SCORED
    assert outbox_positions(app) == []  # sample rate 0 would have auto-accepted a normal task

    work2 = work.clip(gold_transcript="completely different words here")
    scored = row(app, Submission, work.submit(work2.task_ids[0], annotator, "please call me back"))
    assert scored.status is SubmissionStatus.SCORED and scored.gold_wer > 0.5
    events = audit_rows(app, "review.gold_scored")
    assert [event["details"]["submission"] for event in events] == [submission_id, scored.id]

    login_as(client, supervisor)
    page = client.get("/review").get_data(as_text=True)
    assert clip.public_id[:12] not in page and work2.public_id[:12] not in page
    assert client.get(f"/review/{submission_id}").status_code == 403
    assert row(app, Submission, submission_id).status is SubmissionStatus.SCORED


def test_gold_is_never_sampled_either(sample_all, app, work, create_user):
    annotator = create_user(Role.ANNOTATOR, vendor=ACME)
    clip = work.clip(gold_transcript="please call me back at home tomorrow")
    submission = row(app, Submission, work.submit(clip.task_ids[0], annotator))
    assert submission.status is SubmissionStatus.SCORED
    assert audit_rows(app, "review.sampled") == []


@pytest.mark.parametrize("gold", ["", "   ", 42, ["words"]])
def test_gold_transcript_must_be_text(app, work, gold):
    with pytest.raises(IngestRefused, match="gold_transcript"):
        work.clip(gold_transcript=gold)
