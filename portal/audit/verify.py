"""Verify an audit export offline: `python -m portal.audit.verify EXPORT --public-key PEM`.

Needs nothing but the export file (JSONL or CSV, as written by `flask audit export`) and
the portal's audit public key. It recomputes every event hash, checks that each event
links to the one before it with consecutive sequence numbers, and checks the Ed25519
signature of every checkpoint and that it matches the event it covers. The last event
must be covered by a checkpoint, otherwise a truncated or rewritten tail would pass.
The first problem found names the event (sequence number and line) that breaks the chain.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from portal.audit.chain import (
    EVENT_FIELDS,
    GENESIS_HASH,
    checkpoint_signature_valid,
    event_hash,
    load_public_key,
)

CSV_COLUMNS = ("type", *EVENT_FIELDS, "prev_hash", "hash", "head_hash", "signed_at", "key_id", "signature")
INTEGER_FIELDS = ("seq", "actor_id")


@dataclass
class Verification:
    """What verification found; `ok` only if there is no problem at all."""

    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    checkpoints: int = 0
    covered_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.events > 0


def verify_records(
    records: Iterable[tuple[int, dict[str, Any]]],
    public_key: Ed25519PublicKey,
    require_sealed_tail: bool = True,
) -> Verification:
    """Verify (line number, record) pairs; stop at the first broken link.

    An export must end with a checkpoint over its last event (`require_sealed_tail`); the
    live database legitimately has events after its latest checkpoint.
    """
    result = Verification()
    seen_hashes: dict[int, str] = {}
    for line, record in records:
        kind = record.get("type")
        if kind == "event":
            problem = _check_event(result, record)
            if problem:
                result.problems.append(f"line {line}: event seq {record.get('seq')}: {problem}")
                return result
            seen_hashes[record["seq"]] = record["hash"]
        elif kind == "checkpoint":
            problem = _check_checkpoint(record, seen_hashes, public_key)
            if problem:
                result.problems.append(f"line {line}: checkpoint at seq {record.get('seq')}: {problem}")
                return result
            result.checkpoints += 1
            result.covered_seq = max(result.covered_seq or 0, record["seq"])
        elif kind != "export":
            result.problems.append(f"line {line}: unknown record type {kind!r}")
            return result
    if result.events == 0:
        result.problems.append("the export contains no events")
    elif require_sealed_tail and result.covered_seq != result.last_seq:
        result.problems.append(
            f"no valid signed checkpoint covers the last event (seq {result.last_seq}); "
            "events after the last checkpoint may have been removed or rewritten"
        )
    return result


def _check_event(result: Verification, record: dict[str, Any]) -> str | None:
    missing = [name for name in (*EVENT_FIELDS, "prev_hash", "hash") if name not in record]
    if missing:
        return f"missing fields {', '.join(missing)}"
    seq = record["seq"]
    if not isinstance(seq, int):
        return "sequence number is not an integer"
    if result.last_seq is None:
        if seq == 1 and record["prev_hash"] != GENESIS_HASH:
            return "the first event does not start from the genesis hash"
    elif seq != result.last_seq + 1:
        return f"sequence jumps from {result.last_seq} to {seq} (an event was removed, inserted or moved)"
    elif record["prev_hash"] != result.last_hash:
        return f"prev_hash does not match the hash of event {result.last_seq} (chain broken)"
    if event_hash(record["prev_hash"], record) != record["hash"]:
        return "content does not match its hash (the event was modified)"
    result.events += 1
    result.first_seq = seq if result.first_seq is None else result.first_seq
    result.last_seq = seq
    result.last_hash = record["hash"]
    return None


def _check_checkpoint(
    record: dict[str, Any], seen_hashes: dict[int, str], public_key: Ed25519PublicKey
) -> str | None:
    try:
        seq, head_hash = int(record["seq"]), str(record["head_hash"])
        signed_at, signature = str(record["signed_at"]), str(record["signature"])
    except (KeyError, TypeError, ValueError):
        return "malformed checkpoint"
    if not checkpoint_signature_valid(public_key, seq, head_hash, signed_at, signature):
        return "signature is not valid for this public key (forged or altered checkpoint)"
    if seen_hashes.get(seq) != head_hash:
        return "signed head hash does not match the exported event at that sequence number"
    return None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) from a JSONL export, one line at a time."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError:
                    yield number, {"type": "unreadable"}


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) from a CSV export, decoding it back to JSONL's types."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            record: dict[str, Any] = {name: (value if value != "" else None) for name, value in row.items()}
            try:
                for name in INTEGER_FIELDS:
                    if record.get(name) is not None:
                        record[name] = int(record[name])
                if record.get("type") == "event":
                    record["details"] = json.loads(record.get("details") or "{}")
            except ValueError:
                record = {"type": "unreadable"}
            yield reader.line_num, record


def read_export(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Pick the reader by the file's first character: JSON objects start with `{`."""
    with path.open(encoding="utf-8") as handle:
        first = handle.read(1)
    return read_jsonl(path) if first == "{" else read_csv(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="the export file (JSONL or CSV)")
    parser.add_argument("--public-key", type=Path, required=True, help="the audit public key (PEM)")
    args = parser.parse_args(argv)
    try:
        public_key = load_public_key(args.public_key.read_bytes())
    except (OSError, ValueError) as error:
        print(f"cannot load the public key: {error}", file=sys.stderr)
        return 2
    try:
        result = verify_records(read_export(args.export), public_key)
    except OSError as error:
        print(f"cannot read the export: {error}", file=sys.stderr)
        return 2
    if result.ok:
        print(
            f"OK: {result.events} events (seq {result.first_seq}–{result.last_seq}), "
            f"{result.checkpoints} valid checkpoint(s), last event covered by a signature"
        )
        return 0
    for problem in result.problems:
        print(f"FAILED: {problem}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
