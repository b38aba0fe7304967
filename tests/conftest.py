"""Fixtures shared by every test: databases, the app, users, and signing in.

Every database test runs on SQLite and, when PORTAL_TEST_DATABASE_URL is set, on
PostgreSQL too. If that variable is set but the server cannot be reached, the tests
fail: CI must never pass by skipping its PostgreSQL half.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa
import time_machine
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask
from flask.testing import FlaskClient

from portal import create_app
from portal.admin.services import create_user as create_user_service
from portal.admin.services import create_vendor, find_vendor
from portal.audit.services import Actor
from portal.auth import second_factor
from portal.auth.models import Role
from portal.clock import utcnow
from portal.config import PROJECT_ROOT
from portal.extensions import db
from portal.nda.services import publish_nda

TEST_ACTOR = Actor(label="tests", role="operator", ip="local")
DEFAULT_PASSWORD = "correct horse battery staple"
POSTGRES_ENV = "PORTAL_TEST_DATABASE_URL"


def _migrate(url: str) -> None:
    config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(POSTGRES_ENV) else ["sqlite"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "portal.sqlite3"
    _migrate(f"sqlite:///{path}")
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.exec_driver_sql("PRAGMA journal_mode=DELETE")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL test database, migrated from scratch once per run."""
    url = os.environ[POSTGRES_ENV]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
            connection.exec_driver_sql("DROP FUNCTION IF EXISTS portal_refuse_audit_change() CASCADE")
    except sa.exc.OperationalError as error:
        pytest.fail(f"{POSTGRES_ENV} is set but PostgreSQL is unreachable: {error}")
    finally:
        engine.dispose()
    _migrate(url)
    return url


def _reset_postgres(url: str) -> None:
    """Empty every table, audit tables included, bypassing the append-only triggers.

    `session_replication_role = replica` disables ordinary triggers for this connection
    only; it needs a superuser, which the local test server's trust account is.
    """
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        tables = [
            row[0]
            for row in connection.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        connection.exec_driver_sql("SET session_replication_role = replica")
        connection.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        connection.exec_driver_sql("SET session_replication_role = DEFAULT")
        connection.exec_driver_sql(f"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{'0' * 64}')")
        connection.exec_driver_sql("INSERT INTO outbox_head (id, position) VALUES (1, 0)")
        connection.exec_driver_sql("INSERT INTO dashboard_rollup (id) VALUES (1)")
    engine.dispose()


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated, empty database for one test, on each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "portal.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    _reset_postgres(url)
    return url


def make_env(database_url: str, instance: Path, **overrides: str) -> dict[str, str]:
    """The environment a test app is built from (never the process environment)."""
    env = {
        "PORTAL_ENV": "testing",
        "PORTAL_INSTANCE_PATH": str(instance),
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_ARGON2_TIME_COST": "1",
        "PORTAL_ARGON2_MEMORY_COST": "1024",
        "PORTAL_ARGON2_PARALLELISM": "1",
        "PORTAL_LOG_LEVEL": "WARNING",
    }
    env.update(overrides)
    return env


@pytest.fixture
def app_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Override entries of this dict in a test (before using `app`) to change settings."""
    return make_env(database_url, tmp_path / "instance")


@pytest.fixture
def app(app_env: dict[str, str]) -> Iterator[Flask]:
    application = create_app(app_env)
    yield application
    db.session.remove()
    assert db.engine is not None
    db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@dataclass
class Person:
    """A test user with what a person would hold: password, authenticator, recovery codes."""

    id: int
    email: str
    role: Role
    vendor: str | None
    password: str
    totp_secret: str | None = None
    recovery_codes: list[str] = field(default_factory=list)

    def totp(self, at: datetime | None = None) -> str:
        assert self.totp_secret, "user is not enrolled"
        return pyotp.TOTP(self.totp_secret).at(at or datetime.now(UTC))


@pytest.fixture
def create_user(app: Flask) -> Callable[..., Person]:
    """Factory: create_user(role=..., vendor=..., enrolled=True) → Person."""
    counter = iter(range(1, 10_000))

    def factory(
        role: Role = Role.ANNOTATOR,
        vendor: str | None = "Acme Transcription",
        email: str | None = None,
        password: str = DEFAULT_PASSWORD,
        enrolled: bool = True,
    ) -> Person:
        if role in (Role.AUDITOR, Role.ADMIN) and vendor == "Acme Transcription":
            vendor = None
        email = email or f"{role.value}{next(counter)}@{(vendor or 'portal').split()[0].lower()}.example"
        with app.app_context():
            vendor_row = None
            if vendor:
                vendor_row = find_vendor(vendor) or create_vendor(vendor, TEST_ACTOR)
            user = create_user_service(email, role, vendor_row, password, TEST_ACTOR, full_name="Test Person")
            person = Person(user.id, user.email, role, vendor, password)
            if enrolled:
                secret = second_factor.new_secret()
                user.totp_secret = second_factor.encrypt_secret(user, secret)
                user.totp_confirmed_at = utcnow()
                person.totp_secret = secret
                person.recovery_codes = second_factor.issue_recovery_codes(user)
            db.session.commit()
        return person

    return factory


@pytest.fixture
def publish(app: Flask) -> Callable[..., int]:
    """Publish an NDA version; returns its version number."""

    def factory(text: str = "Keep everything you hear confidential.", title: str = "NDA") -> int:
        with app.app_context():
            nda = publish_nda(title, text, TEST_ACTOR, utcnow())
            db.session.commit()
            return nda.version

    return factory


def csrf_token(client: FlaskClient, path: str) -> str:
    """Fetch `path` and return the CSRF token of its form."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def post_form(client: FlaskClient, path: str, data: dict[str, str], form_page: str | None = None, **kwargs):
    """POST `data` with the CSRF token taken from `form_page` (default: `path`)."""
    token = csrf_token(client, form_page or path)
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


class Traveller:
    """Moves the clock: every portal time rule (TOTP, sessions, lockouts) follows it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)
        self._machine = time_machine.travel(self.now, tick=False)
        self._traveller = self._machine.start()

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        self._traveller.move_to(self.now)
        return self.now

    def stop(self) -> None:
        self._machine.stop()


@pytest.fixture
def clock() -> Iterator[Traveller]:
    """Freeze time at a known instant; `clock.advance(seconds=31)` moves it."""
    traveller = Traveller()
    yield traveller
    traveller.stop()


@pytest.fixture
def login_as(clock: Traveller) -> Callable[..., FlaskClient]:
    """Sign `person` in through the real forms: password, TOTP, and the NDA if one is current.

    Moves the clock one TOTP step forward first, so consecutive sign-ins of the same person
    never trip the replay guard.
    """

    def sign_in(client: FlaskClient, person: Person, accept_nda: bool = True) -> FlaskClient:
        clock.advance(seconds=30)
        response = post_form(client, "/login", {"email": person.email, "password": person.password})
        assert response.status_code == 302, response.get_data(as_text=True)
        response = post_form(client, "/2fa", {"code": person.totp(clock.now)})
        assert response.status_code == 302, response.get_data(as_text=True)
        if accept_nda and client.get("/").headers.get("Location", "").startswith("/nda"):
            page = client.get("/nda").get_data(as_text=True)
            version = re.search(r'name="version" type="hidden" value="(\d+)"', page)
            assert version
            response = post_form(
                client, "/nda", {"full_name": "Test Person", "accept": "y", "version": version.group(1)}
            )
            assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return sign_in
