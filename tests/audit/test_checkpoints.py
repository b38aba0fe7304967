"""Signed checkpoints: written with the events they cover, on demand, and at the end of exports."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from portal.audit import chain
from portal.audit.export import seal_head
from portal.audit.services import append_pending, checkpoint_head, record_event, write_checkpoint
from portal.audit.verify import read_export
from portal.extensions import db
from portal.keys import portal_keys
from tests.audit.conftest import CHECKPOINT_EVERY, WRITER, head, stored_checkpoints, stored_events


def _valid(app, checkpoint: dict, domain: bytes = chain.CHECKPOINT_DOMAIN) -> bool:
    with app.app_context():
        public_key = portal_keys().audit_signing_key.public_key()
    return chain.checkpoint_signature_valid(
        public_key,
        checkpoint["seq"],
        checkpoint["head_hash"],
        checkpoint["signed_at"],
        checkpoint["signature"],
        domain=domain,
    )


def test_a_checkpoint_every_n_events(app, append):
    append(2 * CHECKPOINT_EVERY + 2)
    checkpoints = stored_checkpoints(app)
    hashes = {event["seq"]: event["hash"] for event in stored_events(app)}
    assert [c["seq"] for c in checkpoints] == [CHECKPOINT_EVERY, 2 * CHECKPOINT_EVERY]
    for checkpoint in checkpoints:
        assert checkpoint["head_hash"] == hashes[checkpoint["seq"]]
        assert _valid(app, checkpoint)
        with app.app_context():
            assert checkpoint["key_id"] == chain.public_key_id(portal_keys().audit_signing_key.public_key())


def test_checkpoint_is_in_the_events_transaction(app, append):
    append(CHECKPOINT_EVERY - 1)
    with app.app_context():
        record_event(WRITER, "test.rolled_back")
        append_pending(db.session)
        assert db.session.scalar(sa.text("SELECT count(*) FROM audit_checkpoints")) == 1
        db.session.rollback()
    assert stored_checkpoints(app) == []
    assert head(app)[0] == CHECKPOINT_EVERY - 1


def test_an_event_whose_checkpoint_cannot_be_written_is_not_written(app, append):
    append(CHECKPOINT_EVERY - 1)

    def refuse(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_CHECKPOINTS"):
            raise sa.exc.OperationalError(statement, parameters, RuntimeError("disk full"))

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", refuse)
        try:
            record_event(WRITER, "test.unsealed")
            with pytest.raises(sa.exc.OperationalError):
                db.session.commit()
            db.session.rollback()
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", refuse)
    assert len(stored_events(app)) == CHECKPOINT_EVERY - 1
    append(1)
    assert [c["seq"] for c in stored_checkpoints(app)] == [CHECKPOINT_EVERY]


def test_checkpoint_command(app, append, runner):
    empty = runner.invoke(args=["audit", "checkpoint"])
    assert empty.exit_code == 1 and "empty" in empty.output
    append(3)
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    seq, head_hash = head(app)
    assert result.output.strip() == f"checkpoint at seq 3: {head_hash}"
    [checkpoint] = stored_checkpoints(app)
    assert (checkpoint["seq"], checkpoint["head_hash"]) == (seq, head_hash) and _valid(app, checkpoint)
    assert runner.invoke(args=["audit", "verify"]).output.startswith(
        "OK: 3 events (seq 1–3), 1 valid checkpoint"
    )


def test_checkpoint_functions(app, append):
    append(2)
    with app.app_context():
        key = portal_keys().audit_signing_key
        checkpoint = checkpoint_head(key)
        db.session.commit()
        assert (checkpoint.seq, checkpoint.head_hash) == head(app)
        seal = seal_head(key)
        db.session.commit()
        assert seal is not None and (seal.seq, seal.head_hash) == head(app)
        assert chain.checkpoint_signature_valid(
            key.public_key(),
            seal.seq,
            seal.head_hash,
            seal.signed_at,
            seal.signature,
            domain=chain.SEAL_DOMAIN,
        )
        assert not chain.checkpoint_signature_valid(
            key.public_key(), seal.seq, seal.head_hash, seal.signed_at, seal.signature
        )
        stored = write_checkpoint(key, 1, stored_events(app)[0]["hash"])
        db.session.commit()
        assert stored.id is not None
    assert [c["seq"] for c in stored_checkpoints(app)] == [2, 2, 1]


def test_public_key_command(app, runner):
    result = runner.invoke(args=["audit", "public-key"])
    assert result.exit_code == 0
    public_key = chain.load_public_key(result.stdout.encode())
    with app.app_context():
        expected = portal_keys().audit_signing_key.public_key()
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert public_key.public_bytes(*raw) == expected.public_bytes(*raw)
    assert f"key id {chain.public_key_id(expected)}" in result.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_ends_with_a_seal_over_its_last_event(app, append, export_file, fmt):
    append(7)
    records = [record for _, record in read_export(export_file(fmt))]
    events = [r for r in records if r["type"] == "event"]
    assert [e["seq"] for e in events] == list(range(1, 8))
    seal = records[-1]
    assert seal["type"] == "seal" and seal["seq"] == 7 and seal["head_hash"] == events[-1]["hash"]
    assert _valid(app, seal, domain=chain.SEAL_DOMAIN)
    assert [r["seq"] for r in records if r["type"] == "checkpoint"] == [CHECKPOINT_EVERY, 7]
    assert [c["seq"] for c in stored_checkpoints(app)] == [CHECKPOINT_EVERY, 7]
    exported = stored_events(app)[-1]
    assert exported["seq"] == 8 and exported["action"] == "audit.exported"
    assert exported["details"]["up_to_seq"] == 7 and exported["details"]["head_hash"] == seal["head_hash"]


def test_export_of_an_empty_log_is_refused(runner, tmp_path):
    result = runner.invoke(args=["audit", "export", "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1 and "empty" in result.output
    assert not (tmp_path / "x.jsonl").exists()
