"""Helpers shared by the auth, NDA, admin, access-matrix and header tests.

They read state straight from the database (the audit log, sessions, users) so that tests
assert what really happened, not what a page says happened.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from portal.audit.models import AuditEvent
from portal.auth.models import User, UserSession
from portal.extensions import db
from portal.nda.models import NdaAcceptance
from tests.conftest import Person, post_form

AUTH_COOKIE = "portal_session"
T = TypeVar("T")


def audit_events(app: Flask, action: str | None = None, **where: Any) -> list[AuditEvent]:
    """Audit events in chain order, optionally filtered by action and column values."""
    with app.app_context():
        query = sa.select(AuditEvent).order_by(AuditEvent.seq)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        for column, value in where.items():
            query = query.where(getattr(AuditEvent, column) == value)
        return list(db.session.scalars(query))


def details(event: AuditEvent) -> dict[str, Any]:
    """The decoded `details` of an audit event."""
    return json.loads(event.details)


def get_user(app: Flask, user_id: int) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        return user


def user_sessions(app: Flask, user_id: int) -> list[UserSession]:
    """Every session row of a user, oldest first."""
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(UserSession).where(UserSession.user_id == user_id).order_by(UserSession.id)
            )
        )


def acceptances(app: Flask, user_id: int) -> list[NdaAcceptance]:
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(NdaAcceptance).where(NdaAcceptance.user_id == user_id).order_by(NdaAcceptance.id)
            )
        )


def dump_database(app: Flask) -> str:
    """Every row of every table as text: a secret that must not be stored must not appear here."""
    parts = []
    with app.app_context():
        schema = sa.MetaData()
        schema.reflect(bind=db.session.connection())
        for table in schema.sorted_tables:
            for row in db.session.execute(sa.select(table)):
                for value in row:
                    if isinstance(value, bytes):
                        parts.append(value.hex())
                        parts.append(value.decode("latin-1"))
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def session_token(client: FlaskClient) -> str | None:
    """The auth cookie this client would send, if any."""
    cookie = client.get_cookie(AUTH_COOKIE)
    return cookie.value if cookie else None


def sign_in_password(client: FlaskClient, person: Person, next_path: str | None = None) -> TestResponse:
    """Pass the password step only (the session then waits for the second factor)."""
    path = "/login" if next_path is None else f"/login?next={next_path}"
    return post_form(client, path, {"email": person.email, "password": person.password})


def location(response: TestResponse) -> str:
    """The redirect target of `response` (relative, as the portal sends it)."""
    return response.headers.get("Location", "")


def page_text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def element_text(html: str, element_id: str) -> str:
    """The text inside the element with `element_id` (simple, non-nested markup only)."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.DOTALL)
    assert match, f"no element #{element_id}"
    return match.group(1).strip()


def run_concurrently(*calls: Callable[[], T]) -> list[T]:
    """Run `calls` in threads released together by a barrier; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def worker(index: int, call: Callable[[], T]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except BaseException as error:  # re-raised in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a concurrent request hung"
    if errors:
        raise errors[0]
    return results
