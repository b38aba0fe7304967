"""The password step: one generic failure, argon2id, lockout, rate limits, password policy."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from argon2 import PasswordHasher
from flask_limiter.util import get_qualified_name

from portal.admin.services import set_user_active
from portal.auth import passwords
from portal.auth.models import Role, User
from portal.auth.passwords import password_problems
from portal.auth.views import GENERIC_FAILURE
from portal.clock import utcnow
from portal.extensions import RATE_LIMITED, db, limiter
from tests.auth.helpers import (
    AUTH_COOKIE,
    audit_events,
    details,
    get_user,
    location,
    page_text,
    run_concurrently,
    user_sessions,
)
from tests.conftest import TEST_ACTOR, csrf_token, post_form

REDIS_ENV = "PORTAL_TEST_REDIS_URL"


def _attempt(
    client, email: str, password: str, ip: str = "198.51.100.7", headers: dict[str, str] | None = None
):
    return post_form(
        client,
        "/login",
        {"email": email, "password": password},
        environ_base={"REMOTE_ADDR": ip},
        headers=headers or {},
    )


def _normalised(html: str) -> str:
    """The page without what legitimately differs between attempts (CSRF token, echoed email)."""
    html = re.sub(r'name="csrf_token"[^>]*>', "", html)
    return re.sub(r'(id="email"[^>]*value=")[^"]*"', r'\1"', html)


def test_every_failure_looks_the_same(app, client, create_user, clock):
    wrong = create_user(Role.ANNOTATOR)
    inactive = create_user(Role.ANNOTATOR)
    locked = create_user(Role.ANNOTATOR)
    with app.app_context():
        set_user_active(db.session.get(User, inactive.id), False, TEST_ACTOR, utcnow())
        db.session.get(User, locked.id).locked_until = utcnow() + timedelta(minutes=5)
        db.session.commit()

    attempts = {
        "unknown_account": ("nobody@acme.example", "correct horse battery staple"),
        "wrong_password": (wrong.email, "not the right password at all"),
        "inactive": (inactive.email, inactive.password),
        "locked": (locked.email, locked.password),
    }
    pages = {}
    for reason, (email, password) in attempts.items():
        response = _attempt(client, email, password)
        assert response.status_code == 401
        assert GENERIC_FAILURE in page_text(response)
        assert AUTH_COOKIE not in response.headers.get("Set-Cookie", "")
        pages[reason] = _normalised(page_text(response))
    assert len(set(pages.values())) == 1, "the page differs between failure causes"

    failures = audit_events(app, "auth.sign_in")
    assert [details(event)["reason"] for event in failures] == list(attempts)
    assert all(event.outcome in ("failed", "denied") for event in failures)
    assert failures[0].actor == "nobody@acme.example"
    for person in (wrong, inactive, locked):
        assert user_sessions(app, person.id) == []


def test_unknown_account_still_runs_argon2(app, client, create_user, monkeypatch):
    person = create_user(Role.ANNOTATOR)
    calls: list[str] = []
    original = PasswordHasher.verify

    def spy(self: PasswordHasher, hash: str, password: str) -> bool:
        calls.append(hash)
        return original(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)

    assert _attempt(client, "nobody@acme.example", "some password guess").status_code == 401
    assert _attempt(client, person.email, "some password guess").status_code == 401
    unknown_hash, known_hash = calls
    assert unknown_hash.startswith("$argon2id$")
    # Same algorithm and cost parameters for both: the work per attempt does not depend on the account.
    assert unknown_hash.split("$")[1:4] == known_hash.split("$")[1:4]
    assert known_hash == get_user(app, person.id).password_hash


@pytest.fixture
def lockout_after_three(app_env: dict[str, str]) -> None:
    app_env.update(PORTAL_LOCKOUT_THRESHOLD="3", PORTAL_LOCKOUT_MINUTES="15")


@pytest.fixture
def lockout_after_four(app_env: dict[str, str]) -> None:
    app_env.update(PORTAL_LOCKOUT_THRESHOLD="4", PORTAL_LOCKOUT_MINUTES="15")


@pytest.fixture
def three_per_ip(app_env: dict[str, str]) -> None:
    app_env.update(
        PORTAL_SIGN_IN_RATE_LIMIT_PER_IP="3/minute", PORTAL_SIGN_IN_RATE_LIMIT_PER_ACCOUNT="100/minute"
    )


@pytest.fixture
def three_per_account(app_env: dict[str, str]) -> None:
    app_env.update(
        PORTAL_SIGN_IN_RATE_LIMIT_PER_IP="100/minute", PORTAL_SIGN_IN_RATE_LIMIT_PER_ACCOUNT="3/minute"
    )


def test_lockout_after_threshold_and_lifted_by_time(lockout_after_three, app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR)

    for _ in range(3):
        assert _attempt(client, person.email, "wrong password, again").status_code == 401
    lockouts = audit_events(app, "auth.lockout")
    assert len(lockouts) == 1
    assert lockouts[0].target == f"user:{person.id}" and lockouts[0].outcome == "denied"
    assert get_user(app, person.id).locked_until == clock.now + timedelta(minutes=15)

    # The right password does not help while locked, and says nothing different.
    response = _attempt(client, person.email, person.password)
    assert response.status_code == 401 and GENERIC_FAILURE in page_text(response)
    assert details(audit_events(app, "auth.sign_in")[-1])["reason"] == "locked"

    clock.advance(minutes=14, seconds=59)
    assert _attempt(client, person.email, person.password).status_code == 401
    clock.advance(seconds=1)
    response = _attempt(client, person.email, person.password)
    assert response.status_code == 302 and location(response).startswith("/2fa")
    assert len(audit_events(app, "auth.lockout")) == 1


def test_default_lockout_threshold(app, client, create_user, clock):
    assert (app.config["LOCKOUT_THRESHOLD"], app.config["LOCKOUT_MINUTES"]) == (10, 15)
    person = create_user(Role.ANNOTATOR)
    for _ in range(9):
        _attempt(client, person.email, "wrong password, again")
    assert audit_events(app, "auth.lockout") == []
    assert get_user(app, person.id).locked_until is None
    _attempt(client, person.email, "wrong password, again")
    assert get_user(app, person.id).locked_until == clock.now + timedelta(minutes=15)


def _delete_limiter_keys(connection: redis.Redis) -> None:
    for key in connection.scan_iter("LIMIT*"):
        connection.delete(key)


@pytest.fixture(params=["memory", "redis"])
def ratelimit_storage(
    request: pytest.FixtureRequest, app_env: dict[str, str]
) -> Iterator[redis.Redis | None]:
    """Rate-limit counters in memory, and in Redis when PORTAL_TEST_REDIS_URL is set (must be reachable)."""
    if request.param == "memory":
        yield None
        return
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set")
    connection = redis.Redis.from_url(url)
    try:
        connection.ping()
    except redis.exceptions.RedisError as error:
        pytest.fail(f"{REDIS_ENV} is set but Redis is unreachable: {error}")
    _delete_limiter_keys(connection)
    app_env["PORTAL_RATELIMIT_STORAGE_URI"] = url
    yield connection
    _delete_limiter_keys(connection)
    connection.close()


def _assert_rate_limited(app, response, ip: str) -> None:
    assert response.status_code == 429
    body = page_text(response)
    assert "Too many attempts" in body
    assert "Traceback" not in body
    events = audit_events(app, "access.rate_limited")
    assert len(events) == 1
    assert events[0].outcome == "denied" and events[0].ip == ip
    assert details(events[0])["path"] == "/login"


def test_sign_in_rate_limited_per_ip(ratelimit_storage, three_per_ip, app, client, clock):
    assert app.config["SIGN_IN_RATE_LIMIT_PER_IP"] == "3/minute"
    for n in range(3):
        assert (
            _attempt(client, f"guess{n}@acme.example", "a wrong password", ip="203.0.113.9").status_code
            == 401
        )
    # A forged X-Forwarded-For does not give the same client a fresh address (no proxy is configured).
    response = _attempt(
        client,
        "guess9@acme.example",
        "a wrong password",
        ip="203.0.113.9",
        headers={"X-Forwarded-For": "192.0.2.200"},
    )
    _assert_rate_limited(app, response, "203.0.113.9")
    # Another address is not affected.
    assert _attempt(client, "guess9@acme.example", "a wrong password", ip="203.0.113.10").status_code == 401
    if ratelimit_storage is not None:
        assert any(b"203.0.113.9" in key for key in ratelimit_storage.scan_iter("LIMIT*"))


def test_sign_in_rate_limited_per_account(
    ratelimit_storage, three_per_account, app, client, create_user, clock
):
    person = create_user(Role.ANNOTATOR)
    for n in range(3):
        response = _attempt(client, person.email, "a wrong password", ip=f"203.0.113.{n + 1}")
        assert response.status_code == 401
    # A fourth address does not help: the account is the key, however the email is written.
    response = _attempt(client, person.email.upper(), person.password, ip="203.0.113.4")
    _assert_rate_limited(app, response, "203.0.113.4")
    assert user_sessions(app, person.id) == []
    # Other accounts from the same address are not affected.
    assert _attempt(client, "other@acme.example", "a wrong password", ip="203.0.113.4").status_code == 401
    if ratelimit_storage is not None:
        assert any(person.email.encode() in key for key in ratelimit_storage.scan_iter("LIMIT*"))


def test_code_attempts_rate_limited_per_account(three_per_account, app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR)
    assert _attempt(client, person.email, person.password).status_code == 302
    for _ in range(3):
        assert post_form(client, "/2fa", {"code": "000000"}).status_code == 401
    response = post_form(client, "/2fa", {"code": person.totp(clock.now)})
    assert response.status_code == 429
    assert audit_events(app, "access.rate_limited")[0].actor_id == person.id
    assert all(not s.mfa_verified for s in user_sessions(app, person.id))


def test_every_rate_limited_view_is_marked(app):
    """The limiter looks only at marked views (`RATE_LIMITED`): a limit on an unmarked view would never apply."""
    with app.test_request_context():
        limited = {
            endpoint
            for endpoint, view in app.view_functions.items()
            if limiter.limit_manager.decorated_limits(get_qualified_name(view))
        }
    marked = {endpoint for endpoint, view in app.view_functions.items() if getattr(view, RATE_LIMITED, False)}
    assert (
        limited
        == marked
        == {"auth.login", "auth.second_factor", "auth.setup_second_factor", "audit.confirm_export"}
    )


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Tr0ub4dor&3", "at least 12 characters"),
        ("leavemealone", "most common passwords"),
        ("LeaveMeAlone", "most common passwords"),
        ("qwerty123456", "most common passwords"),
        ("aaaaaaaaaaaaaaaa", "Repeats"),
        ("abcdefghijklmnop", "Sequences"),
        ("annotator1@acme.example", "Add another word"),
        ("x" * 129, "at most 128"),
    ],
)
def test_weak_passwords_are_refused(app, password, reason):
    with app.app_context():
        problems = password_problems(password, ["annotator1@acme.example", "annotator1", "acme.example"])
    assert problems
    assert reason in " ".join(problems)


@pytest.mark.parametrize("password", ["plinth marmalade osprey quietly", "a boat of seventeen quiet herons"])
def test_long_passphrase_is_accepted(app, create_user, client, password):
    with app.app_context():
        assert password_problems(password, ["someone@acme.example"]) == []
    person = create_user(Role.ANNOTATOR, password=password)
    assert _attempt(client, person.email, password).status_code == 302


def test_password_rehashed_when_parameters_change(app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR)
    old_hash = get_user(app, person.id).password_hash
    assert old_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")

    app.config["ARGON2_TIME_COST"] = 2
    assert _attempt(client, person.email, person.password).status_code == 302
    new_hash = get_user(app, person.id).password_hash
    assert new_hash.startswith("$argon2id$v=19$m=1024,t=2,p=1$")

    # The new hash verifies; a wrong password still fails against it.
    assert _attempt(client.application.test_client(), person.email, person.password).status_code == 302
    assert _attempt(client.application.test_client(), person.email, "not the password").status_code == 401
    assert get_user(app, person.id).password_hash == new_hash


def test_successful_password_step_is_audited(app, client, create_user, clock):
    person = create_user(Role.SUPERVISOR)
    assert _attempt(client, person.email, person.password, ip="192.0.2.44").status_code == 302
    (event,) = [e for e in audit_events(app, "auth.sign_in") if e.outcome == "allowed"]
    assert event.actor_id == person.id and event.ip == "192.0.2.44"
    assert details(event) == {"step": "password", "next": "totp"}
    (live,) = user_sessions(app, person.id)
    assert event.session_ref == live.ref and not live.mfa_verified


def test_concurrent_wrong_passwords_all_count_towards_lockout(
    lockout_after_four, app, create_user, clock, monkeypatch
):
    """A brute force sent in parallel must not slip failures past the counter (lost updates)."""
    person = create_user(Role.ANNOTATOR)
    clients = [app.test_client() for _ in range(4)]
    tokens = [csrf_token(c, "/login") for c in clients]
    if app.config["DATABASE_URL"].startswith("postgresql"):
        # Hold every attempt after it read the account and checked the password, so that all
        # four update the counter from the same starting value. (On SQLite, BEGIN IMMEDIATE
        # serialises whole transactions; holding one here would only deadlock the others.)
        checked = threading.Barrier(4, timeout=20)
        verify_password = passwords.verify_password

        def verify_then_wait(*args: str | None) -> bool:
            result = verify_password(*args)
            checked.wait()
            return result

        monkeypatch.setattr(passwords, "verify_password", verify_then_wait)

    def attempt(c, token):
        return lambda: (
            c.post(
                "/login", data={"csrf_token": token, "email": person.email, "password": "a wrong password"}
            ).status_code
        )

    statuses = run_concurrently(*(attempt(c, t) for c, t in zip(clients, tokens, strict=True)))
    assert statuses == [401] * 4
    assert get_user(app, person.id).locked_until == clock.now + timedelta(minutes=15)
    assert len(audit_events(app, "auth.lockout")) == 1
