"""Verify an audit export offline: `python -m portal.audit.verify EXPORT --public-key PEM`.

Needs nothing but the export file (JSONL or CSV, as written by `flask audit export` or
`GET /audit/export`) and the portal's audit public key.

A full export holds every event from seq 1, each stored checkpoint right after the event
it covers, and ends with a seal: a signature over its last event made when the export was
written. The verifier recomputes every event hash, checks that each event links to the
one before it with consecutive sequence numbers from 1, checks every checkpoint's Ed25519
signature and that it matches the event it covers, and requires the seal over the last
event, so that an export cut short (even at a checkpoint) or extended does not pass.

A filtered export starts with a `selection` header naming its filters. It holds the
matching events in full and, for every event it leaves out between the first exported
event and its end, a `link` record: sequence number, digest (SHA-256 of the event's
canonical JSON) and hash. The verifier recomputes every hash from the first exported event
to the seal, so an exported event that was changed breaks the chain at the next record
even if the forger recomputed its hash; its seal also covers the selection (filters, first
sequence number, how many events and which), so hiding an exported event behind a link,
or dropping the first ones, does not pass either. What a filtered export cannot show is
the content of the events it leaves out, nor that they do not match its filters: that
rests on the portal that sealed it.

The first problem found names the line and the event, link or checkpoint that breaks the
chain. Memory use does not grow with the export. Intact JSONL event lines, as the portal
writes them, are checked by hashing their bytes (the digest commits to exactly those
bytes); any other line is parsed and its canonical form recomputed, which gives the same
verdict more slowly and with a precise diagnosis.

Exit status: 0 verified; 1 the export is damaged or was tampered with (a line that cannot
be read counts, since the portal never writes one); 2 the input is unusable (no such
file, not an export at all, not an Ed25519 public key).
"""

from __future__ import annotations

import argparse
import codecs
import csv
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from portal.audit.chain import (
    CHECKPOINT_DOMAIN,
    EVENT_FIELDS,
    GENESIS_HASH,
    SEAL_DOMAIN,
    SELECTION_SEAL_DOMAIN,
    checkpoint_signature_valid,
    digest_text,
    event_hash,
    link_hash,
    load_public_key,
    public_key_id,
)

CSV_COLUMNS = (
    "type",
    *EVENT_FIELDS,
    "prev_hash",
    "hash",
    "head_hash",
    "signed_at",
    "key_id",
    "signature",
    "digest",
    "filters",
    "selection",
)
INTEGER_FIELDS = ("seq", "actor_id")
JSON_FIELDS = {"event": "details", "selection": "filters", "seal": "selection"}
SIGNED_FIELDS = ("seq", "head_hash", "signed_at", "signature")
SELECTION_FIELDS = ("filters", "first_seq", "events", "seqs_sha256")
# Cells a spreadsheet would run as a formula get a leading apostrophe; so does every cell
# that starts with one, and the empty string, so that reading a cell back is exact.
CSV_ESCAPED_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
UNREADABLE = "unreadable"
HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")

# How the portal writes an event line in JSONL: the canonical JSON of the event without
# its closing brace, then this tail. A line of exactly that shape whose bytes hash to its
# own hash is intact (collision resistance) and need not be parsed.
EVENT_TAIL = ',"hash":"{hash}","prev_hash":"{prev_hash}","type":"event"}}'
TAIL_LENGTH = len(EVENT_TAIL.format(hash="0" * 64, prev_hash="0" * 64))
_HASH_AT, _PREV_AT = 9, 9 + 64 + 15
# Key of an event already checked by `read_jsonl`; not a string, so no file can set it.
_INTACT = object()

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


class UnusableExport(Exception):
    """The file is not an audit export at all (exit status 2)."""


def seqs_digest_start() -> Any:
    """The running digest of a selection's exported sequence numbers (one per line)."""
    return hashlib.sha256()


