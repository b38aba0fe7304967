"""Appending to the audit log and signing checkpoints.

`record_event` queues an event in the caller's transaction; the events are appended to
the chain just before that transaction commits (a `before_commit` hook). The event
commits with the change it describes or not at all (fail closed): if the append fails,
the commit fails and the whole transaction rolls back.

Appenders serialise on the `audit_head` row (its row lock on PostgreSQL, the write lock
taken by BEGIN IMMEDIATE on SQLite), so the chain order is the commit order, concurrent
writers never fork it, and a transaction that rolls back leaves no gap. Appending at
commit time keeps that lock for the append and the COMMIT only, instead of from the
middle of a request to its end, and makes the chain head the last lock every transaction
takes, so it cannot be part of a lock-order deadlock. On PostgreSQL the append is one
statement that also hashes (see APPEND_EVENT_POSTGRESQL), so the head is held for that
statement and the COMMIT, with no work in Python in between.
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
from portal.db import UTCDateTime, note_write
from portal.extensions import db
from portal.keys import portal_keys

# Built once, and Core rather than ORM statements: the head stays locked from the moment
# it is read to the COMMIT, so CPU spent there is time every other audited request waits.
HEAD = AuditHead.__table__
LOCK_HEAD = sa.select(HEAD.c.seq, HEAD.c.hash, HEAD.c.occurred_at).where(HEAD.c.id == 1).with_for_update()
INSERT_EVENT = sa.insert(AuditEvent.__table__)
MOVE_HEAD = (
    sa.update(HEAD)
    .where(HEAD.c.id == 1)
    .values(seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash"), occurred_at=sa.bindparam("new_time"))
)
# On PostgreSQL one statement locks the head, dates, numbers and hashes the event, stores
# it and moves the head; the COMMIT follows at once. A statement that only locked the
# head would hand the hashing back to Python while the head stays locked, and under load
# the thread then waits milliseconds for the GIL (measured: the head was locked 97 % of
# the time, 4 ms per append). The event's time is the one read before the lock, or the
# previous event's if that is later (kept in the head row: see migration 0008), so that
# times still follow sequence numbers.
# `chain.canonical_event_around` cuts the canonical JSON where the time and the number
# go; the hash is `chain.link_hash` over `chain.digest_text` of it, as in Python.
APPEND_EVENT_POSTGRESQL = (
    sa.text(
        """
    WITH head AS (
        SELECT audit_head.seq + 1 AS seq, audit_head.hash AS prev_hash,
               GREATEST(:occurred_at, audit_head.occurred_at) AS occurred_at
        FROM audit_head WHERE audit_head.id = 1 FOR UPDATE
    ), linked AS (
        SELECT seq, prev_hash, occurred_at,
               encode(sha256(convert_to(prev_hash || E'\\n' || encode(sha256(convert_to(
                   :before_time || to_char(occurred_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                   || :before_seq || seq::text || :after_seq, 'UTF8')), 'hex'), 'UTF8')), 'hex') AS hash
        FROM head
    ), moved AS (
        UPDATE audit_head SET seq = linked.seq, hash = linked.hash, occurred_at = linked.occurred_at
        FROM linked WHERE audit_head.id = 1
    )
    INSERT INTO audit_events (seq, occurred_at, actor_id, actor, role, vendor, session_ref, ip,
                              user_agent, action, target, outcome, details, prev_hash, hash)
    SELECT seq, occurred_at, :actor_id, :actor, :role, :vendor, :session_ref, :ip,
           :user_agent, :action, :target, :outcome, :details, prev_hash, hash
    FROM linked
    RETURNING seq, occurred_at, prev_hash, hash
    """
    )
    .bindparams(sa.bindparam("occurred_at", type_=UTCDateTime))
    .columns(seq=sa.BigInteger, occurred_at=UTCDateTime, prev_hash=sa.String, hash=sa.String)
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
    note_write(db.session)
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
    if session.get_bind().dialect.name == "postgresql":
        linked = _append_in_postgresql(session, pending)
    else:
        linked = _append_in_python(session, pending)
    every = current_app.config["AUDIT_CHECKPOINT_EVERY"]
    for event in linked:
        if every > 0 and event["seq"] % every == 0:
            write_checkpoint(portal_keys().audit_signing_key, event["seq"], event["hash"])
    return linked


def _append_in_postgresql(session: Session, pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append each event with one statement that also locks and moves the head."""
    now = utcnow()
    for event in pending:
        before_time, before_seq, after_seq = chain.canonical_event_around(event)
        stored = session.execute(
            APPEND_EVENT_POSTGRESQL,
            {
                **event,
                "details": chain.canonical_json(event["details"]),
                "occurred_at": now,
                "before_time": before_time,
                "before_seq": before_seq,
                "after_seq": after_seq,
            },
        ).one()
        event.update(
            seq=stored.seq,
            occurred_at=chain.format_time(stored.occurred_at),
            prev_hash=stored.prev_hash,
            hash=stored.hash,
        )
    return pending


def _append_in_python(session: Session, pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lock the head, link the events to it here, store them and move the head.

    On SQLite the write lock is already held since BEGIN IMMEDIATE: no round trips.
    """
    head_seq, head_hash, head_time = session.execute(LOCK_HEAD).one()
    # Read the clock only once the head is ours, so that times follow sequence numbers.
    now = max(utcnow(), head_time) if head_time else utcnow()
    rows = []
    for event in pending:
        head_seq += 1
        event["seq"] = head_seq
        event["occurred_at"] = chain.format_time(now)
        event["prev_hash"] = head_hash
        event["hash"] = head_hash = chain.event_hash(head_hash, event)
        rows.append({**event, "occurred_at": now, "details": chain.canonical_json(event["details"])})
    session.execute(INSERT_EVENT, rows)
    session.execute(MOVE_HEAD, {"new_seq": head_seq, "new_hash": head_hash, "new_time": now})
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
    head_seq, head_hash, _ = db.session.execute(LOCK_HEAD).one()
    if head_seq == 0:
        return None
    return write_checkpoint(signing_key, head_seq, head_hash)
