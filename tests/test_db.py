"""The database layer (`portal.db`): how a request's transaction ends, and pooled
PostgreSQL connections, checked before use only after idling."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from portal import db as portal_db
from portal.audit.models import AuditEvent
from portal.audit.services import Actor, record_event
from portal.auth.models import User
from portal.extensions import db


@pytest.fixture
def postgres_app(app: Flask) -> Flask:
    with app.app_context():
        assert db.engine is not None
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite connections are files: no server, nothing to ping or prepare")
    return app


@pytest.fixture
def pings(postgres_app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every ping the pool sends, in order."""
    assert db.engine is not None
    dialect = db.engine.dialect
    sent: list[object] = []
    ping = dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        sent.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    yield sent


def _close_pooled_connections(app: Flask) -> None:
    """Make the server end every connection to the test database, as a restart would."""
    others = (
        "FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    engine = sa.create_engine(app.config["DATABASE_URL"], isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_terminate_backend(pid) {others}")
            deadline = time.monotonic() + 10
            while connection.exec_driver_sql(f"SELECT count(*) {others}").scalar():
                assert time.monotonic() < deadline, "the backends did not exit"
                time.sleep(0.05)
    finally:
        engine.dispose()


def test_connection_used_moments_ago_is_not_pinged(client: FlaskClient, pings: list[object]) -> None:
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert pings == []


def test_connection_idle_for_a_while_is_pinged_before_use(
    client: FlaskClient, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.get("/healthz").status_code == 200
    monkeypatch.setattr(portal_db, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert client.get("/healthz").status_code == 200
    assert len(pings) == 1


def test_idle_connection_closed_by_the_server_is_replaced_unseen(
    postgres_app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.get("/healthz").status_code == 200
    _close_pooled_connections(postgres_app)
    monkeypatch.setattr(portal_db, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert client.get("/healthz").status_code == 200


def test_connection_closed_right_after_use_fails_one_request_then_the_pool_is_renewed(
    postgres_app: Flask, client: FlaskClient
) -> None:
    """The price of not pinging on every checkout, and its limit: one failed request."""
    assert client.get("/healthz").status_code == 200
    _close_pooled_connections(postgres_app)
    assert client.get("/healthz").status_code == 503
    assert client.get("/healthz").status_code == 200


# --- how a request's transaction ends (`Database.end_request`) -----------------------------


@pytest.fixture
def endings(app: Flask) -> Iterator[list[str]]:
    """How each transaction on the app's engine ended, in order: "commit" or "rollback"."""
    assert db.engine is not None
    engine, seen = db.engine, []

    def committed(connection: sa.Connection) -> None:
        seen.append("commit")

    def rolled_back(connection: sa.Connection) -> None:
        seen.append("rollback")

    sa.event.listen(engine, "commit", committed)
    sa.event.listen(engine, "rollback", rolled_back)
    yield seen
    sa.event.remove(engine, "commit", committed)
    sa.event.remove(engine, "rollback", rolled_back)


def _names(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(User.full_name).order_by(User.id)))


def test_a_request_that_only_read_ends_with_commit(
    client: FlaskClient, login_as, create_user, endings: list[str]
) -> None:
    login_as(client, create_user())
    endings.clear()
    assert client.get("/tasks").status_code == 200
    assert endings and set(endings) == {"commit"}, endings


def test_changes_nobody_committed_are_rolled_back(app: Flask, create_user, endings: list[str]) -> None:
    person = create_user()
    endings.clear()
    with app.app_context():
        db.session.execute(sa.update(User).values(full_name="Statement"))
    with app.app_context():
        db.session.get_one(User, person.id).full_name = "Flushed"
        db.session.flush()
    with app.app_context():
        db.session.scalar(sa.select(User.id))
        record_event(Actor(label="test"), "test.queued")
    assert endings == ["rollback"] * 3
    assert _names(app) == ["Test Person"]
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == "test.queued")
            )
            == 0
        )


def test_a_failed_request_is_rolled_back(app: Flask, endings: list[str]) -> None:
    with pytest.raises(RuntimeError), app.app_context():
        db.session.scalar(sa.select(User.id))
        raise RuntimeError("the view failed")
    assert endings == ["rollback"]


def test_statements_stay_prepared_from_one_request_to_the_next(
    postgres_app: Flask, client: FlaskClient
) -> None:
    """psycopg prepares a statement on its fifth use and forgets them all at a ROLLBACK."""
    for _ in range(12):
        assert client.get("/healthz").status_code == 200
    with postgres_app.app_context():
        prepared = db.session.scalars(
            sa.select(sa.column("statement")).select_from(sa.table("pg_prepared_statements"))
        )
        assert any("SELECT" in statement for statement in prepared)
