"""Verify an audit export offline: `python -m portal.audit.verify EXPORT --public-key PEM`.

Needs nothing but the export file (JSONL or CSV, as written by `flask audit export`) and
the portal's audit public key. An export holds every event from seq 1, each stored
checkpoint right after the event it covers, and ends with a seal: a signature over its
last event made when the export was written. The verifier recomputes every event hash,
checks that each event links to the one before it with consecutive sequence numbers from
1, checks every checkpoint's Ed25519 signature and that it matches the event it covers,
and requires the seal over the last event, so that an export cut short (even at a
checkpoint) or extended does not pass. The first problem found names the line and the
event or checkpoint that breaks the chain. Memory use does not grow with the export.

Exit status: 0 verified; 1 the export is damaged or was tampered with (a line that cannot
be read counts, since the portal never writes one); 2 the input is unusable (no such
file, not an export at all, not an Ed25519 public key).
"""

from __future__ import annotations

import argparse
import codecs
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from portal.audit.chain import (
    CHECKPOINT_DOMAIN,
    EVENT_FIELDS,
    GENESIS_HASH,
    SEAL_DOMAIN,
    checkpoint_signature_valid,
    event_hash,
    load_public_key,
    public_key_id,
)

CSV_COLUMNS = ("type", *EVENT_FIELDS, "prev_hash", "hash", "head_hash", "signed_at", "key_id", "signature")
INTEGER_FIELDS = ("seq", "actor_id")
SIGNED_FIELDS = ("seq", "head_hash", "signed_at", "signature")
# Cells a spreadsheet would run as a formula get a leading apostrophe; so does every cell
# that starts with one, and the empty string, so that reading a cell back is exact.
CSV_ESCAPED_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
UNREADABLE = "unreadable"

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


class UnusableExport(Exception):
    """The file is not an audit export at all (exit status 2)."""


@dataclass
class Verification:
    """What verification found; `ok` only if there is no problem at all."""

    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    checkpoints: int = 0
    sealed_at: str | None = None
    sealed_by: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line for a verified chain."""
        if self.events == 0:
            return "OK: 0 events (the log is empty)"
        line = (
            f"OK: {self.events} events (seq {self.first_seq}–{self.last_seq}), "
            f"{self.checkpoints} valid checkpoint(s)"
        )
        if self.sealed_at:
            line += f", sealed at {self.sealed_at} by key {self.sealed_by}"
        return line


def verify_records(
    records: Iterable[tuple[int | None, dict[str, Any]]],
    public_key: Ed25519PublicKey,
    require_sealed_tail: bool = True,
) -> Verification:
    """Verify (line number or None, record) pairs in order; stop at the first problem.

    An export must end with a seal over its last event (`require_sealed_tail`); the live
    database has no seal and legitimately has events after its latest checkpoint.
    """
    result = Verification()
    key_id = public_key_id(public_key)
    for line, record in records:
        where = "" if line is None else f"line {line}: "
        problem = _check_record(result, record, public_key, key_id, require_sealed_tail)
        if problem:
            result.problems.append(where + problem)
            return result
    if require_sealed_tail:
        if result.events == 0:
            result.problems.append("the export contains no events")
        elif result.sealed_at is None:
            result.problems.append(
                f"the export is not sealed: no valid seal covers its last event (seq {result.last_seq}); "
                "it was cut short, or events were added after it was written"
            )
    return result


def _check_record(
    result: Verification,
    record: dict[str, Any],
    public_key: Ed25519PublicKey,
    key_id: str,
    sealed_export: bool,
) -> str | None:
    if result.sealed_at is not None:
        return "a record after the seal: the export was extended after it was written"
    kind = record.get("type")
    if kind == "event":
        return _check_event(result, record)
    if kind == "checkpoint":
        problem = _check_signed(result, record, public_key, key_id, "checkpoint", CHECKPOINT_DOMAIN)
        if problem is None:
            result.checkpoints += 1
        return problem
    if kind == "seal" and sealed_export:
        problem = _check_signed(result, record, public_key, key_id, "seal", SEAL_DOMAIN)
        if problem is None:
            result.sealed_at, result.sealed_by = record["signed_at"], record.get("key_id")
        return problem
    if kind == UNREADABLE:
        return f"unreadable record: {record.get('reason')}"
    return f"unknown record type {kind!r}"


def _check_event(result: Verification, record: dict[str, Any]) -> str | None:
    seq = record.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int):
        return f"event without a valid sequence number ({seq!r})"
    missing = [name for name in (*EVENT_FIELDS, "prev_hash", "hash") if name not in record]
    if missing:
        return f"event seq {seq} lacks fields: {', '.join(missing)}"
    last = result.last_seq
    if last is None and seq != 1:
        return f"event seq 1 is missing: the chain starts at seq {seq}"
    if last is not None and seq > last + 1:
        return (
            f"event seq {last + 1} is missing: seq {last} is followed by seq {seq} "
            "(events were deleted or moved)"
        )
    if last is not None and seq <= last:
        return f"event seq {seq} is out of order after seq {last} (inserted, duplicated or moved)"
    if last is None and record["prev_hash"] != GENESIS_HASH:
        return "event seq 1 does not start from the genesis hash"
    if last is not None and record["prev_hash"] != result.last_hash:
        return (
            f"event seq {seq} does not link to event seq {last}: its prev_hash is not that event's hash "
            "(an event was inserted, deleted or reordered)"
        )
    try:
        intact = isinstance(record["hash"], str) and event_hash(record["prev_hash"], record) == record["hash"]
    except (TypeError, ValueError):
        intact = False
    if not intact:
        return f"event seq {seq} was modified: its content does not match its hash"
    result.events += 1
    result.first_seq = seq if result.first_seq is None else result.first_seq
    result.last_seq = seq
    result.last_hash = record["hash"]
    return None


def _check_signed(
    result: Verification,
    record: dict[str, Any],
    public_key: Ed25519PublicKey,
    key_id: str,
    label: str,
    domain: bytes,
) -> str | None:
    seq = record.get("seq")
    if any(record.get(name) is None for name in SIGNED_FIELDS) or not isinstance(seq, int):
        return f"{label} at seq {seq!r} is malformed"
    if not checkpoint_signature_valid(
        public_key, seq, record["head_hash"], record["signed_at"], record["signature"], domain
    ):
        named = record.get("key_id")
        hint = f" (it names key {named}, the public key given is {key_id})" if named != key_id else ""
        return (
            f"{label} at seq {seq} has an invalid signature: forged or altered, "
            f"or verified with the wrong public key{hint}"
        )
    if seq != result.last_seq:
        after = "no event" if result.last_seq is None else f"event seq {result.last_seq}"
        return f"{label} at seq {seq} is out of place: it follows {after}"
    if record["head_hash"] != result.last_hash:
        return (
            f"{label} at seq {seq} does not match event seq {seq}: "
            "the events up to it were changed after it was signed"
        )
    return None


def csv_cell(value: Any) -> str:
    """Encode one value as an export CSV cell (None is the empty cell)."""
    if value is None:
        return ""
    if isinstance(value, str) and (value == "" or value.startswith(CSV_ESCAPED_STARTS)):
        return "'" + value
    return str(value)


def csv_value(cell: str) -> str | None:
    """Decode an export CSV cell (the inverse of `csv_cell` for strings)."""
    if cell == "":
        return None
    return cell[1:] if cell.startswith("'") else cell


def _unreadable(reason: str) -> dict[str, Any]:
    return {"type": UNREADABLE, "reason": reason}


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) from a JSONL export, one line at a time.

    Bytes that are not UTF-8 are read as U+FFFD: the event they are in then fails its hash.
    """
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, _unreadable(f"not valid JSON ({error.msg})")
            except RecursionError:
                yield number, _unreadable("not valid JSON (nested too deeply)")
            else:
                yield number, record if isinstance(record, dict) else _unreadable("not a JSON object")