@dataclass
class Verification:
    """What verification found; `ok` only if there is no problem at all."""

    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    checkpoints: int = 0
    links: int = 0
    records: int = 0
    filters: dict[str, Any] | None = None
    sealed_at: str | None = None
    sealed_by: str | None = None
    problems: list[str] = field(default_factory=list)
    seqs: Any = field(default_factory=seqs_digest_start, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def filtered(self) -> bool:
        return self.filters is not None

    def summary(self) -> str:
        """One line for a verified chain."""
        if self.events == 0:
            return "OK: 0 events (the log is empty)"
        if self.filtered:
            shown = ", ".join(f"{name}={value}" for name, value in sorted((self.filters or {}).items()))
            line = (
                f"OK: filtered export ({shown or 'no filter'}): {self.events} events between "
                f"seq {self.first_seq} and seq {self.last_seq}, {self.links} left-out event(s) "
                f"verified by their digest only, {self.checkpoints} valid checkpoint(s)"
            )
        else:
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
        result.records += 1
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
    if kind == "link":
        return _check_link(result, record)
    if kind == "checkpoint":
        problem = _check_signed(result, record, public_key, key_id, "checkpoint", CHECKPOINT_DOMAIN)
        if problem is None:
            result.checkpoints += 1
        return problem
    if kind == "seal" and sealed_export:
        problem = _check_seal(result, record, public_key, key_id)
        if problem is None:
            result.sealed_at, result.sealed_by = record["signed_at"], record.get("key_id")
        return problem
    if kind == "selection" and sealed_export:
        return _check_selection_header(result, record)
    if kind == UNREADABLE:
        return f"unreadable record: {record.get('reason')}"
    return f"unknown record type {kind!r}"


def _check_selection_header(result: Verification, record: dict[str, Any]) -> str | None:
    if result.records > 0:
        return "a selection header that is not the first record: records were added before it"
    filters = record.get("filters")
    if not isinstance(filters, dict):
        return "the selection header names no filters"
    result.filters = filters
    return None


def _check_sequence(result: Verification, seq: Any, kind: str) -> str | None:
    """Check that `seq` comes right after the last event or link (or may start the export)."""
    if isinstance(seq, bool) or not isinstance(seq, int):
        return f"{kind} without a valid sequence number ({seq!r})"
    last = result.last_seq
    if last is None and seq != 1 and not result.filtered:
        return f"event seq 1 is missing: the chain starts at seq {seq}"
    if last is not None and seq > last + 1:
        return (
            f"event seq {last + 1} is missing: seq {last} is followed by seq {seq} "
            "(events were deleted or moved)"
        )
    if last is not None and seq <= last:
        return f"{kind} seq {seq} is out of order after seq {last} (inserted, duplicated or moved)"
    return None


def _check_event(result: Verification, record: dict[str, Any]) -> str | None:
    seq = record.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int):
        return f"event without a valid sequence number ({seq!r})"
    intact = _INTACT in record
    if not intact:
        missing = [name for name in (*EVENT_FIELDS, "prev_hash", "hash") if name not in record]
        if missing:
            return f"event seq {seq} lacks fields: {', '.join(missing)}"
    problem = _check_sequence(result, seq, "event")
    if problem:
        return problem
    last = result.last_seq
    if last is None and not result.filtered and record["prev_hash"] != GENESIS_HASH:
        return "event seq 1 does not start from the genesis hash"
    if last is not None and record["prev_hash"] != result.last_hash:
        return (
            f"event seq {seq} does not link to event seq {last}: its prev_hash is not that event's hash "
            "(an event was inserted, deleted or reordered)"
        )
    if not intact:
        try:
            own = record["hash"]
            intact = isinstance(own, str) and event_hash(record["prev_hash"], record) == own
        except (TypeError, ValueError, AttributeError):
            intact = False
        if not intact:
            return f"event seq {seq} was modified: its content does not match its hash"
    result.events += 1
    result.seqs.update(b"%d\n" % seq)
    result.first_seq = seq if result.first_seq is None else result.first_seq
    result.last_seq = seq
    result.last_hash = record["hash"]
    return None


