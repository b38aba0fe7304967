"""An action whose audit event cannot be written does not happen.

The database is made to refuse the audit insert (as a full disk would), or the chain head
row is removed; the action the event would have described must leave no trace either.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import sqlalchemy as sa

from portal.audit.services import record_event
from portal.auth.models import Role, Vendor
from portal.extensions import db
from tests.audit.conftest import WRITER, head, owner_connection, refusing_audit_inserts, stored_events
from tests.conftest import csrf_token, post_form


class BrokenAudit:
    """`refuse()` makes the database refuse every new audit event until the test ends."""

    def __init__(self, app) -> None:
        self.stack = ExitStack()
        self.app = app

    def refuse(self) -> None:
        self.stack.enter_context(refusing_audit_inserts(self.app))

    def restore(self) -> None:
        self.stack.close()


@pytest.fixture
def broken_audit(app):
    broken = BrokenAudit(app)
    yield broken
    broken.restore()


def _count(app, sql: str, **params) -> int:
    with app.app_context():
        return db.session.scalar(sa.text(sql), params)


def _sign_in(client, person, password=None):
    return post_form(client, "/login", {"email": person.email, "password": password or person.password})


def test_sign_in_does_not_open_a_session(app, client, create_user, broken_audit):
    person = create_user(Role.ANNOTATOR)
    events_before = len(stored_events(app))
    token = csrf_token(client, "/login")
    broken_audit.refuse()
    response = client.post(
        "/login", data={"csrf_token": token, "email": person.email, "password": person.password}
    )
    assert response.status_code == 500
    assert "portal_session" not in response.headers.get("Set-Cookie", "")
    assert _count(app, "SELECT count(*) FROM user_sessions") == 0
    assert len(stored_events(app)) == events_before


def test_failed_sign_in_does_not_count_towards_lockout_unseen(app, client, create_user, broken_audit):
    person = create_user(Role.ANNOTATOR)
    token = csrf_token(client, "/login")
    broken_audit.refuse()
    response = client.post(
        "/login", data={"csrf_token": token, "email": person.email, "password": "wrong password!!"}
    )
    assert response.status_code == 500
    assert _count(app, "SELECT failed_attempts FROM users WHERE id = :id", id=person.id) == 0


def test_missing_chain_head_refuses_sign_in(app, client, create_user):
    person = create_user(Role.ANNOTATOR)
    with owner_connection(app) as connection:
        connection.exec_driver_sql("DELETE FROM audit_head")
    response = _sign_in(client, person)
    assert response.status_code == 500
    assert _count(app, "SELECT count(*) FROM user_sessions") == 0


def test_second_factor_is_not_verified(app, client, create_user, clock, broken_audit):
    person = create_user(Role.ANNOTATOR)
    clock.advance(seconds=30)
    assert _sign_in(client, person).status_code == 302
    token = csrf_token(client, "/2fa")
    broken_audit.refuse()
    response = client.post("/2fa", data={"csrf_token": token, "code": person.totp(clock.now)})
    assert response.status_code == 500
    assert _count(app, "SELECT count(*) FROM user_sessions WHERE mfa_verified_at IS NOT NULL") == 0
    assert _count(app, "SELECT count(*) FROM users WHERE totp_last_step IS NOT NULL") == 0


def test_nda_acceptance_is_not_kept(app, client, create_user, login_as, publish, broken_audit):
    publish()
    person = create_user(Role.ANNOTATOR)
    login_as(client, person, accept_nda=False)
    page = client.get("/nda").get_data(as_text=True)
    token = csrf_token(client, "/nda")
    version = __import__("re").search(r'name="version" type="hidden" value="(\d+)"', page).group(1)
    broken_audit.refuse()
    response = client.post(
        "/nda", data={"csrf_token": token, "full_name": "Test Person", "accept": "y", "version": version}
    )
    assert response.status_code == 500
    assert _count(app, "SELECT count(*) FROM nda_acceptances") == 0


def test_admin_user_creation_leaves_no_user(app, client, create_user, login_as, broken_audit):
    admin = create_user(Role.ADMIN)
    login_as(client, admin)
    token = csrf_token(client, "/admin/")
    broken_audit.refuse()
    response = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "email": "new.person@portal.example",
            "full_name": "New Person",
            "role": "auditor",
            "vendor": "",
        },
    )
    assert response.status_code == 500
    assert _count(app, "SELECT count(*) FROM users WHERE email = 'new.person@portal.example'") == 0
    broken_audit.restore()
    response = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "email": "new.person@portal.example",
            "full_name": "New Person",
            "role": "auditor",
            "vendor": "",
        },
    )
    assert response.status_code == 200
    assert _count(app, "SELECT count(*) FROM users WHERE email = 'new.person@portal.example'") == 1


def test_admin_deactivation_does_not_happen(app, client, create_user, login_as, broken_audit):
    admin = create_user(Role.ADMIN)
    person = create_user(Role.ANNOTATOR)
    login_as(client, admin)
    token = csrf_token(client, f"/admin/users/{person.id}")
    broken_audit.refuse()
    response = client.post(f"/admin/users/{person.id}/deactivate", data={"csrf_token": token})
    assert response.status_code == 500
    assert _count(app, "SELECT count(*) FROM users WHERE id = :id AND active", id=person.id) == 1


def test_cli_user_creation_leaves_no_user(app, runner, broken_audit):
    broken_audit.refuse()
    with app.app_context():  # `flask users` is a plain click group: the test runner pushes no context
        result = runner.invoke(
            args=[
                "users",
                "create",
                "--email",
                "cli@portal.example",
                "--role",
                "auditor",
                "--password-stdin",
            ],
            input="correct horse battery staple\n",
        )
    assert isinstance(result.exception, sa.exc.DBAPIError), result.output
    assert "audit storage unavailable" in str(result.exception)
    assert _count(app, "SELECT count(*) FROM users") == 0


def test_a_refusal_that_cannot_be_audited_is_still_a_refusal(
    app, client, create_user, login_as, broken_audit
):
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: an error inside the 403 handler is a 500
    broken_audit.refuse()
    response = client.get("/admin/")
    assert response.status_code == 500
    assert 'action="/admin/users"' not in response.get_data(as_text=True)


def test_releasing_a_savepoint_commits_nothing(app):
    """A nested transaction's commit only releases its savepoint, events or not."""
    seq_before = head(app)[0]
    with app.app_context():
        record_event(WRITER, "test.nested")
        with db.session.begin_nested():
            db.session.add(Vendor(name="Nested Vendor"))
        db.session.rollback()
    assert head(app)[0] == seq_before
    assert _count(app, "SELECT count(*) FROM vendors WHERE name = 'Nested Vendor'") == 0
