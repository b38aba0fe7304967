"""Audit test helpers: append events, read the stored chain, act as the database owner.

The database owner can do what the portal's triggers refuse: on SQLite by dropping the
triggers, on PostgreSQL with `session_replication_role = replica` (the test server's
account is a superuser). Tampering tests use `owner_connection` to rewrite rows the way
such an attacker would, then check that every verifier notices.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.audit import chain
from portal.audit.export import event_record
from portal.audit.models import AuditEvent
from portal.audit.services import Actor, record_event
from portal.config import PROJECT_ROOT
from portal.extensions import db

CHECKPOINT_EVERY = 5
WRITER = Actor(label="audit-tests", role="operator", ip="127.0.0.1", user_agent="pytest")


@pytest.fixture
def app_env(app_env: dict[str, str]) -> dict[str, str]:
    """Checkpoints every few events, and rate limits out of the way of concurrent flows."""
    app_env.update(
        {
            "PORTAL_AUDIT_CHECKPOINT_EVERY": str(CHECKPOINT_EVERY),
            "PORTAL_SIGN_IN_RATE_LIMIT_PER_IP": "100000/minute",
            "PORTAL_SIGN_IN_RATE_LIMIT_PER_ACCOUNT": "100000/minute",
        }
    )
    return app_env


@pytest.fixture
def append(app: Flask) -> Callable[..., list[dict[str, Any]]]:
    """append(n, action=..., **record_event kwargs): n events, each in its own transaction."""

    def factory(count: int = 1, action: str = "test.event", actor: Actor = WRITER, **kwargs: Any):
        written = []
        with app.app_context():
            for _ in range(count):
                written.append(record_event(actor, action, **kwargs))
                db.session.commit()
        return written

    return factory


def stored_events(app: Flask) -> list[dict[str, Any]]:
    """Every stored event in its exported form, in sequence order."""
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)).all()
        return [event_record(row) for row in rows]


def stored_checkpoints(app: Flask) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.execute(
            sa.text("SELECT seq, head_hash, signed_at, key_id, signature FROM audit_checkpoints ORDER BY id")
        ).mappings()
        return [dict(row) for row in rows]


def head(app: Flask) -> tuple[int, str]:
    with app.app_context():
        row = db.session.execute(sa.text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
        return row.seq, row.hash


@contextmanager
def owner_connection(app: Flask) -> Iterator[sa.Connection]:
    """A transaction in which the append-only triggers no longer apply."""
    with app.app_context():
        assert db.engine is not None
        with db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            else:
                names = connection.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'audit_%'"
                ).scalars()
                for name in list(names):
                    connection.exec_driver_sql(f"DROP TRIGGER {name}")
            yield connection


@contextmanager
def refusing_audit_inserts(app: Flask, action: str | None = None) -> Iterator[None]:
    """The database refuses new audit events (of `action` only, if given), as a full disk would.

    A trigger rather than a hook on SQLAlchemy's execution events: the failure comes from
    the database itself, whichever way the statement reached it.
    """
    condition = "" if action is None else f"WHEN (NEW.action = '{action}')"
    with app.app_context():
        assert db.engine is not None
        postgresql = db.engine.dialect.name == "postgresql"
        with db.engine.begin() as connection:
            if postgresql:
                connection.exec_driver_sql(
                    "CREATE FUNCTION test_refuse_audit_insert() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN RAISE EXCEPTION 'audit storage unavailable' USING ERRCODE = 'disk_full'; END $$"
                )
                connection.exec_driver_sql(
                    f"CREATE TRIGGER test_refuse_audit_insert BEFORE INSERT ON audit_events FOR EACH ROW "
                    f"{condition} EXECUTE FUNCTION test_refuse_audit_insert()"
                )
            else:
                connection.exec_driver_sql(
                    f"CREATE TRIGGER test_refuse_audit_insert BEFORE INSERT ON audit_events {condition} "
                    "BEGIN SELECT RAISE(ABORT, 'audit storage unavailable'); END"
                )
        try:
            yield
        finally:
            db.session.remove()
            with db.engine.begin() as connection:
                if postgresql:
                    connection.exec_driver_sql("DROP FUNCTION test_refuse_audit_insert() CASCADE")
                else:
                    connection.exec_driver_sql("DROP TRIGGER test_refuse_audit_insert")


def rewrite_event(connection: sa.Connection, seq: int, **changes: Any) -> None:
    """Change columns of the stored event `seq` (as the owner, without touching its hash)."""
    assignments = ", ".join(f"{name} = :{name}" for name in changes)
    connection.execute(
        sa.text(f"UPDATE audit_events SET {assignments} WHERE seq = :seq"), {**changes, "seq": seq}
    )


def rehash_from(connection: sa.Connection, seq: int) -> str:
    """Recompute prev_hash and hash of every event from `seq` on and move the head: a clean rewrite."""
    previous = (
        connection.execute(sa.select(AuditEvent.hash).where(AuditEvent.seq == seq - 1)).scalar_one_or_none()
        or chain.GENESIS_HASH
    )
    rows = connection.execute(
        sa.select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq)
    ).all()
    for row in rows:
        record = event_record(row)
        new_hash = chain.event_hash(previous, record)
        connection.execute(
            sa.text("UPDATE audit_events SET prev_hash = :prev, hash = :hash WHERE seq = :seq"),
            {"prev": previous, "hash": new_hash, "seq": row.seq},
        )
        previous = new_hash
    last = rows[-1].seq if rows else seq - 1
    connection.execute(
        sa.text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"),
        {"seq": last, "hash": previous},
    )
    return previous


@pytest.fixture
def public_key_file(runner: Any, tmp_path: Path) -> Path:
    """The portal's audit public key, as `flask audit public-key` hands it to an auditor."""
    result = runner.invoke(args=["audit", "public-key"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "audit-public.pem"
    path.write_text(result.stdout)
    return path


@pytest.fixture
def export_file(runner: Any, tmp_path: Path) -> Callable[[str], Path]:
    """export_file(fmt): run `flask audit export` and return the file."""
    counter = iter(range(1, 1000))

    def factory(fmt: str = "jsonl") -> Path:
        path = tmp_path / f"export-{next(counter)}.{fmt}"
        result = runner.invoke(args=["audit", "export", "--format", fmt, "--out", str(path)])
        assert result.exit_code == 0, result.output
        return path

    return factory


def run_offline_verifier(export: Path, public_key: Path) -> subprocess.CompletedProcess[str]:
    """`python -m portal.audit.verify EXPORT --public-key PEM`, as an auditor runs it."""
    return subprocess.run(
        [sys.executable, "-m", "portal.audit.verify", str(export), "--public-key", str(public_key)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
