"""`GET /audit/export`: step-up first, recorded before streaming, sealed, verifiable offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from portal.audit import export as audit_export
from portal.audit.export import ExportStream, plan_export
from portal.audit.models import AuditEvent
from portal.audit.services import Actor
from portal.audit.verify import read_export, verify_file
from portal.auth.models import Role, UserSession
from portal.extensions import db
from portal.keys import portal_keys
from tests.audit.conftest import refusing_audit_inserts, stored_events
from tests.audit.test_chain import AWKWARD_TEXT
from tests.conftest import post_form


@pytest.fixture
def app_env(app_env):
    """Three wrong codes lock the account (the step-up counts towards the lockout)."""
    app_env["PORTAL_LOCKOUT_THRESHOLD"] = "3"
    return app_env


@pytest.fixture
def auditor(create_user):
    return create_user(Role.AUDITOR)


@pytest.fixture
def signed_in(app, client, login_as, auditor, append):
    append(6, target="clip:" + "c" * 32, details={"first": 0, "last": 99, "length": 100, "size": 100})
    login_as(client, auditor)
    return client


def confirm(client, person, clock, query: str = "format=csv", code: str | None = None):
    """Re-enter a code on the confirm page, one TOTP step after the last one used."""
    clock.advance(seconds=30)
    return post_form(client, f"/audit/export/confirm?{query}", {"code": code or person.totp(clock.now)})


def _public_key(app):
    with app.app_context():
        return portal_keys().audit_signing_key.public_key()


def _events(app, action: str) -> list[dict]:
    return [event for event in stored_events(app) if event["action"] == action]


def test_export_asks_for_a_fresh_code_and_is_audited(app, signed_in, auditor, clock, tmp_path):
    client = signed_in
    first = client.get("/audit/export?format=csv&outcome=allowed")
    assert first.status_code == 302
    assert first.headers["Location"] == "/audit/export/confirm?format=csv&outcome=allowed"
    page = client.get(first.headers["Location"]).get_data(as_text=True)
    assert "Enter your authenticator code" in page and "Outcome" in page

    # The code that signed the auditor in (same time step) is a replay; a wrong one fails.
    same_step = post_form(client, "/audit/export/confirm?format=csv", {"code": auditor.totp(clock.now)})
    assert same_step.status_code == 401
    wrong = confirm(
        client, auditor, clock, code="000000" if auditor.totp(clock.now) != "000000" else "111111"
    )
    assert wrong.status_code == 401
    attempts = _events(app, "auth.step_up")
    assert [(e["outcome"], e["details"]["reason"]) for e in attempts] == [
        ("denied", "replay"),
        ("failed", "wrong_code"),
    ]
    assert client.get("/audit/export?format=csv").status_code == 302

    old_cookie = client.get_cookie("portal_session").value
    confirmed = confirm(client, auditor, clock)
    assert confirmed.status_code == 303
    assert confirmed.headers["Location"] == "/audit/export/confirm?format=csv&go=1"
    assert client.get_cookie("portal_session").value != old_cookie, "a step-up rotates the session token"
    ready = client.get(confirmed.headers["Location"]).get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="0; url=/audit/export?format=csv">' in ready
    assert _events(app, "auth.step_up")[-1]["outcome"] == "allowed"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(UserSession.step_up_at.is_not(None))) == 1

    response = client.get("/audit/export?format=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(r'attachment; filename="audit-full-\d{8}T\d{6}Z-seq1-\d+\.csv"', disposition)
    assert response.headers["Cache-Control"] == "no-store"
    path = tmp_path / "web.csv"
    path.write_bytes(response.get_data())
    result = verify_file(path, _public_key(app))
    assert result.ok, result.problems
    [exported] = _events(app, "audit.exported")
    assert exported["actor"] == auditor.email and exported["target"] == "export:csv"
    assert exported["details"]["up_to_seq"] == result.last_seq == exported["seq"] - 1
    assert exported["session_ref"]

    # The step-up lasts PORTAL_AUDIT_STEP_UP_MINUTES (5), then the code is asked again.
    clock.advance(minutes=4, seconds=50)
    assert client.get("/audit/export?format=jsonl").status_code == 200
    clock.advance(seconds=15)
    assert client.get("/audit/export?format=jsonl").status_code == 302


def test_recovery_codes_do_not_confirm_an_export(app, signed_in, auditor, clock):
    refused = confirm(signed_in, auditor, clock, code=auditor.recovery_codes[0])
    assert refused.status_code == 401
    assert _events(app, "auth.step_up")[-1]["details"]["reason"] == "wrong_code"


def test_repeated_wrong_codes_lock_the_account_and_end_the_session(app, signed_in, auditor, clock):
    for attempt in range(2):
        assert confirm(signed_in, auditor, clock, code=f"00000{attempt}").status_code == 401
    ended = confirm(signed_in, auditor, clock, code="000009")
    assert ended.status_code == 302 and ended.headers["Location"].startswith("/login")
    assert signed_in.get("/audit").status_code == 302
    actions = [event["action"] for event in stored_events(app)]
    assert "auth.lockout" in actions and actions[-1] == "session.revoked"


def test_the_export_event_is_committed_before_the_first_byte(app, signed_in, auditor, clock):
    confirm(signed_in, auditor, clock)
    response = signed_in.get("/audit/export?format=jsonl", buffered=False)
    assert response.status_code == 200
    # Nothing of the body has been produced yet, and the export is already on record.
    with app.app_context():
        recorded = db.session.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "audit.exported"))
        db.session.commit()
    assert recorded == 1
    body = b"".join(response.response)
    response.close()
    assert body.rstrip().endswith(b"}") and b'"type":"seal"' in body.splitlines()[-1]


def test_an_export_that_cannot_be_recorded_does_not_happen(app, signed_in, auditor, clock):
    confirm(signed_in, auditor, clock)
    checkpoints_before = _count(app, "audit_checkpoints")

    with refusing_audit_inserts(app, "audit.exported"):
        response = signed_in.get("/audit/export?format=csv")
    assert response.status_code == 500
    assert b"event,1," not in response.get_data()
    assert _events(app, "audit.exported") == []
    assert _count(app, "audit_checkpoints") == checkpoints_before


def _count(app, table: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.text(f"SELECT count(*) FROM {table}"))


def test_unknown_format_is_refused(signed_in):
    assert signed_in.get("/audit/export?format=xlsx").status_code == 400
    assert signed_in.get("/audit/export?format=csv&task=abc").status_code == 400


def test_postgresql_writes_the_same_csv_as_the_python_writer(
    app, append, database_url, tmp_path, monkeypatch
):
    """The COPY fast path (full CSV exports on PostgreSQL) and the row writer agree record by record."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the COPY path exists on PostgreSQL only")
    for text in AWKWARD_TEXT:
        append(
            1,
            actor=Actor(label=text, ip=text, user_agent=text, vendor=text, role=text, session_ref=text),
            action="test.awkward",
            target=text,
            details={"text": text},
        )
    append(3, actor=Actor())
    with app.app_context():
        plan = plan_export(portal_keys().audit_signing_key)
        db.session.commit()
        copied = tmp_path / "copied.csv"
        copied.write_bytes(b"".join(ExportStream(plan, "csv")))
        monkeypatch.setattr(audit_export, "_on_postgresql", lambda: False)
        written = tmp_path / "written.csv"
        written.write_bytes(b"".join(ExportStream(plan, "csv")))
    assert [r for _, r in read_export(copied)] == [r for _, r in read_export(written)]
    result = verify_file(copied, _public_key(app))
    assert result.ok and result.events == len(AWKWARD_TEXT) + 3 and result.checkpoints == 4, result.problems


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_full_exports_from_the_web_verify_offline(app, signed_in, auditor, clock, tmp_path, fmt):
    confirm(signed_in, auditor, clock, query=f"format={fmt}")
    response = signed_in.get(f"/audit/export?format={fmt}")
    path = Path(tmp_path / f"export.{fmt}")
    path.write_bytes(response.get_data())
    result = verify_file(path, _public_key(app))
    assert result.ok, result.problems
    assert result.first_seq == 1 and result.last_seq == len(stored_events(app)) - 1
    records = [record for _, record in read_export(path)]
    assert records[-1]["type"] == "seal" and not records[-1].get("selection")


@pytest.fixture
def two_attempts_per_minute(app_env):
    app_env.update(PORTAL_SIGN_IN_RATE_LIMIT_PER_ACCOUNT="2/minute", PORTAL_LOCKOUT_THRESHOLD="10")


def test_step_up_codes_are_rate_limited_per_account(
    two_attempts_per_minute, app, client, login_as, auditor, clock
):
    """The confirm page's code attempts are limited like sign-in attempts, per account."""
    login_as(client, auditor)
    for code in ("000001", "000002"):
        assert post_form(client, "/audit/export/confirm?format=csv", {"code": code}).status_code == 401
    assert confirm(client, auditor, clock).status_code == 429
    assert [e["outcome"] for e in _events(app, "access.rate_limited")] == ["denied"]