def _csv_record(row: list[str]) -> dict[str, Any]:
    if len(row) != len(CSV_COLUMNS):
        return _unreadable(f"{len(row)} fields where an export row has {len(CSV_COLUMNS)}")
    record: dict[str, Any] = {name: csv_value(cell) for name, cell in zip(CSV_COLUMNS, row, strict=True)}
    try:
        for name in INTEGER_FIELDS:
            if record[name] is not None:
                record[name] = int(record[name])
        if record["type"] == "event" and record["details"] is not None:
            record["details"] = json.loads(record["details"])
    except (ValueError, RecursionError):
        return _unreadable("a number or the details cannot be decoded")
    return record


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) from a CSV export, decoding it back to JSONL's types."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except csv.Error as error:
            raise UnusableExport(f"not an audit export ({error})") from None
        if header is None:
            raise UnusableExport("the file is empty")
        if tuple(header) != CSV_COLUMNS:
            raise UnusableExport("not an audit export: neither JSON lines nor the export's CSV header")
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield reader.line_num, _unreadable(f"malformed CSV ({error})")
                return
            if row:
                yield reader.line_num, _csv_record(row)


def read_export(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Pick the reader by the file's first byte: JSON objects start with `{`."""
    with path.open("rb") as handle:
        start = handle.read(len(codecs.BOM_UTF8) + 1).removeprefix(codecs.BOM_UTF8)
    return read_jsonl(path) if start.startswith(b"{") else read_csv(path)


def report(result: Verification) -> tuple[list[str], int]:
    """The lines to print for `result` and the exit status."""
    if result.ok:
        return [result.summary()], EXIT_OK
    return [f"FAILED: {problem}" for problem in result.problems], EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m portal.audit.verify", description=__doc__.splitlines()[0]
    )
    parser.add_argument("export", type=Path, help="the export file (JSONL or CSV)")
    parser.add_argument("--public-key", type=Path, required=True, help="the audit public key (PEM)")
    args = parser.parse_args(argv)
    try:
        public_key = load_public_key(args.public_key.read_bytes())
    except (OSError, ValueError) as error:
        print(f"cannot use the public key {args.public_key}: {error}", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        result = verify_records(read_export(args.export), public_key)
    except (OSError, UnusableExport) as error:
        print(f"cannot read {args.export}: {error}", file=sys.stderr)
        return EXIT_UNUSABLE
    lines, status = report(result)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
