"""Everything issue 2 item 7 lists is recorded, driven through the real views."""

from __future__ import annotations

import re

import pyotp
import pytest
import sqlalchemy as sa

from portal.auth.models import Role, UserSession
from portal.extensions import db
from tests.audit.conftest import stored_events
from tests.conftest import post_form

LOCKOUT_THRESHOLD = 4  # a wrong password, a wrong code and a replay stay below it


@pytest.fixture
def app_env(app_env):
    app_env["PORTAL_LOCKOUT_THRESHOLD"] = str(LOCKOUT_THRESHOLD)
    return app_env


def _sign_in(client, person, password=None):
    return post_form(client, "/login", {"email": person.email, "password": password or person.password})


def _live_session_id(app, user_id: int) -> int:
    with app.app_context():
        return db.session.scalar(
            sa.select(UserSession.id).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        )


def test_every_listed_event_is_recorded(app, runner, create_user, login_as, publish, clock):
    publish()
    admin = create_user(Role.ADMIN)
    newcomer = create_user(Role.ANNOTATOR, enrolled=False)
    browser = app.test_client()

    # First sign-in: password, a wrong enrolment code, then enrolment and recovery codes.
    clock.advance(seconds=30)
    assert _sign_in(browser, newcomer).headers["Location"].startswith("/2fa/setup")
    page = browser.get("/2fa/setup").get_data(as_text=True)
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7]+)<', page).group(1)
    totp = pyotp.TOTP(secret)
    wrong = totp.at(clock.now.timestamp() + 600)
    assert post_form(browser, "/2fa/setup", {"code": wrong}).status_code == 401
    enrolled_at = clock.now
    page = post_form(browser, "/2fa/setup", {"code": totp.at(enrolled_at)}).get_data(as_text=True)
    recovery_codes = re.findall(r"<code>([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})</code>", page)
    assert len(recovery_codes) == 10

    # NDA, a forbidden page, sign-out.
    version = re.search(
        r'name="version" type="hidden" value="(\d+)"', browser.get("/nda").get_data(as_text=True)
    )
    accepted = post_form(
        browser, "/nda", {"full_name": "New Comer", "accept": "y", "version": version.group(1)}
    )
    assert accepted.status_code == 302
    assert browser.get("/admin/").status_code == 403
    assert post_form(browser, "/logout", {}, form_page="/").status_code == 302

    # A wrong password; then a wrong code, a replayed code and a good one.
    assert _sign_in(browser, newcomer, "not the password at all").status_code == 401
    clock.advance(seconds=30)
    assert _sign_in(browser, newcomer).status_code == 302
    assert post_form(browser, "/2fa", {"code": wrong}).status_code == 401
    assert post_form(browser, "/2fa", {"code": totp.at(enrolled_at)}).status_code == 401
    assert post_form(browser, "/2fa", {"code": totp.at(clock.now)}).status_code == 302
    assert post_form(browser, "/logout", {}, form_page="/").status_code == 302

    # A recovery code, then the session runs idle and expires.
    clock.advance(seconds=30)
    assert _sign_in(browser, newcomer).status_code == 302
    assert post_form(browser, "/2fa", {"code": recovery_codes[0]}).status_code == 302
    assert browser.get("/").status_code == 200
    clock.advance(minutes=16)
    assert browser.get("/").status_code == 302

    # Repeated wrong passwords lock the account; the right one is then refused too.
    for attempt in range(LOCKOUT_THRESHOLD):
        assert _sign_in(browser, newcomer, f"wrong password {attempt}").status_code == 401
    assert _sign_in(browser, newcomer).status_code == 401

    # An admin unlocks and resets the second factor (ending the newcomer's pending sign-in),
    # creates a user, revokes one session of another user, then deactivates them.
    console = login_as(app.test_client(), admin)
    detail = f"/admin/users/{newcomer.id}"
    assert post_form(console, f"{detail}/unlock", {}, form_page=detail).status_code == 302
    clock.advance(seconds=30)
    assert _sign_in(browser, newcomer).status_code == 302
    assert post_form(console, f"{detail}/reset-2fa", {}, form_page=detail).status_code == 302
    created = post_form(
        console,
        "/admin/users",
        {"email": "new.auditor@portal.example", "full_name": "New Auditor", "role": "auditor", "vendor": ""},
        form_page="/admin/",
    )
    assert created.status_code == 200
    other = create_user(Role.ANNOTATOR)
    login_as(app.test_client(), other)
    other_detail = f"/admin/users/{other.id}"
    revoke = f"/admin/sessions/{_live_session_id(app, other.id)}/revoke"
    assert post_form(console, revoke, {}, form_page=other_detail).status_code == 302
    login_as(app.test_client(), other)
    assert post_form(console, f"{other_detail}/deactivate", {}, form_page=other_detail).status_code == 302

    events = stored_events(app)
    seen = {
        (e["action"], e["outcome"], e["details"].get("reason") or e["details"].get("method")) for e in events
    }
    expected = {
        ("nda.published", "allowed", None),
        ("admin.user_created", "allowed", None),
        ("auth.sign_in", "allowed", None),
        ("auth.sign_in", "failed", "wrong_password"),
        ("auth.sign_in", "denied", "locked"),
        ("auth.lockout", "denied", None),
        ("auth.totp_enrolment", "failed", "wrong_code"),
        ("auth.totp_enrolled", "allowed", None),
        ("auth.second_factor", "allowed", "enrolment"),
        ("auth.second_factor", "allowed", "totp"),
        ("auth.second_factor", "allowed", "recovery_code"),
        ("auth.second_factor", "failed", "wrong_code"),
        ("auth.second_factor", "denied", "replay"),
        ("auth.recovery_code_used", "allowed", None),
        ("nda.accepted", "allowed", None),
        ("access.denied", "denied", f"role {Role.ANNOTATOR} may not use admin.index"),
        ("session.signed_out", "allowed", "signed_out"),
        ("session.expired", "allowed", "idle_timeout"),
        ("session.revoked", "allowed", "revoked"),
        ("session.revoked", "allowed", "mfa_reset"),
        ("session.revoked", "allowed", "user_deactivated"),
        ("admin.user_unlocked", "allowed", None),
        ("admin.totp_reset", "allowed", None),
        ("admin.user_deactivated", "allowed", None),
    }
    assert expected <= seen, sorted(expected - seen)

    by_action = {e["action"]: e for e in events}
    assert by_action["auth.lockout"]["target"] == f"user:{newcomer.id}"
    [created_event] = [e for e in events if e["details"].get("email") == "new.auditor@portal.example"]
    assert (created_event["action"], created_event["actor"], created_event["role"]) == (
        "admin.user_created",
        admin.email,
        "admin",
    )
    assert by_action["access.denied"]["actor"] == newcomer.email
    signed_in = [e for e in events if e["actor"] == newcomer.email and e["action"] != "auth.sign_in"]
    assert all(
        e["ip"] == "127.0.0.1" and e["session_ref"] for e in signed_in if e["action"] != "auth.lockout"
    )
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
