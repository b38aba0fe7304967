"""The second factor: enrolment, TOTP window, replay guard, recovery codes, resets, encryption at rest."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag

from portal.auth import second_factor
from portal.auth.models import RecoveryCode, Role, User
from portal.extensions import db
from tests.auth.helpers import (
    audit_events,
    details,
    dump_database,
    element_text,
    get_user,
    location,
    page_text,
    run_concurrently,
    session_token,
    sign_in_password,
    user_sessions,
)
from tests.conftest import csrf_token, post_form


def _enrol(client, clock, person) -> tuple[str, list[str], str]:
    """Sign in an unenrolled person and enrol; return the secret, the recovery codes and the code used."""
    response = sign_in_password(client, person)
    assert location(response).startswith("/2fa/setup")
    secret = element_text(page_text(client.get("/2fa/setup")), "totp-secret")
    code = pyotp.TOTP(secret).at(clock.now)
    page = post_form(client, "/2fa/setup", {"code": code})
    assert page.status_code == 200, page_text(page)
    codes = re.findall(r"\b[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}\b", page_text(page))
    return secret, codes, code


def test_enrolment_page_shows_secret_and_svg_qr(app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR, enrolled=False)
    response = sign_in_password(client, person)
    assert response.status_code == 302 and location(response).startswith("/2fa/setup")

    page = page_text(client.get("/2fa/setup"))
    secret = element_text(page, "totp-secret")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert re.search(r"<svg[^>]*>.*<path", page, re.DOTALL)
    # A reload, and even a new sign-in, shows the same pending secret.
    assert element_text(page_text(client.get("/2fa/setup")), "totp-secret") == secret
    other = app.test_client()
    sign_in_password(other, person)
    assert element_text(page_text(other.get("/2fa/setup")), "totp-secret") == secret

    user = get_user(app, person.id)
    assert user.totp_confirmed_at is None
    with app.app_context():
        assert second_factor.decrypt_secret(user) == secret
    # Until enrolment is confirmed, no page past the second factor is reachable.
    assert location(client.get("/")).startswith("/2fa/setup")


def test_wrong_enrolment_code_is_refused(app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR, enrolled=False)
    sign_in_password(client, person)
    secret = element_text(page_text(client.get("/2fa/setup")), "totp-secret")
    wrong = pyotp.TOTP(secret).at(clock.now + timedelta(minutes=5))
    response = post_form(client, "/2fa/setup", {"code": wrong})
    assert response.status_code == 401
    assert get_user(app, person.id).totp_confirmed_at is None
    assert [details(e)["reason"] for e in audit_events(app, "auth.totp_enrolment")] == ["wrong_code"]
    assert location(client.get("/")).startswith("/2fa/setup")


def test_confirmation_issues_ten_hashed_recovery_codes(app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR, enrolled=False)
    token_before = session_token(client)
    sign_in_password(client, person)
    pending_token = session_token(client)
    secret, codes, _ = _enrol(client, clock, person)

    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", code) for code in codes)
    with app.app_context():
        rows = db.session.scalars(sa.select(RecoveryCode).where(RecoveryCode.user_id == person.id)).all()
        assert sorted(row.code_hash for row in rows) == sorted(
            second_factor.recovery_code_hash(c) for c in codes
        )
    stored = dump_database(app)
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored
    assert secret not in stored

    user = get_user(app, person.id)
    assert user.totp_confirmed_at == clock.now
    (enrolled,) = audit_events(app, "auth.totp_enrolled")
    assert enrolled.actor_id == person.id and details(enrolled) == {"recovery_codes": 10}
    # Enrolment completes the second factor for this session, under a new token.
    assert session_token(client) not in (token_before, pending_token)
    (live,) = [s for s in user_sessions(app, person.id) if s.ended_at is None]
    assert live.mfa_verified
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(("steps", "accepted"), [(-1, True), (1, True), (-2, False), (2, False)])
def test_codes_one_step_away_are_accepted_two_are_not(app, client, create_user, clock, steps, accepted):
    person = create_user(Role.ANNOTATOR)
    sign_in_password(client, person)
    code = person.totp(clock.now + timedelta(seconds=30 * steps))
    response = post_form(client, "/2fa", {"code": code})
    if accepted:
        assert response.status_code == 302 and location(response) == "/"
        assert client.get("/").status_code == 200
    else:
        assert response.status_code == 401
        assert location(client.get("/")).startswith("/2fa")
        assert [details(e)["reason"] for e in audit_events(app, "auth.second_factor")] == ["wrong_code"]


def test_replayed_code_is_refused_and_audited(app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR)
    sign_in_password(client, person)
    code = person.totp(clock.now)
    assert post_form(client, "/2fa", {"code": code}).status_code == 302
    post_form(client, "/logout", {}, form_page="/login")

    # The same code again, still inside its time step, from another browser.
    clock.advance(seconds=5)
    thief = app.test_client()
    sign_in_password(thief, person)
    response = post_form(thief, "/2fa", {"code": code})
    assert response.status_code == 401
    assert location(thief.get("/")).startswith("/2fa")
    # An older step than the one already used is a replay too.
    response = post_form(thief, "/2fa", {"code": person.totp(clock.now - timedelta(seconds=30))})
    assert response.status_code == 401

    replays = [e for e in audit_events(app, "auth.second_factor") if e.outcome == "denied"]
    assert [details(e) for e in replays] == [{"method": "totp", "reason": "replay"}] * 2
    assert all(e.actor_id == person.id for e in replays)


def test_enrolment_code_cannot_be_replayed(app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR, enrolled=False)
    _, _, code = _enrol(client, clock, person)
    post_form(client, "/logout", {}, form_page="/login")

    clock.advance(seconds=3)
    sign_in_password(client, person)
    response = post_form(client, "/2fa", {"code": code})
    assert response.status_code == 401
    (replay,) = [e for e in audit_events(app, "auth.second_factor") if e.outcome == "denied"]
    assert details(replay)["reason"] == "replay"


@pytest.mark.parametrize("kind", ["totp", "recovery_code"])
def test_concurrent_requests_with_one_code_let_exactly_one_in(app, create_user, clock, monkeypatch, kind):
    person = create_user(Role.ANNOTATOR)
    clients = [app.test_client(), app.test_client()]
    for c in clients:
        assert sign_in_password(c, person).status_code == 302
    tokens = [csrf_token(c, "/2fa") for c in clients]
    code = person.totp(clock.now) if kind == "totp" else person.recovery_codes[0]

    # Hold both requests after they checked the code and before either spends it, so that they
    # really race on the single-use guard (a check-then-write guard would let both in).
    checked = threading.Barrier(2, timeout=20)
    matching_step = second_factor.matching_step

    def matching_step_then_wait(*args: object) -> int | None:
        step = matching_step(*args)
        checked.wait()
        return step

    monkeypatch.setattr(second_factor, "matching_step", matching_step_then_wait)

    def verify(c, token):
        return lambda: c.post("/2fa", data={"csrf_token": token, "code": code}).status_code

    statuses = run_concurrently(*(verify(c, t) for c, t in zip(clients, tokens, strict=True)))
    assert sorted(statuses) == [302, 401]
    assert sum(s.mfa_verified for s in user_sessions(app, person.id)) == 1
    outcomes = sorted((e.outcome, details(e).get("reason")) for e in audit_events(app, "auth.second_factor"))
    refusal = ("denied", "replay") if kind == "totp" else ("failed", "wrong_code")
    assert outcomes == sorted([("allowed", None), refusal])


def test_recovery_code_works_once(app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR)
    code = person.recovery_codes[3]
    sign_in_password(client, person)
    response = post_form(client, "/2fa", {"code": code.lower().replace("-", " ")})
    assert response.status_code == 302 and client.get("/").status_code == 200
    (used,) = audit_events(app, "auth.recovery_code_used")
    assert used.actor_id == person.id and details(used) == {"remaining": 9}

    post_form(client, "/logout", {}, form_page="/login")
    sign_in_password(client, person)
    assert post_form(client, "/2fa", {"code": code}).status_code == 401
    assert location(client.get("/")).startswith("/2fa")
    assert len(audit_events(app, "auth.recovery_code_used")) == 1
    # Another unused code still works.
    assert post_form(client, "/2fa", {"code": person.recovery_codes[4]}).status_code == 302


def test_enrolled_user_cannot_re_enrol_with_a_password(app, client, create_user, clock):
    person = create_user(Role.ANNOTATOR)
    stored_before = get_user(app, person.id).totp_secret
    sign_in_password(client, person)

    response = client.get("/2fa/setup")
    assert response.status_code == 403
    assert "totp-secret" not in page_text(response)
    token = csrf_token(client, "/2fa")
    assert client.post("/2fa/setup", data={"csrf_token": token, "code": "123456"}).status_code == 403

    assert get_user(app, person.id).totp_secret == stored_before
    denied = audit_events(app, "access.denied", actor_id=person.id)
    assert [details(e)["path"] for e in denied] == ["/2fa/setup", "/2fa/setup"]


def test_admin_reset_forces_re_enrolment_and_ends_sessions(app, client, create_user, login_as, clock):
    person = create_user(Role.ANNOTATOR)
    admin = create_user(Role.ADMIN)
    login_as(client, person)
    admin_client = login_as(app.test_client(), admin)

    response = post_form(
        admin_client, f"/admin/users/{person.id}/reset-2fa", {}, form_page=f"/admin/users/{person.id}"
    )
    assert response.status_code == 302

    assert location(client.get("/")).startswith("/login")
    assert {s.end_reason for s in user_sessions(app, person.id)} == {"mfa_reset"}
    user = get_user(app, person.id)
    assert user.totp_secret is None and user.totp_confirmed_at is None
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(RecoveryCode.user_id == person.id)) == 0
    (reset,) = audit_events(app, "admin.totp_reset")
    assert reset.actor_id == admin.id and reset.target == f"user:{person.id}"

    # Next sign-in enrols a new authenticator; the old one and the old recovery codes are useless.
    clock.advance(seconds=30)
    response = sign_in_password(client, person)
    assert location(response).startswith("/2fa/setup")
    assert location(
        post_form(client, "/2fa", {"code": person.totp(clock.now)}, form_page="/login")
    ).startswith("/2fa/setup")
    new_secret, _, _ = _enrol(client, clock, person)
    assert new_secret != person.totp_secret


def test_totp_secret_is_encrypted_at_rest_and_bound_to_its_user(app, create_user):
    first = create_user(Role.ANNOTATOR)
    second = create_user(Role.ANNOTATOR)
    with app.app_context():
        user = db.session.get(User, first.id)
        other = db.session.get(User, second.id)
        raw = user.totp_secret
        assert raw is not None
        assert first.totp_secret.encode() not in raw
        assert pyotp.TOTP(first.totp_secret).byte_secret() not in raw
        assert second_factor.decrypt_secret(user) == first.totp_secret

        tampered = bytearray(raw)
        tampered[-1] ^= 0x01
        user.totp_secret = bytes(tampered)
        with pytest.raises(InvalidTag):
            second_factor.decrypt_secret(user)

        # A ciphertext copied onto another user's row does not decrypt there.
        other.totp_secret = raw
        with pytest.raises(InvalidTag):
            second_factor.decrypt_secret(other)
        db.session.rollback()
    assert first.totp_secret not in dump_database(app)


def test_failed_codes_lock_the_account_and_end_the_pending_session(
    lockout_after_three, app, client, create_user, clock
):
    person = create_user(Role.ANNOTATOR)
    sign_in_password(client, person)
    assert post_form(client, "/2fa", {"code": "000000"}).status_code == 401
    assert post_form(client, "/2fa", {"code": "111111"}).status_code == 401
    response = post_form(client, "/2fa", {"code": "222222"})
    assert response.status_code == 302 and location(response) == "/login"

    (pending,) = user_sessions(app, person.id)
    assert pending.end_reason == "revoked" and not pending.mfa_verified
    (lockout,) = audit_events(app, "auth.lockout")
    assert lockout.actor_id == person.id
    # The right code from a new sign-in does not help: the account is locked.
    response = sign_in_password(client, person)
    assert response.status_code == 401


@pytest.fixture
def lockout_after_three(app_env: dict[str, str]) -> None:
    app_env.update(PORTAL_LOCKOUT_THRESHOLD="3")
