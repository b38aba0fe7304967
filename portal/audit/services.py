"""Appending to the audit log and signing checkpoints.

`record_event` queues an event in the caller's transaction; the events are appended to
the chain just before that transaction commits (a `before_commit` hook). The event
commits with the change it describes or not at all (fail closed): if the append fails,
the commit fails and the whole transaction rolls back.

Appenders serialise on the `audit_head` row (`SELECT ... FOR UPDATE` on PostgreSQL, the
write lock taken by BEGIN IMMEDIATE on SQLite), so the chain order is the commit order,
concurrent writers never fork it, and a transaction that rolls back leaves no gap.
Appending at commit time keeps that lock for the few statements of the append and the
COMMIT only, instead of from the middle of a request to its end, and makes the chain head
the last lock every transaction takes, so it cannot be part of a lock-order deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.event
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import current_app
from sqlalchemy.orm import Session

from portal.audit import chain
from portal.audit.models import AuditCheckpoint, AuditEvent, AuditHead, Outcome
from portal.clock import utcnow
from portal.extensions import db
from portal.keys import portal_keys

# Built once, and Core rather than ORM statements: the head stays locked from the SELECT
# to the COMMIT, so CPU spent there is time every other audited request waits.
HEAD = AuditHead.__table__
LOCK_HEAD = sa.select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1).with_for_update()
INSERT_EVENT = sa.insert(AuditEvent.__table__)
MOVE_HEAD = (
    sa.update(HEAD).where(HEAD.c.id == 1).values(seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash"))
)
# On PostgreSQL the insert moves the head too, through a data-modifying CTE: one round
# trip less while the head is locked. SQLite has no such CTEs (nor round trips).
INSERT_EVENT_MOVING_HEAD = INSERT_EVENT.add_cte(MOVE_HEAD.cte("moved_head"))
TEXT_LIMITS = {
    column.name: column.type.length
    for column in AuditEvent.__table__.columns
    if isinstance(column.type, sa.String) and column.type.length
}


@dataclass(frozen=True)
class Actor:
    """Who did something, from where: the context every audit event carries."""

    user_id: int | None = None
    label: str | None = None
    role: str | None = None
    vendor: str | None = None
    session_ref: str | None = None
    ip: str | None = None
    user_agent: str | None = None


SYSTEM = Actor(label="system")

PENDING = "portal.audit.pending"


def _storable(name: str, value: str | None) -> str | None:
    """Fit `value` into its column on every backend, the same way before it is hashed.

    PostgreSQL refuses over-long values, NUL characters and (through the driver) lone
    surrogates; SQLite takes them. Refusing would make a request that merely carries odd
    input (a user agent, an email typed at sign-in) fail instead of being recorded.
    """
    if value is None:
        return None
    text = str(value)[: TEXT_LIMITS[name]].replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8")


def _storable_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Details as the JSON they will be read back as: string keys, lists, no lone surrogates."""
    text = json.dumps(dict(details or {}), ensure_ascii=False)
    return json.loads(text.encode("utf-8", "replace"))


def record_event(
    actor: Actor,
    action: str,
    *,
    outcome: Outcome = Outcome.ALLOWED,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Queue one event for the chain; it is appended when the current transaction commits.

    Returns the queued event (its `seq`, time and hashes are filled in at commit). Nothing
    is written if the transaction rolls back.
    """
    event: dict[str, Any] = {
        "actor_id": actor.user_id,
        "actor": _storable("actor", actor.label),
        "role": _storable("role", actor.role),
        "vendor": _storable("vendor", actor.vendor),
        "session_ref": _storable("session_ref", actor.session_ref),
        "ip": _storable("ip", actor.ip),
        "user_agent": _storable("user_agent", actor.user_agent),
        "action": _storable("action", action),
        "target": _storable("target", target),
        "outcome": str(outcome),
        "details": _storable_details(details),
    }
    db.session.info.setdefault(PENDING, []).append(event)
    return event


def append_pending(session: Session) -> list[dict[str, Any]]:
    """Append the session's queued events to the chain, in one locked batch.

    Called by the `before_commit` hook; call it directly only to append before a commit
    on purpose. Raises whatever the database raises (the commit then fails).
    """
    pending: list[dict[str, Any]] = session.info.pop(PENDING, [])
    if not pending:
        return []
    # The caller's pending changes go first: the head is the last lock a transaction takes.
    session.flush()
    head_seq, head_hash = session.execute(LOCK_HEAD).one()
    # Read the clock only once the head is ours, so that times follow sequence numbers.
    now = utcnow()
    every = current_app.config["AUDIT_CHECKPOINT_EVERY"]
    rows, checkpoints = [], []
    for event in pending:
        head_seq += 1
        event["seq"] = head_seq
        event["occurred_at"] = chain.format_time(now)
        event["prev_hash"] = head_hash
        event["hash"] = head_hash = chain.event_hash(head_hash, event)
        rows.append({**event, "occurred_at": now, "details": chain.canonical_json(event["details"])})
        if every > 0 and head_seq % every == 0:
            checkpoints.append((head_seq, head_hash))
    moved = {"new_seq": head_seq, "new_hash": head_hash}
    if session.get_bind().dialect.name == "postgresql":
        batch = [{**row, **moved} for row in rows]
        # One event (the common case) is a plain execute, not the driver's batch machinery.
        session.execute(INSERT_EVENT_MOVING_HEAD, batch[0] if len(batch) == 1 else batch)
    else:
        session.execute(INSERT_EVENT, rows)
        session.execute(MOVE_HEAD, moved)
    for seq, seq_hash in checkpoints:
        write_checkpoint(portal_keys().audit_signing_key, seq, seq_hash)
    return pending


@sqlalchemy.event.listens_for(db.session, "before_commit")
def _append_before_commit(session: Session) -> None:
    append_pending(session)


@sqlalchemy.event.listens_for(db.session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)


def write_checkpoint(signing_key: Ed25519PrivateKey, seq: int, head_hash: str) -> AuditCheckpoint:
    """Sign (`seq`, `head_hash`) and store the checkpoint in the current transaction."""
    signed_at = chain.format_time(utcnow())
    checkpoint = AuditCheckpoint(
        seq=seq,
        head_hash=head_hash,
        signed_at=signed_at,
        key_id=chain.public_key_id(signing_key.public_key()),
        signature=chain.sign_checkpoint(signing_key, seq, head_hash, signed_at),
    )
    db.session.add(checkpoint)
    db.session.flush()
    return checkpoint


def checkpoint_head(signing_key: Ed25519PrivateKey) -> AuditCheckpoint | None:
    """Sign the chain's current head now (`flask audit checkpoint`); None while it is empty."""
    append_pending(db.session)
    head_seq, head_hash = db.session.execute(LOCK_HEAD).one()
    if head_seq == 0:
        return None
    return write_checkpoint(signing_key, head_seq, head_hash)