def _check_link(result: Verification, record: dict[str, Any]) -> str | None:
    seq = record.get("seq")
    if not result.filtered:
        return (
            f"a link record (seq {seq!r}) in an export without a selection header: "
            "events were left out of a full export after it was written"
        )
    if result.last_seq is None:
        return f"link seq {seq!r} comes before the first exported event"
    problem = _check_sequence(result, seq, "link")
    if problem:
        return problem
    missing = [name for name in ("digest", "hash") if record.get(name) is None]
    if missing:
        return f"link seq {seq} lacks fields: {', '.join(missing)} (a link must carry its digest)"
    digest = record["digest"]
    if not isinstance(digest, str) or not HEX_DIGEST.match(digest):
        return f"link seq {seq} has no valid digest"
    if link_hash(result.last_hash or "", digest) != record["hash"]:
        return (
            f"link seq {seq} does not follow from seq {result.last_seq}: the chain breaks here, so "
            f"seq {result.last_seq} was altered (and rehashed) or this link was"
        )
    result.links += 1
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
    selection: Mapping[str, Any] | None = None,
) -> str | None:
    seq = record.get("seq")
    if any(record.get(name) is None for name in SIGNED_FIELDS) or not isinstance(seq, int):
        return f"{label} at seq {seq!r} is malformed"
    if not checkpoint_signature_valid(
        public_key, seq, record["head_hash"], record["signed_at"], record["signature"], domain, selection
    ):
        named = record.get("key_id")
        hint = f" (it names key {named}, the public key given is {key_id})" if named != key_id else ""
        return (
            f"{label} at seq {seq} has an invalid signature: forged or altered, "
            f"or verified with the wrong public key{hint}"
        )
    if seq != result.last_seq:
        after = "no event" if result.last_seq is None else f"seq {result.last_seq}"
        if result.last_seq is not None and not result.filtered:
            after = "event " + after
        return f"{label} at seq {seq} is out of place: it follows {after}"
    if record["head_hash"] != result.last_hash:
        return (
            f"{label} at seq {seq} does not match event seq {seq}: "
            "the events up to it were changed after it was signed"
        )
    return None


