"""API keys: stored as SHA-256 hashes of 256-bit random tokens, revocable, scoped."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, UTCDateTime


class ApiScope(enum.StrEnum):
    """What a key may do: push clips in, or read accepted corrections out."""

    INGEST = "ingest"
    OUTBOX = "outbox"


class ApiKey(Base):
    """A service client's key. The token is shown once; `prefix` names it in lists and logs."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    scope: Mapped[ApiScope] = mapped_column(
        sa.Enum(ApiScope, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])
    )
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
