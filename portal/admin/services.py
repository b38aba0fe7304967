"""Admin operations. Each one is audited in the transaction that performs it."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from portal.audit.services import Actor, record_event
from portal.auth import passwords, sessions
from portal.auth.models import EndReason, RecoveryCode, Role, User, UserSession, Vendor
from portal.auth.services import EMAIL_SHAPE, normalise_email
from portal.exceptions import PortalError
from portal.extensions import db

VENDOR_NAME_PATTERN = re.compile(r"^[\w][\w .&'-]{1,118}$")
VENDOR_ROLES = {Role.ANNOTATOR, Role.SUPERVISOR}


def create_vendor(name: str, actor: Actor) -> Vendor:
    """Create a vendor organisation with a unique name."""
    name = " ".join(name.split())
    if not VENDOR_NAME_PATTERN.match(name):
        raise PortalError("vendor_name_invalid", "Vendor names are 2–120 letters, digits, spaces or .&'-")
    if db.session.scalar(sa.select(Vendor.id).where(sa.func.lower(Vendor.name) == name.lower())):
        raise PortalError("vendor_exists", f"A vendor named {name!r} already exists.")
    vendor = Vendor(name=name)
    db.session.add(vendor)
    db.session.flush()
    record_event(actor, "admin.vendor_created", target=f"vendor:{vendor.id}", details={"name": name})
    return vendor


def find_vendor(name: str) -> Vendor | None:
    """Look a vendor up by name, case-insensitively."""
    return db.session.scalar(sa.select(Vendor).where(sa.func.lower(Vendor.name) == name.strip().lower()))


PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # noqa: S105 (an alphabet, not a password)


def generate_password() -> str:
    """A random 125-bit password for a new account, easy to read out (shown once)."""
    groups = ("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(5)) for _ in range(5))
    return "-".join(groups)


def create_user(
    email: str,
    role: Role,
    vendor: Vendor | None,
    password: str,
    actor: Actor,
    full_name: str = "",
) -> User:
    """Create an account. Annotators need a vendor; auditors and admins have none.

    Supervisors without a vendor are internal and see every vendor.
    """
    email = normalise_email(email)
    if not EMAIL_SHAPE.match(email) or len(email) > 254:
        raise PortalError("email_invalid", "Enter a valid email address.")
    if db.session.scalar(sa.select(User.id).where(User.email == email)):
        raise PortalError("email_taken", "An account with this email already exists.")
    if role is Role.ANNOTATOR and vendor is None:
        raise PortalError("vendor_required", "Annotators belong to a vendor.")
    if role not in VENDOR_ROLES and vendor is not None:
        raise PortalError(
            "vendor_not_allowed", f"{role.value.title()}s are internal staff, without a vendor."
        )
    problems = passwords.password_problems(password, [email, *email.split("@"), full_name])
    if problems:
        raise PortalError("password_weak", " ".join(problems))
    user = User(
        email=email,
        role=role,
        vendor=vendor,
        vendor_id=vendor.id if vendor else None,
        full_name=" ".join(full_name.split()),
        password_hash=passwords.hash_password(password),
    )
    db.session.add(user)
    db.session.flush()
    record_event(
        actor,
        "admin.user_created",
        target=f"user:{user.id}",
        details={"email": email, "role": role.value, "vendor": vendor.name if vendor else None},
    )
    return user


def set_user_active(user: User, active: bool, actor: Actor, now: datetime) -> None:
    """Deactivate (ending every session at once) or reactivate an account."""
    if active == user.active:
        return
    user.active = active
    user.deactivated_at = None if active else now
    if not active:
        sessions.end_all_sessions(user, EndReason.DEACTIVATED, now, actor)
    record_event(
        actor,
        "admin.user_reactivated" if active else "admin.user_deactivated",
        target=f"user:{user.id}",
    )


def reset_second_factor(user: User, actor: Actor, now: datetime) -> None:
    """Remove a user's TOTP secret and recovery codes; they enrol again at next sign-in.

    Their sessions end too: a session verified with the old factor must not outlive it.
    """
    user.totp_secret = None
    user.totp_confirmed_at = None
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    sessions.end_all_sessions(user, EndReason.MFA_RESET, now, actor)
    record_event(actor, "admin.totp_reset", target=f"user:{user.id}")


def unlock_user(user: User, actor: Actor) -> None:
    """Lift a temporary lockout before it runs out."""
    user.locked_until = None
    user.failed_attempts = 0
    record_event(actor, "admin.user_unlocked", target=f"user:{user.id}")


def revoke_session(user_session: UserSession, actor: Actor, now: datetime) -> None:
    """End one session of any user."""
    if user_session.ended_at is None:
        sessions.end_session(user_session, EndReason.REVOKED, now, actor)


def list_users() -> list[User]:
    """Every account, grouped by vendor then email."""
    return list(
        db.session.scalars(sa.select(User).outerjoin(Vendor).order_by(Vendor.name.nulls_first(), User.email))
    )


def list_vendors() -> list[tuple[Vendor, int]]:
    """Every vendor with its number of active users."""
    rows = db.session.execute(
        sa.select(Vendor, sa.func.count(User.id))
        .outerjoin(User, sa.and_(User.vendor_id == Vendor.id, User.active.is_(True)))
        .group_by(Vendor.id)
        .order_by(Vendor.name)
    )
    return [(vendor, count) for vendor, count in rows]


def set_working_hours(
    vendor: Vendor, start: time | None, end: time | None, timezone: str | None, actor: Actor
) -> None:
    """Declare the hours a vendor's people work (local time, end exclusive), or clear them.

    Give all three or none. An end before the start spans midnight (22:00–06:00). The
    audit's "access outside working hours" rule reads them. Audited.
    """
    timezone = (timezone or "").strip() or None
    given = [value is not None for value in (start, end, timezone)]
    if any(given) and not all(given):
        raise PortalError("hours_incomplete", "Give the start, the end and the time zone, or none of them.")
    if start is not None and start == end:
        raise PortalError("hours_empty", "The start and the end of the working day must differ.")
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise PortalError(
                "timezone_unknown", f"{timezone!r} is not a time zone name (Europe/Berlin)."
            ) from None
    vendor.work_start, vendor.work_end, vendor.work_timezone = start, end, timezone
    db.session.flush()
    record_event(
        actor,
        "admin.vendor_hours_set",
        target=f"vendor:{vendor.id}",
        details={
            "start": start.strftime("%H:%M") if start else None,
            "end": end.strftime("%H:%M") if end else None,
            "timezone": timezone,
        },
    )
