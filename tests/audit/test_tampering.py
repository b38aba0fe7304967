"""Someone who owns the database, or holds an export, changes history: every verifier notices.

Each case is checked three ways, as an operator and an auditor would: `flask audit verify`
on the database, `flask audit verify FILE --public-key PEM`, and the standalone
`python -m portal.audit.verify` in a subprocess. Every report must name the event (or
checkpoint) where the chain breaks and exit with status 1.

The subprocess runs in the SQLite half only: it reads nothing but the export file, which
is the same whichever database wrote it, and each run pays for importing the whole
`portal` package (about a second).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portal.audit import chain
from portal.audit.export import encode
from portal.audit.models import AuditEvent
from portal.audit.verify import read_export
from tests.audit.conftest import (
    owner_connection,
    rehash_from,
    rewrite_event,
    run_offline_verifier,
    stored_events,
)

EVENTS = 12  # with CHECKPOINT_EVERY = 5: stored checkpoints at seq 5 and 10
FORGER = Ed25519PrivateKey.generate()


@pytest.fixture
def history(app, append) -> list[dict[str, Any]]:
    append(EVENTS, target="clip:1", details={"range": "0-1023"})
    return stored_events(app)


def _forged(original: dict[str, Any], prev_hash: str, **changes: Any) -> dict[str, Any]:
    event = {**original, **changes, "prev_hash": prev_hash}
    event["hash"] = chain.event_hash(prev_hash, event)
    return event


def _row(event: dict[str, Any]) -> dict[str, Any]:
    row = {name: event[name] for name in (*chain.EVENT_FIELDS, "prev_hash", "hash")}
    row["occurred_at"] = datetime.fromisoformat(event["occurred_at"])
    row["details"] = chain.canonical_json(event["details"])
    return row


# Tampering with the database, as its owner -------------------------------------------------


def db_modify_field(connection: sa.Connection, events: list[dict[str, Any]]) -> None:
    rewrite_event(connection, 7, target="clip:2")


def db_delete_event(connection: sa.Connection, events: list[dict[str, Any]]) -> None:
    connection.execute(sa.text("DELETE FROM audit_events WHERE seq = 7"))


def db_insert_event(connection: sa.Connection, events: list[dict[str, Any]]) -> None:
    for seq in range(EVENTS, 6, -1):
        connection.execute(sa.text("UPDATE audit_events SET seq = seq + 1 WHERE seq = :seq"), {"seq": seq})
    forged = _forged(events[6], events[5]["hash"], target="clip:planted")
    connection.execute(sa.insert(AuditEvent).values(_row(forged)))
    connection.execute(
        sa.text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"),
        {"seq": EVENTS + 1, "hash": events[-1]["hash"]},
    )


def db_swap_events(connection: sa.Connection, events: list[dict[str, Any]]) -> None:
    for old, new in ((7, -7), (8, 7), (-7, 8)):
        connection.execute(
            sa.text("UPDATE audit_events SET seq = :new WHERE seq = :old"), {"old": old, "new": new}
        )


def db_rewrite_tail(connection: sa.Connection, events: list[dict[str, Any]]) -> None:
    rewrite_event(connection, 8, target="clip:2")
    rehash_from(connection, 8)


def db_forge_checkpoint(connection: sa.Connection, events: list[dict[str, Any]]) -> None:
    signed_at = chain.format_time(datetime.now().astimezone())
    last = events[-1]
    connection.execute(
        sa.text(
            "INSERT INTO audit_checkpoints (seq, head_hash, signed_at, key_id, signature) "
            "VALUES (:seq, :head_hash, :signed_at, :key_id, :signature)"
        ),
        {
            "seq": last["seq"],
            "head_hash": last["hash"],
            "signed_at": signed_at,
            "key_id": "0123456789abcdef",
            "signature": chain.sign_checkpoint(FORGER, last["seq"], last["hash"], signed_at),
        },
    )


DATABASE_CASES = {
    "modified field": (db_modify_field, r"event seq 7 was modified"),
    "deleted event": (db_delete_event, r"event seq 7 is missing"),
    "inserted event": (db_insert_event, r"event seq 8 does not link to event seq 7"),
    "swapped events": (db_swap_events, r"event seq 7 does not link to event seq 6"),
    "rewritten tail": (db_rewrite_tail, r"checkpoint at seq 10 does not match event seq 10"),
    "forged checkpoint": (db_forge_checkpoint, r"checkpoint at seq 12 has an invalid signature"),
}


def _verify_file(runner: Any, path: Path, public_key: Path, database_url: str) -> list[tuple[str, int, str]]:
    cli = runner.invoke(args=["audit", "verify", str(path), "--public-key", str(public_key)])
    reports = [("flask audit verify FILE", cli.exit_code, cli.output)]
    if database_url.startswith("sqlite"):
        offline = run_offline_verifier(path, public_key)
        reports.append(("python -m portal.audit.verify", offline.returncode, offline.stdout + offline.stderr))
    return reports


def _assert_detected(reports: list[tuple[str, int, str]], pattern: str) -> None:
    for verifier, status, output in reports:
        assert status == 1, (verifier, output)
        assert "FAILED" in output and re.search(pattern, output), (verifier, pattern, output)
        assert "Traceback" not in output, (verifier, output)


@pytest.mark.parametrize("case", DATABASE_CASES)
def test_database_tampering_is_detected(
    app, history, runner, export_file, public_key_file, database_url, case
):
    tamper, pattern = DATABASE_CASES[case]
    with owner_connection(app) as connection:
        tamper(connection, history)
    database = runner.invoke(args=["audit", "verify"])
    reports = [("flask audit verify", database.exit_code, database.output)]
    reports += _verify_file(runner, export_file("jsonl"), public_key_file, database_url)
    _assert_detected(reports, pattern)


def test_deleted_tail_is_detected_by_the_head(app, history, runner):
    with owner_connection(app) as connection:
        connection.execute(sa.text("DELETE FROM audit_events WHERE seq > 10"))
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and "event seq 11 is missing: the chain head is at seq 12" in result.output


def test_emptied_log_is_detected_by_its_checkpoints(app, history, runner):
    with owner_connection(app) as connection:
        connection.execute(sa.text("DELETE FROM audit_events"))
        connection.execute(
            sa.text("UPDATE audit_head SET seq = 0, hash = :genesis"), {"genesis": chain.GENESIS_HASH}
        )
    result = runner.invoke(args=["audit", "verify"])
    assert (
        result.exit_code == 1 and "checkpoint at seq 5 is out of place: it follows no event" in result.output
    )


def test_clean_history_passes_all_three_verifiers(
    history, runner, export_file, public_key_file, database_url
):
    database = runner.invoke(args=["audit", "verify"])
    reports = [("flask audit verify", database.exit_code, database.output)]
    reports += _verify_file(runner, export_file("jsonl"), public_key_file, database_url)
    for verifier, status, output in reports:
        assert status == 0, (verifier, output)
        assert output.startswith(f"OK: {EVENTS} events"), (verifier, output)


# Tampering with an export file, as whoever holds it ----------------------------------------

Records = list[dict[str, Any]]


def _index(records: Records, seq: int) -> int:
    return next(i for i, r in enumerate(records) if r["type"] == "event" and r["seq"] == seq)


def file_modify_field(records: Records) -> Records:
    records[_index(records, 7)]["target"] = "clip:2"
    return records


def file_delete_event(records: Records) -> Records:
    del records[_index(records, 7)]
    return records


def file_insert_event(records: Records) -> Records:
    at = _index(records, 7)
    planted = _forged(records[at], records[_index(records, 6)]["hash"], target="clip:planted")
    for record in records[at:]:
        if record["type"] == "event":
            record["seq"] += 1
    records.insert(at, planted)
    return records


def file_swap_events(records: Records) -> Records:
    a, b = _index(records, 7), _index(records, 8)
    records[a], records[b] = records[b], records[a]
    return records


def file_rewrite_tail(records: Records) -> Records:
    records[_index(records, 8)]["target"] = "clip:2"
    previous = records[_index(records, 7)]["hash"]
    for record in records[_index(records, 8) :]:
        if record["type"] == "event":
            record.update(_forged(record, previous))
            previous = record["hash"]
    return records


def file_forge_seal(records: Records) -> Records:
    seal = records[-1]
    seal["signature"] = chain.sign_checkpoint(
        FORGER, seal["seq"], seal["head_hash"], seal["signed_at"], domain=chain.SEAL_DOMAIN
    )
    return records


def file_truncate(records: Records) -> Records:
    return records[:-3]  # the seal, the checkpoint stored at the export, the last event


def file_relabel_checkpoint_as_seal(records: Records) -> Records:
    """Cut the export at the stored checkpoint 10 and pass that checkpoint off as the seal."""
    cut = _index(records, 10) + 2
    records = records[:cut]
    records[-1]["type"] = "seal"
    return records


FILE_CASES: dict[str, tuple[Callable[[Records], Records], str]] = {
    "modified field": (file_modify_field, r"event seq 7 was modified"),
    "deleted event": (file_delete_event, r"event seq 7 is missing"),
    "inserted event": (file_insert_event, r"event seq 8 does not link to event seq 7"),
    "swapped events": (file_swap_events, r"event seq 7 is missing: seq 6 is followed by seq 8"),
    "rewritten tail": (file_rewrite_tail, r"checkpoint at seq 10 does not match event seq 10"),
    "forged seal signature": (file_forge_seal, r"seal at seq 12 has an invalid signature"),
    "truncated export": (file_truncate, r"not sealed.*seq 11"),
    "checkpoint passed off as seal": (
        file_relabel_checkpoint_as_seal,
        r"seal at seq 10 has an invalid signature",
    ),
}


def _rewrite_file(path: Path, tamper: Callable[[Records], Records], fmt: str) -> Path:
    records = tamper([record for _, record in read_export(path)])
    out = path.with_name(f"tampered.{fmt}")
    with out.open("w", encoding="utf-8", newline="") as handle:
        handle.writelines(encode(iter(records), fmt))
    return out


@pytest.mark.parametrize("case", FILE_CASES)
def test_export_tampering_is_detected(history, runner, export_file, public_key_file, database_url, case):
    tamper, pattern = FILE_CASES[case]
    _assert_detected(
        _verify_file(
            runner, _rewrite_file(export_file("jsonl"), tamper, "jsonl"), public_key_file, database_url
        ),
        pattern,
    )


@pytest.mark.parametrize("case", FILE_CASES)
def test_csv_export_tampering_is_detected(history, runner, export_file, public_key_file, case):
    tamper, pattern = FILE_CASES[case]
    path = _rewrite_file(export_file("csv"), tamper, "csv")
    result = runner.invoke(args=["audit", "verify", str(path), "--public-key", str(public_key_file)])
    _assert_detected([("flask audit verify FILE.csv", result.exit_code, result.output)], pattern)


def test_wrong_public_key_is_reported(history, runner, export_file, tmp_path, database_url):
    other = tmp_path / "other.pem"
    other.write_bytes(
        FORGER.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    reports = _verify_file(runner, export_file("jsonl"), other, database_url)
    _assert_detected(reports, r"checkpoint at seq 5 has an invalid signature.*key")
    forger_id = chain.public_key_id(FORGER.public_key())
    assert all(forger_id in output for _, _, output in reports)


def test_a_line_edited_by_hand_is_named(history, runner, export_file, public_key_file, database_url):
    path = export_file("jsonl")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines, start=1) if json.loads(line).get("seq") == 9)
    lines[number - 1] = lines[number - 1].replace('"outcome":"allowed"', '"outcome":"denied"')
    path.write_text("".join(lines), encoding="utf-8")
    reports = _verify_file(runner, path, public_key_file, database_url)
    _assert_detected(reports, rf"line {number}: event seq 9 was modified")
