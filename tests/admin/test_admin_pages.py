"""Admin pages: vendors, users, account actions, NDA publishing; all audited, admins only."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.auth.models import Role, User, Vendor
from portal.auth.passwords import verify_password
from portal.clock import utcnow
from portal.extensions import db
from portal.nda.models import NdaVersion
from tests.auth.helpers import (
    audit_events,
    details,
    element_text,
    get_user,
    location,
    page_text,
    user_sessions,
)
from tests.conftest import post_form


@pytest.fixture
def admin_client(app, client, create_user, login_as):
    admin = create_user(Role.ADMIN)
    login_as(client, admin)
    client.admin = admin
    return client


def _user_by_email(app, email: str) -> User | None:
    with app.app_context():
        return db.session.scalar(sa.select(User).where(User.email == email))


def test_admin_creates_a_vendor(app, admin_client):
    response = post_form(
        admin_client, "/admin/vendors", {"name": "Lyrebird Transcripts"}, form_page="/admin/"
    )
    assert response.status_code == 302 and location(response) == "/admin/"
    with app.app_context():
        vendor = db.session.scalar(sa.select(Vendor).where(Vendor.name == "Lyrebird Transcripts"))
    assert vendor is not None
    (event,) = audit_events(app, "admin.vendor_created")
    assert event.actor_id == admin_client.admin.id and event.target == f"vendor:{vendor.id}"
    assert "Lyrebird Transcripts" in page_text(admin_client.get("/admin/"))

    response = post_form(
        admin_client, "/admin/vendors", {"name": "lyrebird transcripts"}, form_page="/admin/"
    )
    assert response.status_code == 400 and "already exists" in page_text(response)
    assert len(audit_events(app, "admin.vendor_created")) == 1


def test_admin_creates_a_user_with_a_one_time_password(app, admin_client, create_user):
    create_user(Role.SUPERVISOR, vendor="Lyrebird Transcripts")
    with app.app_context():
        vendor_id = db.session.scalar(sa.select(Vendor.id).where(Vendor.name == "Lyrebird Transcripts"))
    data = {
        "email": "New.Person@Lyrebird.example",
        "full_name": "New Person",
        "role": "annotator",
        "vendor": str(vendor_id),
    }
    response = post_form(admin_client, "/admin/users", data, form_page="/admin/")
    assert response.status_code == 200
    password = element_text(page_text(response), "new-password")

    user = _user_by_email(app, "new.person@lyrebird.example")
    assert user is not None and user.role is Role.ANNOTATOR and user.vendor_id == vendor_id
    assert user.totp_secret is None
    with app.app_context():
        assert verify_password(user.password_hash, password)
    assert password not in page_text(admin_client.get(f"/admin/users/{user.id}"))
    (event,) = [e for e in audit_events(app, "admin.user_created") if e.actor_id == admin_client.admin.id]
    assert details(event) == {"email": user.email, "role": "annotator", "vendor": "Lyrebird Transcripts"}
    assert password not in event.details


def test_admin_cannot_create_an_annotator_without_vendor(app, admin_client):
    data = {"email": "novendor@acme.example", "role": "annotator", "vendor": ""}
    response = post_form(admin_client, "/admin/users", data, form_page="/admin/")
    assert response.status_code == 400
    assert "Annotators belong to a vendor" in page_text(response)
    assert _user_by_email(app, "novendor@acme.example") is None


@pytest.mark.parametrize(
    ("action", "check"),
    [
        ("deactivate", lambda user: not user.active and user.deactivated_at is not None),
        ("reset-2fa", lambda user: user.totp_secret is None and user.totp_confirmed_at is None),
        ("unlock", lambda user: user.locked_until is None and user.failed_attempts == 0),
        ("sign-out-everywhere", lambda user: user.active),
    ],
)
def test_account_actions_take_effect_and_are_audited(app, admin_client, create_user, login_as, action, check):
    person = create_user(Role.SUPERVISOR)
    target_client = login_as(app.test_client(), person)
    with app.app_context():
        user = db.session.get(User, person.id)
        user.locked_until, user.failed_attempts = utcnow() + timedelta(minutes=10), 4
        db.session.commit()

    response = post_form(admin_client, f"/admin/users/{person.id}/{action}", {}, form_page="/admin/")
    assert response.status_code == 302 and location(response) == f"/admin/users/{person.id}"
    assert check(get_user(app, person.id))
    expected_action = {
        "deactivate": "admin.user_deactivated",
        "reset-2fa": "admin.totp_reset",
        "unlock": "admin.user_unlocked",
        "sign-out-everywhere": "session.revoked",
    }[action]
    (event,) = audit_events(app, expected_action)
    assert event.actor_id == admin_client.admin.id
    session_alive = target_client.get("/").status_code == 200
    assert session_alive is (action == "unlock")
    assert all(s.ended_at is not None for s in user_sessions(app, person.id)) is (action != "unlock")


def test_reactivated_user_can_sign_in_again(app, admin_client, create_user, login_as):
    person = create_user(Role.ANNOTATOR)
    post_form(admin_client, f"/admin/users/{person.id}/deactivate", {}, form_page="/admin/")
    assert not get_user(app, person.id).active
    post_form(admin_client, f"/admin/users/{person.id}/reactivate", {}, form_page="/admin/")
    assert get_user(app, person.id).active
    assert audit_events(app, "admin.user_reactivated")[0].actor_id == admin_client.admin.id
    assert login_as(app.test_client(), person).get("/").status_code == 200


def test_unknown_action_or_user_is_404(app, admin_client, create_user):
    person = create_user(Role.ANNOTATOR)
    assert (
        post_form(admin_client, f"/admin/users/{person.id}/promote", {}, form_page="/admin/").status_code
        == 404
    )
    assert admin_client.get("/admin/users/999999").status_code == 404
    assert (
        post_form(admin_client, "/admin/sessions/999999/revoke", {}, form_page="/admin/").status_code == 404
    )


def test_admin_publishes_an_nda_version(app, admin_client):
    body = "Version one of the agreement."
    response = post_form(admin_client, "/admin/nda", {"title": "Agreement", "body": body})
    assert response.status_code == 302
    with app.app_context():
        (nda,) = db.session.scalars(sa.select(NdaVersion)).all()
    assert nda.version == 1 and nda.published_by == admin_client.admin.email
    (event,) = audit_events(app, "nda.published")
    assert event.actor_id == admin_client.admin.id and event.target == "nda:1"
    # The admin too must accept it before going on.
    assert location(admin_client.get("/admin/")).startswith("/nda")

    version = re.search(r'name="version" type="hidden" value="(\d+)"', page_text(admin_client.get("/nda")))
    assert version
    data = {"full_name": "Robin Admin", "accept": "y", "version": version.group(1)}
    assert post_form(admin_client, "/nda", data).status_code == 302

    empty = post_form(admin_client, "/admin/nda", {"title": "Agreement", "body": "   "})
    assert empty.status_code == 400
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(NdaVersion)) == 1


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.SUPERVISOR, Role.AUDITOR])
def test_non_admins_are_refused_and_audited(app, client, create_user, login_as, role):
    person = create_user(role)
    victim = create_user(Role.ANNOTATOR)
    login_as(client, person)
    token_page = "/account/sessions"
    attempts = [
        ("GET", "/admin/", {}),
        ("POST", "/admin/vendors", {"name": "Shadow Vendor"}),
        ("POST", "/admin/users", {"email": "shadow@acme.example", "role": "admin", "vendor": ""}),
        ("POST", f"/admin/users/{victim.id}/deactivate", {}),
        ("POST", "/admin/nda", {"title": "Forged", "body": "Forged text"}),
    ]
    for method, path, data in attempts:
        if method == "GET":
            response = client.get(path)
        else:
            response = post_form(client, path, data, form_page=token_page)
        assert response.status_code == 403, path
        assert "Shadow" not in page_text(response)

    denied = audit_events(app, "access.denied", actor_id=person.id)
    assert [details(e)["path"] for e in denied] == [path for _, path, _ in attempts]
    assert all(e.outcome == "denied" and e.role == role.value for e in denied)
    assert get_user(app, victim.id).active
    assert _user_by_email(app, "shadow@acme.example") is None
    with app.app_context():
        assert db.session.scalar(sa.select(Vendor.id).where(Vendor.name == "Shadow Vendor")) is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(NdaVersion)) == 0


def test_admin_overview_lists_users_and_states(app, admin_client, create_user):
    person = create_user(Role.ANNOTATOR)
    page = page_text(admin_client.get("/admin/"))
    assert person.email in page and admin_client.admin.email in page
    assert re.search(r"Acme Transcription", page)
