"""Appending to the audit log and signing checkpoints.

`record_event` runs inside the caller's transaction: the event commits with the change it
describes or not at all (fail closed). Appenders serialise on the `audit_head` row
(`SELECT ... FOR UPDATE` on PostgreSQL, the write lock taken by BEGIN IMMEDIATE on
SQLite), so the chain order is the commit order, concurrent writers never fork it, and a
transaction that rolls back leaves no gap: the next writer takes the same number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import current_app

from portal.audit import chain
from portal.audit.models import AuditCheckpoint, AuditEvent, AuditHead, Outcome
from portal.clock import utcnow
from portal.extensions import db
from portal.keys import portal_keys

# Built once: the head stays locked from the SELECT to the COMMIT, so time spent building
# statements there is time every other audited request waits. LOCK_HEAD is an ORM select,
# so that the caller's pending changes are flushed before the head is locked.
LOCK_HEAD = sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
INSERT_EVENT = sa.insert(AuditEvent.__table__)
MOVE_HEAD = (
    sa.update(AuditHead.__table__)
    .where(AuditHead.__table__.c.id == 1)
    .values(seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash"))
)
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
    """Append one event to the chain in the current transaction and return it.

    Every `AUDIT_CHECKPOINT_EVERY` events a signed checkpoint is written in the same
    transaction. Raises whatever the database raises; the caller's transaction must then
    roll back, so the action the event describes does not happen either.
    """
    session = db.session
    head_seq, head_hash = session.execute(LOCK_HEAD).one()
    # Read the clock only once the head is ours, so that times follow sequence numbers.
    now = utcnow()
    event: dict[str, Any] = {
        "seq": head_seq + 1,
        "occurred_at": chain.format_time(now),
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
    event["prev_hash"] = head_hash
    event["hash"] = chain.event_hash(head_hash, event)
    session.execute(
        INSERT_EVENT, {**event, "occurred_at": now, "details": chain.canonical_json(event["details"])}
    )
    session.execute(MOVE_HEAD, {"new_seq": event["seq"], "new_hash": event["hash"]})
    every = current_app.config["AUDIT_CHECKPOINT_EVERY"]
    if every > 0 and event["seq"] % every == 0:
        write_checkpoint(portal_keys().audit_signing_key, event["seq"], event["hash"])
    return event


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
    head_seq, head_hash = db.session.execute(LOCK_HEAD).one()
    if head_seq == 0:
        return None
    return write_checkpoint(signing_key, head_seq, head_hash)
