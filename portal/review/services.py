"""What happens to a submission: gold scoring, sampling for review, the supervisor's decision.

`route_submission` and `record_routing` run in the submitting transaction (the queue's
`submit_correction` calls them); `decide_submission` in the supervisor's. Both record
their audit event in that transaction and flush; the view commits.
"""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from portal.audit.services import Actor, record_event
from portal.auth.models import User, Vendor
from portal.clips.models import Clip, ClipStatus
from portal.exceptions import AccessDenied, PortalError
from portal.extensions import db
from portal.keys import keyed_digest, portal_keys
from portal.outbox.services import append_correction, withdraw_clip_corrections
from portal.tasks.models import Submission, SubmissionStatus, Task, TaskLease, TaskStatus
from portal.tasks.quality import error_rates, normalise


def is_sampled(lease_id: int, rate: float, key: bytes) -> bool:
    """Whether a submission goes to a supervisor: deterministic per lease, secret to the annotator.

    An HMAC of the id of the lease it ends, under the portal's pseudonym key (domain
    `review-sample`), is read as a number in [0, 1) and compared with `rate`, so 0 never
    samples, 1 always does, and a test (or a replay) always gets the same answer for the
    same lease. The lease, not the submission, so that the answer is known before the
    submission is stored: it is then written once, with its final status. Keyed, because
    the annotator sees the lease id on the work page: an unkeyed hash would let them tell
    in advance which work a supervisor will read and which goes straight to the outbox.
    """
    digest = keyed_digest(key, b"review-sample", str(lease_id))
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def route_submission(submission: Submission, task: Task, now: datetime) -> None:
    """Decide where a new submission goes, before it is stored; set its status and the task's.

    Gold task: scored silently against `task.gold_transcript` (status `scored`, never
    hand-reviewed, never in the outbox). Sampled (PORTAL_REVIEW_SAMPLE_RATE): pending
    review, task `submitted`. Otherwise accepted as is; `record_routing` then appends it
    to the outbox.
    """
    rate = current_app.config["REVIEW_SAMPLE_RATE"]
    if task.is_gold and task.gold_transcript is not None:
        rates = error_rates(task.gold_transcript, submission.transcript)
        submission.gold_wer, submission.gold_cer = rates.wer, rates.cer
        submission.status = SubmissionStatus.SCORED
        task.status = TaskStatus.SCORED
    elif is_sampled(submission.lease_id, rate, portal_keys().pseudonym_key):
        submission.status = SubmissionStatus.PENDING_REVIEW
        task.status = TaskStatus.SUBMITTED
    else:
        submission.status = SubmissionStatus.AUTO_ACCEPTED
        submission.reviewed_at = now
        task.status = TaskStatus.ACCEPTED


def record_routing(submission: Submission, task: Task, actor: Actor, now: datetime) -> None:
    """Once a routed submission is stored: its outbox entry if it was accepted, and the audit event."""
    details: dict[str, object] = {"submission": submission.id}
    if submission.status is SubmissionStatus.SCORED:
        action = "review.gold_scored"
        details.update(gold_wer=submission.gold_wer, gold_cer=submission.gold_cer)
    elif submission.status is SubmissionStatus.PENDING_REVIEW:
        action = "review.sampled"
    else:
        action = "review.auto_accepted"
        details["outbox_position"] = append_correction(submission, now)
    record_event(actor, action, target=f"task:{task.id}", details=details)


# --- the supervisor's side ----------------------------------------------------------------


class Decision(enum.StrEnum):
    """What a supervisor can decide about a pending submission."""

    ACCEPT = "accept"
    REJECT = "reject"


class AlreadyDecided(PortalError):
    """The submission was decided before (by this supervisor or another one)."""

    def __init__(self, status: SubmissionStatus) -> None:
        super().__init__(
            "already_decided", f"This submission was already decided ({status.value.replace('_', ' ')}).", 409
        )


def _in_scope(supervisor: User) -> sa.ColumnElement[bool]:
    """Submissions a supervisor may see: their vendor's, or all for internal staff."""
    if supervisor.vendor_id is None:
        return sa.true()
    return Submission.vendor_id == supervisor.vendor_id


@dataclass(frozen=True)
class QueueRow:
    """One line of the review queue."""

    submission: Submission
    clip_public_id: str
    locale: str
    duration_ms: int
    annotator: str
    vendor: str | None


def review_queue(supervisor: User, limit: int = 200) -> list[QueueRow]:
    """Submissions waiting for review that `supervisor` may decide, oldest first.

    Gold tasks are scored automatically and never appear here, nor do clips that are no
    longer active (their tasks were cancelled; the submission cannot be decided).
    """
    rows = db.session.execute(
        sa.select(Submission, Clip.public_id, Clip.locale, Clip.duration_ms, User.email, Vendor.name)
        .join(Task, Task.id == Submission.task_id)
        .join(Clip, Clip.id == Submission.clip_id)
        .join(User, User.id == Submission.user_id)
        .outerjoin(Vendor, Vendor.id == Submission.vendor_id)
        .where(
            Submission.status == SubmissionStatus.PENDING_REVIEW,
            Task.is_gold.is_(False),
            Task.status == TaskStatus.SUBMITTED,
            Clip.status == ClipStatus.ACTIVE,
            _in_scope(supervisor),
        )
        .order_by(Submission.created_at, Submission.id)
        .limit(limit)
    )
    return [QueueRow(*row) for row in rows]


