"""NDA versions and who accepted which, when and from where."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base, UTCDateTime


class NdaVersion(Base):
    """A published NDA text; the newest version is the one everybody must accept."""

    __tablename__ = "nda_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str] = mapped_column(sa.String(254))


class NdaAcceptance(Base):
    """Evidence that a user accepted one exact NDA text."""

    __tablename__ = "nda_acceptances"
    __table_args__ = (sa.UniqueConstraint("user_id", "nda_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    nda_version_id: Mapped[int] = mapped_column(sa.ForeignKey("nda_versions.id"))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    full_name: Mapped[str] = mapped_column(sa.String(200))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(512))

    version: Mapped[NdaVersion] = relationship(lazy="joined")
