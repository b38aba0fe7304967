"""CSRF: every POST route the app serves refuses a missing or foreign token, and audits it."""

from __future__ import annotations

import pytest
from flask import Flask

from portal.auth.models import Role
from tests.auth.helpers import audit_events, details, get_user, user_sessions
from tests.conftest import csrf_token

# Routes that take no cookies at all (service API, Authorization: Bearer) need no CSRF token;
# `test_csrf_exempt_routes_ignore_session_cookies` proves a signed-in browser gets nothing there.
CSRF_EXEMPT_PREFIXES = ("/api/",)


def _post_rules(app: Flask) -> list:
    return sorted(
        (rule for rule in app.url_map.iter_rules() if "POST" in (rule.methods or ())),
        key=lambda rule: rule.rule,
    )


def _url(app: Flask, rule, values: dict[str, object]) -> str:
    arguments = {name: values.get(name, 1) for name in rule.arguments}
    with app.test_request_context():
        return app.url_map.bind("localhost").build(rule.endpoint, arguments, method="POST")


def test_every_post_route_refuses_missing_or_foreign_tokens(app, client, create_user, login_as, publish):
    publish()
    admin = create_user(Role.ADMIN)
    victim = create_user(Role.ANNOTATOR)
    login_as(client, admin)
    (admin_session,) = user_sessions(app, admin.id)
    # A valid token, but of another browser's session: what a forging site could obtain.
    foreign_token = csrf_token(app.test_client(), "/login")
    values = {
        "user_id": victim.id,
        "action": "deactivate",
        "session_id": admin_session.id,
        "ref": admin_session.ref,
        "public_id": "0" * 32,
    }

    checked = []
    for rule in _post_rules(app):
        if rule.rule.startswith(CSRF_EXEMPT_PREFIXES):
            continue
        url = _url(app, rule, values)
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": foreign_token}):
            before = len(audit_events(app, "access.csrf_rejected"))
            response = client.post(url, data={**data, "email": victim.email, "password": victim.password})
            assert response.status_code == 400, (url, data)
            rejected = audit_events(app, "access.csrf_rejected")[before:]
            assert [(e.actor_id, e.outcome, details(e)["path"]) for e in rejected] == [
                (admin.id, "denied", url)
            ]
        checked.append(rule.rule)

    assert {"/login", "/logout", "/2fa", "/nda", "/admin/users", "/account/sessions/end-all"} <= set(checked)
    # Nothing the forged requests asked for happened.
    assert client.get("/").status_code == 200
    assert get_user(app, victim.id).active
    assert [s.ended_at for s in user_sessions(app, admin.id)] == [None]
    assert user_sessions(app, victim.id) == []


def test_anonymous_login_without_token_is_refused(app, client, create_user):
    person = create_user(Role.ANNOTATOR)
    client.get("/login")
    response = client.post("/login", data={"email": person.email, "password": person.password})
    assert response.status_code == 400
    assert user_sessions(app, person.id) == []
    (event,) = audit_events(app, "access.csrf_rejected")
    assert event.actor_id is None and details(event)["path"] == "/login"


def test_csrf_exempt_routes_ignore_session_cookies(app, client, create_user, login_as):
    admin = create_user(Role.ADMIN)
    login_as(client, admin)
    exempt = [rule for rule in _post_rules(app) if rule.rule.startswith(CSRF_EXEMPT_PREFIXES)]
    if not exempt:
        pytest.skip("no CSRF-exempt routes")
    for rule in exempt:
        url = _url(app, rule, {})
        response = client.post(url, data={"anything": "x"})
        assert response.status_code in (401, 403), url
        assert response.is_json and "error" in response.get_json()
