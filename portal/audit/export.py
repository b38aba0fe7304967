"""Streaming exports of the audit log and verification of the stored chain.

An export reads events in sequence order in keyset batches (constant memory whatever the
size), puts each stored checkpoint right after the event it covers, and ends with a seal
signed when the export is made, so an auditor can verify it offline with
`portal.audit.verify` and the public key alone: a history rewritten in the database after
a checkpoint was signed fails at that checkpoint, and an export cut short fails for want
of its seal.

A filtered export (the search's filters, `portal.audit.search`) starts with a `selection`
header, holds the matching events from the first to the last one and, in place of every
other event in between, a `link` record (sequence number, digest, hash). It runs on past
the last matching event, with links, up to the first stored checkpoint at or after it (at
worst the one written over the head for this export), so that a checkpoint signed before
any later rewrite covers what it exports. Its seal is signed at the end of the stream and
also covers the selection: the filters, the first sequence number, how many events were
exported and a digest of their sequence numbers. See docs/audit.md.

Reading never holds a transaction across batches: each batch is read and committed on its
own connection, so on SQLite (where every transaction takes the write lock) other requests
write between batches, and on PostgreSQL no snapshot is held for the whole download.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from portal.audit import chain
from portal.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from portal.audit.search import Filters, condition
from portal.audit.services import write_checkpoint
from portal.audit.verify import (
    CSV_COLUMNS,
    CSV_ESCAPED_STARTS,
    Verification,
    csv_cell,
    event_line,
    seqs_digest_start,
    verify_records,
)
from portal.clock import utcnow
from portal.extensions import db

BATCH = 2000
STREAM_BATCH = 2000
FORMATS = ("jsonl", "csv")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}

_ESCAPED = frozenset(start[0] for start in CSV_ESCAPED_STARTS)
_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]
_EVENTS = AuditEvent.__table__
# Positions, in an export row, of the text columns a CSV event row carries after the
# sequence number, time and actor id: actor … details, prev_hash, hash.
_CSV_TEXT_COLUMNS = range(3, 15)
# The stored columns an export reads, in this order; the time without the UTC decorator
# (naive UTC), formatted by `_time` far faster than `chain.format_time`.
_EXPORT_COLUMNS = (
    _EVENTS.c.seq,
    sa.type_coerce(_EVENTS.c.occurred_at, sa.DateTime()).label("occurred_at"),
    *(_EVENTS.c[name] for name in (*chain.EVENT_FIELDS[2:], "prev_hash", "hash")),
)


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


def jsonl_line(record: dict[str, Any]) -> str:
    """One record as a JSONL line; an event in the form the verifier checks fastest."""
    if record.get("type") == "event":
        try:
            return event_line(chain.canonical_event(record), record["prev_hash"], record["hash"])
        except (KeyError, TypeError, ValueError):
            pass
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def encode_jsonl(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    """One JSON object a line."""
    for record in records:
        yield jsonl_line(record)


def _csv_row(record: dict[str, Any]) -> list[str]:
    row = dict(record)
    for name in ("details", "filters", "selection"):
        if isinstance(row.get(name), dict | list):
            row[name] = chain.canonical_json(row[name])
    return [csv_cell(row.get(name)) for name in CSV_COLUMNS]


def encode_csv(records: Iterator[dict[str, Any]]) -> Iterator[str]:
    """A header line, then one row a record; JSON cells canonical (see `csv_cell`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        writer.writerow(_csv_row(record))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def encode(records: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    """Encode records in `fmt` (one of FORMATS)."""
    if fmt == "csv":
        yield from encode_csv(records)
    else:
        yield from encode_jsonl(records)


# --- the streamed export of stored rows ----------------------------------------------------


@dataclass(frozen=True)
class ExportPlan:
    """What one export covers, decided (and recorded) before a byte is streamed.

    `first_seq`..`last_seq` is the run of events and links it holds; `last_hash` the
    chain's hash at `last_seq`. A full export has `seal` (signed up front); a filtered one
    has `filters` and `included` (their SQL condition) and is sealed at the end.
    """

    first_seq: int
    last_seq: int
    last_hash: str
    head_seq: int
    signing_key: Ed25519PrivateKey
    seal: Seal | None = None
    filters: Filters | None = None
    included: sa.ColumnElement[bool] | None = None

    def details(self, fmt: str) -> dict[str, Any]:
        """What the `audit.exported` event records about this export."""
        out: dict[str, Any] = {
            "format": fmt,
            "first_seq": self.first_seq,
            "up_to_seq": self.last_seq,
            "head_hash": self.last_hash,
        }
        if self.filters is not None:
            out["filters"] = self.filters.as_dict()
            out["head_seq"] = self.head_seq
        return out


def plan_export(signing_key: Ed25519PrivateKey, filters: Filters | None = None) -> ExportPlan | None:
    """Decide what an export covers and store a checkpoint over the head (caller commits).

    None when there is nothing to export: the log is empty, or no event matches. The
    caller must then roll back (the checkpoint is only written for an actual export).
    """
    if filters is None or filters.empty:
        seal = seal_head(signing_key)
        if seal is None:
            return None
        return ExportPlan(1, seal.seq, seal.head_hash, seal.seq, signing_key, seal=seal)
    head = db.session.execute(sa.select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    if head.seq == 0:
        return None
    included = condition(filters)
    c = _EVENTS.c
    first, last = db.session.execute(
        sa.select(sa.func.min(c.seq), sa.func.max(c.seq)).where(included, c.seq <= head.seq)
    ).one()
    if first is None:
        return None
    write_checkpoint(signing_key, head.seq, head.hash)
    end = db.session.scalar(
        sa.select(sa.func.min(AuditCheckpoint.seq)).where(
            AuditCheckpoint.seq >= last, AuditCheckpoint.seq <= head.seq
        )
    )
    end_hash = db.session.scalar(sa.select(c.hash).where(c.seq == end))
    return ExportPlan(
        first,
        end,
        end_hash if end_hash is not None else head.hash,
        head.seq,
        signing_key,
        filters=filters,
        included=included,
    )


def _time(moment: datetime) -> str:
    """`chain.format_time` for a naive UTC datetime, as the export reads it, in a tenth of the time."""
    return moment.isoformat(timespec="microseconds") + "Z"


def _json_text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def _canonical_row(row: Sequence[Any]) -> str:
    """The canonical JSON of a stored event, built from its row with the stored details.

    Equal to `chain.canonical_event(event_record(row))` whenever the stored details are
    canonical, which `record_event` guarantees; `_checked_canonical` checks that.
    """
    actor_id = row.actor_id
    return (
        f'{{"action":{_json_text(row.action)},"actor":{_json_text(row.actor)},'
        f'"actor_id":{"null" if actor_id is None else actor_id},"details":{row.details},'
        f'"ip":{_json_text(row.ip)},"occurred_at":"{_time(row.occurred_at)}",'
        f'"outcome":{_json_text(row.outcome)},"role":{_json_text(row.role)},"seq":{row.seq},'
        f'"session_ref":{_json_text(row.session_ref)},"target":{_json_text(row.target)},'
        f'"user_agent":{_json_text(row.user_agent)},"vendor":{_json_text(row.vendor)}}}'
    )


def _row_event(row: Sequence[Any]) -> dict[str, Any]:
    """The event of a stored row as `event_record` reads it; details kept as text if not JSON."""
    names = ("seq", "occurred_at", *chain.EVENT_FIELDS[2:], "prev_hash", "hash")
    event = dict(zip(names, row[:15], strict=True))
    event["occurred_at"] = _time(event["occurred_at"])
    with contextlib.suppress(TypeError, ValueError, RecursionError):
        event["details"] = json.loads(event["details"])
    return event


def _checked_canonical(row: Sequence[Any]) -> str:
    """The canonical JSON of a stored event, fast when the stored text reproduces its hash.

    Otherwise (details stored in another form, or a row changed behind the portal's back)
    the event is re-encoded from its parsed values: the stored text is never spliced into
    an export unchecked, so a row cannot smuggle extra keys into a JSON line.
    """
    body = _canonical_row(row)
    try:
        if chain.link_hash(row.prev_hash, chain.digest_text(body)) == row.hash:
            return body
    except (TypeError, ValueError, AttributeError):
        pass
    return chain.canonical_event(_row_event(row))


def _row_digest(row: Sequence[Any]) -> str:
    """The digest of a stored event, for the link record that stands in for it."""
    return chain.digest_text(_checked_canonical(row))


class JsonlWriter:
    """Export records as JSON lines; events in the verifier's fast form."""

    def header(self) -> str:
        return ""

    def event(self, row: Sequence[Any]) -> str:
        return event_line(_checked_canonical(row), row.prev_hash, row.hash)

    def link(self, row: Sequence[Any]) -> str:
        return f'{{"type":"link","seq":{row.seq},"digest":"{_row_digest(row)}","hash":"{row.hash}"}}\n'

    def record(self, record: dict[str, Any]) -> str:
        return jsonl_line(record)


def _cell(value: str | None) -> str:
    if value is None:
        return ""
    if value == "" or value[0] in _ESCAPED:
        return "'" + value
    return value


class CsvWriter:
    """Export records as CSV rows (the columns of `CSV_COLUMNS`)."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\n")
        self.padding = [""] * (len(CSV_COLUMNS) - 16)

    def _take(self) -> str:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text

    def header(self) -> str:
        self.writer.writerow(CSV_COLUMNS)
        return self._take()

    def event(self, row: Sequence[Any]) -> str:
        self.writer.writerow(
            [
                "event",
                row.seq,
                _time(row.occurred_at),
                row.actor_id,
                *(_cell(row[index]) for index in _CSV_TEXT_COLUMNS),
                *self.padding,
            ]
        )
        return self._take()

    def link(self, row: Sequence[Any]) -> str:
        return self.record({"type": "link", "seq": row.seq, "digest": _row_digest(row), "hash": row.hash})

    def record(self, record: dict[str, Any]) -> str:
        self.writer.writerow(_csv_row(record))
        return self._take()


WRITERS = {"jsonl": JsonlWriter, "csv": CsvWriter}


def _stored_batches(plan: ExportPlan) -> Iterator[list[Any]]:
    """The rows from `plan.first_seq` to `plan.last_seq`, a committed batch at a time."""
    c = _EVENTS.c
    columns: list[Any] = list(_EXPORT_COLUMNS)
    if plan.included is not None:
        columns.append(sa.case((plan.included, 1), else_=0).label("included"))
    assert db.engine is not None
    with db.engine.connect() as connection:
        after = plan.first_seq - 1
        while after < plan.last_seq:
            rows = connection.execute(
                sa.select(*columns)
                .where(c.seq > after, c.seq <= plan.last_seq)
                .order_by(c.seq)
                .limit(STREAM_BATCH)
            ).all()
            connection.commit()
            if not rows:
                return
            yield rows
            after = rows[-1][0]


# PostgreSQL writes a full CSV export's event rows itself, in exactly the cells the Python
# writer makes (`CsvWriter.event`): the time as `chain.format_time` renders it, every text
# cell escaped as `csv_cell` escapes it (ascii() is 0 for the empty string), NULL as the
# empty cell. tests/audit/test_web_export.py checks that both read back to the same records.
_COPY_TEXT_COLUMNS = (
    "actor",
    "role",
    "vendor",
    "session_ref",
    "ip",
    "user_agent",
    "action",
    "target",
    "outcome",
    "details",
    "prev_hash",
    "hash",
)
_ESCAPED_CODES = ", ".join(
    str(code) for code in sorted({0, *(ord(start[0]) for start in CSV_ESCAPED_STARTS)})
)
_COPY_CSV = (
    "COPY (SELECT 'event', seq, to_char(occurred_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor_id, "
    + ", ".join(
        f"CASE WHEN ascii({name}) IN ({_ESCAPED_CODES}) THEN '''' || {name} ELSE {name} END"
        for name in _COPY_TEXT_COLUMNS
    )
    + ", NULL" * (len(CSV_COLUMNS) - 16)
    + " FROM audit_events WHERE seq >= %s AND seq <= %s ORDER BY seq) TO STDOUT WITH (FORMAT csv)"
)
CHUNK_BYTES = 256 * 1024


def _row_seq(row: bytes | memoryview) -> int:
    """The sequence number of a COPY row, which starts `event,<seq>,`."""
    start = bytes(row[6:32])
    return int(start[: start.index(b",")])


def _copied_csv(plan: ExportPlan, pending: deque[dict[str, Any]], writer: CsvWriter) -> Iterator[bytes]:
    """The event rows of a full CSV export as PostgreSQL's COPY writes them, checkpoints in place.

    COPY hands over one row at a time, each starting `event,<seq>,`: a stored checkpoint
    goes right after the row of its sequence number, as in the Python writer.
    """
    assert db.engine is not None
    with db.engine.connect() as connection:
        driver = connection.connection.driver_connection
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            # Just-in-time compilation costs more than it saves on this one plain scan.
            cursor.execute("SET LOCAL jit = off")
            with cursor.copy(_COPY_CSV, (plan.first_seq, plan.last_seq)) as copy:
                parts: list[bytes | memoryview] = []
                size = 0
                upcoming = pending[0]["seq"] if pending else None
                for row in copy:
                    parts.append(row)
                    size += len(row)
                    if upcoming is not None and _row_seq(row) >= upcoming:
                        seq = _row_seq(row)
                        while pending and pending[0]["seq"] <= seq:
                            parts.append(writer.record(pending.popleft()).encode())
                        upcoming = pending[0]["seq"] if pending else None
                    if size >= CHUNK_BYTES:
                        yield b"".join(parts)
                        parts, size = [], 0
                yield b"".join(parts)
            driver.rollback()  # ends the read and its SET LOCAL


@dataclass
class ExportStream:
    """The chunks (bytes) of one export; iterate once. Counts what it wrote as it goes.

    A full CSV export on PostgreSQL has its event rows written by the database (COPY);
    every other export is written row by row by `JsonlWriter` or `CsvWriter`.
    """

    plan: ExportPlan
    fmt: str
    events: int = 0
    links: int = 0
    checkpoints: int = 0
    _seqs: Any = field(default_factory=seqs_digest_start, repr=False)

    def __iter__(self) -> Iterator[bytes]:
        plan, writer = self.plan, WRITERS[self.fmt]()
        checkpoints = db.session.scalars(
            sa.select(AuditCheckpoint)
            .where(AuditCheckpoint.seq >= plan.first_seq, AuditCheckpoint.seq <= plan.last_seq)
            .order_by(AuditCheckpoint.seq, AuditCheckpoint.id)
        )
        pending = deque(checkpoint_record(checkpoint) for checkpoint in checkpoints)
        copied = isinstance(writer, CsvWriter) and plan.filters is None and _on_postgresql()
        db.session.commit()
        head = writer.header()
        if plan.filters is not None:
            head += writer.record({"type": "selection", "filters": plan.filters.as_dict()})
        yield head.encode()
        if copied:
            before = len(pending)
            yield from _copied_csv(plan, pending, writer)  # type: ignore[arg-type]
            self.checkpoints = before - len(pending)
            self.events = plan.last_seq - plan.first_seq + 1
        else:
            yield from self._written(plan, writer, pending)
        tail = [writer.record(checkpoint) for checkpoint in pending]
        tail.append(writer.record(self._seal()))
        yield "".join(tail).encode()

    def _written(
        self, plan: ExportPlan, writer: JsonlWriter | CsvWriter, pending: deque[dict[str, Any]]
    ) -> Iterator[bytes]:
        filtered = plan.filters is not None
        for batch in _stored_batches(plan):
            parts = []
            for row in batch:
                if filtered and not row.included:
                    parts.append(writer.link(row))
                    self.links += 1
                else:
                    parts.append(writer.event(row))
                    self.events += 1
                    if filtered:
                        self._seqs.update(b"%d\n" % row.seq)
                while pending and pending[0]["seq"] <= row.seq:
                    parts.append(writer.record(pending.popleft()))
                    self.checkpoints += 1
            yield "".join(parts).encode()

    def _seal(self) -> dict[str, Any]:
        plan = self.plan
        if plan.seal is not None:
            return checkpoint_record(plan.seal, "seal")
        assert plan.filters is not None
        selection = {
            "filters": plan.filters.as_dict(),
            "first_seq": plan.first_seq,
            "events": self.events,
            "seqs_sha256": self._seqs.hexdigest(),
        }
        signed_at = chain.format_time(utcnow())
        key = plan.signing_key
        return {
            "type": "seal",
            "seq": plan.last_seq,
            "head_hash": plan.last_hash,
            "signed_at": signed_at,
            "key_id": chain.public_key_id(key.public_key()),
            "signature": chain.sign_checkpoint(
                key, plan.last_seq, plan.last_hash, signed_at, chain.SELECTION_SEAL_DOMAIN, selection
            ),
            "selection": selection,
        }


def _on_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def verify_database(signing_key: Ed25519PrivateKey) -> Verification:
    """Verify the stored chain and every stored checkpoint against the signing key.

    Also checks that the head row points at the last event: a deleted tail shows up
    there even before the next checkpoint. On PostgreSQL the check reads one snapshot in
    its own transaction, so events appended meanwhile are neither half-seen nor reported
    as a mismatch with the head; on SQLite the session's transaction already holds the
    write lock (BEGIN IMMEDIATE), which gives the same guarantee.
    """
    if not _on_postgresql():
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
