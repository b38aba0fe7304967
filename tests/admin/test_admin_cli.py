"""Admin CLI: `vendors create`, `users create|deactivate|reset-2fa`, `nda publish`; all audited."""

from __future__ import annotations

import getpass
import hashlib

import sqlalchemy as sa

from portal.auth.models import RecoveryCode, Role, User, Vendor
from portal.auth.passwords import verify_password
from portal.extensions import db
from portal.nda.models import NdaVersion
from tests.auth.helpers import audit_events, details, get_user, user_sessions

PASSPHRASE = "plinth marmalade osprey quietly"
CLI_ACTOR = f"cli:{getpass.getuser()}"


def _user_by_email(app, email: str) -> User | None:
    with app.app_context():
        return db.session.scalar(sa.select(User).where(User.email == email))


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_vendors_create(app, runner):
    result = runner.invoke(args=["vendors", "create", "Lyrebird Transcripts"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        vendor = db.session.scalar(sa.select(Vendor).where(Vendor.name == "Lyrebird Transcripts"))
    assert vendor is not None
    assert f"vendor {vendor.id}: Lyrebird Transcripts" in result.output
    (event,) = audit_events(app, "admin.vendor_created")
    assert (event.actor, event.role, event.target) == (CLI_ACTOR, "operator", f"vendor:{vendor.id}")

    again = runner.invoke(args=["vendors", "create", "lyrebird transcripts"])
    assert again.exit_code != 0 and "already exists" in again.output
    assert _count(app, Vendor) == 1 and len(audit_events(app, "admin.vendor_created")) == 1


def test_users_create_with_password_from_stdin(app, runner, client, login_as):
    runner.invoke(args=["vendors", "create", "Lyrebird Transcripts"])
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "Ann@Lyrebird.example",
            "--role",
            "annotator",
            "--vendor",
            "Lyrebird Transcripts",
            "--name",
            "Ann Notator",
            "--password-stdin",
        ],
        input=PASSPHRASE + "\n",
    )
    assert result.exit_code == 0, result.output
    assert PASSPHRASE not in result.output and "password:" not in result.output
    user = _user_by_email(app, "ann@lyrebird.example")
    assert user is not None and user.role is Role.ANNOTATOR and user.vendor_name == "Lyrebird Transcripts"
    assert user.full_name == "Ann Notator"
    with app.app_context():
        assert verify_password(user.password_hash, PASSPHRASE)
    (event,) = audit_events(app, "admin.user_created")
    assert event.actor == CLI_ACTOR and event.target == f"user:{user.id}"
    assert PASSPHRASE not in event.details
    assert details(event) == {"email": user.email, "role": "annotator", "vendor": "Lyrebird Transcripts"}


def test_users_create_generates_and_prints_a_password(app, runner):
    result = runner.invoke(args=["users", "create", "--email", "aud@portal.example", "--role", "auditor"])
    assert result.exit_code == 0, result.output
    password = result.output.split("password:", 1)[1].strip()
    user = _user_by_email(app, "aud@portal.example")
    assert user is not None and user.vendor_id is None
    with app.app_context():
        assert verify_password(user.password_hash, password)


def test_weak_password_is_refused_with_a_clear_message(app, runner):
    for weak, message in [
        ("short pass", "at least 12 characters"),
        ("leavemealone", "most common passwords"),
    ]:
        result = runner.invoke(
            args=[
                "users",
                "create",
                "--email",
                "weak@portal.example",
                "--role",
                "auditor",
                "--password-stdin",
            ],
            input=weak + "\n",
        )
        assert result.exit_code != 0
        assert message in result.output
        assert "Traceback" not in result.output
    assert _user_by_email(app, "weak@portal.example") is None
    assert audit_events(app, "admin.user_created") == []


def test_annotator_without_vendor_is_refused(app, runner):
    result = runner.invoke(
        args=["users", "create", "--email", "lonely@acme.example", "--role", "annotator", "--password-stdin"],
        input=PASSPHRASE + "\n",
    )
    assert result.exit_code != 0 and "Annotators belong to a vendor." in result.output
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "lonely@acme.example",
            "--role",
            "annotator",
            "--vendor",
            "Nobody Inc",
            "--password-stdin",
        ],
        input=PASSPHRASE + "\n",
    )
    assert result.exit_code != 0 and "no vendor named 'Nobody Inc'" in result.output
    result = runner.invoke(
        args=["users", "create", "--email", "root@portal.example", "--role", "superuser", "--password-stdin"],
        input=PASSPHRASE + "\n",
    )
    assert result.exit_code != 0
    assert _count(app, User) == 0


def test_users_deactivate_ends_sessions(app, runner, client, create_user, login_as):
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    result = runner.invoke(args=["users", "deactivate", person.email])
    assert result.exit_code == 0, result.output
    assert not get_user(app, person.id).active
    assert [s.end_reason for s in user_sessions(app, person.id)] == ["user_deactivated"]
    assert client.get("/").status_code == 302
    (event,) = audit_events(app, "admin.user_deactivated")
    assert event.actor == CLI_ACTOR and event.target == f"user:{person.id}"

    missing = runner.invoke(args=["users", "deactivate", "nobody@acme.example"])
    assert missing.exit_code != 0 and "no user with email" in missing.output


def test_users_reset_2fa(app, runner, client, create_user, login_as):
    person = create_user(Role.SUPERVISOR)
    login_as(client, person)
    result = runner.invoke(args=["users", "reset-2fa", person.email])
    assert result.exit_code == 0, result.output
    user = get_user(app, person.id)
    assert user.totp_secret is None and user.totp_confirmed_at is None
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(RecoveryCode.user_id == person.id)) == 0
    assert [s.end_reason for s in user_sessions(app, person.id)] == ["mfa_reset"]
    (event,) = audit_events(app, "admin.totp_reset")
    assert event.actor == CLI_ACTOR and event.target == f"user:{person.id}"


def test_nda_publish(app, runner, tmp_path):
    text = "Keep every recording confidential.\n"
    path = tmp_path / "nda.txt"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(args=["nda", "publish", str(path), "--title", "Agreement"])
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(text.strip().encode()).hexdigest()
    assert f"NDA version 1 published (sha256 {digest})" in result.output
    with app.app_context():
        (nda,) = db.session.scalars(sa.select(NdaVersion)).all()
    assert (nda.version, nda.title, nda.sha256, nda.published_by) == (1, "Agreement", digest, CLI_ACTOR)
    (event,) = audit_events(app, "nda.published")
    assert event.actor == CLI_ACTOR and details(event)["sha256"] == digest

    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    result = runner.invoke(args=["nda", "publish", str(empty)])
    assert result.exit_code != 0 and "needs a title and a text" in result.output
    assert _count(app, NdaVersion) == 1
