"""Vendors, users, their recovery codes and their server-side sessions."""

from __future__ import annotations

import enum
from datetime import datetime, time

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.db import Base, UTCDateTime


class Role(enum.StrEnum):
    """What a person may do; see DESIGN.md, "People"."""

    ANNOTATOR = "annotator"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Vendor(Base):
    """A contracted organisation; its users never see another vendor's data."""

    __tablename__ = "vendors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Declared working hours (local wall clock, end exclusive, may span midnight); the
    # audit's "outside working hours" rule reads them. All NULL: none declared.
    work_start: Mapped[time | None] = mapped_column(sa.Time)
    work_end: Mapped[time | None] = mapped_column(sa.Time)
    work_timezone: Mapped[str | None] = mapped_column(sa.String(64))


class User(UserMixin, Base):
    """A person who signs in. Internal staff have no vendor."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    full_name: Mapped[str] = mapped_column(sa.String(200), default="")
    role: Mapped[Role] = mapped_column(
        sa.Enum(Role, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])
    )
    vendor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("vendors.id"), index=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    active: Mapped[bool] = mapped_column(default=True)
    totp_secret: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    vendor: Mapped[Vendor | None] = relationship(lazy="joined")

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def totp_enrolled(self) -> bool:
        return self.totp_confirmed_at is not None

    @property
    def vendor_name(self) -> str | None:
        return self.vendor.name if self.vendor else None


class RecoveryCode(Base):
    """A single-use second factor, stored as a keyed hash only."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EndReason(enum.StrEnum):
    """Why a session stopped being valid."""

    SIGNED_OUT = "signed_out"
    SIGNED_OUT_EVERYWHERE = "signed_out_everywhere"
    REVOKED = "revoked"
    IDLE = "idle_timeout"
    ABSOLUTE = "absolute_timeout"
    PENDING_EXPIRED = "pending_expired"
    DEACTIVATED = "user_deactivated"
    MFA_RESET = "mfa_reset"


class UserSession(Base):
    """A server-side session. The cookie holds a random token; only its hash is stored.

    `ref` is a hash of the first token: it names the session in the audit log and on the
    "my sessions" page without being usable to take it over.
    """

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    ref: Mapped[str] = mapped_column(sa.String(32), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    mfa_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the person last re-entered a TOTP code to confirm a sensitive action (step-up).
    step_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(512))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(sa.String(32))

    user: Mapped[User] = relationship(lazy="joined")

    @property
    def mfa_verified(self) -> bool:
        return self.mfa_verified_at is not None
