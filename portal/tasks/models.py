"""The work loop's records: tasks, leases, drafts, submissions and problem reports.

Ingest creates QUEUED tasks; a claim leases one (a TaskLease row, which also remembers
forever who worked on which clip); a submission ends the lease; review or sampling decides
it. Erasure or expiry cancels the open ones.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, UTCDateTime


class TaskStatus(enum.StrEnum):
    """Where a task is in the work loop."""

    QUEUED = "queued"
    LEASED = "leased"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    SCORED = "scored"
    CANCELLED = "cancelled"


# Statuses in which a task can still lead to someone hearing the clip; erasure cancels them.
OPEN_STATUSES = (TaskStatus.QUEUED, TaskStatus.LEASED, TaskStatus.SUBMITTED)


class Task(Base):
    """One independent pass over a clip."""

    __tablename__ = "tasks"
    __table_args__ = (
        sa.UniqueConstraint("clip_id", "pass_number"),
        sa.Index("ix_tasks_claim", "status", "priority", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    pass_number: Mapped[int]
    priority: Mapped[int] = mapped_column(default=0)
    status: Mapped[TaskStatus] = mapped_column(
        sa.Enum(TaskStatus, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]),
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_gold: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    gold_transcript: Mapped[str | None] = mapped_column(sa.Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    current_lease_id: Mapped[int | None] = mapped_column(sa.Integer)
    # How often review sent this task back: the work page looks up the reviewers' feedback
    # only for a task that has some.
    rejections: Mapped[int] = mapped_column(default=0, server_default="0")


class ClipVendor(Base):
    """A vendor allowed to work on a clip's tasks (its vendor pool)."""

    __tablename__ = "clip_vendors"

    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), primary_key=True)
    vendor_id: Mapped[int] = mapped_column(sa.ForeignKey("vendors.id"), primary_key=True, index=True)


def _enum(kind: type[enum.Enum]) -> sa.Enum:
    return sa.Enum(kind, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class LeaseEnd(enum.StrEnum):
    """Why a lease stopped."""

    SUBMITTED = "submitted"
    SKIPPED = "skipped"
    EXPIRED = "expired"
    RELEASED = "released"
    REPORTED = "reported"
    CANCELLED = "cancelled"


class TaskLease(Base):
    """One person's hold on a task. Rows are never deleted: they are also the record of
    who worked on which clip, which keeps a second pass of a clip away from them.

    `heard_intervals` (JSON, seconds) is what the player reported as played;
    `served_ranges` (JSON, bytes) is what the server actually streamed under this lease.
    """

    __tablename__ = "task_leases"
    __table_args__ = (sa.Index("ix_task_leases_clip_user", "clip_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(sa.ForeignKey("tasks.id"), index=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    vendor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("vendors.id"))
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("user_sessions.id"))
    leased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(sa.String(20))
    skip_reason: Mapped[str | None] = mapped_column(sa.String(40))
    heard_intervals: Mapped[str] = mapped_column(sa.Text, default="[]")
    served_ranges: Mapped[str] = mapped_column(sa.Text, default="[]")
    last_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    draft: Mapped[str | None] = mapped_column(sa.Text)
    draft_saved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SubmissionStatus(enum.StrEnum):
    """What became of a submitted correction."""

    PENDING_REVIEW = "pending_review"
    ACCEPTED = "accepted"
    AUTO_ACCEPTED = "auto_accepted"
    REJECTED = "rejected"
    SCORED = "scored"
    WITHDRAWN = "withdrawn"


class Submission(Base):
    """A corrected transcript. One per lease: resubmitting returns the same row."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(sa.ForeignKey("tasks.id"), index=True)
    lease_id: Mapped[int] = mapped_column(sa.ForeignKey("task_leases.id"), unique=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    vendor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("vendors.id"), index=True)
    transcript: Mapped[str] = mapped_column(sa.Text)
    wer: Mapped[float]
    cer: Mapped[float]
    edit_distance: Mapped[int]
    time_on_task_ms: Mapped[int]
    heard_share: Mapped[float]
    fully_heard: Mapped[bool]
    status: Mapped[SubmissionStatus] = mapped_column(_enum(SubmissionStatus), index=True)
    gold_wer: Mapped[float | None]
    gold_cer: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    reviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    feedback: Mapped[str | None] = mapped_column(sa.Text)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProblemKind(enum.StrEnum):
    """What an annotator can report about a clip."""

    PII_MISSED = "pii_missed"
    UNINTELLIGIBLE = "unintelligible"
    WRONG_LANGUAGE = "wrong_language"
    OTHER = "other"


class ProblemReport(Base):
    """A clip reported by an annotator; the clip stays quarantined until an admin decides."""

    __tablename__ = "problem_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    task_id: Mapped[int] = mapped_column(sa.ForeignKey("tasks.id"))
    lease_id: Mapped[int] = mapped_column(sa.ForeignKey("task_leases.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    kind: Mapped[ProblemKind] = mapped_column(_enum(ProblemKind))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(sa.String(20))
    resolved_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
