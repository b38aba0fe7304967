"""Task rows created at ingest, and which vendors may work on a clip's tasks.

The queue (claims, leases, submissions, review) builds on these; ingest only creates
QUEUED tasks and erasure or expiry cancels the open ones.
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
    CANCELLED = "cancelled"


# Statuses in which a task can still lead to someone hearing the clip; erasure cancels them.
OPEN_STATUSES = (TaskStatus.QUEUED,)


class Task(Base):
    """One independent pass over a clip."""

    __tablename__ = "tasks"
    __table_args__ = (sa.UniqueConstraint("clip_id", "pass_number"),)

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


class ClipVendor(Base):
    """A vendor allowed to work on a clip's tasks (its vendor pool)."""

    __tablename__ = "clip_vendors"

    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), primary_key=True)
    vendor_id: Mapped[int] = mapped_column(sa.ForeignKey("vendors.id"), primary_key=True, index=True)
