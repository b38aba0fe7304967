"""The work queue: claiming a task, holding and ending its lease, drafts, submissions, reports.

Every state change records its audit event in the caller's transaction and flushes; the
view commits once.

Concurrency. A claim first locks the annotator's own row (two clicks of one person
serialise, so nobody holds two live leases), then takes the best claimable task with
`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL: concurrent claimers skip each other's
rows instead of queueing behind them, and a row that another claim leased meanwhile no
longer matches when PostgreSQL re-checks it. On SQLite every transaction starts with
BEGIN IMMEDIATE (see `portal.db`), so claims simply run one after the other.

Everything else a lease holder does (renew, draft, skip, report, submit) and a
supervisor's release lock the task row first and the lease row second, the same order
as a claim that ends an expired lease, so these never deadlock with each other. A
report locks the clip before its tasks; nothing locks a task and then its clip.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import aliased

from portal.audit.services import Actor, record_event
from portal.auth.models import User, UserSession
from portal.auth.services import actor_for
from portal.clips.models import Clip, ClipStatus
from portal.clips.services import erase_clip
from portal.exceptions import AccessDenied, PortalError
from portal.extensions import db
from portal.review.services import record_routing, route_submission
from portal.tasks.models import (
    ClipVendor,
    LeaseEnd,
    ProblemKind,
    ProblemReport,
    Submission,
    SubmissionStatus,
    Task,
    TaskLease,
    TaskStatus,
)
from portal.tasks.quality import error_rates

MAX_TRANSCRIPT_CHARS = 20_000
MAX_NOTE_CHARS = 2_000


class SkipReason(enum.StrEnum):
    """Why an annotator gives a task back (the skip dialog's choices)."""

    KNOW_SPEAKER = "know_speaker"
    CANNOT_HEAR = "cannot_hear"
    WRONG_LANGUAGE = "wrong_language"
    OTHER = "other"


class QuarantineDecision(enum.StrEnum):
    """What an admin decides about a reported clip."""

    RELEASE = "release"
    ERASE = "erase"


class NotFullyHeard(PortalError):
    """A submission before the whole clip was played (checked from the playback record)."""

    def __init__(self, heard_share: float) -> None:
        super().__init__(
            "not_fully_heard",
            f"Listen to the whole clip before submitting (heard so far: {heard_share:.0%}).",
            409,
        )
        self.heard_share = heard_share


def lease_duration() -> timedelta:
    """How long a claim or a renewal holds a task (PORTAL_LEASE_MINUTES)."""
    return timedelta(minutes=current_app.config["LEASE_MINUTES"])


# --- claiming ---------------------------------------------------------------------------


def _claimable() -> sa.Select[tuple[Task]]:
    """Tasks an annotator may be given now, best first (not yet locked, not yet limited).

    Queued tasks, and leased ones whose lease ran out; of active clips only; whose vendor
    pool contains the annotator's vendor; of clips the annotator never held a lease on
    (the lease history is kept forever, so skipping or being rejected does not bring a
    clip back). Parameters: `user_id`, `vendor_id`, `now`.
    """
    held_before = sa.select(TaskLease.id).where(
        TaskLease.clip_id == Task.clip_id, TaskLease.user_id == sa.bindparam("user_id")
    )
    in_pool = sa.select(ClipVendor.clip_id).where(
        ClipVendor.clip_id == Task.clip_id, ClipVendor.vendor_id == sa.bindparam("vendor_id")
    )
    return (
        sa.select(Task)
        .join(Clip, Clip.id == Task.clip_id)
        .where(
            sa.or_(
                Task.status == TaskStatus.QUEUED,
                sa.and_(Task.status == TaskStatus.LEASED, Task.lease_expires_at <= sa.bindparam("now")),
            ),
            Clip.status == ClipStatus.ACTIVE,
            in_pool.exists(),
            ~held_before.exists(),
        )
        .order_by(Task.priority.desc(), Task.created_at, Task.id)
    )


# A claim runs these every time: built once (building and cache-keying the claim query
# costs about as much CPU as running it).
CLAIMABLE = _claimable()
LOCK_BEST_CLAIMABLE = (
    CLAIMABLE.add_columns(Clip.public_id)
    .limit(1)
    .with_for_update(skip_locked=True, of=Task)
    .execution_options(populate_existing=True)
)
LOCK_USER = sa.select(User.id).where(User.id == sa.bindparam("user_id")).with_for_update()
LIVE_LEASES_OF_USER = (
    sa.select(TaskLease)
    .where(
        TaskLease.user_id == sa.bindparam("user_id"),
        TaskLease.ended_at.is_(None),
        TaskLease.expires_at > sa.bindparam("now"),
    )
    .order_by(TaskLease.id)
)


def _claimable_parameters(user: User, now: datetime) -> dict[str, object]:
    return {"user_id": user.id, "vendor_id": user.vendor_id, "now": now}


def _held_lease(user: User, user_session: UserSession, actor: Actor, now: datetime) -> TaskLease | None:
    """The user's live lease, moved to this session if it was taken in another one.

    A lease whose task was taken away meanwhile (the clip was erased) is ended here, so
    that it does not keep its holder from claiming.
    """
    leases = db.session.scalars(LIVE_LEASES_OF_USER, {"user_id": user.id, "now": now}).all()
    held = None
    for lease in leases:
        task = db.session.get_one(Task, lease.task_id)
        if task.status is TaskStatus.LEASED and task.current_lease_id == lease.id and held is None:
            held = lease
        else:
            _end_lease(lease, LeaseEnd.CANCELLED, now)
            record_event(
                actor,
                "task.lease_cancelled",
                target=f"task:{lease.task_id}",
                details={"lease": lease.id, "task_status": str(task.status)},
            )
    if held is not None and held.session_id != user_session.id:
        previous = db.session.get_one(UserSession, held.session_id)
        held.session_id = user_session.id
        record_event(
            actor,
            "task.lease_resumed",
            target=f"task:{held.task_id}",
            details={"lease": held.id, "from_session": previous.ref},
        )
    return held


def claim_next_task(
    user: User, user_session: UserSession, now: datetime, actor: Actor | None = None
) -> TaskLease | None:
    """Lease the best task `user` may work on, or return None when there is none.

    Best is highest priority, then oldest. Someone who already holds a live lease gets
    that lease back (one task at a time; claimed from another session, the lease moves
    to this one). A task whose lease ran out is taken over: the old lease ends with
    reason `expired`, so its holder can no longer stream, save or submit. Audited as
    `task.claimed` or `task.queue_empty`.
    """
    actor = actor or actor_for(user, Actor(), user_session)
    db.session.execute(LOCK_USER, {"user_id": user.id})
    held = _held_lease(user, user_session, actor, now)
    if held is not None:
        return held
    best = db.session.execute(LOCK_BEST_CLAIMABLE, _claimable_parameters(user, now)).one_or_none()
    if best is None:
        record_event(actor, "task.queue_empty", details={"vendor": user.vendor_name})
        return None
    task, clip_public_id = best
    if task.status is TaskStatus.LEASED and task.current_lease_id is not None:
        _expire(db.session.get_one(TaskLease, task.current_lease_id), actor, now)
    lease = TaskLease(
        task_id=task.id,
        clip_id=task.clip_id,
        user_id=user.id,
        vendor_id=user.vendor_id,
        session_id=user_session.id,
        leased_at=now,
        expires_at=now + lease_duration(),
        heard_intervals="[]",
        served_ranges="[]",
    )
    db.session.add(lease)
    db.session.flush()
    task.status = TaskStatus.LEASED
    task.lease_expires_at = lease.expires_at
    task.current_lease_id = lease.id
    record_event(
        actor,
        "task.claimed",
        target=f"task:{task.id}",
        details={
            "lease": lease.id,
            "clip": clip_public_id,
            "pass": task.pass_number,
            "priority": task.priority,
            "expires_at": lease.expires_at.isoformat(),
        },
    )
    return lease


def _expire(lease: TaskLease, actor: Actor, now: datetime) -> None:
    _end_lease(lease, LeaseEnd.EXPIRED, now)
    record_event(
        actor,
        "task.lease_expired",
        target=f"task:{lease.task_id}",
        details={"lease": lease.id, "holder": lease.user_id, "expired_at": lease.expires_at.isoformat()},
    )


def _end_lease(lease: TaskLease, reason: LeaseEnd, now: datetime) -> None:
    lease.ended_at = now
    lease.end_reason = str(reason)


def _requeue(task: Task) -> None:
    task.status = TaskStatus.QUEUED
    task.current_lease_id = None
    task.lease_expires_at = None


# --- the holder's lease ---------------------------------------------------------------


# The holder's check runs on almost every request of the work loop, so its statements are
# built once. Reading, the task comes with its current lease and its clip in one round
# trip. Locking, PostgreSQL takes the task row and then the lease row (a join's rows are
# locked in FROM order), the order every holder action and the claim use; the clip is
# then read on its own, after the locks, as it was before they were taken.
HELD_TASK = (
    sa.select(Task, TaskLease, Clip)
    .join(Clip, Clip.id == Task.clip_id)
    .outerjoin(TaskLease, TaskLease.id == Task.current_lease_id)
    .where(Task.id == sa.bindparam("task_id"))
)
LOCK_TASK_WITH_LEASE = (
    sa.select(Task, TaskLease)
    .join(TaskLease, TaskLease.id == Task.current_lease_id)
    .where(Task.id == sa.bindparam("task_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def _locked_task(task_id: int) -> Task | None:
    return db.session.scalar(
        sa.select(Task).where(Task.id == task_id).with_for_update().execution_options(populate_existing=True)
    )


def _locked_current_lease(task: Task) -> TaskLease | None:
    """The lease `task` names as current, FOR UPDATE, or None."""
    if task.current_lease_id is None:
        return None
    return db.session.scalar(
        sa.select(TaskLease)
        .where(TaskLease.id == task.current_lease_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _locked_task_and_lease(task_id: int) -> tuple[Task | None, TaskLease | None]:
    """The task and its current lease (None for either that does not exist), both locked.

    The task's lock is taken first. Without a current lease, or when the current lease
    changed while the statement waited for the task's lock (the joined row then no longer
    matches), the task is locked alone and then the lease it names.
    """
    row = db.session.execute(LOCK_TASK_WITH_LEASE, {"task_id": task_id}).one_or_none()
    if row is not None:
        return row[0], row[1]
    task = _locked_task(task_id)
    return task, None if task is None else _locked_current_lease(task)


def _refusal(
    task: Task, lease: TaskLease | None, user: User, user_session: UserSession, now: datetime
) -> str:
    """Why `user` in `user_session` is not the live holder of `task` (the audit's reason)."""
    if lease is None or lease.user_id != user.id:
        own = db.session.scalar(
            sa.select(TaskLease)
            .where(TaskLease.task_id == task.id, TaskLease.user_id == user.id)
            .order_by(TaskLease.id.desc())
            .limit(1)
        )
        if own is None:
            return "not the holder of this task"
        return f"lease {own.id} has ended ({own.end_reason or 'expired'})"
    if lease.session_id != user_session.id:
        return f"lease {lease.id} is held in another session"
    if lease.ended_at is not None:
        return f"lease {lease.id} has ended ({lease.end_reason})"
    if lease.expires_at <= now:
        return f"lease {lease.id} has expired"
    return f"task is {task.status}"


def _holder_lease(
    task: Task, lease: TaskLease | None, user: User, user_session: UserSession, now: datetime
) -> TaskLease:
    """`lease` (the task's current one) if `user` holds it live in `user_session`; else AccessDenied."""
    if (
        lease is not None
        and task.status is TaskStatus.LEASED
        and lease.user_id == user.id
        and lease.session_id == user_session.id
        and lease.ended_at is None
        and lease.expires_at > now
    ):
        return lease
    raise AccessDenied(_refusal(task, lease, user, user_session, now), target=f"task:{task.id}")


@dataclass(frozen=True)
class Holding:
    """A live lease with its task and clip, as `held_task` reads them (one round trip)."""

    task: Task
    lease: TaskLease
    clip: Clip


def held_task(task_id: int, user: User, user_session: UserSession, now: datetime) -> Holding:
    """`task_id` with its live lease and clip if `user` holds it in `user_session`; else AccessDenied.

    Reads without locks (the work page, a playback grant); refuses exactly as `live_lease`.
    """
    row = db.session.execute(HELD_TASK, {"task_id": task_id}).one_or_none()
    if row is None:
        raise AccessDenied("no such task", target=f"task:{task_id}")
    task, lease, clip = row
    return Holding(task, _holder_lease(task, lease, user, user_session, now), clip)


def live_lease(
    task_id: int, user: User, user_session: UserSession, now: datetime, *, lock: bool = False
) -> TaskLease:
    """The live lease of `task_id` if `user` holds it in `user_session`; else AccessDenied.

    Live means not ended and not expired. Anyone else (another user, the same user in
    another session, the holder of a lease that ended or ran out) is refused with the
    reason recorded in the audit log. `lock` takes the task's and the lease's row locks
    (FOR UPDATE) for a caller about to change them.
    """
    if not lock:
        return held_task(task_id, user, user_session, now).lease
    task, lease = _locked_task_and_lease(task_id)
    if task is None:
        raise AccessDenied("no such task", target=f"task:{task_id}")
    return _holder_lease(task, lease, user, user_session, now)


def renew_lease(
    task_id: int, user: User, user_session: UserSession, actor: Actor, now: datetime
) -> TaskLease:
    """Extend the holder's live lease to now + PORTAL_LEASE_MINUTES (the open work page asks)."""
    lease = live_lease(task_id, user, user_session, now, lock=True)
    task = db.session.get_one(Task, task_id)
    lease.expires_at = now + lease_duration()
    task.lease_expires_at = lease.expires_at
    record_event(
        actor,
        "task.lease_renewed",
        target=f"task:{task_id}",
        details={"lease": lease.id, "expires_at": lease.expires_at.isoformat()},
    )
    return lease


def skip_task(
    task_id: int, user: User, user_session: UserSession, reason: SkipReason, actor: Actor, now: datetime
) -> TaskLease:
    """Give the task back to the queue; the clip is never offered to this annotator again."""
    lease = live_lease(task_id, user, user_session, now, lock=True)
    _end_lease(lease, LeaseEnd.SKIPPED, now)
    lease.skip_reason = str(reason)
    _requeue(db.session.get_one(Task, task_id))
    record_event(
        actor, "task.skipped", target=f"task:{task_id}", details={"lease": lease.id, "reason": str(reason)}
    )
    return lease


def release_lease(
    lease: TaskLease, actor: Actor, now: datetime, reason: LeaseEnd = LeaseEnd.RELEASED
) -> None:
    """End someone's lease (a supervisor's release) and put the task back in the queue.

    Scoping is the caller's: it decides who may release which lease. Takes the task's
    row lock; a lease that already ended is refused with 409.
    """
    task = _locked_task(lease.task_id)
    db.session.refresh(lease)
    if lease.ended_at is not None:
        raise PortalError("lease_ended", "This lease has already ended.", 409)
    _end_lease(lease, reason, now)
    if task is not None and task.current_lease_id == lease.id and task.status is TaskStatus.LEASED:
        _requeue(task)
    record_event(
        actor,
        "task.lease_released",
        target=f"task:{lease.task_id}",
        details={"lease": lease.id, "holder": lease.user_id, "reason": str(reason)},
    )


def save_draft(
    task_id: int, user: User, user_session: UserSession, transcript: str, now: datetime
) -> TaskLease:
    """Keep the transcript typed so far on the lease (autosave; not audited per keystroke)."""
    if len(transcript) > MAX_TRANSCRIPT_CHARS:
        raise PortalError(
            "transcript_too_long", f"A transcript may be at most {MAX_TRANSCRIPT_CHARS} characters."
        )
    lease = live_lease(task_id, user, user_session, now, lock=True)
    lease.draft = transcript
    lease.draft_saved_at = now
    db.session.flush()
    return lease


# --- submitting -----------------------------------------------------------------------


SUBMISSION_OF_LEASE = sa.select(Submission).where(
    Submission.lease_id == sa.bindparam("lease_id"),
    Submission.user_id == sa.bindparam("user_id"),
    Submission.task_id == sa.bindparam("task_id"),
)


@dataclass(frozen=True)
class SubmitResult:
    """The submission and whether it already existed (a retry or a double click)."""

    submission: Submission
    replayed: bool


def submit_correction(
    task_id: int,
    lease_id: int,
    user: User,
    user_session: UserSession,
    transcript: str,
    actor: Actor,
    now: datetime,
) -> SubmitResult:
    """Store the holder's correction once per lease, routed (review, gold, outbox) as it is stored.

    Idempotent by lease: the task row (and its current lease's) is locked first; unless
    the named lease is still open, an existing submission of it by this user is looked
    for, and if there is one it is returned unchanged, whether the first request
    committed a moment ago (double click) or long ago (retry).
    Refused (403) for anyone but the live holder in this session, and (409) unless the
    playback record says the whole clip was heard. Stores WER and CER of the machine
    transcript against the correction, and time on task (lease start → now).
    """
    # Imported here: portal.playback.services imports this module (for `live_lease`).
    from portal.playback.services import listening_state

    transcript = transcript.strip()
    task, current = _locked_task_and_lease(task_id)
    if task is None:
        raise AccessDenied("no such task", target=f"task:{task_id}")
    # A submission ends its lease in the same transaction, so while the named lease is the
    # task's current one and still open there is no submission of it to find.
    if current is None or current.id != lease_id or current.ended_at is not None:
        existing = db.session.scalar(
            SUBMISSION_OF_LEASE, {"lease_id": lease_id, "user_id": user.id, "task_id": task_id}
        )
        if existing is not None:
            return SubmitResult(existing, replayed=True)
    lease = _holder_lease(task, current, user, user_session, now)
    if lease.id != lease_id:
        raise AccessDenied(
            f"submitted for lease {lease_id}, holds lease {lease.id}", target=f"task:{task_id}"
        )
    if not transcript:
        raise PortalError("transcript_required", "Type the transcript before submitting.")
    if len(transcript) > MAX_TRANSCRIPT_CHARS:
        raise PortalError(
            "transcript_too_long", f"A transcript may be at most {MAX_TRANSCRIPT_CHARS} characters."
        )
    clip = db.session.get_one(Clip, task.clip_id)
    if clip.status is not ClipStatus.ACTIVE:
        raise AccessDenied(f"clip is {clip.status}", target=f"task:{task_id}")
    listening = listening_state(lease, clip)
    if not listening.fully_heard:
        raise NotFullyHeard(listening.heard_share)
    rates = error_rates(transcript, clip.transcript)
    submission = Submission(
        task_id=task.id,
        lease_id=lease.id,
        clip_id=clip.id,
        user_id=user.id,
        vendor_id=user.vendor_id,
        transcript=transcript,
        wer=rates.wer,
        cer=rates.cer,
        edit_distance=rates.edit_distance,
        time_on_task_ms=max(0, round((now - lease.leased_at).total_seconds() * 1000)),
        heard_share=listening.heard_share,
        fully_heard=True,
        created_at=now,
    )
    route_submission(submission, task, now)
    db.session.add(submission)
    _end_lease(lease, LeaseEnd.SUBMITTED, now)
    task.lease_expires_at = None
    db.session.flush()
    record_event(
        actor,
        "task.submitted",
        target=f"task:{task.id}",
        details={
            "lease": lease.id,
            "submission": submission.id,
            "clip": clip.public_id,
            "wer": round(rates.wer, 4),
            "cer": round(rates.cer, 4),
            "time_on_task_ms": submission.time_on_task_ms,
            "heard_share": round(listening.heard_share, 4),
        },
    )
    record_routing(submission, task, actor, now)
    return SubmitResult(submission, replayed=False)


# --- problems and quarantine ----------------------------------------------------------


def report_problem(
    task_id: int,
    user: User,
    user_session: UserSession,
    kind: ProblemKind,
    note: str,
    actor: Actor,
    now: datetime,
) -> ProblemReport:
    """Take the clip out of service until an admin decides: quarantined, nobody works on it.

    The reporter's lease ends (reason `reported`); every other live lease on the clip's
    tasks ends too (reason `cancelled`) and those tasks go back to the queue, where a
    quarantined clip is never offered. The tasks are not cancelled: if the admin
    releases the clip they are claimable again (by others: the reporter held the clip).
    """
    note = note.strip()
    if len(note) > MAX_NOTE_CHARS:
        raise PortalError("note_too_long", f"A note may be at most {MAX_NOTE_CHARS} characters.")
    clip_id = db.session.scalar(sa.select(Task.clip_id).where(Task.id == task_id))
    if clip_id is None:
        raise AccessDenied("no such task", target=f"task:{task_id}")
    clip = db.session.scalar(
        sa.select(Clip).where(Clip.id == clip_id).with_for_update().execution_options(populate_existing=True)
    )
    assert clip is not None
    tasks = db.session.scalars(
        sa.select(Task)
        .where(Task.clip_id == clip.id, Task.status.in_((TaskStatus.QUEUED, TaskStatus.LEASED)))
        .order_by(Task.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    task = next((candidate for candidate in tasks if candidate.id == task_id), None)
    if task is None:
        task = db.session.get_one(Task, task_id)
    lease = _holder_lease(task, _locked_current_lease(task), user, user_session, now)
    report = ProblemReport(
        clip_id=clip.id,
        task_id=task.id,
        lease_id=lease.id,
        user_id=user.id,
        kind=kind,
        note=note,
        created_at=now,
    )
    db.session.add(report)
    _end_lease(lease, LeaseEnd.REPORTED, now)
    _requeue(task)
    cut_off = []
    for other in tasks:
        if other.id == task.id or other.status is not TaskStatus.LEASED or other.current_lease_id is None:
            continue
        other_lease = db.session.get_one(TaskLease, other.current_lease_id)
        if other_lease.ended_at is None:
            _end_lease(other_lease, LeaseEnd.CANCELLED, now)
            cut_off.append(other_lease.id)
        _requeue(other)
    clip.status = ClipStatus.QUARANTINED
    db.session.flush()
    record_event(
        actor,
        "task.problem_reported",
        target=f"task:{task.id}",
        details={"report": report.id, "kind": str(kind), "lease": lease.id, "clip": clip.public_id},
    )
    record_event(
        actor,
        "clips.quarantined",
        target=f"clip:{clip.public_id}",
        details={"reason": f"reported:{kind}", "report": report.id, "leases_ended": cut_off},
    )
    return report


def open_reports(clip: Clip) -> list[ProblemReport]:
    """The clip's problem reports that wait for an admin's decision, oldest first."""
    return list(
        db.session.scalars(
            sa.select(ProblemReport)
            .where(ProblemReport.clip_id == clip.id, ProblemReport.resolved_at.is_(None))
            .order_by(ProblemReport.created_at, ProblemReport.id)
        )
    )


def reported_clips() -> list[tuple[Clip, int]]:
    """Quarantined clips with open reports, and how many, oldest report first."""
    first = sa.func.min(ProblemReport.created_at)
    rows = db.session.execute(
        sa.select(Clip, sa.func.count(ProblemReport.id))
        .join(ProblemReport, ProblemReport.clip_id == Clip.id)
        .where(Clip.status == ClipStatus.QUARANTINED, ProblemReport.resolved_at.is_(None))
        .group_by(Clip.id)
        .order_by(first, Clip.id)
    )
    return [(clip, count) for clip, count in rows]


def decide_quarantine(
    clip: Clip, decision: QuarantineDecision, admin: User, actor: Actor, now: datetime
) -> int:
    """Release a reported clip back into service, or erase it; return the reports resolved.

    Release needs open reports: a clip quarantined by the integrity check (its audio is
    missing or altered; its tasks were cancelled) can only be erased.
    """
    db.session.refresh(clip, with_for_update=True)
    if clip.status is not ClipStatus.QUARANTINED:
        raise PortalError("clip_not_quarantined", "This clip is not quarantined.", 409)
    reports = open_reports(clip)
    if decision is QuarantineDecision.RELEASE:
        if not reports:
            raise PortalError(
                "release_refused",
                "This clip was quarantined by the integrity check, not by a report: it can only be erased.",
                409,
            )
        clip.status = ClipStatus.ACTIVE
    else:
        erase_clip(clip, actor, now)
    for report in reports:
        report.resolved_at = now
        report.resolution = str(decision)
        report.resolved_by_id = admin.id
    db.session.flush()
    record_event(
        actor,
        "clips.quarantine_decided",
        target=f"clip:{clip.public_id}",
        details={"decision": str(decision), "reports": [report.id for report in reports]},
    )
    return len(reports)


# --- what the annotator's pages show --------------------------------------------------


@dataclass(frozen=True)
class RecentSubmission:
    """One line of "your recent work" on the annotator's home page."""

    submission: Submission
    clip_public_id: str
    duration_ms: int

    @property
    def label(self) -> str:
        """The status as the annotator sees it; gold scoring looks like any submission."""
        return {
            SubmissionStatus.PENDING_REVIEW: "Submitted",
            SubmissionStatus.SCORED: "Submitted",
            SubmissionStatus.ACCEPTED: "Accepted",
            SubmissionStatus.AUTO_ACCEPTED: "Accepted",
            SubmissionStatus.REJECTED: "Returned",
            SubmissionStatus.WITHDRAWN: "Withdrawn",
        }[self.submission.status]


@dataclass(frozen=True)
class Overview:
    """The annotator's home: the task in hand, what waits, and recent work with feedback."""

    current: TaskLease | None
    waiting: int
    recent: list[RecentSubmission]


def annotator_overview(user: User, now: datetime, recent: int = 15) -> Overview:
    """What `user` sees on /tasks; reads only."""
    current = db.session.scalar(
        sa.select(TaskLease)
        .join(Task, Task.current_lease_id == TaskLease.id)
        .where(
            TaskLease.user_id == user.id,
            TaskLease.ended_at.is_(None),
            TaskLease.expires_at > now,
            Task.status == TaskStatus.LEASED,
        )
        .order_by(TaskLease.id.desc())
        .limit(1)
    )
    claimable = CLAIMABLE.order_by(None).subquery()
    waiting = (
        db.session.scalar(
            sa.select(sa.func.count(sa.distinct(claimable.c.clip_id))), _claimable_parameters(user, now)
        )
        or 0
    )
    rows = db.session.execute(
        sa.select(Submission, Clip.public_id, Clip.duration_ms)
        .join(Clip, Clip.id == Submission.clip_id)
        .where(Submission.user_id == user.id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
        .limit(recent)
    )
    return Overview(current=current, waiting=waiting, recent=[RecentSubmission(*row) for row in rows])


@dataclass(frozen=True)
class WorkView:
    """Everything the work page shows for the holder's lease."""

    task: Task
    lease: TaskLease
    clip: Clip
    earlier_feedback: list[str]
    transcript: str
    fully_heard: bool


# Every work page runs it: built once.
EARLIER_FEEDBACK = (
    sa.select(Submission.feedback)
    .where(
        Submission.task_id == sa.bindparam("task_id"),
        Submission.status == SubmissionStatus.REJECTED,
        Submission.feedback.is_not(None),
    )
    .order_by(Submission.reviewed_at.desc(), Submission.id.desc())
)


def work_view(holding: Holding) -> WorkView:
    """The work page's content for a live lease (checked by the caller with `held_task`).

    The transcript box starts from the saved draft, else from the machine transcript to
    correct. Feedback from reviewers who rejected earlier passes of this task is shown,
    never who wrote those passes. `fully_heard` comes from the playback record, so a
    reloaded page can submit without playing the clip again.
    """
    # Imported here: portal.playback.services imports this module (for `live_lease`).
    from portal.playback.services import listening_state

    task, lease, clip = holding.task, holding.lease, holding.clip
    feedback = db.session.scalars(EARLIER_FEEDBACK, {"task_id": task.id}).all() if task.rejections else []
    return WorkView(
        task=task,
        lease=lease,
        clip=clip,
        earlier_feedback=[text for text in feedback if text],
        transcript=lease.draft if lease.draft is not None else clip.transcript,
        fully_heard=listening_state(lease, clip).fully_heard,
    )


# --- the admin's view of a clip ------------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    """A problem report with the people involved, for the admin's clip page."""

    report: ProblemReport
    reporter: str
    resolver: str | None


@dataclass(frozen=True)
class ClipCase:
    """What the admin sees to decide about a clip: its tasks and every report on it."""

    clip: Clip
    tasks: list[tuple[str, int]]
    reports: list[ReportRow]

    @property
    def open_reports(self) -> int:
        return sum(1 for row in self.reports if row.report.resolved_at is None)


def clip_case(public_id: str) -> ClipCase | None:
    """The clip named `public_id` with its task counts and reports, or None."""
    clip = db.session.scalar(sa.select(Clip).where(Clip.public_id == public_id))
    if clip is None:
        return None
    tasks = [
        (str(status), count)
        for status, count in db.session.execute(
            sa.select(Task.status, sa.func.count(Task.id))
            .where(Task.clip_id == clip.id)
            .group_by(Task.status)
            .order_by(Task.status)
        )
    ]
    reporter, resolver = aliased(User), aliased(User)
    rows = db.session.execute(
        sa.select(ProblemReport, reporter.email, resolver.email)
        .join(reporter, reporter.id == ProblemReport.user_id)
        .outerjoin(resolver, resolver.id == ProblemReport.resolved_by_id)
        .where(ProblemReport.clip_id == clip.id)
        .order_by(ProblemReport.created_at, ProblemReport.id)
    )
    return ClipCase(clip=clip, tasks=tasks, reports=[ReportRow(*row) for row in rows])