def pending_count(supervisor: User) -> int:
    """How many submissions wait for `supervisor` (the queue may show fewer)."""
    return (
        db.session.scalar(
            sa.select(sa.func.count(Submission.id))
            .join(Task, Task.id == Submission.task_id)
            .join(Clip, Clip.id == Submission.clip_id)
            .where(
                Submission.status == SubmissionStatus.PENDING_REVIEW,
                Task.is_gold.is_(False),
                Task.status == TaskStatus.SUBMITTED,
                Clip.status == ClipStatus.ACTIVE,
                _in_scope(supervisor),
            )
        )
        or 0
    )


def submission_for_supervisor(supervisor: User, submission_id: int, *, lock: bool = False) -> Submission:
    """The submission if `supervisor` may see it; 404 if there is none, 403 otherwise.

    The scope is part of the query, so a submission outside it is never loaded. Gold
    submissions are refused as out of scope: they are never hand-reviewed. `lock` takes
    the row lock a decision needs (SELECT ... FOR UPDATE; SQLite's write lock is already
    held) and re-reads the row, so two decisions on one submission serialise and the
    second sees the first.
    """
    query = (
        sa.select(Submission)
        .join(Task, Task.id == Submission.task_id)
        .where(Submission.id == submission_id, Task.is_gold.is_(False), _in_scope(supervisor))
    )
    if lock:
        query = query.with_for_update(of=Submission).execution_options(populate_existing=True)
    submission = db.session.scalar(query)
    if submission is not None:
        return submission
    if db.session.scalar(sa.select(Submission.id).where(Submission.id == submission_id)) is None:
        raise PortalError("not_found", "There is no such submission.", 404)
    raise AccessDenied("submission outside the supervisor's scope", target=f"submission:{submission_id}")


@dataclass(frozen=True)
class DiffPiece:
    """A run of words that the correction kept, removed or added."""

    kind: str
    text: str


def word_diff(machine: str, correction: str) -> list[DiffPiece]:
    """The machine transcript → correction difference, word by word (`equal`, `delete`, `insert`).

    Words are matched as WER counts them (`portal.tasks.quality.normalise`: case and
    punctuation do not count), so the diff shows the changes the figures measure; an equal
    run is shown in the correction's own spelling.
    """
    before, after = machine.split(), correction.split()
    matcher = difflib.SequenceMatcher(
        a=[normalise(word) or word for word in before],
        b=[normalise(word) or word for word in after],
        autojunk=False,
    )
    pieces: list[DiffPiece] = []
    for op, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if op == "equal":
            pieces.append(DiffPiece("equal", " ".join(after[b_start:b_end])))
            continue
        if a_end > a_start:
            pieces.append(DiffPiece("delete", " ".join(before[a_start:a_end])))
        if b_end > b_start:
            pieces.append(DiffPiece("insert", " ".join(after[b_start:b_end])))
    return pieces


@dataclass(frozen=True)
class ReviewView:
    """Everything the review page shows about one submission."""

    submission: Submission
    task: Task
    clip: Clip
    annotator: User
    diff: list[DiffPiece]
    earlier: list[Submission]

    @property
    def decidable(self) -> bool:
        return (
            self.submission.status is SubmissionStatus.PENDING_REVIEW
            and self.task.status is TaskStatus.SUBMITTED
            and self.clip.status is ClipStatus.ACTIVE
        )


def review_view(supervisor: User, submission_id: int) -> ReviewView:
    """Load one submission for the review page (scoped; see `submission_for_supervisor`)."""
    submission = submission_for_supervisor(supervisor, submission_id)
    task = db.session.get_one(Task, submission.task_id)
    clip = db.session.get_one(Clip, submission.clip_id)
    earlier = db.session.scalars(
        sa.select(Submission)
        .where(Submission.task_id == task.id, Submission.id != submission.id, _in_scope(supervisor))
        .order_by(Submission.created_at)
    ).all()
    return ReviewView(
        submission=submission,
        task=task,
        clip=clip,
        annotator=db.session.get_one(User, submission.user_id),
        diff=word_diff(clip.transcript, submission.transcript),
        earlier=list(earlier),
    )


