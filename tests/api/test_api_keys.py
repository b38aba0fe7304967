"""API keys: created once, stored hashed, revocable, scoped; every refusal audited."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from flask import Blueprint, jsonify

from portal.access import api_key_required
from portal.api.models import ApiKey
from portal.auth.models import Role
from portal.extensions import db
from tests.clips import helpers
from tests.clips.helpers import metadata, post_clip


def test_cli_creates_a_key_shown_once_and_stored_hashed(app, runner, vendor):
    result = runner.invoke(args=["apikeys", "create", "--name", "speech team", "--scope", "ingest"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("vap_") and len(token) >= 4 + 43
    with app.app_context():
        key = db.session.scalar(sa.select(ApiKey))
        assert key.key_hash == hashlib.sha256(token.encode()).hexdigest()
        assert key.prefix == token[:12]
    assert token not in helpers.database_text(app)
    assert token not in str(helpers.audit_rows(app))
    (event,) = helpers.audit_rows(app, "apikeys.created")
    assert event["details"] == {"name": "speech team", "scope": "ingest", "prefix": token[:12]}

    listing = runner.invoke(args=["apikeys", "list"])
    assert "speech team" in listing.output and token not in listing.output
    duplicate = runner.invoke(args=["apikeys", "create", "--name", "speech team", "--scope", "outbox"])
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output

    response = post_clip(app.test_client(), token, helpers.wav(1.0), metadata())
    assert response.status_code == 201
    with app.app_context():
        assert db.session.scalar(sa.select(ApiKey.last_used_at)) is not None


def _refusal(response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "missing"),
        ("Bearer ", "missing"),
        ("Bearer vap_notARealKeyAtAll0000000000000000000000000", "unknown"),
        ("Bearer something-else", "unknown"),
    ],
)
def test_absent_or_unknown_keys_are_refused_and_audited(app, client, vendor, header, reason):
    headers = {"Authorization": header} if header else {}
    response = client.post("/api/v1/clips", headers=headers, data={"metadata": "{}"})
    _refusal(response, 401, "api_key_missing" if reason == "missing" else "api_key_invalid")
    (event,) = helpers.audit_rows(app, "api.access_denied")
    assert event["outcome"] == "denied"
    assert event["details"]["reason"] == reason
    expected_prefix = header[7:19] if header and header.startswith("Bearer vap_") else None
    assert event["details"]["prefix"] == expected_prefix
    assert "something-else" not in str(event)
    assert helpers.row_counts(app)["clips"] == 0


def test_revoked_key_is_refused(app, client, runner, ingest_token):
    assert post_clip(client, ingest_token, helpers.wav(1.0), metadata()).status_code == 201
    result = runner.invoke(args=["apikeys", "revoke", "speech-pipeline"])
    assert result.exit_code == 0, result.output
    _refusal(post_clip(client, ingest_token, helpers.wav(1.0), metadata()), 401, "api_key_invalid")
    assert helpers.audit_rows(app, "api.access_denied")[0]["details"]["reason"] == "revoked"
    assert helpers.audit_rows(app, "apikeys.revoked")[0]["details"] == {"name": "speech-pipeline"}
    assert runner.invoke(args=["apikeys", "revoke", "nobody"]).exit_code != 0


def test_wrong_scope_is_forbidden(app, client, vendor, make_api_key):
    token = make_api_key("outbox", "warehouse")
    _refusal(post_clip(client, token, helpers.wav(1.0), metadata()), 403, "api_key_scope")
    (event,) = helpers.audit_rows(app, "api.access_denied")
    assert event["actor"] == "apikey:warehouse"
    assert event["details"]["reason"] == "scope"
    assert helpers.row_counts(app)["clips"] == 0


def test_a_browser_session_is_not_an_api_key(app, client, vendor, create_user, login_as, publish):
    publish()
    login_as(client, create_user(Role.ADMIN))
    _refusal(post_clip(client, None, helpers.wav(1.0), metadata()), 401, "api_key_missing")


def test_api_answers_json_for_unknown_methods_and_paths(client):
    assert client.get("/api/v1/clips").get_json()["error"]["code"] == "method_not_allowed"
    assert client.get("/api/v1/nothing").get_json()["error"]["code"] == "not_found"


def test_the_decorator_checks_scope_per_view(app, make_api_key):
    probe = Blueprint("probe", __name__)

    @probe.route("/api/v1/probe")
    @api_key_required("outbox")
    def outbox_probe():
        return jsonify(ok=True)

    app.register_blueprint(probe)
    client = app.test_client()
    outbox, ingest = make_api_key("outbox"), make_api_key("ingest")
    assert client.get("/api/v1/probe", headers={"Authorization": f"Bearer {outbox}"}).status_code == 200
    assert client.get("/api/v1/probe", headers={"Authorization": f"Bearer {ingest}"}).status_code == 403
    assert client.get("/api/v1/probe").status_code == 401
