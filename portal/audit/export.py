"""Streaming exports of the audit log and verification of the stored chain.

An export reads events in sequence order in batches (constant memory whatever the size)
and ends with a signed checkpoint over its last event, so an auditor can verify it
offline with `portal.audit.verify` and the public key alone.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portal.audit import chain
from portal.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from portal.audit.services import write_checkpoint
from portal.audit.verify import CSV_COLUMNS, Verification, verify_records
from portal.extensions import db

BATCH = 2000
FORMATS = ("jsonl", "csv")


def event_record(event: AuditEvent) -> dict[str, Any]:
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


def checkpoint_record(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """The exported form of a checkpoint."""
    return {
        "type": "checkpoint",
        "seq": checkpoint.seq,
        "head_hash": checkpoint.head_hash,
        "signed_at": checkpoint.signed_at,
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }


def stored_events(up_to: int | None = None) -> Iterator[AuditEvent]:
    """Stored events in sequence order, fetched in keyset batches."""
    after = 0
    while True:
        query = sa.select(AuditEvent).where(AuditEvent.seq > after)
        if up_to is not None:
            query = query.where(AuditEvent.seq <= up_to)
        batch = db.session.scalars(query.order_by(AuditEvent.seq).limit(BATCH)).all()
        if not batch:
            return
        yield from batch
        after = batch[-1].seq
        db.session.expunge_all()


def seal_head(signing_key: Ed25519PrivateKey) -> AuditCheckpoint | None:
    """A checkpoint over the current head, reusing the latest one if it already covers it.

    The caller commits, so the checkpoint an export ends with is also kept in the database.
    """
    head = db.session.execute(sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    if head.seq == 0:
        return None
    latest = db.session.scalar(
        sa.select(AuditCheckpoint)
        .where(AuditCheckpoint.seq == head.seq)
        .order_by(AuditCheckpoint.id.desc())
        .limit(1)
    )
    return latest or write_checkpoint(signing_key, head.seq, head.hash)


def export_records(checkpoint: AuditCheckpoint) -> Iterator[dict[str, Any]]:
    """Every event up to `checkpoint`, then the checkpoint itself."""
    for event in stored_events(up_to=checkpoint.seq):
        yield event_record(event)
    yield checkpoint_record(checkpoint)


def encode_jsonl(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    """One JSON object a line."""
    for record in records:
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def encode_csv(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    """A header line, then one row a record; details as canonical JSON, None as empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        row = dict(record)
        if "details" in row:
            row["details"] = chain.canonical_json(row["details"])
        writer.writerow(["" if row.get(name) is None else row[name] for name in CSV_COLUMNS])
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
    there even before the next checkpoint.
    """
    public_key = signing_key.public_key()

    def records() -> Iterator[tuple[int, dict[str, Any]]]:
        checkpoints = db.session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.seq)).all()
        pending = [checkpoint_record(c) for c in checkpoints]
        for event in stored_events():
            yield event.seq, event_record(event)
            while pending and pending[0]["seq"] <= event.seq:
                yield event.seq, pending.pop(0)
        for record in pending:
            yield record["seq"], record

    result = verify_records(records(), public_key, require_sealed_tail=False)
    head = db.session.execute(sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    stored_tip = (result.last_seq or 0, result.last_hash or chain.GENESIS_HASH)
    if not result.problems and (head.seq, head.hash) != stored_tip:
        result.problems.append(
            f"the chain head says seq {head.seq} but the last stored event is {result.last_seq}"
        )
    return result