def _check_seal(
    result: Verification, record: dict[str, Any], public_key: Ed25519PublicKey, key_id: str
) -> str | None:
    selection = record.get("selection")
    seq = record.get("seq")
    if not result.filtered:
        if selection is not None:
            return (
                f"seal at seq {seq!r} covers a filtered selection, but the export has no selection "
                "header: it was removed"
            )
        return _check_signed(result, record, public_key, key_id, "seal", SEAL_DOMAIN)
    if not isinstance(selection, dict) or any(name not in selection for name in SELECTION_FIELDS):
        return (
            f"seal at seq {seq!r} does not cover a selection, but the export has a selection header: "
            "a full export's seal cannot close a filtered one"
        )
    problem = _check_signed(result, record, public_key, key_id, "seal", SELECTION_SEAL_DOMAIN, selection)
    if problem:
        return problem
    if selection["filters"] != result.filters:
        return "the selection header does not name the filters the seal covers: the header was edited"
    if selection["first_seq"] != result.first_seq:
        return (
            f"the export starts at event seq {result.first_seq} but its seal covers events from seq "
            f"{selection['first_seq']}: events were removed from its start"
        )
    if selection["events"] != result.events:
        return (
            f"the export holds {result.events} events but its seal covers {selection['events']}: "
            "events were hidden behind links, or revealed, after it was sealed"
        )
    if selection["seqs_sha256"] != result.seqs.hexdigest():
        return (
            "the exported events are not the ones the seal covers: an event was hidden behind a link "
            "and another revealed in its place"
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


def event_line(canonical: str, prev_hash: str, own_hash: str) -> str:
    """The JSONL line of an event, given its canonical JSON (see EVENT_TAIL)."""
    return canonical[:-1] + EVENT_TAIL.format(hash=own_hash, prev_hash=prev_hash) + "\n"


def _unreadable(reason: str) -> dict[str, Any]:
    return {"type": UNREADABLE, "reason": reason}


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing a key given twice.

    Parsers disagree on which of two equal keys wins; an export that shows one value to
    the verifier and another to the auditor's tools must not verify.
    """
    record = dict(pairs)
    if len(record) != len(pairs):
        raise ValueError("an object names the same key twice")
    return record


def load_json(text: str) -> Any:
    """Parse JSON from an export (any duplicate key raises ValueError)."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def _intact_event(line: str) -> dict[str, Any] | None:
    """The sequence number and hashes of an event line in the portal's own form, if intact.

    Intact means: the line is the canonical JSON of an event followed by EVENT_TAIL, and
    the link computed from the digest of those exact bytes is the hash the line states.
    Anything else returns None, and the caller parses the line the slow, precise way.
    """
    line = line.rstrip("\r\n")
    tail = line[-TAIL_LENGTH:]
    if not line.startswith('{"action":') or tail != EVENT_TAIL.format(
        hash=tail[_HASH_AT : _HASH_AT + 64], prev_hash=tail[_PREV_AT : _PREV_AT + 64]
    ):
        return None
    own_hash, prev_hash = tail[_HASH_AT : _HASH_AT + 64], tail[_PREV_AT : _PREV_AT + 64]
    body = line[:-TAIL_LENGTH] + "}"
    try:
        if link_hash(prev_hash, digest_text(body)) != own_hash:
            return None
    except ValueError:
        return None
    # The canonical keys after "seq" (session_ref, target, user_agent, vendor) hold strings,
    # where `,"seq":` cannot occur unescaped: the last occurrence is the event's own.
    start = body.rfind(',"seq":') + 7
    end = body.find(",", start)
    try:
        seq = int(body[start:end])
    except ValueError:
        return None
    return {"type": "event", "seq": seq, "prev_hash": prev_hash, "hash": own_hash, _INTACT: True}


def read_jsonl(path: Path, fast: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) from a JSONL export, one line at a time.

    Bytes that are not UTF-8 are read as U+FFFD: the event they are in then fails its hash.
    With `fast`, intact event lines are yielded as a stub holding only their sequence
    number and hashes, already checked (for `verify_records`, not for reading events).
    """
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if fast:
                stub = _intact_event(line)
                if stub is not None:
                    yield number, stub
                    continue
            if not line.strip():
                continue
            try:
                record = load_json(line)
            except json.JSONDecodeError as error:
                yield number, _unreadable(f"not valid JSON ({error.msg})")
            except ValueError as error:
                yield number, _unreadable(f"not valid JSON ({error})")
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
        json_field = JSON_FIELDS.get(record["type"] or "")
        if json_field and record[json_field] is not None:
            record[json_field] = load_json(record[json_field])
    except (ValueError, RecursionError):
        return _unreadable("a number or a JSON cell cannot be decoded")
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


def read_export(path: Path, fast: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Pick the reader by the file's first byte: JSON objects start with `{`.

    `fast` (for verification only) lets the JSONL reader skip parsing intact event lines.
    """
    with path.open("rb") as handle:
        start = handle.read(len(codecs.BOM_UTF8) + 1).removeprefix(codecs.BOM_UTF8)
    return read_jsonl(path, fast) if start.startswith(b"{") else read_csv(path)


def verify_file(path: Path, public_key: Ed25519PublicKey) -> Verification:
    """Verify an export file; raises OSError or UnusableExport if it cannot be read."""
    return verify_records(read_export(path, fast=True), public_key)


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
        result = verify_file(args.export, public_key)
    except (OSError, UnusableExport) as error:
        print(f"cannot read {args.export}: {error}", file=sys.stderr)
        return EXIT_UNUSABLE
    lines, status = report(result)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
