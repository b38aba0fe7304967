"""Publishing NDA versions and accepting them.

The newest published version is the current one. A user has passed the NDA gate only
while they have accepted exactly that version, so publishing a new version sends every
user back through the gate at their next request.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa

from portal.audit.services import Actor, record_event
from portal.auth.models import User
from portal.exceptions import PortalError
from portal.extensions import db
from portal.nda.models import NdaAcceptance, NdaVersion

MAX_BODY = 200_000


def current_nda() -> NdaVersion | None:
    """The version everybody must have accepted, or None before the first publication."""
    return db.session.scalar(sa.select(NdaVersion).order_by(NdaVersion.version.desc()).limit(1))


def accepted_current_nda(user_id: sa.ColumnElement[int] | int) -> sa.ColumnElement[bool]:
    """SQL for "the user accepted the current version" (true while none is published).

    An expression rather than a query so that the session lookup, which runs on every
    request, can ask it in the same round trip (`portal.auth.sessions.find_session`).
    """
    current = sa.select(NdaVersion.id).order_by(NdaVersion.version.desc()).limit(1).scalar_subquery()
    accepted = (
        sa.select(NdaAcceptance.id)
        .where(NdaAcceptance.user_id == user_id, NdaAcceptance.nda_version_id == current)
        .exists()
    )
    return sa.or_(current.is_(None), accepted)


def has_accepted_current_nda(user: User) -> bool:
    """Whether `user` accepted the current version (True while none is published)."""
    return bool(db.session.scalar(sa.select(accepted_current_nda(user.id))))


def publish_nda(title: str, body: str, actor: Actor, now: datetime) -> NdaVersion:
    """Publish a new NDA version; it becomes current at once."""
    title, body = title.strip(), body.strip()
    if not title or not body:
        raise PortalError("nda_empty", "An NDA needs a title and a text.")
    if len(body) > MAX_BODY or len(title) > 200:
        raise PortalError("nda_too_long", "The NDA text is too long.")
    latest = db.session.scalar(sa.select(sa.func.max(NdaVersion.version))) or 0
    nda = NdaVersion(
        version=latest + 1,
        title=title,
        body=body,
        sha256=hashlib.sha256(body.encode()).hexdigest(),
        published_at=now,
        published_by=actor.label or "unknown",
    )
    db.session.add(nda)
    db.session.flush()
    record_event(
        actor,
        "nda.published",
        target=f"nda:{nda.version}",
        details={"sha256": nda.sha256, "title": nda.title},
    )
    return nda


def accept_nda(user: User, version: int, full_name: str, actor: Actor, now: datetime) -> NdaAcceptance:
    """Record that `user` accepted NDA `version`, which must still be the current one.

    The version shown on the page is posted back, so a version published while the user
    was reading cannot be accepted unseen.
    """
    current = current_nda()
    if current is None or current.version != version:
        raise PortalError("nda_outdated", "A newer NDA was published. Read it and accept again.")
    full_name = " ".join(full_name.split())
    if len(full_name) < 2 or len(full_name) > 200:
        raise PortalError("nda_name_required", "Type your full name to sign.")
    # Lock the user's row so a double-submitted form waits here instead of colliding on
    # the unique (user, version) constraint.
    db.session.execute(sa.select(User.id).where(User.id == user.id).with_for_update())
    acceptance = db.session.scalar(
        sa.select(NdaAcceptance).where(
            NdaAcceptance.user_id == user.id, NdaAcceptance.nda_version_id == current.id
        )
    )
    if acceptance is not None:
        return acceptance
    acceptance = NdaAcceptance(
        user_id=user.id,
        nda_version_id=current.id,
        sha256=current.sha256,
        full_name=full_name,
        accepted_at=now,
        ip=actor.ip,
        user_agent=(actor.user_agent or "")[:512] or None,
    )
    db.session.add(acceptance)
    db.session.flush()
    record_event(
        actor,
        "nda.accepted",
        target=f"nda:{current.version}",
        details={"sha256": current.sha256, "full_name": full_name},
    )
    return acceptance


def acceptances_of(user: User) -> list[NdaAcceptance]:
    """Every NDA acceptance of `user`, newest first."""
    return list(
        db.session.scalars(
            sa.select(NdaAcceptance)
            .where(NdaAcceptance.user_id == user.id)
            .order_by(NdaAcceptance.accepted_at.desc())
        )
    )
