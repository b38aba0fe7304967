"""Streaming exports of the audit log and verification of the stored chain.

An export reads events in sequence order in batches (constant memory whatever the size),
puts each stored checkpoint right after the event it covers, and ends with a seal signed
when the export is made, so an auditor can verify it offline with `portal.audit.verify`
and the public key alone: a history rewritten in the database after a checkpoint was
signed fails at that checkpoint, and an export cut short fails for want of its seal.
"""

from __future__ import annotations

import csv
import io
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from portal.audit import chain
from portal.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from portal.audit.services import write_checkpoint
from portal.audit.verify import CSV_COLUMNS, Verification, csv_cell, verify_records
from portal.clock import utcnow
from portal.extensions import db

BATCH = 2000
FORMATS = ("jsonl", "csv")


@dataclass(frozen=True)
class Seal:
    """The signature that closes one export: the chain's head when the export was made."""

    seq: int
    head_hash: str
    signed_at: str
    key_id: str
    signature: str


def event_record(event: Any) -> dict[str, Any]:
    """The exported form of a stored event: exactly the hashed fields plus both hashes."""
    return {
        "type": "event",
        "seq": event.seq,
        "occurred_at": chain.format_time(event.occurred_at),
        "actor_id": event.actor_id,
        "actor": event.actor,
        "role": event.role,
        "vendor": event.vendor,
        "session_ref": event.session_ref,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "details": json.loads(event.details),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def checkpoint_record(checkpoint: AuditCheckpoint | Seal, kind: str = "checkpoint") -> dict[str, Any]:
    """The exported form of a checkpoint (or, with `kind="seal"`, of an export's seal)."""
    return {
        "type": kind,
        "seq": checkpoint.seq,
        "head_hash": checkpoint.head_hash,
        "signed_at": checkpoint.signed_at,
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }


def stored_events(session: Session, up_to: int | None = None) -> Iterator[Any]:
    """Stored event rows in sequence order, fetched in keyset batches (no ORM identity map)."""
    table = AuditEvent.__table__
    after = 0
    while True:
        query = sa.select(table).where(table.c.seq > after)
        if up_to is not None:
            query = query.where(table.c.seq <= up_to)
        batch = session.execute(query.order_by(table.c.seq).limit(BATCH)).all()
        if not batch:
            return
        yield from batch
        after = batch[-1].seq


def chain_records(session: Session, up_to: int | None = None) -> Iterator[dict[str, Any]]:
    """Events in order, each stored checkpoint right after the event it covers.

    A checkpoint whose event is missing comes after the next event, or at the end, where
    verification reports it as out of place.
    """
    query = sa.select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)
    if up_to is not None:
        query = query.where(AuditCheckpoint.seq <= up_to)
    pending = deque(checkpoint_record(checkpoint) for checkpoint in session.scalars(query))
    for event in stored_events(session, up_to):
        yield event_record(event)
        while pending and pending[0]["seq"] <= event.seq:
            yield pending.popleft()
    yield from pending


def seal_head(signing_key: Ed25519PrivateKey) -> Seal | None:
    """Seal the chain's current head for an export; None while the log is empty.

    A checkpoint over the same head is stored too (the caller commits), so the database
    keeps a signed trace of every export; the seal itself only closes the export. The
    caller also records the export, with the sealed head, as an audit event.
    """
    head = db.session.execute(sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    if head.seq == 0:
        return None
    write_checkpoint(signing_key, head.seq, head.hash)
    signed_at = chain.format_time(utcnow())
    return Seal(
        seq=head.seq,
        head_hash=head.hash,
        signed_at=signed_at,
        key_id=chain.public_key_id(signing_key.public_key()),
        signature=chain.sign_checkpoint(signing_key, head.seq, head.hash, signed_at, chain.SEAL_DOMAIN),
    )


def export_records(seal: Seal) -> Iterator[dict[str, Any]]:
    """Every event up to `seal` with the stored checkpoints among them, then the seal."""
    yield from chain_records(db.session, up_to=seal.seq)
    yield checkpoint_record(seal, "seal")


def encode_jsonl(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    """One JSON object a line."""
    for record in records:
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def encode_csv(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    """A header line, then one row a record; details as canonical JSON (see `csv_cell`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        row = dict(record)
        if "details" in row:
            row["details"] = chain.canonical_json(row["details"])
        writer.writerow([csv_cell(row.get(name)) for name in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def encode(records: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    """Encode records in `fmt` (one of FORMATS)."""
    if fmt == "csv":
        yield from encode_csv(records)
    else:
        yield from encode_jsonl(records)


def verify_database(signing_key: Ed25519PrivateKey) -> Verification:
    """Verify the stored chain and every stored checkpoint against the signing key.

    Also checks that the head row points at the last event: a deleted tail shows up
    there even before the next checkpoint. On PostgreSQL the check reads one snapshot in
    its own transaction, so events appended meanwhile are neither half-seen nor reported
    as a mismatch with the head; on SQLite the session's transaction already holds the
    write lock (BEGIN IMMEDIATE), which gives the same guarantee.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return _verify_stored_chain(db.session, signing_key)
    with Session(db.engine) as snapshot:
        snapshot.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
        return _verify_stored_chain(snapshot, signing_key)


def _verify_stored_chain(session: Session, signing_key: Ed25519PrivateKey) -> Verification:
    head = session.execute(sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one_or_none()
    records = ((None, record) for record in chain_records(session))
    result = verify_records(records, signing_key.public_key(), require_sealed_tail=False)
    if head is None:
        result.problems.append(
            "the chain head row is missing: no audited action can happen until it is restored"
        )
    elif not result.problems:
        last_seq, last_hash = result.last_seq or 0, result.last_hash or chain.GENESIS_HASH
        if head.seq > last_seq:
            result.problems.append(
                f"event seq {last_seq + 1} is missing: the chain head is at seq {head.seq} "
                f"but the last stored event is seq {last_seq} (the tail was deleted)"
            )
        elif head.seq < last_seq:
            result.problems.append(
                f"event seq {head.seq + 1} lies beyond the chain head (seq {head.seq}): "
                "events were added without going through the portal"
            )
        elif head.hash != last_hash:
            result.problems.append(f"the chain head does not match event seq {head.seq}: its hash differs")
    return result
