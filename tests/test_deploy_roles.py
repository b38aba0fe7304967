"""The production role of deploy/postgres-roles.sql cannot rewrite the audit log."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from portal.config import PROJECT_ROOT
from tests.conftest import POSTGRES_ENV, _reset_postgres

pytestmark = pytest.mark.skipif(
    not os.environ.get(POSTGRES_ENV), reason=f"roles are PostgreSQL-only; set {POSTGRES_ENV}"
)


@pytest.fixture
def postgres_engine(postgres_url: str):
    _reset_postgres(postgres_url)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.exec_driver_sql((PROJECT_ROOT / "deploy" / "postgres-roles.sql").read_text())
        connection.exec_driver_sql(
            "INSERT INTO audit_events (seq, occurred_at, action, outcome, details, prev_hash, hash) "
            "VALUES (1, now(), 'test.event', 'allowed', '{}', repeat('0', 64), repeat('1', 64))"
        )
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'rewritten'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "UPDATE audit_checkpoints SET signature = 'x'",
        "DELETE FROM audit_checkpoints",
    ],
)
def test_app_role_cannot_change_audit_tables_even_without_triggers(postgres_engine, statement):
    with postgres_engine.connect() as connection:
        connection.exec_driver_sql("SET session_replication_role = replica")
        connection.exec_driver_sql("SET ROLE portal_app")
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            connection.exec_driver_sql(statement)
        connection.rollback()
    with postgres_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT action FROM audit_events").scalar_one() == "test.event"


def test_app_role_can_append_and_use_application_tables(postgres_engine):
    with postgres_engine.begin() as connection:
        connection.exec_driver_sql("SET ROLE portal_app")
        connection.exec_driver_sql(
            "INSERT INTO audit_events (seq, occurred_at, action, outcome, details, prev_hash, hash) "
            "VALUES (2, now(), 'test.second', 'allowed', '{}', repeat('1', 64), repeat('2', 64))"
        )
        connection.exec_driver_sql("UPDATE audit_head SET seq = 2")
        connection.exec_driver_sql("INSERT INTO vendors (name, active, created_at) VALUES ('V', true, now())")
        connection.exec_driver_sql("DELETE FROM vendors WHERE name = 'V'")
    with postgres_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM audit_events").scalar_one() == 2
