"""The database itself refuses to change or remove audit rows, whatever the caller."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal.extensions import db
from tests.audit.conftest import stored_checkpoints, stored_events

REFUSED_EVERYWHERE = [
    "UPDATE audit_events SET action = 'rewritten' WHERE seq = 1",
    "UPDATE audit_events SET seq = seq + 100",
    "DELETE FROM audit_events WHERE seq = 1",
    "DELETE FROM audit_events",
    "UPDATE audit_checkpoints SET signature = 'forged'",
    "DELETE FROM audit_checkpoints",
]

COPY_OF_EVENT_ONE = (
    "SELECT seq, occurred_at, actor_id, actor, role, vendor, session_ref, ip, user_agent, "
    "'rewritten', target, outcome, details, prev_hash, hash FROM audit_events WHERE seq = 1"
)
COPY_OF_CHECKPOINT_ONE = (
    "SELECT id, seq, head_hash, signed_at, key_id, 'forged' FROM audit_checkpoints ORDER BY id LIMIT 1"
)
REFUSED_ON_SQLITE = [
    f"INSERT OR REPLACE INTO audit_events {COPY_OF_EVENT_ONE}",
    f"REPLACE INTO audit_checkpoints {COPY_OF_CHECKPOINT_ONE}",
    f"INSERT INTO audit_events {COPY_OF_EVENT_ONE} ON CONFLICT (seq) DO UPDATE SET action = 'upsert'",
]
REFUSED_ON_POSTGRESQL = [
    "TRUNCATE audit_events",
    "TRUNCATE audit_checkpoints",
    "TRUNCATE audit_events, audit_checkpoints CASCADE",
    f"INSERT INTO audit_events {COPY_OF_EVENT_ONE} ON CONFLICT (seq) DO UPDATE SET action = 'upsert'",
    f"INSERT INTO audit_checkpoints {COPY_OF_CHECKPOINT_ONE} ON CONFLICT (id) DO UPDATE SET signature = 'upsert'",
]


@pytest.fixture
def populated(app, append):
    """Six events (a checkpoint at 5); returns what is stored before the attempt."""
    append(6)
    return stored_events(app), stored_checkpoints(app)


def _assert_refused(app, statement: str, populated) -> None:
    with app.app_context():
        assert db.engine is not None
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.engine.begin() as connection:
            connection.exec_driver_sql(statement)
    assert (stored_events(app), stored_checkpoints(app)) == populated


@pytest.mark.parametrize("statement", REFUSED_EVERYWHERE)
def test_refused_on_every_backend(app, populated, statement):
    _assert_refused(app, statement, populated)


@pytest.mark.parametrize("statement", REFUSED_ON_SQLITE)
def test_refused_on_sqlite(app, populated, statement, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite syntax")
    _assert_refused(app, statement, populated)


@pytest.mark.parametrize("statement", REFUSED_ON_POSTGRESQL)
def test_refused_on_postgresql(app, populated, statement, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    _assert_refused(app, statement, populated)


def test_appending_still_works_after_refusals(app, append, populated, runner):
    _assert_refused(app, REFUSED_EVERYWHERE[0], populated)
    append(1)
    assert [event["seq"] for event in stored_events(app)] == list(range(1, 8))
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