def decide_submission(
    supervisor: User, submission_id: int, decision: Decision, feedback: str, actor: Actor, now: datetime
) -> Submission:
    """Accept (task `accepted`, outbox entry) or reject (task back to `queued`) a submission.

    Feedback is required when rejecting: it is what the next annotator of the task sees.
    The submission row is locked first, so of two concurrent decisions the second finds
    the first and is refused with AlreadyDecided; a submission whose task is no longer
    waiting (clip erased, expired, quarantined) is refused too.
    """
    feedback = feedback.strip()
    if decision is Decision.REJECT and not feedback:
        raise PortalError("feedback_required", "Say what was wrong: feedback is required to reject.")
    submission = submission_for_supervisor(supervisor, submission_id, lock=True)
    if submission.status is not SubmissionStatus.PENDING_REVIEW:
        raise AlreadyDecided(submission.status)
    # The task row is locked too: an erasure that is cancelling it either finishes first
    # (and this decision is refused) or waits for this one (and withdraws what it added).
    task = db.session.get_one(Task, submission.task_id, with_for_update=True, populate_existing=True)
    clip = db.session.get_one(Clip, submission.clip_id)
    if task.status is not TaskStatus.SUBMITTED or clip.status is not ClipStatus.ACTIVE:
        raise PortalError(
            "not_decidable", "This submission's clip is no longer in service; it cannot be decided.", 409
        )
    submission.reviewer_id = supervisor.id
    submission.reviewed_at = now
    submission.feedback = feedback or None
    details: dict[str, object] = {"submission": submission.id, "annotator": submission.user_id}
    if decision is Decision.ACCEPT:
        submission.status = SubmissionStatus.ACCEPTED
        task.status = TaskStatus.ACCEPTED
        db.session.flush()
        details["outbox_position"] = append_correction(submission, now)
        action = "review.accepted"
    else:
        submission.status = SubmissionStatus.REJECTED
        task.status = TaskStatus.QUEUED
        task.current_lease_id = None
        task.lease_expires_at = None
        task.rejections += 1
        details["feedback_chars"] = len(feedback)
        action = "review.rejected"
    db.session.flush()
    record_event(actor, action, target=f"task:{task.id}", details=details)
    return submission


# --- leases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRow:
    """One live lease on the supervisors' leases page."""

    lease: TaskLease
    holder: str
    vendor: str | None
    clip_public_id: str


def live_leases(supervisor: User, now: datetime) -> list[LeaseRow]:
    """Live leases (not ended, not expired) of the supervisor's vendor, or all for internal staff."""
    query = (
        sa.select(TaskLease, User.email, Vendor.name, Clip.public_id)
        .join(User, User.id == TaskLease.user_id)
        .join(Clip, Clip.id == TaskLease.clip_id)
        .outerjoin(Vendor, Vendor.id == TaskLease.vendor_id)
        .where(TaskLease.ended_at.is_(None), TaskLease.expires_at > now)
        .order_by(TaskLease.leased_at, TaskLease.id)
    )
    if supervisor.vendor_id is not None:
        query = query.where(TaskLease.vendor_id == supervisor.vendor_id)
    return [LeaseRow(*row) for row in db.session.execute(query)]


def lease_for_supervisor(supervisor: User, lease_id: int) -> TaskLease:
    """The lease if `supervisor` may release it; 404 if there is none, 403 otherwise.

    Not locked here: `release_lease` (the queue's) locks the task row first, as every
    queue operation does, and re-reads the lease under that lock.
    """
    query = sa.select(TaskLease).where(TaskLease.id == lease_id)
    if supervisor.vendor_id is not None:
        query = query.where(TaskLease.vendor_id == supervisor.vendor_id)
    lease = db.session.scalar(query)
    if lease is not None:
        return lease
    if db.session.scalar(sa.select(TaskLease.id).where(TaskLease.id == lease_id)) is None:
        raise PortalError("not_found", "There is no such lease.", 404)
    raise AccessDenied("lease outside the supervisor's scope", target=f"lease:{lease_id}")


# --- erasure ---------------------------------------------------------------------------


WITHDRAWN_ON_ERASURE = (
    SubmissionStatus.PENDING_REVIEW,
    SubmissionStatus.ACCEPTED,
    SubmissionStatus.AUTO_ACCEPTED,
)


def withdraw_clip_work(clip: Clip, now: datetime) -> None:
    """Forget what annotators wrote about an erased or expired clip; withdraw its corrections.

    Corrections, drafts, gold transcripts and outbox copies are what the person said, so
    their texts are emptied like the clip's transcript. Figures (WER, CER, gold scores, time on task) stay:
    they describe the annotators' work, not the recording. Submissions that were waiting
    for review or delivered become `withdrawn`. Called by `portal.clips.services._shred`,
    in the erasure's transaction.
    """
    db.session.execute(
        sa.update(Submission)
        .where(Submission.clip_id == clip.id, Submission.status.in_(WITHDRAWN_ON_ERASURE))
        .values(status=SubmissionStatus.WITHDRAWN)
    )
    db.session.execute(sa.update(Submission).where(Submission.clip_id == clip.id).values(transcript=""))
    db.session.execute(sa.update(Task).where(Task.clip_id == clip.id).values(gold_transcript=None))
    db.session.execute(
        sa.update(TaskLease)
        .where(TaskLease.clip_id == clip.id, TaskLease.draft.is_not(None))
        .values(draft=None)
    )
    withdraw_clip_corrections(clip, now)
