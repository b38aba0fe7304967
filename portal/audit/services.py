"""Appending to the audit log and signing checkpoints.

`record_event` runs inside the caller's transaction: the event commits with the change it
describes or not at all (fail closed). Appenders serialise on the `audit_head` row
(`SELECT ... FOR UPDATE` on PostgreSQL, the write lock taken by BEGIN IMMEDIATE on
SQLite), so the chain order is the commit order and concurrent writers never fork it.
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

MAX_USER_AGENT = 512


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
    now = utcnow()
    head_seq, head_hash = session.execute(
        sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
    ).one()
    event: dict[str, Any] = {
        "seq": head_seq + 1,
        "occurred_at": chain.format_time(now),
        "actor_id": actor.user_id,
        "actor": actor.label,
        "role": actor.role,
        "vendor": actor.vendor,
        "session_ref": actor.session_ref,
        "ip": actor.ip,
        "user_agent": (actor.user_agent or "")[:MAX_USER_AGENT] or None,
        "action": action,
        "target": target,
        "outcome": str(outcome),
        "details": json.loads(chain.canonical_json(dict(details or {}))),
    }
    event["prev_hash"] = head_hash
    event["hash"] = chain.event_hash(head_hash, event)
    session.execute(
        sa.insert(AuditEvent).values(
            {
                **event,
                "occurred_at": now,
                "details": chain.canonical_json(event["details"]),
            }
        )
    )
    session.execute(
        sa.update(AuditHead).where(AuditHead.id == 1).values(seq=event["seq"], hash=event["hash"])
    )
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


def checkpoint_head(signing_key: Ed25519PrivateKey) -> AuditCheckpoint:
    """Sign the chain's current head (used by exports and `flask audit checkpoint`)."""
    head_seq, head_hash = db.session.execute(
        sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
    ).one()
    return write_checkpoint(signing_key, head_seq, head_hash)
