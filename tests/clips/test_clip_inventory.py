"""The admin inventory page: counts only, admins only."""

from __future__ import annotations

import pytest

from portal.auth.models import Role
from tests.clips import helpers
from tests.clips.helpers import RAW_DEVICE, RAW_SUBJECT, metadata, post_clip
from tests.conftest import post_form


def test_inventory_shows_counts_without_ids_or_content(
    app, client, ingest_token, create_user, login_as, publish
):
    publish()
    for index in range(3):
        consent = {
            "opt_in": True,
            "recorded_at": "2026-11-01T10:00:00Z",
            "scope": ["human_review", "model_training"] if index else ["human_review"],
        }
        response = post_clip(client, ingest_token, helpers.wav(1.0), metadata(consent=consent))
        assert response.status_code == 201
    admin = create_user(Role.ADMIN)
    browser = app.test_client()
    login_as(browser, admin)
    response = browser.get("/admin/clips/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Clip inventory" in page
    assert "human_review, model_training" in page
    assert "[EMAIL]" in page and "[PHONE]" in page
    assert "Erase a data subject" in page
    for secret in (RAW_SUBJECT, RAW_DEVICE, "jordan.lee", "415 555", "email me at"):
        assert secret not in page
    clip = helpers.clip_row(
        app, post_clip(client, ingest_token, helpers.wav(1.0), metadata()).get_json()["clip_id"]
    )
    page = browser.get("/admin/clips/").get_data(as_text=True)
    assert clip.subject_pseudonym not in page and clip.storage_name not in page
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.SUPERVISOR, Role.AUDITOR])
def test_inventory_is_for_admins_only(app, client, create_user, login_as, publish, role):
    publish()
    login_as(client, create_user(role))
    assert client.get("/admin/clips/").status_code == 403
    response = post_form(client, "/admin/clips/erase", {"source_user_id": "x", "confirm": "y"}, form_page="/")
    assert response.status_code == 403
    paths = [event["details"]["path"] for event in helpers.audit_rows(app, "access.denied")]
    assert paths == ["/admin/clips/", "/admin/clips/erase"]
    assert helpers.audit_rows(app, "subjects.erased") == []


def test_inventory_needs_a_sign_in(client):
    response = client.get("/admin/clips/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
