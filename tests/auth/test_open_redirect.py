"""Open redirects: `next` only ever leads to a path on this site, through every gate."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest

from portal.auth.models import Role
from tests.auth.helpers import element_text, location, page_text
from tests.conftest import post_form

HOSTILE = [
    "//evil.example",
    "https://evil.example",
    "http://evil.example/",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "javascript:alert(1)",
    "evil.example",
    "https:evil.example",
]


def _query(target: str) -> str:
    return "?" + urlencode({"next": target})


def _step_and_next(response) -> tuple[str, list[str] | None]:
    parts = urlsplit(location(response))
    return parts.path, parse_qs(parts.query).get("next")


def _assert_stays_home(response) -> None:
    assert response.status_code == 302
    assert location(response) == "/"


def _assert_no_hostile_target(response) -> None:
    redirect = location(response)
    parts = urlsplit(redirect)
    assert parts.scheme == "" and parts.netloc == "", redirect
    assert not redirect.startswith("//") and "\\" not in redirect
    assert "evil.example" not in redirect


@pytest.mark.parametrize("target", HOSTILE)
def test_next_is_ignored_through_every_gate(app, client, create_user, publish, clock, target):
    publish()
    person = create_user(Role.ANNOTATOR)
    response = post_form(
        client,
        "/login" + _query(target),
        {"email": person.email, "password": person.password},
        form_page="/login",
    )
    assert response.status_code == 302
    _assert_no_hostile_target(response)
    # A crafted link straight to the second step is no better.
    response = post_form(client, "/2fa" + _query(target), {"code": person.totp(clock.now)}, form_page="/2fa")
    _assert_stays_home(response)

    page = page_text(client.get("/nda"))
    version = re.search(r'name="version" type="hidden" value="(\d+)"', page)
    assert version
    data = {"full_name": "Test Person", "accept": "y", "version": version.group(1)}
    response = post_form(client, "/nda" + _query(target), data, form_page="/nda")
    _assert_stays_home(response)
    # Once through, the gate pages still do not bounce anywhere else.
    _assert_stays_home(client.get("/nda" + _query(target)))
    _assert_stays_home(client.get("/2fa" + _query(target)))


def test_next_is_ignored_after_enrolment(app, create_user, clock):
    for target in HOSTILE:
        client = app.test_client()
        person = create_user(Role.ANNOTATOR, enrolled=False)
        post_form(client, "/login", {"email": person.email, "password": person.password})
        secret = element_text(page_text(client.get("/2fa/setup")), "totp-secret")
        code = pyotp.TOTP(secret).at(clock.now)
        page = post_form(client, "/2fa/setup" + _query(target), {"code": code}, form_page="/2fa/setup")
        assert page.status_code == 200
        link = re.search(r'<a\b[^>]*id="continue"[^>]*>', page_text(page))
        assert link, target
        assert 'href="/"' in link.group(0), (target, link.group(0))


def test_a_path_on_this_site_is_followed(app, client, create_user, login_as, publish, clock):
    """The control case: a legitimate `next` survives every step (so the tests above can fail)."""
    publish()
    person = create_user(Role.ANNOTATOR)
    response = client.get("/account/sessions")
    assert _step_and_next(response) == ("/login", ["/account/sessions"])
    response = post_form(
        client, location(response), {"email": person.email, "password": person.password}, form_page="/login"
    )
    assert _step_and_next(response) == ("/2fa", ["/account/sessions"])
    response = post_form(client, location(response), {"code": person.totp(clock.now)}, form_page="/2fa")
    assert location(response) == "/account/sessions"
    response = client.get("/account/sessions")
    assert _step_and_next(response) == ("/nda", ["/account/sessions"])
    page = page_text(client.get(location(response)))
    version = re.search(r'name="version" type="hidden" value="(\d+)"', page)
    assert version
    data = {"full_name": "Test Person", "accept": "y", "version": version.group(1)}
    response = post_form(client, "/nda?next=%2Faccount%2Fsessions", data, form_page="/nda")
    assert location(response) == "/account/sessions"
