"""Pooled PostgreSQL connections: checked before use only after idling (`portal.db`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from portal import db as portal_db
from portal.extensions import db


@pytest.fixture
def postgres_app(app: Flask) -> Flask:
    with app.app_context():
        assert db.engine is not None
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite connections are files, not sockets: nothing to ping")
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
