"""The outbox: accepted corrections with a position that only grows in commit order."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, UTCDateTime


class OutboxEntry(Base):
    """One accepted correction as the speech team receives it (pseudonymous only).

    `position` is assigned under a lock on `outbox_head`, held until commit, so a reader
    that has seen position N never later finds a newly committed entry below N.
    """

    __tablename__ = "outbox_entries"

    position: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("submissions.id"), unique=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    clip_public_id: Mapped[str] = mapped_column(sa.String(32))
    locale: Mapped[str] = mapped_column(sa.String(35))
    transcript: Mapped[str] = mapped_column(sa.Text)
    machine_transcript: Mapped[str] = mapped_column(sa.Text)
    wer: Mapped[float]
    cer: Mapped[float]
    passes: Mapped[int]
    annotator: Mapped[str] = mapped_column(sa.String(64))
    time_on_task_ms: Mapped[int]
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxHead(Base):
    """The single row holding the last assigned position."""

    __tablename__ = "outbox_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(sa.BigInteger)
