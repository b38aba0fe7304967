"""Signing in: the password step, the second factor, enrolment, sign-out.

Every outcome, success or failure, is an audit event written in the same transaction as
the state it changes (failure counters, lockouts, sessions); the caller commits.
Failures are reported to the person with one generic message whatever the cause, so the
sign-in form does not reveal which accounts exist or which are locked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from portal.audit.models import Outcome
from portal.audit.services import Actor, record_event
from portal.auth import passwords, second_factor, sessions
from portal.auth.models import EndReason, User, UserSession
from portal.extensions import db

EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class LockoutPolicy:
    """After `threshold` consecutive failures the account is locked for `duration`."""

    threshold: int
    duration: timedelta


def normalise_email(email: str) -> str:
    """The form in which emails are stored and compared."""
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    """Look a user up by email, case-insensitively."""
    return db.session.scalar(sa.select(User).where(User.email == normalise_email(email)))


def actor_for(user: User, base: Actor, user_session: UserSession | None = None) -> Actor:
    """The audit actor for `user`, keeping the request's IP and user agent from `base`."""
    return replace(
        base,
        user_id=user.id,
        label=user.email,
        role=str(user.role),
        vendor=user.vendor_name,
        session_ref=user_session.ref if user_session else base.session_ref,
    )


def _typed_identity(email: str) -> str:
    """What to log for an unknown account: the address if it looks like one, else a hash.

    People sometimes type their password into the email field; the audit log is
    append-only, so anything that is not shaped like an address is kept only as a digest.
    """
    typed = normalise_email(email)
    if EMAIL_SHAPE.match(typed) and len(typed) <= 254:
        return typed
    return "unrecognised:" + hashlib.sha256(typed.encode()).hexdigest()[:16]


