"""The NDA gate: what it blocks, what an acceptance records, new versions, refusals."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from portal.auth.models import Role
from tests.auth.helpers import acceptances, audit_events, details, location, page_text
from tests.conftest import post_form

NDA_TEXT = "Everything you hear stays here.\nNo copies, no notes, no recordings."


def _version_on_page(client) -> str:
    match = re.search(r'name="version" type="hidden" value="(\d+)"', page_text(client.get("/nda")))
    assert match
    return match.group(1)


def _accept(client, version: str, full_name: str = "Ada Lovelace", **extra):
    return post_form(client, "/nda", {"full_name": full_name, "accept": "y", "version": version, **extra})


@pytest.fixture
def pending(app, client, create_user, login_as, publish):
    """An annotator past the second factor whose NDA is still pending."""
    publish(NDA_TEXT, title="Confidentiality agreement")
    person = create_user(Role.ANNOTATOR)
    login_as(client, person, accept_nda=False)
    return person


def test_gate_redirects_everything_but_nda_logout_and_static(app, client, pending):
    for path in ("/", "/account/sessions", "/nda?x=1"):
        response = client.get(path)
        if path.startswith("/nda"):
            assert response.status_code == 200
            continue
        parts = urlsplit(location(response))
        assert response.status_code == 302 and parts.path == "/nda", path
        assert parse_qs(parts.query)["next"] == [path]
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page_text(client.get("/nda")))
    assert token
    response = client.post("/account/sessions/end-all", data={"csrf_token": token.group(1)})
    assert location(response).startswith("/nda")
    assert client.get("/static/css/portal.css").status_code == 200
    assert client.get("/nda/mine").status_code == 200
    response = client.post("/logout", data={"csrf_token": token.group(1)})
    assert response.status_code == 302 and location(response) == "/login"


def test_acceptance_records_evidence_and_is_audited(app, client, pending, clock):
    client.environ_base.update(REMOTE_ADDR="192.0.2.31", HTTP_USER_AGENT="ReviewerBrowser/7.1")
    page = page_text(client.get("/nda"))
    assert "Everything you hear stays here." in page
    digest = hashlib.sha256(NDA_TEXT.encode()).hexdigest()
    assert digest in page

    response = _accept(client, _version_on_page(client), full_name="  Ada   Lovelace ")
    assert response.status_code == 302 and location(response) == "/"
    assert client.get("/").status_code == 200

    (row,) = acceptances(app, pending.id)
    assert row.version.version == 1 and row.sha256 == digest
    assert row.full_name == "Ada Lovelace"
    assert row.accepted_at == clock.now
    assert (row.ip, row.user_agent) == ("192.0.2.31", "ReviewerBrowser/7.1")
    (event,) = audit_events(app, "nda.accepted")
    assert event.actor_id == pending.id and event.target == "nda:1"
    assert (event.ip, event.user_agent) == ("192.0.2.31", "ReviewerBrowser/7.1")
    assert details(event) == {"sha256": digest, "full_name": "Ada Lovelace"}


def test_new_version_sends_signed_in_users_back(app, client, pending, publish):
    assert _accept(client, _version_on_page(client)).status_code == 302
    assert client.get("/").status_code == 200

    publish("Version two: also no screenshots.", title="Confidentiality agreement v2")
    response = client.get("/")
    assert response.status_code == 302 and location(response).startswith("/nda")
    assert "Version two: also no screenshots." in page_text(client.get("/nda"))
    assert _accept(client, _version_on_page(client)).status_code == 302
    assert client.get("/").status_code == 200
    assert [a.version.version for a in acceptances(app, pending.id)] == [1, 2]


def test_outdated_version_is_refused(app, client, pending, publish):
    shown = _version_on_page(client)
    publish("A newer text, published while the user was reading.")
    response = _accept(client, shown)
    assert response.status_code == 400
    assert "newer NDA" in page_text(response)
    assert acceptances(app, pending.id) == []
    assert audit_events(app, "nda.accepted") == []
    assert location(client.get("/")).startswith("/nda")


@pytest.mark.parametrize(
    "data",
    [
        {"full_name": "", "accept": "y"},
        {"full_name": "   ", "accept": "y"},
        {"full_name": "A", "accept": "y"},
        {"full_name": "Ada Lovelace"},
        {"full_name": "Ada Lovelace", "accept": ""},
    ],
    ids=["no-name", "blank-name", "one-letter", "no-checkbox", "empty-checkbox"],
)
def test_missing_name_or_checkbox_is_refused(app, client, pending, data):
    response = post_form(client, "/nda", {"version": _version_on_page(client), **data})
    assert response.status_code == 400
    assert acceptances(app, pending.id) == []
    assert location(client.get("/")).startswith("/nda")


def test_user_can_read_what_they_signed(app, client, pending, publish):
    _accept(client, _version_on_page(client), full_name="Ada Lovelace")
    publish("Second text.", title="Second agreement")
    _accept(client, _version_on_page(client), full_name="Ada Lovelace")

    page = page_text(client.get("/nda/mine"))
    for text in (
        "Confidentiality agreement",
        "Everything you hear stays here.",
        "Second agreement",
        "Second text.",
    ):
        assert text in page
    assert hashlib.sha256(NDA_TEXT.encode()).hexdigest() in page
    assert "Ada Lovelace" in page


def test_users_only_see_their_own_acceptances(app, client, create_user, login_as, publish):
    publish(NDA_TEXT)
    first = create_user(Role.ANNOTATOR)
    login_as(client, first)
    other = login_as(app.test_client(), create_user(Role.SUPERVISOR), accept_nda=False)
    assert "Test Person" in page_text(client.get("/nda/mine"))
    page = page_text(other.get("/nda/mine"))
    assert "Test Person" not in page and NDA_TEXT.split("\n")[0] not in page
