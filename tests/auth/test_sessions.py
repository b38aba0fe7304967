"""Server-side sessions: fixation, rotation, expiry, revocation, sign-out, hashed tokens."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.auth.models import Role, User
from portal.auth.sessions import TOUCH_INTERVAL
from portal.extensions import db
from tests.auth.helpers import (
    AUTH_COOKIE,
    audit_events,
    details,
    dump_database,
    location,
    page_text,
    session_token,
    sign_in_password,
    user_sessions,
)
from tests.conftest import post_form
from tests.playback.conftest import FETCH

CLEAR_SITE_DATA = '"cache", "cookies", "storage"'


def _with_token(app, token: str):
    """A fresh browser that presents `token` as its session cookie."""
    browser = app.test_client()
    browser.set_cookie(AUTH_COOKIE, token)
    return browser


def _signed_out(response) -> bool:
    return response.status_code == 302 and location(response).startswith("/login")


def test_session_fixation_is_impossible(app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR)
    planted = "attacker-chosen-session-value-0123456789abcdef"
    client.set_cookie(AUTH_COOKIE, planted)
    client.get("/login")
    csrf_cookie_before = client.get_cookie("portal_csrf")
    assert csrf_cookie_before is not None

    response = sign_in_password(client, person)
    assert response.status_code == 302
    after_password = session_token(client)
    assert after_password and after_password != planted
    # The pre-login form session (and its CSRF secret) is dropped too.
    csrf_cookie_after = client.get_cookie("portal_csrf")
    assert csrf_cookie_after is None or csrf_cookie_after.value != csrf_cookie_before.value
    assert _signed_out(_with_token(app, planted).get("/"))

    assert post_form(client, "/2fa", {"code": person.totp(clock.now)}).status_code == 302
    after_second_factor = session_token(client)
    assert after_second_factor not in (planted, after_password)
    assert client.get("/").status_code == 200

    # The token that only passed the password step is dead; the rotated one is the same session.
    assert _signed_out(_with_token(app, after_password).get("/2fa"))
    assert _with_token(app, after_second_factor).get("/").status_code == 200
    (only,) = user_sessions(app, person.id)
    assert only.ended_at is None and only.mfa_verified


def test_signing_in_again_ends_the_previous_session(app, client, create_user, login_as, clock):
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    first_token = session_token(client)
    login_as(client, person)
    first, second = user_sessions(app, person.id)
    assert first.end_reason == "signed_out" and second.ended_at is None
    assert _signed_out(_with_token(app, first_token).get("/"))


def test_token_is_random_and_stored_only_hashed(app, client, create_user, login_as):
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    token = session_token(client)
    assert token is not None and len(token) >= 43  # 256 bits, base64url
    (row,) = user_sessions(app, person.id)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in dump_database(app)
    assert token not in row.ref


def test_idle_sessions_expire_after_fifteen_minutes(app, client, create_user, login_as, clock):
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    for _ in range(3):
        clock.advance(minutes=14, seconds=59)
        assert client.get("/").status_code == 200
    clock.advance(minutes=15)
    assert _signed_out(client.get("/"))
    (row,) = user_sessions(app, person.id)
    assert row.end_reason == "idle_timeout"
    (expired,) = audit_events(app, "session.expired")
    assert details(expired) == {"reason": "idle_timeout", "user_id": person.id}
    assert expired.target == f"session:{row.ref}"


def test_sessions_end_twelve_hours_after_sign_in_however_active(app, client, create_user, login_as, clock):
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    signed_in_at = clock.now
    while clock.now + timedelta(minutes=14) < signed_in_at + timedelta(hours=12):
        clock.advance(minutes=14)
        assert client.get("/").status_code == 200
    clock.advance(minutes=14)
    assert _signed_out(client.get("/"))
    (row,) = user_sessions(app, person.id)
    assert row.end_reason == "absolute_timeout"
    assert details(audit_events(app, "session.expired")[0])["reason"] == "absolute_timeout"


def test_refreshed_last_seen_survives_a_view_that_rolls_back(app, client, create_user, login_as, clock):
    """The lookup commits the `last_seen_at` it refreshed at once, before the view runs.

    A refused media request rolls its transaction back; it is still activity, so the
    idle timeout counts from it, to the second.
    """
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    clock.advance(minutes=14)
    refused = client.get("/media/no-such-token", headers=FETCH)
    assert refused.status_code == 403
    (row,) = user_sessions(app, person.id)
    assert row.last_seen_at == clock.now
    clock.advance(minutes=14, seconds=59)
    assert client.get("/").status_code == 200
    clock.advance(minutes=15)
    assert _signed_out(client.get("/"))
    assert user_sessions(app, person.id)[0].end_reason == "idle_timeout"


def test_last_seen_is_refreshed_at_most_every_touch_interval(app, client, create_user, login_as, clock):
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    seen = user_sessions(app, person.id)[0].last_seen_at
    clock.advance(seconds=TOUCH_INTERVAL.total_seconds() - 1)
    assert client.get("/tasks").status_code == 200
    assert user_sessions(app, person.id)[0].last_seen_at == seen
    clock.advance(seconds=1)
    assert client.get("/tasks").status_code == 200
    assert user_sessions(app, person.id)[0].last_seen_at == clock.now


def test_a_lookup_that_changes_nothing_does_not_commit(app, client, create_user, login_as, clock):
    """On PostgreSQL the lookup's transaction carries on into the view: a page that only
    reads is one checkout and one transaction, which the end of the request commits. On
    SQLite, where every transaction holds the write lock, the lookup ends its own at once
    (and the view starts another). A refreshed `last_seen_at` is committed by the lookup
    itself, before the view runs.
    """
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    with app.app_context():
        engine = db.engine
    commits: list[object] = []
    checkouts: list[object] = []

    def count_commit(connection: object) -> None:
        commits.append(connection)

    def count_checkout(*connection: object) -> None:
        checkouts.append(connection)

    sa.event.listen(engine, "commit", count_commit)
    sa.event.listen(engine, "checkout", count_checkout)
    try:
        assert client.get("/tasks").status_code == 200
        expected = (2, 2) if engine.dialect.name == "sqlite" else (1, 1)
        assert (len(checkouts), len(commits)) == expected
        commits.clear()
        clock.advance(seconds=TOUCH_INTERVAL.total_seconds())
        assert client.get("/tasks").status_code == 200
        assert len(commits) == 2
    finally:
        sa.event.remove(engine, "commit", count_commit)
        sa.event.remove(engine, "checkout", count_checkout)


@pytest.fixture
def short_sessions(app_env: dict[str, str]) -> None:
    app_env.update(PORTAL_SESSION_IDLE_MINUTES="5", PORTAL_SESSION_ABSOLUTE_HOURS="1")


def test_lifetimes_come_from_configuration(short_sessions, app, client, create_user, login_as, clock):
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    clock.advance(minutes=4, seconds=59)
    assert client.get("/").status_code == 200
    clock.advance(minutes=5)
    assert _signed_out(client.get("/"))
    assert user_sessions(app, person.id)[0].end_reason == "idle_timeout"


def test_pending_sign_in_expires(app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR)
    sign_in_password(client, person)
    clock.advance(minutes=9, seconds=59)
    assert client.get("/2fa").status_code == 200
    clock.advance(seconds=1)
    assert _signed_out(client.get("/2fa"))
    (row,) = user_sessions(app, person.id)
    assert row.end_reason == "pending_expired" and not row.mfa_verified
    assert details(audit_events(app, "session.expired")[0])["reason"] == "pending_expired"


def test_deactivation_ends_every_session_at_once(app, client, create_user, login_as, clock):
    person = create_user(Role.ANNOTATOR)
    admin = create_user(Role.ADMIN)
    laptop = login_as(client, person)
    phone = login_as(app.test_client(), person)
    admin_client = login_as(app.test_client(), admin)

    response = post_form(admin_client, f"/admin/users/{person.id}/deactivate", {}, form_page="/login")
    assert response.status_code == 302

    assert _signed_out(laptop.get("/")) and _signed_out(phone.get("/"))
    assert [s.end_reason for s in user_sessions(app, person.id)] == ["user_deactivated"] * 2
    revoked = audit_events(app, "session.revoked")
    assert [(e.actor_id, details(e)["reason"]) for e in revoked] == [(admin.id, "user_deactivated")] * 2
    assert audit_events(app, "admin.user_deactivated")[0].target == f"user:{person.id}"


def test_session_of_a_user_deactivated_behind_its_back_is_refused(app, client, create_user, login_as):
    """Even if the flag is flipped without the service (say, by a DBA), the session stops working."""
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    with app.app_context():
        db.session.get(User, person.id).active = False
        db.session.commit()
    assert _signed_out(client.get("/"))
    assert user_sessions(app, person.id)[0].end_reason == "user_deactivated"


def test_my_sessions_lists_and_ends_other_sessions(app, client, create_user, login_as, clock):
    person = create_user(Role.ANNOTATOR)
    client.environ_base["HTTP_USER_AGENT"] = "LaptopBrowser/1.0"
    login_as(client, person)
    phone = app.test_client()
    phone.environ_base["HTTP_USER_AGENT"] = "PhoneBrowser/2.0"
    login_as(phone, person)

    page = page_text(client.get("/account/sessions"))
    assert "LaptopBrowser/1.0" in page and "PhoneBrowser/2.0" in page
    laptop_row, phone_row = user_sessions(app, person.id)
    assert f"/account/sessions/{phone_row.ref}/end" in page
    assert f"/account/sessions/{laptop_row.ref}/end" not in page  # the current one is signed out differently

    response = post_form(client, f"/account/sessions/{phone_row.ref}/end", {}, form_page="/login")
    assert response.status_code == 302 and location(response) == "/account/sessions"
    assert _signed_out(phone.get("/"))
    assert client.get("/").status_code == 200
    (revoked,) = audit_events(app, "session.revoked")
    assert revoked.actor_id == person.id and revoked.target == f"session:{phone_row.ref}"


def test_cannot_end_someone_elses_session(app, client, create_user, login_as):
    person = create_user(Role.ANNOTATOR)
    victim = create_user(Role.ANNOTATOR)
    login_as(client, person)
    victim_client = login_as(app.test_client(), victim)
    (victim_row,) = user_sessions(app, victim.id)

    response = post_form(client, f"/account/sessions/{victim_row.ref}/end", {}, form_page="/login")
    assert response.status_code == 403
    assert victim_client.get("/").status_code == 200
    assert user_sessions(app, victim.id)[0].ended_at is None
    (denied,) = audit_events(app, "access.denied")
    assert denied.actor_id == person.id and denied.target == f"session:{victim_row.ref}"


def test_sign_out_everywhere(app, client, create_user, login_as):
    person = create_user(Role.ANNOTATOR)
    bystander = create_user(Role.ANNOTATOR)
    login_as(client, person)
    other = login_as(app.test_client(), person)
    bystander_client = login_as(app.test_client(), bystander)

    response = post_form(client, "/account/sessions/end-all", {}, form_page="/login")
    assert _signed_out(response)
    assert response.headers["Clear-Site-Data"] == CLEAR_SITE_DATA
    assert _signed_out(client.get("/")) and _signed_out(other.get("/"))
    assert [s.end_reason for s in user_sessions(app, person.id)] == ["signed_out_everywhere"] * 2
    assert bystander_client.get("/").status_code == 200
    assert len(audit_events(app, "session.revoked", actor_id=person.id)) == 2


def test_admin_revokes_one_session(app, client, create_user, login_as):
    person = create_user(Role.SUPERVISOR)
    admin = create_user(Role.ADMIN)
    login_as(client, person)
    admin_client = login_as(app.test_client(), admin)
    (row,) = user_sessions(app, person.id)

    page = page_text(admin_client.get(f"/admin/users/{person.id}"))
    assert f"/admin/sessions/{row.id}/revoke" in page
    response = post_form(admin_client, f"/admin/sessions/{row.id}/revoke", {}, form_page="/login")
    assert response.status_code == 302 and location(response) == f"/admin/users/{person.id}"

    assert _signed_out(client.get("/"))
    assert user_sessions(app, person.id)[0].end_reason == "revoked"
    (revoked,) = audit_events(app, "session.revoked")
    assert revoked.actor_id == admin.id and revoked.target == f"session:{row.ref}"


def test_logout_clears_site_data_and_kills_the_token(app, client, create_user, login_as):
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    token = session_token(client)

    response = post_form(client, "/logout", {}, form_page="/login")
    assert _signed_out(response)
    assert response.headers["Clear-Site-Data"] == CLEAR_SITE_DATA
    cookie_headers = response.headers.getlist("Set-Cookie")
    assert any(h.startswith(f"{AUTH_COOKIE}=;") and "Expires=Thu, 01 Jan 1970" in h for h in cookie_headers)
    assert session_token(client) is None

    # Replaying the old cookie value does not bring the session back.
    assert _signed_out(_with_token(app, token).get("/"))
    (row,) = user_sessions(app, person.id)
    assert row.end_reason == "signed_out"
    (event,) = audit_events(app, "session.signed_out")
    assert event.actor_id == person.id and event.session_ref == row.ref


def test_logout_needs_post(client, create_user, login_as):
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200