def _is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def _register_failure(user: User, now: datetime, lockout: LockoutPolicy, actor: Actor) -> None:
    """Count one failure in one UPDATE: parallel guesses must not overwrite each other's count."""
    failures = db.session.execute(
        sa.update(User)
        .where(User.id == user.id)
        .values(failed_attempts=User.failed_attempts + 1)
        .returning(User.failed_attempts)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    set_committed_value(user, "failed_attempts", failures)
    if failures >= lockout.threshold:
        user.locked_until = now + lockout.duration
        user.failed_attempts = 0
        db.session.flush()
        record_event(
            actor,
            "auth.lockout",
            outcome=Outcome.DENIED,
            target=f"user:{user.id}",
            details={"locked_until": user.locked_until.isoformat()},
        )


def sign_in_with_password(
    email: str,
    password: str,
    request_actor: Actor,
    now: datetime,
    lockout: LockoutPolicy,
    policy: sessions.SessionPolicy,
) -> tuple[UserSession, str] | None:
    """Check email and password; on success open a session that still needs 2FA.

    Returns the new session and its token, or None for every kind of failure (unknown
    email, wrong password, inactive or locked account), each audited with its reason.
    """
    user = find_user_by_email(email)
    password_ok = passwords.verify_password(user.password_hash if user else None, password)
    if user is None:
        record_event(
            replace(request_actor, label=_typed_identity(email)),
            "auth.sign_in",
            outcome=Outcome.FAILED,
            details={"reason": "unknown_account"},
        )
        return None
    actor = actor_for(user, request_actor)
    if not user.active:
        reason = "inactive"
    elif _is_locked(user, now):
        reason = "locked"
    elif not password_ok:
        reason = "wrong_password"
        _register_failure(user, now, lockout, actor)
    else:
        reason = ""
    if reason:
        outcome = Outcome.FAILED if reason == "wrong_password" else Outcome.DENIED
        record_event(
            actor,
            "auth.sign_in",
            outcome=outcome,
            target=f"user:{user.id}",
            details={"reason": reason},
        )
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    user_session, token = sessions.start_session(
        user, request_actor.ip, request_actor.user_agent, now, policy
    )
    record_event(
        actor_for(user, request_actor, user_session),
        "auth.sign_in",
        target=f"user:{user.id}",
        details={"step": "password", "next": "totp" if user.totp_enrolled else "enrol"},
    )
    return user_session, token


def verify_second_factor(
    user_session: UserSession,
    code: str,
    request_actor: Actor,
    now: datetime,
    lockout: LockoutPolicy,
) -> str | None:
    """Check a TOTP or recovery code; on success mark the session verified.

    Returns the session's new token (rotated at this step-up), or None on failure. A TOTP
    code whose time step already signed this user in is refused as a replay. Repeated
    failures lock the account and end the pending session.
    """
    user = user_session.user
    actor = actor_for(user, request_actor, user_session)
    target = f"user:{user.id}"
    if _is_locked(user, now):
        record_event(
            actor, "auth.second_factor", outcome=Outcome.DENIED, target=target, details={"reason": "locked"}
        )
        return None
    method = "totp"
    step = second_factor.matching_step(second_factor.decrypt_secret(user), code, now)
    if step is not None:
        if not second_factor.claim_step(user, step):
            _fail_second_factor(
                user,
                user_session,
                now,
                lockout,
                actor,
                {"method": "totp", "reason": "replay"},
                Outcome.DENIED,
            )
            return None
    elif second_factor.use_recovery_code(user, code, now):
        method = "recovery_code"
        record_event(
            actor,
            "auth.recovery_code_used",
            target=target,
            details={"remaining": second_factor.remaining_recovery_codes(user)},
        )
    else:
        _fail_second_factor(user, user_session, now, lockout, actor, {"reason": "wrong_code"}, Outcome.FAILED)
        return None
    return _complete_second_factor(user, user_session, now, actor, method)


def _fail_second_factor(
    user: User,
    user_session: UserSession,
    now: datetime,
    lockout: LockoutPolicy,
    actor: Actor,
    details: dict[str, str],
    outcome: Outcome,
) -> None:
    """Count the failure, then audit it; lock and end the pending session past the threshold.

    The user row is updated before the audit head is locked, the same order as the
    password step, so concurrent attempts on one account cannot deadlock.
    """
    _register_failure(user, now, lockout, actor)
    record_event(actor, "auth.second_factor", outcome=outcome, target=f"user:{user.id}", details=details)
    if _is_locked(user, now):
        sessions.end_session(user_session, EndReason.REVOKED, now, actor)


def _complete_second_factor(
    user: User, user_session: UserSession, now: datetime, actor: Actor, method: str
) -> str:
    user.failed_attempts = 0
    user_session.mfa_verified_at = now
    record_event(actor, "auth.second_factor", target=f"user:{user.id}", details={"method": method})
    return sessions.rotate_token(user_session)


def begin_enrolment(user: User) -> str:
    """Return the pending TOTP secret for `user`, creating one on first call.

    Reloading the page shows the same secret, so an authenticator that already scanned it
    keeps working. Refuses users who are already enrolled: re-enrolment needs an admin
    reset, otherwise a stolen password alone could replace the second factor.
    """
    if user.totp_enrolled:
        raise PermissionError("already enrolled")
    if user.totp_secret is None:
        user.totp_secret = second_factor.encrypt_secret(user, second_factor.new_secret())
    return second_factor.decrypt_secret(user)


def confirm_enrolment(
    user_session: UserSession, code: str, request_actor: Actor, now: datetime
) -> tuple[list[str], str] | None:
    """Confirm enrolment with a first code; return the recovery codes and the new token."""
    user = user_session.user
    actor = actor_for(user, request_actor, user_session)
    secret = begin_enrolment(user)
    step = second_factor.matching_step(secret, code, now)
    if step is None or not second_factor.claim_step(user, step):
        record_event(
            actor,
            "auth.totp_enrolment",
            outcome=Outcome.FAILED,
            target=f"user:{user.id}",
            details={"reason": "wrong_code"},
        )
        return None
    user.totp_confirmed_at = now
    codes = second_factor.issue_recovery_codes(user)
    record_event(
        actor, "auth.totp_enrolled", target=f"user:{user.id}", details={"recovery_codes": len(codes)}
    )
    return codes, _complete_second_factor(user, user_session, now, actor, "enrolment")


def sign_out(user_session: UserSession, request_actor: Actor, now: datetime) -> None:
    """End the current session at the person's request."""
    actor = actor_for(user_session.user, request_actor, user_session)
    sessions.end_session(user_session, EndReason.SIGNED_OUT, now, actor)


def confirm_step_up(
    user_session: UserSession,
    code: str,
    purpose: str,
    request_actor: Actor,
    now: datetime,
    lockout: LockoutPolicy,
) -> str | None:
    """Re-check a current TOTP code before a sensitive action; return the session's new token.

    Only a TOTP code counts: recovery codes are for a lost authenticator, not for
    confirming an export. The replay guard is the sign-in's (a time step is accepted once),
    so the code that just signed the person in does not confirm anything. A failure counts
    towards the lockout like any wrong code, and a lockout ends the session. Audited as
    `auth.step_up` with the `purpose`; the token is rotated, as at every step-up.
    """
    user = user_session.user
    actor = actor_for(user, request_actor, user_session)
    target = f"user:{user.id}"
    if _is_locked(user, now):
        record_event(
            actor,
            "auth.step_up",
            outcome=Outcome.DENIED,
            target=target,
            details={"purpose": purpose, "reason": "locked"},
        )
        return None
    step = second_factor.matching_step(second_factor.decrypt_secret(user), code, now)
    if step is None or not second_factor.claim_step(user, step):
        reason, outcome = ("wrong_code", Outcome.FAILED) if step is None else ("replay", Outcome.DENIED)
        _register_failure(user, now, lockout, actor)
        record_event(
            actor,
            "auth.step_up",
            outcome=outcome,
            target=target,
            details={"purpose": purpose, "reason": reason},
        )
        if _is_locked(user, now):
            sessions.end_session(user_session, EndReason.REVOKED, now, actor)
        return None
    user.failed_attempts = 0
    user_session.step_up_at = now
    record_event(actor, "auth.step_up", target=target, details={"purpose": purpose})
    return sessions.rotate_token(user_session)


def step_up_valid(user_session: UserSession, now: datetime, lifetime: timedelta) -> bool:
    """Whether the session's last step-up is recent enough for another sensitive action."""
    return user_session.step_up_at is not None and now - user_session.step_up_at < lifetime
