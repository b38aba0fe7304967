"""The gate chain as a person meets it in Chromium: password, second factor, NDA, sign-out.

TOTP codes come from pyotp on the real clock. The server refuses a time step that already
signed the user in, so a second sign-in of the same person in one test uses the code of
the next step (now + 30 s), which the ±1 step window accepts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import SQLITE_ONLY, LiveServer, accept_nda, expect_path, sign_out
from tests.conftest import Person

pytestmark = [pytest.mark.browser, SQLITE_ONLY]

NDA_TEXT = "Keep everything you hear confidential.\n\nDo not copy, record or download recordings."


def next_of(page: Page) -> str | None:
    return parse_qs(urlsplit(page.url).query).get("next", [None])[0]


def submit_password(page: Page, person: Person, next_path: str | None = None) -> None:
    page.goto("/login" + (f"?next={quote(next_path, safe='')}" if next_path else ""))
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Continue").click()


def submit_code(page: Page, code: str) -> None:
    expect_path(page, "/2fa")
    page.get_by_role("textbox", name="Code").fill(code)
    page.get_by_role("button", name="Verify").click()


def next_step_code(person: Person) -> str:
    """The code of the next time step: accepted (±1 step) even if `now`'s step was used."""
    return person.totp(datetime.now(UTC) + timedelta(seconds=30))


def test_first_sign_in_enrols_shows_recovery_codes_and_takes_the_nda(page: Page, create_user, publish):
    version = publish(NDA_TEXT, title="Confidentiality agreement")
    person = create_user(enrolled=False)

    submit_password(page, person)
    expect_path(page, "/2fa/setup")
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    page.get_by_role("textbox", name="Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm").click()

    codes = page.locator("#recovery-codes li")
    expect(codes).to_have_count(10)
    assert all(re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", c.strip()) for c in codes.all_inner_texts())
    page.locator("#continue").click()

    expect_path(page, "/nda")
    expect(page.locator(".nda-text")).to_contain_text("Do not copy, record or download recordings.")
    accept_nda(page, "Ada Lovelace")

    expect_path(page, "/")
    expect(page.locator(".whoami")).to_contain_text(person.email)
    expect(page.locator("main")).to_contain_text(f"Version {version}, signed")


def test_returning_sign_in_lands_on_next_and_refuses_an_external_next(
    page: Page, live_server: LiveServer, create_user, publish
):
    publish(NDA_TEXT)
    person = create_user()

    page.goto("/account/sessions")
    expect_path(page, "/login")
    assert next_of(page) == "/account/sessions"
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Continue").click()
    submit_code(page, person.totp())
    expect_path(page, "/nda")
    assert next_of(page) == "/account/sessions"
    accept_nda(page, "Grace Hopper")
    expect_path(page, "/account/sessions")
    expect(page.get_by_role("heading", name="My sessions")).to_be_visible()

    sign_out(page)
    expect_path(page, "/login")
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"):
        submit_password(page, person, next_path=evil)
        expect(page).to_have_url(live_server.url + "/2fa")
    page.goto("/2fa?next=" + quote("https://evil.example/", safe=""))
    submit_code(page, next_step_code(person))
    expect(page).to_have_url(live_server.url + "/")
    expect(page.get_by_role("heading", name=re.compile("Welcome"))).to_be_visible()


def test_sign_in_with_a_recovery_code_spends_it(page: Page, create_user, publish):
    publish(NDA_TEXT)
    person = create_user()
    code = person.recovery_codes[0]

    submit_password(page, person)
    submit_code(page, code.lower())
    expect_path(page, "/nda")
    accept_nda(page, "Katherine Johnson")
    expect(page.locator("main")).to_contain_text("9 unused")

    sign_out(page)
    submit_password(page, person)
    submit_code(page, code)
    expect(page.get_by_role("alert")).to_contain_text("That code did not work")
    expect_path(page, "/2fa")


def test_sign_out_clears_the_site_and_the_back_button_lands_on_login(page: Page, create_user):
    person = create_user()
    submit_password(page, person)
    submit_code(page, person.totp())
    expect_path(page, "/")

    with page.expect_response(lambda r: urlsplit(r.url).path == "/logout") as logout:
        sign_out(page)
    response = logout.value
    assert response.status in (302, 303)
    assert response.header_value("clear-site-data") == '"cache", "cookies", "storage"'
    expect_path(page, "/login")
    assert not [c for c in page.context.cookies() if c["name"].endswith("portal_session")]

    # Back to the home page: the browser must ask again (no-store), and the server says no.
    page.go_back()
    expect_path(page, "/login")
    assert next_of(page) == "/"
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto("/")
    expect_path(page, "/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_keyboard_only_sign_in(page: Page, create_user):
    person = create_user()
    page.goto("/login")

    def focused() -> str:
        return page.evaluate("document.activeElement.id || document.activeElement.tagName")

    def focus_is_visible() -> bool:
        return page.evaluate("getComputedStyle(document.activeElement).outlineStyle !== 'none'")

    # autofocus is applied once the page has rendered, a moment after the URL changes: wait for it.
    expect(page.locator("#email")).to_be_focused()
    page.keyboard.type(person.email)
    page.keyboard.press("Tab")
    assert focused() == "password"
    assert focus_is_visible()
    page.keyboard.type(person.password)
    page.keyboard.press("Tab")
    assert focused() == "BUTTON"
    assert focus_is_visible()
    page.keyboard.press("Enter")

    expect_path(page, "/2fa")
    expect(page.locator("#code")).to_be_focused()
    page.keyboard.type(person.totp())
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Welcome"))).to_be_visible()
