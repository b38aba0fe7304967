"""Server-side sessions: creation, lookup with expiry, token rotation and revocation.

The cookie carries a 256-bit random token; the database keeps only its SHA-256, so a
leaked database does not hand out live sessions. A new session (and token) is made at
every sign-in, and the token is rotated again when the second factor is verified.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from portal.audit.services import Actor, record_event
from portal.auth.models import EndReason, User, UserSession
from portal.extensions import db
from portal.nda.services import accepted_current_nda

TOUCH_INTERVAL = timedelta(seconds=15)

# Every request runs it: built once, not per request (building and cache-keying a
# statement costs about as much CPU as executing it).
FIND_SESSION = sa.select(UserSession, accepted_current_nda(UserSession.user_id)).where(
    UserSession.token_hash == sa.bindparam("token_hash")
)


@dataclass(frozen=True)
class SessionPolicy:
    """How long sessions live; built from configuration by the caller."""

    idle: timedelta
    absolute: timedelta
    pending: timedelta


def hash_token(token: str) -> str:
    """The form in which a session token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    user: User, ip: str | None, user_agent: str | None, now: datetime, policy: SessionPolicy
) -> tuple[UserSession, str]:
    """Open a session that has passed the password step only; return it and its token."""
    token = secrets.token_urlsafe(32)
    user_session = UserSession(
        token_hash=hash_token(token),
        ref=hash_token("ref:" + token)[:32],
        user_id=user.id,
        user=user,
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.absolute,
        ip=ip,
        user_agent=(user_agent or "")[:512] or None,
    )
    db.session.add(user_session)
    db.session.flush()
    return user_session, token


def rotate_token(user_session: UserSession) -> str:
    """Give `user_session` a new token (the old cookie stops working) and return it."""
    token = secrets.token_urlsafe(32)
    user_session.token_hash = hash_token(token)
    db.session.flush()
    return token


def expiry_reason(user_session: UserSession, now: datetime, policy: SessionPolicy) -> EndReason | None:
    """Why `user_session` is no longer valid at `now`, or None if it still is."""
    if now >= user_session.expires_at:
        return EndReason.ABSOLUTE
    if not user_session.mfa_verified and now - user_session.created_at >= policy.pending:
        return EndReason.PENDING_EXPIRED
    if now - user_session.last_seen_at >= policy.idle:
        return EndReason.IDLE
    return None


@dataclass(frozen=True)
class FoundSession:
    """A live session, as `find_session` found it.

    `nda_accepted` answers the gate chain's NDA question as of the lookup; `touched` says
    whether the lookup refreshed `last_seen_at`, a change the caller must commit.
    """

    session: UserSession
    nda_accepted: bool
    touched: bool


def find_session(token: str, now: datetime, policy: SessionPolicy, actor: Actor) -> FoundSession | None:
    """Return the live session for `token`, ending it (audited) if it has just expired.

    A session of a deactivated user is never returned. `last_seen_at` is refreshed at most
    every TOUCH_INTERVAL so that reading pages does not write on every request. One round
    trip: the session, its user and vendor, and whether the user accepted the current NDA
    (every signed-in request asks both).
    """
    row = db.session.execute(FIND_SESSION, {"token_hash": hash_token(token)}).one_or_none()
    if row is None:
        return None
    user_session, nda_accepted = row
    if user_session.ended_at is not None:
        return None
    reason = expiry_reason(user_session, now, policy)
    if reason is None and not user_session.user.active:
        reason = EndReason.DEACTIVATED
    if reason is not None:
        end_session(user_session, reason, now, actor)
        return None
    touched = now - user_session.last_seen_at >= TOUCH_INTERVAL
    if touched:
        user_session.last_seen_at = now
    return FoundSession(user_session, bool(nda_accepted), touched)


def end_session(user_session: UserSession, reason: EndReason, now: datetime, actor: Actor) -> None:
    """End one session and record why."""
    user_session.ended_at = now
    user_session.end_reason = str(reason)
    action = {
        EndReason.SIGNED_OUT: "session.signed_out",
        EndReason.IDLE: "session.expired",
        EndReason.ABSOLUTE: "session.expired",
        EndReason.PENDING_EXPIRED: "session.expired",
    }.get(reason, "session.revoked")
    record_event(
        actor,
        action,
        target=f"session:{user_session.ref}",
        details={"reason": str(reason), "user_id": user_session.user_id},
    )
    db.session.flush()


def end_all_sessions(
    user: User,
    reason: EndReason,
    now: datetime,
    actor: Actor,
    keep: UserSession | None = None,
) -> int:
    """End every live session of `user` except `keep`; return how many were ended."""
    query = sa.select(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    if keep is not None:
        query = query.where(UserSession.id != keep.id)
    sessions = db.session.scalars(query).all()
    for user_session in sessions:
        end_session(user_session, reason, now, actor)
    return len(sessions)


def live_sessions(user: User) -> list[UserSession]:
    """The user's sessions that have not ended, newest first."""
    return list(
        db.session.scalars(
            sa.select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
            .order_by(UserSession.created_at.desc())
        )
    )
