"""Clips as stored: pseudonyms, consent, redacted transcript, and a wrapped data key.

Nothing in these tables identifies a person directly: subjects and devices appear as
keyed pseudonyms, transcripts and word timings are stored redacted, and the audio lives
encrypted in the object store under an opaque name. Erasure keeps the row (for the
inventory and the audit trail) but empties it: no key, no object, no transcript.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, UTCDateTime


class ClipStatus(enum.StrEnum):
    """Where a clip is in its life; only active clips can be worked on."""

    ACTIVE = "active"
    QUARANTINED = "quarantined"
    ERASED = "erased"
    EXPIRED = "expired"


LIVE_STATUSES = (ClipStatus.ACTIVE, ClipStatus.QUARANTINED)


class Clip(Base):
    """One ingested recording. `wrapped_key` NULL means crypto-shredded (erased or expired)."""

    __tablename__ = "clips"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    subject_pseudonym: Mapped[str] = mapped_column(sa.String(64), index=True)
    device_pseudonym: Mapped[str | None] = mapped_column(sa.String(64))
    locale: Mapped[str] = mapped_column(sa.String(35))
    duration_ms: Mapped[int]
    consent_opt_in: Mapped[bool]
    consent_recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consent_scope: Mapped[str] = mapped_column(sa.String(400), index=True)
    transcript: Mapped[str] = mapped_column(sa.Text)
    words: Mapped[str | None] = mapped_column(sa.Text)
    toned_spans: Mapped[int] = mapped_column(default=0)
    passes: Mapped[int]
    storage_name: Mapped[str | None] = mapped_column(sa.String(32), unique=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    status: Mapped[ClipStatus] = mapped_column(
        sa.Enum(ClipStatus, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]),
        index=True,
    )
    idempotency_digest: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retain_until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClipRedaction(Base):
    """How many findings of one kind the clip's transcript had (never the values)."""

    __tablename__ = "clip_redactions"

    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    count: Mapped[int]


class VendorIngestPolicy(Base):
    """Per-vendor ingest settings; a vendor without a row follows the portal's defaults.

    A clip's audio is toned over its redacted words unless every vendor allowed to work
    on it has turned toning off: one copy of the audio serves all of them.
    """

    __tablename__ = "vendor_ingest_policies"

    vendor_id: Mapped[int] = mapped_column(sa.ForeignKey("vendors.id"), primary_key=True)
    tone_over_redactions: Mapped[bool]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
