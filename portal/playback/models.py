"""Playback grants: the only way audio bytes leave the portal."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, UTCDateTime


class PlaybackGrant(Base):
    """A random token (stored hashed) that lets one user, in one session, fetch one clip
    for a short time, while the lease (or the pending review) it is bound to lasts.
    """

    __tablename__ = "playback_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("user_sessions.id"))
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    task_id: Mapped[int] = mapped_column(sa.ForeignKey("tasks.id"))
    lease_id: Mapped[int | None] = mapped_column(sa.ForeignKey("task_leases.id"), index=True)
    submission_id: Mapped[int | None] = mapped_column(sa.ForeignKey("submissions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    bytes_served: Mapped[int] = mapped_column(sa.BigInteger, default=0)
